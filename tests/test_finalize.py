"""The shared post-search step (``search.finalize``): results file always, models only for
evaluators that declare an exporter, and a failed export reported without losing results."""

from __future__ import annotations

import json
import math

from agents.base import TrialState
from search.finalize import finalize, wants_export
from search.sinks import TrialRecord
from search.spec import parse_spec

NB201_ARCH = {"edge_0_1": "avg_pool_3x3", "edge_0_2": "nor_conv_3x3",
              "edge_1_2": "nor_conv_1x1", "edge_0_3": "skip_connect",
              "edge_1_3": "skip_connect", "edge_2_3": "none"}


def test_table_jobs_get_results_and_no_models(tmp_path) -> None:
    spec = parse_spec({"name": "tab"})
    assert not wants_export(spec)  # the tabular evaluator declares no exporter
    trial = TrialRecord(0, NB201_ARCH, "k", TrialState.COMPLETE, reward=1.0,
                        metrics={"val_acc": 1.0, "odd": math.nan})
    done = finalize(spec, [trial], status="succeeded", reason="done", elapsed_s=1.0,
                    results_path=tmp_path / "r.json", models_dir=tmp_path / "models")
    doc = json.loads((tmp_path / "r.json").read_text())  # strict JSON: NaN became null
    assert doc["best"]["trial_id"] == 0 and doc["trials"][0]["metrics"]["odd"] is None
    assert done.exported == {} and done.reason == "done"
    assert not (tmp_path / "models").exists()


def test_a_failed_export_is_reported_and_the_results_stand(tmp_path) -> None:
    model = {"reference": "resnet_small", "dataset": "digits", "limit": 100, "epochs": 0}
    spec = parse_spec({"kind": "compress", "name": "c", "model": model,
                       "target": {"metric": "flops", "ratio": 0.5}})
    assert wants_export(spec)  # the compress evaluator declares one
    from search.compression.factory import make_space

    space = make_space(model=model, target={"metric": "flops", "ratio": 0.5})
    arch = {**space.identity(), "prune:stem.0": 5.0}  # beyond max_prune: refused at export
    bad = TrialRecord(0, arch, "k", TrialState.COMPLETE, reward=1.0, metrics={"val_acc": 1.0})
    done = finalize(spec, [bad], status="succeeded", reason="budget reached", elapsed_s=1.0,
                    results_path=tmp_path / "r.json", models_dir=tmp_path / "models")
    assert done.export_error and "model export failed" in done.reason
    assert done.reason.startswith("budget reached")
    assert (tmp_path / "models" / "export-error.txt").read_text().strip() == done.export_error
    assert json.loads((tmp_path / "r.json").read_text())["best"]["trial_id"] == 0
    # A job that did not succeed is not exported at all.
    again = finalize(spec, [bad], status="failed", reason="x", elapsed_s=1.0,
                     results_path=tmp_path / "r2.json", models_dir=tmp_path / "m2")
    assert again.export_error is None and not (tmp_path / "m2").exists()
