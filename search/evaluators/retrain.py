"""Knowledge reuse after the search: retrain the best candidates longer, optionally distilled.

A proxy training ranks candidates cheaply but under-trains them; MnasNet and Vertex AI NAS
retrain the top candidates for longer as a second stage. ``retrain_top_k`` takes a finished
job's spec and trials, retrains the ``top_k`` best (by reward, or by ``rank_by``) for
``epochs`` with the job's data and seed per architecture, and can distil them from a teacher
(Hinton et al. 2015): the best retrained candidate, or an architecture named in the spec. The
figures it returns are the retrained validation and test accuracies beside the searched ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agents.base import TrialState
from search.model_options import RetrainSpec
from search.sinks import TrialRecord
from search.spec import JobSpec


@dataclass
class RetrainResult:
    trial_id: int
    arch: dict[str, Any]
    arch_key: str
    searched: dict[str, float]
    val_acc: float
    test_acc: float
    val_curve: list[float]
    epochs: int
    seconds: float
    teacher: str | None = None  # "trial <id>" or "arch" when distilled
    files: dict[str, str] = field(default_factory=dict)
    model: Any = None  # the retrained nn.Module (not serialized)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "model"}


def rank_trials(spec: JobSpec, trials: Sequence[TrialRecord], rank_by: str | None = None
                ) -> list[TrialRecord]:
    """Completed, distinct trials, best first (reward, or ``rank_by`` in its direction)."""
    direction = "max"
    if rank_by is not None:
        direction = next((o.direction for o in spec.objectives if o.metric == rank_by), "max")
    seen: set[str] = set()
    ranked = []
    for t in trials:
        if t.state is not TrialState.COMPLETE or t.arch_key in seen:
            continue
        value = t.reward if rank_by is None else t.metrics.get(rank_by)
        if value is None:
            continue
        seen.add(t.arch_key)
        ranked.append((float(value), t.trial_id, t))
    ranked.sort(key=lambda v: (-v[0] if direction == "max" else v[0], v[1]))
    return [t for _, _, t in ranked]


def retrain_top_k(
    spec: JobSpec,
    trials: Sequence[TrialRecord],
    retrain: RetrainSpec | Mapping[str, Any] | None = None,
    *,
    out_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RetrainResult]:
    """Retrain the job's best candidates (see the module docstring); with ``out_dir``, each is
    exported (weights, TorchScript, ONNX, model card) to ``out_dir/rank<i>_trial<id>``."""
    from search.evaluators.train import TrainingEvaluator, build_for, get_dataset, train_model
    from search.export import export_model
    from search.loop import evaluation_seed
    from search.registry import EVALUATORS
    from spaces.registry import SPACES

    opts = retrain if isinstance(retrain, RetrainSpec) else RetrainSpec.model_validate(
        dict(retrain or {}))
    space = SPACES.create(spec.space.name, options=spec.space.options)
    evaluator = EVALUATORS.create(spec.evaluator.name, options=spec.evaluator.options)
    if not isinstance(evaluator, TrainingEvaluator):
        raise ValueError(f"retraining needs a job with the 'train' evaluator, got "
                         f"{spec.evaluator.name!r}")
    data = get_dataset({**evaluator.dataset, **(opts.dataset or {})})
    cfg = replace(evaluator.config, epochs=opts.epochs, lr=opts.lr or evaluator.config.lr,
                  batch_size=opts.batch_size or evaluator.config.batch_size)
    if opts.distill is not None:
        cfg = replace(cfg, distill_alpha=opts.distill.alpha,
                      distill_temperature=opts.distill.temperature)
    chosen = rank_trials(spec, trials, opts.rank_by)[:opts.top_k]
    if not chosen:
        raise ValueError("no completed trial to retrain")
    say = progress or (lambda _msg: None)

    teacher = None
    teacher_name: str | None = None
    if opts.distill is not None and isinstance(opts.distill.teacher, dict):
        arch = space.validate(opts.distill.teacher)
        key = space.key(arch)
        seed = evaluation_seed(spec.seed, key)
        say(f"training teacher {space.describe(arch)}")
        teacher_cfg = replace(cfg, epochs=opts.distill.teacher_epochs or cfg.epochs)
        teacher = train_model(build_for(space, arch, data, seed), data, teacher_cfg,
                              seed=seed).model
        teacher_name = "arch"

    results: list[RetrainResult] = []
    for rank, trial in enumerate(chosen):
        seed = evaluation_seed(spec.seed, trial.arch_key)
        say(f"retraining rank {rank} (trial {trial.trial_id}) for {cfg.epochs} epochs")
        model = build_for(space, trial.arch, data, seed)
        use_teacher = teacher if opts.distill is not None else None
        out = train_model(model, data, cfg, seed=seed, teacher=use_teacher)
        res = RetrainResult(trial.trial_id, dict(trial.arch), trial.arch_key,
                            dict(trial.metrics), out.val_acc, out.test_acc, out.val_curve,
                            out.epochs_run, out.seconds,
                            teacher=teacher_name if use_teacher is not None else None,
                            model=out.model)
        if opts.distill is not None and opts.distill.teacher == "best" and teacher is None:
            teacher, teacher_name = out.model, f"trial {trial.trial_id}"
        if out_dir is not None:
            export = export_model(
                out.model, Path(out_dir) / f"rank{rank}_trial{trial.trial_id}",
                input_shape=data.input_shape, arch=trial.arch, space=space,
                metrics={**trial.metrics, "retrained_val_acc": out.val_acc},
                recorded={"retrained_test_acc": out.test_acc,
                          "searched_test_acc": trial.recorded.get("test_acc"),
                          "retrain_epochs": out.epochs_run, "distilled_from": res.teacher},
                dataset=data.description, seed=seed, name="model")
            res.files = export.files
        results.append(res)
    return results
