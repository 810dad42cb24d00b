"""NetAdapt's weight carrying (``warm_start``): a policy pruned further than one evaluated
before it starts from that one's fine-tuned weights, and the exporter replays the chain."""

from __future__ import annotations

import pytest
import torch

from agents.base import TrialState
from search.compression.factory import make_space
from search.compression.options import CompressEvaluatorOptions
from search.compression.pipeline import ancestor, clear_carried, compress_trial
from search.loop import evaluation_seed
from search.sinks import TrialRecord
from search.spec import parse_spec
from tests.compression.conftest import REFS

MODEL = REFS["resnet"]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_warm_start_carries_fine_tuned_weights_and_export_replays_them(cache, tmp_path,
                                                                      resnet) -> None:
    from search.compression.ship import export_compressed_trial

    clear_carried()
    space = make_space(model=MODEL, controls=["prune"])
    opts = CompressEvaluatorOptions(model=MODEL, finetune_epochs=0.3, warm_start=True)
    names = [n for n in space.identity() if n.startswith("prune:")]
    a = space.validate({**space.identity(), names[-1]: 0.5})
    b = space.validate({**a, names[3]: 0.5})  # a, pruned further: a is its ancestor
    ta = compress_trial(opts, space, a, seed=1)
    assert ta.recorded["warm_start_lineage"] == []  # nothing before it: the reference
    start, lineage = ancestor(opts, space, space.kept_channels(b))
    assert _same(start, ta.model) and lineage == [{"kept": ta.kept, "seed": 1}]
    assert ancestor(opts, space, space.kept_channels(space.identity())) is None

    seed = evaluation_seed(0, space.key(b))
    tb = compress_trial(opts, space, b, seed=seed)
    assert tb.recorded["warm_start_lineage"] == [{"kept": ta.kept, "seed": 1}]
    assert tb.kept == space.kept_channels(b)
    cold = compress_trial(opts.model_copy(update={"warm_start": False}), space, b, seed=seed)
    assert "warm_start_lineage" not in cold.recorded
    assert not _same(cold.model, tb.model)  # it did not start from the reference

    # A fresh process (nothing carried) replays the lineage into the same model ...
    clear_carried()
    again = compress_trial(opts, space, b, seed=seed, lineage=tb.recorded["warm_start_lineage"])
    assert _same(again.model, tb.model)
    assert again.recorded["val_acc_shipped"] == tb.recorded["val_acc_shipped"]
    # ... and so does the exporter, from the trial record alone.
    clear_carried()
    spec = parse_spec({"kind": "compress", "model": MODEL, "seed": 0,
                       "space": {"name": "compression", "options": {"controls": ["prune"]}},
                       "agent": {"name": "random"},
                       "evaluator": {"name": "compress", "options": {
                           "finetune_epochs": 0.3, "warm_start": True}}})
    trial = TrialRecord(0, b, space.key(b), TrialState.COMPLETE, metrics={},
                        recorded=tb.recorded)
    files = export_compressed_trial(spec, trial, tmp_path, measure_latency=False).files
    shipped = torch.load(files["weights"], weights_only=True)
    assert shipped.keys() == tb.model.state_dict().keys()
    assert all(torch.equal(shipped[k], v) for k, v in tb.model.state_dict().items())


def test_warm_start_applies_to_prune_only_policies(cache) -> None:
    """With other controls the carried weights would need their formats: every trial starts
    from the reference and records no lineage."""
    clear_carried()
    space = make_space(model=MODEL, controls=["prune", "bits"], bit_choices=[8])
    opts = CompressEvaluatorOptions(model=MODEL, warm_start=True)
    t = compress_trial(opts, space, space.identity(), seed=0)
    assert "warm_start_lineage" not in t.recorded
    assert ancestor(opts, space, t.kept) is None


@pytest.mark.slow
def test_a_netadapt_job_carries_weights_between_steps_and_exports_its_best(cache, tmp_path,
                                                                         digits) -> None:
    """Through ``lightsearch search``: every candidate after NetAdapt's first step starts from
    the model the step chose, and ``lightsearch export`` rebuilds the best one from the
    results file alone (a fresh process's view: nothing carried)."""
    import json

    import numpy as np

    from search.cli import main
    from search.profilers.measured import ort_session

    clear_carried()
    job = {"kind": "compress", "name": "na", "model": MODEL, "seed": 0,
           "target": {"metric": "flops", "ratio": 0.6},
           "space": {"name": "compression", "options": {"controls": ["prune"]}},
           "agent": {"name": "netadapt", "options": {"short_term_finetune": True,
                                                     "initial_reduction": 0.25}},
           "evaluator": {"name": "compress", "options": {
               "finetune_epochs": 0.2, "warm_start": True, "signal": "after_finetune",
               "measure_latency": False}},
           "budget": {"evaluations": 6}, "export": {"best": True, "measure_latency": False}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    out = tmp_path / "res.json"
    code = main(["search", str(path), "--out", str(out), "--quiet"])
    results = json.loads(out.read_text())
    assert (code, results["status"]) in ((0, "succeeded"), (3, "exhausted")), results["reason"]
    trials = results["trials"]
    lineages = [t["recorded"]["warm_start_lineage"] for t in trials]
    assert lineages[0] == []
    later = [lin for lin in lineages if lin]
    assert later, "no candidate started from a chosen one"
    kept = {json.dumps(t["recorded"]["policy"]) for t in trials}
    assert len(kept) > 1
    clear_carried()
    again = tmp_path / "again"
    assert main(["export", str(out), "--out", str(again), "--no-latency"]) == 0
    best = next(p for p in (tmp_path / "res-models").iterdir() if p.is_dir())
    x = digits.val.x[:32].numpy()

    def run(p) -> np.ndarray:
        s = ort_session(str(p), 1)
        return s.run(None, {s.get_inputs()[0].name: x})[0]

    assert np.allclose(run(best / f"{best.name}.onnx"),
                       run(again / best.name / f"{best.name}.onnx"), atol=1e-5)
