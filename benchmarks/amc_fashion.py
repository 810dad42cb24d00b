"""Benchmark (issue 15): AMC's variants against hand-made rules, NetAdapt and TPE on Fashion-MNIST.

For each reference model, resource target and seed, every method searches a channel-pruning
policy with the same search signal (prune, least-squares refit, batch-norm recalibration on a
fixed small batch, accuracy on a fixed validation subset; scores cached per kept-channel
count), then the policy is fine-tuned for each budget (1 and 3 epochs, separately, from the same
pruned start, same seed for every method) and scored on the test split, which no method sees.
Each (target, seed, method) runs in a fresh process (its own peak memory and CPU time).

Methods: ``amc`` (default variant: budget-aware state, penalty), ``amc_paper`` (the paper's
state, first to last, clipped), ``amc_clip`` / ``amc_largest_first`` (ablations of the
default), ``amc_ft`` / ``tpe_ft`` (``amc`` / ``tpe`` rewarded with validation accuracy after
``--reward-ft-steps`` batches of fine-tuning instead of right after pruning),
``uniform``, ``shallow_first``, ``deep_first``, ``netadapt`` (with short-term fine-tuning of each
candidate, as in the paper) and ``tpe`` (Optuna's TPE over the same space; a proposal that
misses the target is moved onto it by ``CompressionSpace.meet_target``, as AMC's penalty mode
does, and TPE is told that policy's score). ``amc_iter``: AMC in two stages (the AMC paper's
iterative pruning), each to sqrt(target) of the FLOPs with half the episodes,
``--iter-ft-epochs`` of fine-tuning in between (counted in the search's cost); its ``kept``
counts are of the stage-1 model's channels, and stage 2 keeps at least ``--lbound`` of the
original model's channels per group (``--iter-bound stage``: of the stage-1 model's, as in the
fifth run); ``uniform_iter`` is its control (the same stages and fine-tune, uniform
pruning) and ``uniform_fill_iter`` the same with ``uniform_fill`` (uniform pruning with the
FLOPs that whole channels leave unspent given back); ``amc_iter_refine`` is ``amc_iter``
whose second stage ends by fine-tuning its ``--refine-top`` best policies ``--refine-steps``
batches each and keeping the best on the signal's validation images (counted in the
search's cost); ``netadapt_eqtrain`` is NetAdapt's policy fine-tuned for each budget plus
``--iter-ft-epochs`` (equal training with the two-stage methods).
``rllib_sac`` (issue 17): the ``rllib`` agent with RLlib's SAC on AMC's layer walk
(``agents.envs.CompressionEnv``, constrained to the target),
with the registry's default options and the benchmark's ``--lbound`` given exactly as ``amc``
gets it (both walk ``space.bounded(1 - lbound)``: the same search space), through the same
ask/tell loop, signal and number of episodes as ``amc``; the options it ran with are recorded
in each row and in the JSON. The
adapter needs no Ray cluster (it drives RLlib's Learner and RLModule in the process), so Ray
is not started.

Statistics: per target and fine-tuning budget, mean test accuracy with its 95% t-interval, and
the paired per-seed differences AMC - uniform and AMC - NetAdapt (also AMC paper - uniform) with
their 95% t-intervals. CPU-minutes of each method's search (one thread) and peak RSS per row.

The issue's protocol (hours to days on 2 cores; one prepared accelerator script otherwise)::

    python benchmarks/amc_fashion.py --seeds 10 --episodes 300 --warmup 100

The script prints every setting that differs from that protocol before it starts, and marks
cells of the issue's table that the run did not reach.

The small run in ``benchmarks/results/amc_fashion_resnet10_small*.json`` (ResNet 10% FLOPs
only, 3 seeds, 2,500 training images, about 45 minutes on a loaded 2-core machine)::

    COMMON="--targets resnet_small:flops:0.1 --seeds 3 --train-size 2500 --signal-val 1000 \
        --test-size 2000 --ref-epochs 8 --netadapt-ft-steps 5"
    python benchmarks/amc_fashion.py $COMMON --episodes 30 --warmup 10 --netadapt-step 0.25 \
        --methods amc,amc_paper,uniform,shallow_first,deep_first,netadapt,tpe,amc_clip \
        --out benchmarks/results/amc_fashion_resnet10_small.json
    python benchmarks/amc_fashion.py $COMMON --episodes 30 --warmup 10 --netadapt-step 0.1 \
        --methods netadapt --merge benchmarks/results/amc_fashion_resnet10_small.json \
        --out benchmarks/results/amc_fashion_resnet10_small_netadapt01.json
    python benchmarks/amc_fashion.py $COMMON --episodes 60 --warmup 20 --methods amc,amc_paper \
        --merge benchmarks/results/amc_fashion_resnet10_small_netadapt01.json \
        --out benchmarks/results/amc_fashion_resnet10_small_ep60.json

    python benchmarks/amc_fashion.py $COMMON --episodes 60 --warmup 20 --lbound 0.2 \
        --methods rllib_sac --merge benchmarks/results/amc_fashion_resnet10_small_ep60.json \
        --out benchmarks/results/amc_fashion_resnet10_small_sac.json

(NetAdapt's 0.25 step left most layers unable to save a step alone, so it was rerun at its
usual 0.1.) AMC - uniform stayed within noise there (+0.2 [-0.6, +1.1] / -0.2 [-2.2, +1.8]
points after 1 / 3 epochs, 60 episodes), as did TPE: the goal of issue 15 is not reached.
RLlib SAC (registry defaults, 60 episodes, ``--lbound 0.2`` as amc) stays below uniform:
SAC - uniform -2.4 [-4.2, -0.6] / -1.2 [-2.2, -0.3] points, SAC - amc -2.7 [-5.0, -0.3] /
-1.0 [-2.3, +0.2]; signal 0.725 against amc's 0.776 and uniform's 0.747; 15-24 distinct
policies in 60 episodes, and its mean signal after the warm-up (0.662) no better than during
it (0.673). The bound holds as amc's does (rounded to whole channels: at least 3/16, 6/32).
An earlier run without the bound (the rllib agent had no ``lbound`` option then; SAC pruned
layers to 2/16, 3/32 and 6/64: -7.3 [-22.8, +8.2] / -4.7 [-11.2, +1.8] points against uniform) is
kept as ``benchmarks/results/amc_fashion_resnet10_small_sac_unbounded.json`` / ``.log`` (its
recorded ``out`` is the old name ``..._sac.json``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from agents.amc_ddpg import AMCAgent  # noqa: E402
from agents.base import TrialResult, TrialState  # noqa: E402
from agents.compression_baselines import HEURISTICS, NetAdaptAgent  # noqa: E402
from agents.registry import AGENTS  # noqa: E402
from benchmarks.common import in_fresh_process, mean_ci  # noqa: E402
from search.compression.apply import apply_policy  # noqa: E402
from search.compression.data import ImageData, Split, load_dataset  # noqa: E402
from search.compression.factory import resolve_flops_block  # noqa: E402
from search.compression.finetune import evaluate_accuracy, train_epochs  # noqa: E402
from search.compression.graph import analyze  # noqa: E402
from search.compression.latency import cached_latency_model  # noqa: E402
from search.compression.measure import count_flops  # noqa: E402
from search.compression.reference import trained_reference  # noqa: E402
from search.profilers.measured import cpu_name  # noqa: E402
from spaces.compression import CompressionSpace  # noqa: E402

# The issue's targets (model, metric, ratio) and methods.
ISSUE_TARGETS = [("resnet_small", "flops", 0.10), ("resnet_small", "flops", 0.05),
                 ("mobilenetv2_small", "flops", 0.25), ("mobilenetv2_small", "flops", 0.10),
                 ("resnet_small", "latency", 0.5)]
ISSUE_METHODS = ("amc", "amc_paper", "uniform", "shallow_first", "deep_first", "netadapt", "tpe")
AMC_METHODS = {"amc": {}, "amc_paper": {"variant": "paper"},
               "amc_clip": {"variant": "budget", "constraint": "clip"},
               "amc_largest_first": {"variant": "budget", "order": "largest_first"}}
# RLlib algorithms through the ``rllib`` agent (issue 17): options given; the rest are the
# registry's defaults (``agents.rllib_options.RLlibOptions``), not tuned on these seeds.
RLLIB_METHODS = {"rllib_sac": {"algorithm": "SAC", "environment": "compression"}}
# The same agents rewarded with validation accuracy after ``--reward-ft-steps`` batches of
# fine-tuning instead of right after pruning (issue 15's "reward after a short fine-tune").
FT_REWARD_METHODS = {"amc_ft": "amc", "tpe_ft": "tpe"}
# AMC in stages (the AMC paper's iterative pruning): prune to sqrt(target) with half the
# episodes, fine-tune ``--iter-ft-epochs``, then AMC again on that model to the target.
# ``uniform_iter``: the same two stages and fine-tune with uniform pruning (the control);
# ``uniform_fill_iter``: the same with ``uniform_fill`` (uniform, the budget that whole
# channels left unspent given back), so the control spends the FLOPs that AMC spends.
ITERATIVE_METHODS = {"amc_iter": "amc", "uniform_iter": "uniform", "amc_iter_refine": "amc",
                     "uniform_fill_iter": "uniform_fill"}
# ``amc_iter_refine``: ``amc_iter`` whose last stage ends by fine-tuning its ``--refine-top``
# best distinct policies for ``--refine-steps`` batches each (with ``--ft-warmup``) and keeping
# the best on the same validation images (issue 15's "several candidate policies refined by a
# few fine-tuning steps at the end"); that fine-tuning counts in the search's cost.
REFINED_METHODS = {"amc_iter_refine"}
# Equal training with the two-stage methods: the base method's policy, fine-tuned for each
# budget plus ``--iter-ft-epochs`` (the epoch a two-stage model gets between its stages), so
# "1 / 3 epochs" means the same total training as ``amc_iter``'s.
EQUAL_TRAINING_METHODS = {"netadapt_eqtrain": "netadapt"}
# ``--ft-repeats``: repeat r > 0 of a row's fine-tune uses seed + r * stride.
FT_REPEAT_STRIDE = 100_000
METHODS = (*ISSUE_METHODS, "uniform_fill", "amc_clip", "amc_largest_first", *FT_REWARD_METHODS,
           *RLLIB_METHODS, *ITERATIVE_METHODS, *EQUAL_TRAINING_METHODS)
# What the issue asks for, against which the run's settings are compared and printed.
PROTOCOL = {"seeds": 10, "episodes": 300, "train_size": None, "val_size": None,
            "test_size": None, "finetune": "1,3"}


class Scorer:
    """The search signal every method sees, cached per kept-channel count (repeats and the
    many policies that round to the same channels cost nothing)."""

    def __init__(self, model: torch.nn.Module, space: CompressionSpace, data: ImageData,
                 args: argparse.Namespace, seed: int, reward_ft_steps: int = 0) -> None:
        self.model, self.space, self.data, self.args, self.seed = model, space, data, args, seed
        self.val = data.val.head(args.signal_val)
        self.cache: dict[tuple, tuple[float, float | None]] = {}
        self.evaluations = 0
        self.reward_ft_steps = reward_ft_steps

    def __call__(self, arch: dict, finetune_steps: int = 0) -> tuple[float, float | None]:
        """(validation accuracy right after pruning, after ``finetune_steps`` batches). With
        ``reward_ft_steps``, the first value is the accuracy after that many batches instead:
        the fine-tuned signal the ``*_ft`` methods (and only they) search on."""
        if self.reward_ft_steps and not finetune_steps:
            return self._score(arch, self.reward_ft_steps)[1] or 0.0, None
        return self._score(arch, finetune_steps)

    def _score(self, arch: dict, finetune_steps: int) -> tuple[float, float | None]:
        key = (tuple(sorted(self.space.kept_channels(arch).items())), finetune_steps)
        if key not in self.cache:
            self.evaluations += 1
            model = self.pruned(arch)
            acc = evaluate_accuracy(model, self.val)
            tuned = None
            if finetune_steps > 0:
                train_epochs(model, self.data.train, seed=self.seed, lr=self.args.ft_lr,
                             epochs=finetune_steps * 64 / len(self.data.train))
                tuned = evaluate_accuracy(model, self.val)
            self.cache[key] = (acc, tuned)
        return self.cache[key]

    def refined(self, arch: dict, steps: int) -> float:
        """Validation accuracy after ``steps`` batches of fine-tuning with the final
        fine-tunes' warm-up (``--ft-warmup``), for the end-of-search pick."""
        key = (tuple(sorted(self.space.kept_channels(arch).items())), "refined", steps)
        if key not in self.cache:
            self.evaluations += 1
            model = self.pruned(arch)
            train_epochs(model, self.data.train, seed=self.seed, lr=self.args.ft_lr,
                         epochs=steps * 64 / len(self.data.train), warmup=self.args.ft_warmup)
            self.cache[key] = (evaluate_accuracy(model, self.val), None)
        return self.cache[key][0]

    def pruned(self, arch: dict) -> torch.nn.Module:
        """``arch`` applied to the model: pruned, refit, batch norm recalibrated."""
        return apply_policy(self.model, self.space, arch, calib=self.data.train, seed=self.seed,
                            least_squares=self.args.least_squares,
                            calib_samples=self.args.calib_samples).model


def rllib_given(method: str, lbound: float | None) -> dict[str, Any]:
    """The options ``method`` gives the ``rllib`` agent: its own, and the benchmark's
    ``--lbound`` passed exactly as ``amc`` gets it (the same search space for both)."""
    return {**RLLIB_METHODS[method], "lbound": lbound}


def rllib_record(method: str, lbound: float | None) -> dict[str, Any]:
    """The options ``method`` runs the ``rllib`` agent with: those given (``rllib_given``),
    the registry's defaults for the rest, and the RLlib ``training()`` settings the adapter
    applies (its defaults under the config's keys). Imports neither ray nor torch-heavy code."""
    from agents.rllib_options import RLlibOptions

    given = rllib_given(method, lbound)
    opts = RLlibOptions.model_validate(given).model_dump()
    from agents.rllib_agent import _DEFAULTS

    return {"agent": "rllib", "given": dict(given), "options": opts,
            "training": {**_DEFAULTS[opts["algorithm"]], **opts["config"]}}


def _ok(reward: float, metrics: dict | None = None) -> TrialResult:
    return TrialResult(TrialState.COMPLETE, reward=reward, metrics=metrics or {})


def search(method: str, model, space: CompressionSpace, data: ImageData, seed: int,
           args: argparse.Namespace, refine: bool = False) -> tuple[dict, dict]:
    """The policy ``method`` finds, and what its search cost and saw. ``refine`` (AMC
    only): pick among its ``--refine-top`` best by ``Scorer.refined``."""
    steps = args.reward_ft_steps if method in FT_REWARD_METHODS else 0
    score = Scorer(model, space, data, args, seed, reward_ft_steps=steps)
    info: dict[str, Any] = {"reward_ft_steps": steps} if steps else {}
    method = FT_REWARD_METHODS.get(method, method)
    if method in HEURISTICS:
        arch = HEURISTICS[method](space)
        info["signal"] = score(arch)[0]
    elif method in AMC_METHODS:
        agent = AMCAgent(space, seed=seed, warmup=args.warmup, lbound=args.lbound,
                         **AMC_METHODS[method])
        best_episode, best_acc = -1, -math.inf
        seen: dict[tuple, tuple[float, dict]] = {}
        for e in range(args.episodes):
            p = agent.ask()
            acc = score(p.arch)[0]
            agent.tell(p.trial_id, _ok(acc))
            seen.setdefault(tuple(sorted(space.kept_channels(p.arch).items())), (acc, p.arch))
            if acc > best_acc:
                best_episode, best_acc = e, acc
        assert agent.best is not None
        info["signal"], arch = agent.best
        if refine:
            arch, info["refine"] = refine_pick(score, sorted(
                seen.values(), key=lambda t: -t[0])[:args.refine_top], args.refine_steps)
            info["signal"] = score(arch)[0]
        # a best found during the warm-up came from random actions, not from the policy
        info["best_episode"], info["best_in_warmup"] = best_episode, best_episode < args.warmup
        info["bound_relaxed"] = agent.bound_relaxed
        info["variant"], info["constraint"] = agent.config.variant, agent.constraint
    elif method == "netadapt":
        agent = NetAdaptAgent(space, initial_reduction=args.netadapt_step, decay=0.96,
                              short_term_finetune=args.netadapt_ft_steps > 0)
        while not agent.done:
            p = agent.ask()
            acc, tuned = score(p.arch, args.netadapt_ft_steps)
            metrics = {} if tuned is None else {NetAdaptAgent.FINETUNED: tuned}
            agent.tell(p.trial_id, _ok(acc, metrics))
        arch = agent.current
        info["steps"], info["signal"] = agent.step, agent.current_reward
    elif method == "tpe":
        agent = AGENTS.create("tpe", space, options={"n_startup_trials": args.tpe_startup},
                              seed=seed)
        best: tuple[float, dict] | None = None
        for _ in range(args.episodes):
            p = agent.ask()
            fixed = space.meet_target(p.arch)
            acc = score(fixed)[0]
            agent.tell(p.trial_id, _ok(acc))
            if best is None or acc > best[0]:
                best = (acc, fixed)
        assert best is not None
        info["signal"], arch = best
    elif method in RLLIB_METHODS:
        cpu0 = time.process_time()
        agent = AGENTS.create("rllib", space, options=rllib_given(method, args.lbound),
                              seed=seed)
        info["agent_build_cpu_min"] = (time.process_time() - cpu0) / 60
        warmup = agent.options.warmup_episodes
        best_episode, best, trace = -1, None, []
        for e in range(args.episodes):
            p = agent.ask()
            acc = score(p.arch)[0]
            agent.tell(p.trial_id, _ok(acc))
            trace.append(round(acc, 4))
            if best is None or acc > best[0]:
                best_episode, best = e, (acc, p.arch)
        assert best is not None
        info["signal"], arch = best
        info["best_episode"], info["best_in_warmup"] = best_episode, best_episode < warmup
        # the signal of every episode (how the policy moved after its uniform warm-up)
        info["episode_signals"] = trace
        after = trace[warmup:]
        info["mean_signal_warmup"] = sum(trace[:warmup]) / max(len(trace[:warmup]), 1)
        info["mean_signal_after_warmup"] = sum(after) / len(after) if after else math.nan
        info["learner_updates"], info["told"] = agent.updates, agent.told
        info["bound_relaxed"] = agent.bound_relaxed
        info["rllib"] = rllib_record(method, args.lbound)
        import ray

        info["ray_initialized"] = ray.is_initialized()
    else:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    info["evaluations"] = score.evaluations
    return space.validate(arch), info


def refine_pick(score: Scorer, candidates: list[tuple[float, dict]], steps: int
                ) -> tuple[dict, dict[str, Any]]:
    """The candidate (signal, policy) best after ``steps`` batches of fine-tuning (ties: the
    higher signal, i.e. the earlier candidate), and what each scored."""
    tuned = [score.refined(arch, steps) for _, arch in candidates]
    pick = max(range(len(candidates)), key=lambda i: (tuned[i], -i))
    return candidates[pick][1], {"steps": steps, "signals": [s for s, _ in candidates],
                                 "refined": tuned, "picked_rank": pick}


def iterative_search(model, space: CompressionSpace, data: ImageData, seed: int,
                     args: argparse.Namespace, method: str = "amc_iter"
                     ) -> tuple[torch.nn.Module, CompressionSpace, dict, dict]:
    """``ITERATIVE_METHODS[method]`` (AMC or uniform) in two stages, each to the same factor
    (sqrt of the FLOPs target), half the episodes and warm-up each, with ``--iter-ft-epochs``
    of fine-tuning in between (counted in the search's cost). Returns the stage-1 model, the
    stage-2 space and its policy."""
    if space.target is None or space.target.metric != "flops":
        raise ValueError(f"{method} supports FLOPs targets only")
    ratio = space.target.ratio
    half = argparse.Namespace(**{**vars(args), "episodes": args.episodes // 2,
                                 "warmup": args.warmup // 2})
    stage1 = CompressionSpace(space.table, controls=["prune"],
                              target={"metric": "flops", "ratio": math.sqrt(ratio)})
    base = ITERATIVE_METHODS[method]
    arch1, info1 = search(base, model, stage1, data, seed, half)
    comp1 = apply_policy(model, stage1, arch1, calib=data.train, seed=seed,
                         least_squares=args.least_squares, calib_samples=args.calib_samples)
    train_epochs(comp1.model, data.train, epochs=args.iter_ft_epochs, lr=args.ft_lr, seed=seed,
                 warmup=args.ft_warmup)
    comp1.model.eval()
    table2 = analyze(comp1.model, data.input_shape).table
    ratio2 = ratio * space.uncompressed("flops") / CompressionSpace(
        table2, controls=["prune"]).uncompressed("flops")
    stage2, bound = stage2_space(space.table, table2, min(ratio2, 1.0), args)
    arch2, info2 = search(base, comp1.model, stage2, data, seed + 1, half,
                          refine=method in REFINED_METHODS)
    info = {"signal": info2["signal"], "stage1_signal": info1["signal"],
            "stage1_flops_ratio": stage1.cost(arch1, "flops") / space.uncompressed("flops"),
            "best_in_warmup": [info1.get("best_in_warmup"), info2.get("best_in_warmup")],
            "evaluations": info1["evaluations"] + info2["evaluations"],
            "iter_ft_epochs": args.iter_ft_epochs, "iter_bound": bound,
            **({"refine": info2["refine"]} if "refine" in info2 else {})}
    return comp1.model, stage2, arch2, info


def stage2_space(table0, table2, ratio2: float, args: argparse.Namespace
                 ) -> tuple[CompressionSpace, str]:
    """Stage 2's space. With ``--iter-bound original`` (the default) AMC's ``lbound`` counts
    the original model's channels: each group keeps at least ``lbound`` of what it had before
    stage 1, not of what stage 1 left (two stages at 20% each could keep 4%, and a 1-channel
    stem collapsed a fine-tune in the fifth run). Returns the space and the bound that held
    ("original", "stage" when asked, or "stage (original out of reach)")."""
    target = {"metric": "flops", "ratio": ratio2}
    lbound = args.lbound
    if args.iter_bound == "stage" or lbound is None:
        return CompressionSpace(table2, controls=["prune"], target=target), "stage"
    before = {g.leader: g.channels for g in table0.groups}
    floors = {g.leader: min(g.channels, max(1, math.floor(lbound * before[g.leader] + 0.5)))
              for g in table2.groups if g.leader in before}
    try:
        return CompressionSpace(table2, controls=["prune"], target=target,
                                min_keep=floors), "original"
    except ValueError:  # the target needs more than the original's lbound allows
        return (CompressionSpace(table2, controls=["prune"], target=target),
                "stage (original out of reach)")


def run_row(model, space: CompressionSpace, data: ImageData, test: Split, method: str,
            seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One (target, seed, method) cell, in its own process."""
    torch.set_num_threads(1)
    cpu0, wall0 = time.process_time(), time.time()
    full_flops = space.uncompressed("flops")
    extra = 0.0
    if method in ITERATIVE_METHODS:  # the final policy applies to the stage-1 model
        model, space, arch, info = iterative_search(model, space, data, seed, args, method)
    elif method in EQUAL_TRAINING_METHODS:
        arch, info = search(EQUAL_TRAINING_METHODS[method], model, space, data, seed, args)
        extra = args.iter_ft_epochs
        info = {**info, "extra_ft_epochs": extra}
    else:
        arch, info = search(method, model, space, data, seed, args)
    row: dict[str, Any] = {"method": method, "seed": seed, **info,
                           "search_cpu_min": (time.process_time() - cpu0) / 60,
                           "search_wall_min": (time.time() - wall0) / 60,
                           "meets_target": space.fits(arch),
                           "flops_ratio": space.cost(arch, "flops") / full_flops}
    row = _finetune_and_test(row, model, space, arch, data, test, seed, args, extra)
    if space.target is not None and space.target.metric == "latency":
        row.update(exported_latency(model, apply_policy(model, space, arch).model,
                                    data.input_shape, space.target.ratio, args.onnx_rounds))
    return row


def exported_latency(reference: torch.nn.Module, pruned: torch.nn.Module,
                     input_shape: tuple[int, ...], ratio: float, rounds: int
                     ) -> dict[str, Any]:
    """The issue's check of a latency target: both models exported to ONNX and timed in ONNX
    Runtime as a shipped model card times them (``ship.file_latency``: one thread, batch 1,
    interleaved rounds so that load on the machine moves both alike), here with 10 runs per
    round; the minimum of round medians of each, and their ratio."""
    from search.compression.ship import file_latency
    from search.profilers.measured import onnx_bytes, ort_session

    x = torch.zeros(1, *input_shape)
    ref_file, pruned_file = (onnx_bytes(copy.deepcopy(m).eval(), x) for m in (reference, pruned))
    lat = file_latency(ref_file, ort_session(pruned_file), None, input_shape, rounds=rounds,
                       repeats=10)
    mine, ref = lat["onnx_ort_ms"], lat["reference_onnx_ort_ms"]
    return {"onnx_ms": mine, "reference_onnx_ms": ref, "onnx_latency_ratio": mine / ref,
            "meets_target_onnx": mine <= ratio * ref, "onnx_rounds": rounds}


def _finetune_and_test(row: dict[str, Any], model, space: CompressionSpace, arch: dict,
                       data: ImageData, test: Split, seed: int,
                       args: argparse.Namespace, extra_epochs: float = 0.0) -> dict[str, Any]:
    """Each fine-tuning budget (plus ``extra_epochs``) from the same pruned start; test
    accuracy, the mean loss of each epoch (a collapse shows as ln 10), cost, kept channels."""
    cpu1 = time.process_time()
    repeats = ft_repeats(args)
    # Pruning is seeded, so one pruned start serves every fine-tune: each trains a copy.
    pruned = apply_policy(model, space, arch, calib=data.train, seed=seed,
                          least_squares=args.least_squares,
                          calib_samples=args.calib_samples).model
    for ep in args.epochs:
        runs = []
        for r in range(repeats):
            tuned = copy.deepcopy(pruned)
            losses = train_epochs(tuned, data.train, epochs=ep + extra_epochs,
                                  lr=args.ft_lr, seed=finetune_seed(seed, r),
                                  warmup=args.ft_warmup)
            runs.append(100 * evaluate_accuracy(tuned, test))
            if r == 0:
                row[f"test_acc_ft{ep:g}"] = runs[0]
                row[f"ft_losses{ep:g}"] = losses
        if repeats > 1:
            row[f"test_acc_ft{ep:g}_runs"] = runs
            row[f"test_acc_ft{ep:g}_mean"] = sum(runs) / len(runs)
    row["ft_warmup"] = args.ft_warmup
    row["ft_repeats"] = repeats
    row["finetune_cpu_min"] = (time.process_time() - cpu1) / 60
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["kept"] = {k.removeprefix("prune:"): f"{space.keep(space.group_of(k), v)}/"
                   f"{space.table.groups[space.group_of(k)].channels}" for k, v in arch.items()}
    return row


def reference_fingerprint(model: torch.nn.Module) -> dict[str, str]:
    """A digest of the reference's weights and the CPU that trained or loaded them: the same
    seed and recipe train to different weights on different CPUs, and only runs whose
    digests agree pair seed for seed."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {"weights_sha1": digest.hexdigest()[:16], "cpu": cpu_model()}


def cpu_model() -> str:
    """The measured profiler's CPU name plus a digest of the first CPU's feature flags
    (Linux; virtual machines often report one generic name for CPUs whose vector units
    differ); the name alone where there is no ``/proc/cpuinfo``."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return cpu_name()
    flags = next((line.split(":", 1)[1].strip() for line in lines
                  if line.split(":", 1)[0].strip() == "flags" and ":" in line), "")
    return f"{cpu_name()} (flags {hashlib.sha1(flags.encode()).hexdigest()[:8]})"


def ft_repeats(args: argparse.Namespace) -> int:
    """Fine-tunes per row; 1 where ``args`` predates ``--ft-repeats`` (older test settings)."""
    return getattr(args, "ft_repeats", 1)


def finetune_seed(seed: int, repeat: int) -> int:
    """The fine-tune's seed for repeat ``repeat`` of a row: repeat 0 is the row's own seed
    (so a one-repeat row is what earlier runs measured); later repeats are far from every
    search seed."""
    return seed + FT_REPEAT_STRIDE * repeat


def paired(rows: list[dict], a: str, b: str, key: str) -> dict[str, Any]:
    """Mean per-seed difference a - b of ``key`` and its 95% t-interval half-width."""
    by = {(r["method"], r["seed"]): r for r in rows if key in r}
    seeds = sorted(s for m, s in by if m == a and (b, s) in by)
    diffs = [by[(a, s)][key] - by[(b, s)][key] for s in seeds]
    mean, half = mean_ci(diffs)
    return {"a": a, "b": b, "metric": key, "n": len(diffs), "mean": mean, "ci95": half,
            "low": mean - half, "high": mean + half}


def merge_plan(paths: list[str], targets: list[tuple[str, str, float]], seeds: range,
               methods: list[str]) -> dict[str, dict[str | None, list[str]]]:
    """Per ``--merge`` file, the methods whose rows it adds (rows for (target, method, seed)
    cells neither this run nor an earlier ``--merge`` file fills, as ``main`` merges them),
    by where that file had them from: ``None`` run there, else its own ``merged_from``."""
    have = {(f"{m}:{k}:{r:g}", method, s) for m, k, r in targets for method in methods
            for s in seeds}
    plan: dict[str, dict[str | None, list[str]]] = {}
    for path in paths:
        rows = json.loads(Path(path).read_text())["rows"]
        extra = [r for r in rows if (r["target"], r["method"], r["seed"]) not in have]
        have |= {(r["target"], r["method"], r["seed"]) for r in extra}
        by: dict[str | None, list[str]] = {}
        for m in METHODS:
            for origin in dict.fromkeys(r.get("merged_from") for r in extra if r["method"] == m):
                by.setdefault(origin, []).append(m)
        plan[path] = by
    return plan


def deviations(args: argparse.Namespace, targets: list[tuple[str, str, float]],
               methods: list[str],
               merged: dict[str, dict[str | None, list[str]]] | None = None) -> list[str]:
    """Settings that differ from the issue's protocol; ``merged``: ``merge_plan``'s."""
    merged = merged or {}
    out = []
    if args.seeds < PROTOCOL["seeds"]:
        out.append(f"seeds: {args.seeds} (issue: >= {PROTOCOL['seeds']})")
    if args.episodes < PROTOCOL["episodes"]:
        out.append(f"AMC / TPE / RLlib episodes: {args.episodes}, AMC warm-up {args.warmup} "
                   f"(issue: 300-400, paper's warm-up 100)")
    for name in ("train_size", "val_size", "test_size"):
        if getattr(args, name) is not None:
            out.append(f"{name}: {getattr(args, name)} images (issue: the full split)")
    missing_t = [t for t in ISSUE_TARGETS if t not in targets]
    if missing_t:
        out.append("targets not run: " + ", ".join(f"{m} {k}:{r:g}" for m, k, r in missing_t))
    for path, by in merged.items():
        parts = [f"{', '.join(ms)} ({'run there' if origin is None else f'from {origin}'})"
                 for origin, ms in by.items()]
        if parts:
            out.append(f"rows merged from {path} (not run here): {'; '.join(parts)}")
    merged_m = {m for by in merged.values() for ms in by.values() for m in ms}
    missing_m = [m for m in ISSUE_METHODS if m not in methods and m not in merged_m]
    if missing_m:
        out.append(f"methods not run: {', '.join(missing_m)}")
    for m in (m for m in methods if m in RLLIB_METHODS):
        o = rllib_record(m, args.lbound)["options"]
        bound = ("no lbound (nor amc)" if o["lbound"] is None
                 else f"lbound {o['lbound']:g} as amc's --lbound")
        out.append(f"{m}: the rllib agent's registry defaults (uniform warm-up "
                   f"{o['warmup_episodes']} episodes, not --warmup), {bound}")
    if args.finetune != PROTOCOL["finetune"]:
        out.append(f"fine-tuning budgets: {args.finetune} epochs (issue: 1 and 3)")
    if ft_repeats(args) > 1:
        out.append(f"fine-tunes per row: {args.ft_repeats} seeds from the same pruned start "
                   "(test_acc_ft<E> is the first, as in one-repeat runs; test_acc_ft<E>_mean "
                   "averages all; issue: one)")
    if args.width != 1.0:
        out.append(f"reference width multiplier: {args.width}")
    if args.ref_seed:
        out.append(f"reference trained with seed {args.ref_seed} (the earlier runs: seed 0)")
    multiple, block = getattr(args, "channel_multiple", 1), getattr(args, "flops_block", 1)
    if multiple != 1 or block != 1:
        shown = (f"{resolve_flops_block(block)} (auto: ONNX Runtime's NCHWc block here)"
                 if block == "auto" else block)
        out.append(f"kept channels in multiples of {multiple}, FLOPs priced with channels "
                   f"padded to blocks of {shown} (the earlier runs: 1 and 1)")
    if any(m == "latency" for _, m, _ in targets) and args.latency_profiler != "onnxruntime":
        out.append(f"latency target priced by a linear model fitted to profiler "
                   f"{args.latency_profiler!r} (issue: ONNX Runtime on exported files)")
    return out


def fashion_splits(args: argparse.Namespace) -> tuple[ImageData, Split]:
    """Fashion-MNIST cut to ``--train-size`` / ``--val-size`` (the searches' data), and the
    ``--test-size`` test split that only the final scores see."""
    full = load_dataset("fashion_mnist", seed=0)
    data = ImageData(full.name, full.train.head(args.train_size or len(full.train)),
                     full.val.head(args.val_size or len(full.val)), full.test,
                     full.num_classes)
    return data, full.test.head(args.test_size or len(full.test))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=",".join(f"{m}:{k}:{r:g}" for m, k, r in ISSUE_TARGETS),
                    help="model:metric:ratio, comma-separated")
    ap.add_argument("--methods", default=",".join(ISSUE_METHODS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=300, help="AMC / RLlib episodes and TPE trials")
    ap.add_argument("--warmup", type=int, default=100, help="AMC warm-up episodes")
    ap.add_argument("--tpe-startup", type=int, default=10)
    ap.add_argument("--lbound", type=float, default=0.2, help="AMC's least preserve ratio")
    ap.add_argument("--netadapt-step", type=float, default=0.1)
    ap.add_argument("--netadapt-ft-steps", type=int, default=20,
                    help="NetAdapt's short-term fine-tuning: batches of 64 per candidate (0: off)")
    ap.add_argument("--reward-ft-steps", type=int, default=20,
                    help="amc_ft / tpe_ft: batches of 64 fine-tuned before the reward is read")
    ap.add_argument("--iter-ft-epochs", type=float, default=1.0,
                    help="amc_iter: fine-tuning epochs between its two stages")
    ap.add_argument("--ft-warmup", type=float, default=0.0,
                    help="fraction of every benchmark fine-tune (final and between stages) "
                    "spent on a linear learning-rate warm-up; 0: none (runs one to six)")
    ap.add_argument("--refine-top", type=int, default=5,
                    help="amc_iter_refine: how many of its best distinct policies it refines")
    ap.add_argument("--refine-steps", type=int, default=100,
                    help="amc_iter_refine: batches of fine-tuning per refined candidate")
    ap.add_argument("--iter-bound", choices=["original", "stage"], default="original",
                    help="amc_iter/uniform_iter: stage 2's lbound counts the original model's "
                    "channels (original) or the stage-1 model's (stage, the fifth run's)")
    ap.add_argument("--least-squares", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--calib-samples", type=int, default=256, help="BN recalibration images")
    ap.add_argument("--signal-val", type=int, default=2000,
                    help="validation images of the search signal (fixed subset)")
    ap.add_argument("--train-size", type=int, default=None)
    ap.add_argument("--val-size", type=int, default=None)
    ap.add_argument("--test-size", type=int, default=None)
    ap.add_argument("--finetune", default="1,3", help="fine-tuning budgets in epochs")
    ap.add_argument("--ft-lr", type=float, default=0.02)
    ap.add_argument("--ft-repeats", type=int, default=1,
                    help="fine-tunes per row, from the same pruned start with other seeds; "
                         "> 1 adds test_acc_ft<E>_mean (and _runs), summarized and paired "
                         "beside the first fine-tune's test_acc_ft<E>")
    ap.add_argument("--ref-epochs", type=int, default=8)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--ref-seed", type=int, default=0,
                    help="seed of the reference model's training: one reference per run, so "
                         "a comparison over several references is one run per seed")
    ap.add_argument("--latency-profiler", default="cpu",
                    help="what prices a latency target: 'cpu' (PyTorch, one thread) or a "
                    "measured-latency profiler ('onnxruntime': the issue's)")
    ap.add_argument("--channel-multiple", type=int, default=1,
                    help="kept channels in multiples of this (the product's channel_multiple)")
    ap.add_argument("--flops-block", default="1",
                    help="price FLOPs with channels padded to this block, or 'auto' (ONNX "
                    "Runtime's NCHWc block here): the product's flops_block")
    ap.add_argument("--onnx-rounds", type=int, default=7,
                    help="latency targets: interleaved rounds timing each row's exported "
                    "file against the reference's (one thread; the minimum of round medians)")
    ap.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/...)")
    ap.add_argument("--merge", action="append", default=[],
                    help="JSON of an earlier run of this script: its rows for (target, method, "
                    "seed) cells this run lacks join the table (e.g. one method rerun with "
                    "other settings); repeatable")
    args = ap.parse_args(argv)
    if args.flops_block != "auto":
        if not args.flops_block.isdigit() or int(args.flops_block) < 1:
            ap.error(f"--flops-block: 'auto' or an integer >= 1, got {args.flops_block!r}")
        args.flops_block = int(args.flops_block)
    torch.set_num_threads(1)
    args.epochs = [float(e) for e in args.finetune.split(",")]
    if args.lbound is not None and args.lbound < 0:
        args.lbound = None
    targets = []
    for t in args.targets.split(","):
        m, k, r = t.split(":")
        targets.append((m, k, float(r)))
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"--methods: unknown {unknown}; choose from {list(METHODS)}")
    out = Path(args.out or f"benchmarks/results/amc_fashion_{time.strftime('%Y%m%d_%H%M')}.json")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    devs = deviations(args, targets, methods, merge_plan(args.merge, targets, seeds, methods))
    print("# settings that differ from the issue's protocol:" if devs else
          "# the issue's protocol", flush=True)
    for d in devs:
        print(f"#   - {d}", flush=True)

    data, test = fashion_splits(args)
    print(f"# Fashion-MNIST: {len(data.train)} train, {len(data.val)} val "
          f"({args.signal_val} for the signal), {len(test)} test", flush=True)
    rows: list[dict] = []
    refs: dict[str, dict] = {}
    t_start = time.time()
    for model_name, metric, ratio in targets:
        model, rinfo = trained_reference(model_name, data, epochs=args.ref_epochs,
                                         width=args.width, seed=args.ref_seed)
        model.eval()
        if model_name not in refs:
            refs[model_name] = {**rinfo, "test_acc_full": 100 * evaluate_accuracy(model, test),
                                "flops": count_flops(model, data.input_shape),
                                "ref_seed": args.ref_seed, **reference_fingerprint(model)}
            print(f"# {model_name}: {refs[model_name]}", flush=True)
        table = analyze(model, data.input_shape).table
        lm = None
        if metric == "latency":  # fitted on plain policies of the grid, as make_space does
            plain = CompressionSpace(table, controls=["prune"],
                                     channel_multiple=args.channel_multiple)
            lm = cached_latency_model(model, plain, args.latency_profiler, data.input_shape)
        space = CompressionSpace(table, controls=["prune"], latency_model=lm,
                                 target={"metric": metric, "ratio": ratio},
                                 channel_multiple=args.channel_multiple,
                                 flops_block=resolve_flops_block(args.flops_block))
        target = f"{model_name}:{metric}:{ratio:g}"
        for seed in seeds:
            for method in methods:
                row = in_fresh_process(run_row, model, space, data, test, method, seed, args,
                                       failed={"method": method, "seed": seed})
                row["target"] = target
                rows.append(row)
                _write(out, args, refs, rows, devs)
                accs = " ".join(f"{k[9:]}={row[k]:.2f}" for k in accuracy_keys(args)
                                if k in row)
                print(f"{target} seed={seed} {method:17s} {accs} "
                      f"signal={row.get('signal', math.nan):.3f} "
                      f"flops={row.get('flops_ratio', math.nan):.3f} "
                      f"search={row.get('search_cpu_min', math.nan):.2f} CPU-min "
                      f"evals={row.get('evaluations', '-')} {row.get('error', '')} "
                      f"[{(time.time() - t_start) / 60:.1f} min]", flush=True)
    for path in args.merge:
        earlier = json.loads(Path(path).read_text())
        have = {(r["target"], r["method"], r["seed"]) for r in rows}
        extra = [r for r in earlier["rows"] if (r["target"], r["method"], r["seed"]) not in have]
        changed = {k: v for k, v in earlier["args"].items()
                   if k not in ("out", "merge", "methods") and vars(args).get(k) != v}
        print(f"# merged {len(extra)} rows from {path} (its settings that differ: {changed})")
        devs.append(f"settings of {path} that differ from this run: {changed}")
        rows += [{**r, "merged_from": path} for r in extra]
    summary = summarize(rows, args)
    _write(out, args, refs, rows, devs, summary)
    print_table(summary, targets, methods, args)
    print(f"# written {out}")
    return 0


def summarize(rows: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"methods": [], "paired": []}
    for target in sorted({r["target"] for r in rows}):
        sel = [r for r in rows if r["target"] == target and "error" not in r]
        for method in METHODS:
            mine = [r for r in sel if r["method"] == method]
            if not mine:
                continue
            entry: dict[str, Any] = {"target": target, "method": method, "seeds": len(mine)}
            for key in accuracy_keys(args) + [
                    "search_cpu_min", "finetune_cpu_min", "peak_rss_mb", "flops_ratio",
                    "evaluations", "signal"]:
                vals = [float(r[key]) for r in mine if r.get(key) is not None]
                entry[key], entry[key + "_ci95"] = mean_ci(vals)
            measured = [r for r in mine if "onnx_latency_ratio" in r]
            if measured:  # latency targets: the exported files, timed
                entry["onnx_latency_ratio"], entry["onnx_latency_ratio_ci95"] = mean_ci(
                    [r["onnx_latency_ratio"] for r in measured])
                entry["meets_target_onnx"] = sum(bool(r["meets_target_onnx"])
                                                 for r in measured)
                entry["onnx_rows"] = len(measured)
            out["methods"].append(entry)
        for a, b in (("amc", "uniform"), ("amc", "netadapt"), ("amc_paper", "uniform"),
                     ("amc_ft", "uniform"), ("amc_ft", "amc"), ("amc_ft", "tpe_ft"),
                     ("amc_ft", "netadapt"), ("tpe_ft", "uniform"),
                     ("amc", "amc_paper"), ("amc", "amc_clip"), ("amc", "tpe"),
                     ("rllib_sac", "uniform"), ("rllib_sac", "amc"),
                     ("rllib_sac", "amc_paper"), ("amc_iter", "uniform_iter"),
                     ("amc_iter", "netadapt"), ("amc_iter", "amc"), ("amc_iter", "uniform"),
                     ("uniform_iter", "netadapt"), ("uniform_iter", "uniform"),
                     ("amc_iter", "netadapt_eqtrain"), ("uniform_iter", "netadapt_eqtrain"),
                     ("netadapt_eqtrain", "netadapt"), ("amc_iter_refine", "uniform_iter"),
                     ("amc_iter_refine", "amc_iter"), ("amc_iter_refine", "netadapt_eqtrain"),
                     ("amc_iter", "uniform_fill_iter"), ("uniform_fill_iter", "uniform_iter"),
                     ("amc", "uniform_fill"), ("uniform_fill", "uniform")):
            for key in accuracy_keys(args):
                p = paired(sel, a, b, key)
                if p["n"]:
                    out["paired"].append({"target": target, **p})
    return out


def accuracy_keys(args: argparse.Namespace) -> list[str]:
    """The row keys summarized: the first fine-tune per budget, then with ``--ft-repeats``
    > 1 the mean over repeats (rows merged from one-repeat runs lack it and drop out)."""
    keys = [f"test_acc_ft{e:g}" for e in args.epochs]
    if ft_repeats(args) > 1:
        keys += [f"{k}_mean" for k in keys]
    return keys


def _fmt(mean: float, half: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:6.2f}" + ("" if math.isnan(half) else f" ±{half:4.2f}")


def print_table(summary: dict, targets: list, methods: list[str],
                args: argparse.Namespace) -> None:
    eps = accuracy_keys(args)
    print("\n# test accuracy %, mean ± 95% t-interval half-width over seeds; search CPU-min"
          + (f"; *_mean: the mean of {args.ft_repeats} fine-tunes per row"
             if ft_repeats(args) > 1 else ""))
    print(f"{'target':28s} {'method':17s} " + " ".join(f"{k[9:]:>14s}" for k in eps)
          + f" {'search CPU-min':>15s} {'evals':>7s} {'peak MB':>8s}")
    run = {(e["target"], e["method"]): e for e in summary["methods"]}
    all_targets = [f"{m}:{k}:{r:g}" for m, k, r in ISSUE_TARGETS]
    all_targets += [f"{m}:{k}:{r:g}" for m, k, r in targets if f"{m}:{k}:{r:g}" not in all_targets]
    shown = list(ISSUE_METHODS) + [m for m in METHODS if m not in ISSUE_METHODS and (
        m in methods or any(e["method"] == m for e in summary["methods"]))]
    for target in all_targets:
        for method in shown:
            e = run.get((target, method))
            if e is None:
                print(f"{target:28s} {method:17s} NOT RUN")
                continue
            print(f"{target:28s} {method:17s} "
                  + " ".join(f"{_fmt(e[k], e[k + '_ci95']):>14s}" for k in eps)
                  + f" {_fmt(e['search_cpu_min'], math.nan):>15s} {e['evaluations']:7.0f}"
                  f" {e['peak_rss_mb']:8.0f}"
                  + (f"  exported ONNX at {e['onnx_latency_ratio']:.3f} of the reference's "
                     f"time, {e['meets_target_onnx']}/{e['onnx_rows']} rows meet the target"
                     if "onnx_rows" in e else ""))
    print("\n# paired per-seed differences (percentage points), 95% t-interval")
    for p in summary["paired"]:
        verdict = ("above 0" if p["low"] > 0 else "below 0" if p["high"] < 0
                   else "includes 0") if not math.isnan(p["ci95"]) else "n < 2"
        print(f"{p['target']:28s} {p['a']:>10s} - {p['b']:<10s} {p['metric'][9:]:>6s} "
              f"{p['mean']:+6.2f} [{p['low']:+6.2f}, {p['high']:+6.2f}] n={p['n']} {verdict}")


def _write(out: Path, args: argparse.Namespace, refs: dict, rows: list[dict], devs: list[str],
           summary: dict | None = None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    rllib = {m: rllib_record(m, args.lbound) for m in RLLIB_METHODS if m in args.methods.split(",")}
    out.write_text(json.dumps({"args": vars(args), "deviations_from_issue": devs,
                               **({"rllib_options": rllib} if rllib else {}),
                               "references": refs, "rows": rows, "summary": summary},
                              indent=1, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
