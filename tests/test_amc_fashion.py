"""benchmarks/amc_fashion.py: the RLlib SAC method's options record and its paired rows
(no search is run here)."""

from __future__ import annotations

import argparse
import json

import pytest

from agents.rllib_options import RLlibOptions
from benchmarks import amc_fashion


def small_resnet_on_digits(flops_ratio: float) -> tuple:
    """A small real ResNet trained briefly on 600 digits, and its pruning space at a FLOPs
    target (cached by ``trained_reference``)."""
    from search.compression.data import load_dataset
    from search.compression.graph import analyze
    from search.compression.reference import trained_reference
    from spaces.compression import CompressionSpace

    data = load_dataset("digits", seed=0, limit=600)
    model, _ = trained_reference("resnet_small", data, epochs=2, width=0.5, seed=0)
    model.eval()
    space = CompressionSpace(analyze(model, data.input_shape).table, controls=["prune"],
                             target={"metric": "flops", "ratio": flops_ratio})
    return data, model, space


def test_rllib_sac_is_a_method_with_registry_defaults() -> None:
    assert "rllib_sac" in amc_fashion.METHODS
    assert "rllib_sac" not in amc_fashion.ISSUE_METHODS
    record = amc_fashion.rllib_record("rllib_sac", 0.2)
    assert record["agent"] == "rllib"
    # the benchmark's --lbound is given exactly as amc gets it (None: unbounded, as amc)
    assert record["given"] == {"algorithm": "SAC", "environment": "compression", "lbound": 0.2}
    assert amc_fashion.rllib_record("rllib_sac", None)["options"]["lbound"] is None
    defaults = RLlibOptions().model_dump()
    opts = record["options"]
    assert opts["algorithm"] == "SAC" and opts["environment"] == "compression"
    # everything not given is the registry's default (not tuned on the benchmark's seeds)
    assert {k: v for k, v in opts.items() if k not in record["given"]} == {
        k: v for k, v in defaults.items() if k not in record["given"]}
    assert set(record["training"]) >= {"actor_lr", "critic_lr", "alpha_lr"}


def test_summary_pairs_rllib_sac_with_amc_and_uniform_per_seed() -> None:
    args = argparse.Namespace(epochs=[1.0])
    target = "resnet_small:flops:0.1"
    acc = {("rllib_sac", 0): 80.0, ("rllib_sac", 1): 79.0, ("uniform", 0): 81.0,
           ("uniform", 1): 79.5, ("amc", 0): 80.5, ("amc", 1): 80.0}
    rows = [{"target": target, "method": m, "seed": s, "test_acc_ft1": a}
            for (m, s), a in acc.items()]
    summary = amc_fashion.summarize(rows, args)
    pairs = {(p["a"], p["b"]): p for p in summary["paired"]}
    assert pairs[("rllib_sac", "uniform")]["mean"] == pytest.approx(-0.75)
    assert pairs[("rllib_sac", "amc")]["mean"] == pytest.approx(-0.75)
    assert pairs[("rllib_sac", "uniform")]["n"] == 2
    assert {e["method"] for e in summary["methods"]} == {"rllib_sac", "uniform", "amc"}


def test_deviations_name_merged_rows_and_their_file_not_as_not_run(tmp_path) -> None:
    target = ("resnet_small", "flops", 0.1)
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"rows": [
        {"target": "resnet_small:flops:0.1", "method": m, "seed": s, **extra}
        for s in range(2) for m, extra in (("amc", {}), ("rllib_sac", {}),
                                           ("uniform", {"merged_from": "older.json"}))]}))
    plan = amc_fashion.merge_plan([str(earlier)], [target], range(2), ["rllib_sac"])
    assert plan == {str(earlier): {None: ["amc"], "older.json": ["uniform"]}}
    args = argparse.Namespace(seeds=2, episodes=60, warmup=20, train_size=None, val_size=None,
                              test_size=None, lbound=0.2, finetune="1,3", width=1.0,
                              ref_seed=0)
    devs = amc_fashion.deviations(args, [target], ["rllib_sac"], plan)
    merged = [d for d in devs if d.startswith(f"rows merged from {earlier}")]
    assert merged and "amc (run there)" in merged[0] and "uniform (from older.json)" in merged[0]
    not_run = next(d for d in devs if d.startswith("methods not run:"))
    assert "amc," not in not_run and "uniform" not in not_run and "netadapt" in not_run
    assert any("rllib_sac" in d and "lbound 0.2" in d for d in devs)
    assert not any("reference trained with seed" in d for d in devs)
    args.ref_seed = 3
    devs = amc_fashion.deviations(args, [target], ["rllib_sac"], plan)
    assert "reference trained with seed 3 (the earlier runs: seed 0)" in devs


def test_written_json_records_rllib_options_with_lbound(tmp_path) -> None:
    args = argparse.Namespace(methods="rllib_sac,uniform", lbound=0.2)
    out = tmp_path / "run.json"
    amc_fashion._write(out, args, {}, [], ["d"])
    record = json.loads(out.read_text())["rllib_options"]["rllib_sac"]
    assert record["given"]["lbound"] == record["options"]["lbound"] == 0.2


def test_amc_ft_rewards_the_accuracy_after_the_short_fine_tune() -> None:
    """The ``amc_ft`` method's reward is the validation accuracy after ``--reward-ft-steps``
    batches of fine-tuning, not the one right after pruning (a small real model on digits)."""
    from agents.compression_baselines import uniform_policy

    data, model, space = small_resnet_on_digits(0.3)
    args = argparse.Namespace(signal_val=100, least_squares=True, calib_samples=64, ft_lr=0.02,
                              reward_ft_steps=3, episodes=4, warmup=2, lbound=0.2)
    arch = uniform_policy(space)
    plain = amc_fashion.Scorer(model, space, data, args, seed=0)
    tuned = amc_fashion.Scorer(model, space, data, args, seed=0, reward_ft_steps=3)
    before, after = plain(arch, 3)
    assert tuned(arch) == (after, None)  # the reward is the fine-tuned accuracy
    assert after != before  # ... which the 3 batches really changed
    policy, info = amc_fashion.search("amc_ft", model, space, data, 0, args)
    assert info["reward_ft_steps"] == 3 and space.fits(policy)
    assert info["signal"] == tuned(policy)[0]  # its best is judged on the same signal


def test_amc_iter_prunes_in_two_stages_to_the_target() -> None:
    """``amc_iter``: stage 1 to sqrt(target) of the FLOPs, a fine-tune, stage 2 on that model
    to the target of the original (a small real model on digits)."""
    data, model, space = small_resnet_on_digits(0.25)
    args = argparse.Namespace(signal_val=100, least_squares=True, calib_samples=64, ft_lr=0.02,
                              reward_ft_steps=0, episodes=6, warmup=2, lbound=0.2,
                              iter_ft_epochs=0.2, epochs=[0.2], iter_bound="original",
                              ft_warmup=0.0)
    stage1_model, stage2, arch, info = amc_fashion.iterative_search(model, space, data, 0, args)
    assert info["stage1_flops_ratio"] <= 0.5 + 1e-6  # sqrt(0.25), the stage-1 budget
    assert info["iter_bound"] == "original"  # stage 2 keeps 20% of the original's channels
    before = {g.leader: g.channels for g in space.table.groups}
    for g in stage2.table.groups:
        assert stage2.keep(g.index, arch[f"prune:{g.leader}"]) >= round(0.2 * before[g.leader])
    assert info["evaluations"] <= 6  # 3 episodes per stage, repeats cached
    assert stage2.fits(arch)
    assert stage2.cost(arch, "flops") <= 0.25 * space.uncompressed("flops") * (1 + 1e-6)
    assert stage1_model is not model  # stage 2 pruned the fine-tuned stage-1 model
    row = amc_fashion._finetune_and_test({}, stage1_model, stage2, arch, data, data.test, 0, args)
    assert 0 <= row["test_acc_ft0.2"] <= 100
    assert len(row["ft_losses0.2"]) == 1 and row["ft_losses0.2"][0] > 0  # one (partial) epoch
    assert {f"prune:{k}" for k in row["kept"]} == set(arch)


def test_uniform_fill_iter_spends_more_of_each_stage_than_uniform_iter() -> None:
    """The budget-filling control: both stages meet their targets and keep at least the
    FLOPs that plain uniform pruning keeps at each stage."""
    data, model, space = small_resnet_on_digits(0.25)
    args = argparse.Namespace(signal_val=100, least_squares=True, calib_samples=64, ft_lr=0.02,
                              reward_ft_steps=0, episodes=2, warmup=2, lbound=0.2,
                              iter_ft_epochs=0.1, iter_bound="original", ft_warmup=0.0)
    full = space.uncompressed("flops")
    ratios = {}
    for method in ("uniform_iter", "uniform_fill_iter"):
        _, stage2, arch, info = amc_fashion.iterative_search(model, space, data, 0, args,
                                                             method)
        assert stage2.fits(arch) and info["stage1_flops_ratio"] <= 0.5 + 1e-6
        ratios[method] = (info["stage1_flops_ratio"], stage2.cost(arch, "flops") / full)
    assert ratios["uniform_fill_iter"][0] >= ratios["uniform_iter"][0]
    assert ratios["uniform_fill_iter"][1] <= 0.25 * (1 + 1e-6)


def test_netadapt_eqtrain_is_netadapt_with_the_stage_epoch_added() -> None:
    """``netadapt_eqtrain``: NetAdapt's own policy (the same channels), fine-tuned for each
    budget plus ``--iter-ft-epochs``, the epoch a two-stage model gets between its stages."""
    data, model, space = small_resnet_on_digits(0.5)
    args = argparse.Namespace(signal_val=100, least_squares=True, calib_samples=64, ft_lr=0.02,
                              reward_ft_steps=0, netadapt_step=0.25, netadapt_ft_steps=2,
                              iter_ft_epochs=0.5, epochs=[0.1], ft_warmup=0.0)
    plain = amc_fashion.run_row(model, space, data, data.test, "netadapt", 0, args)
    equal = amc_fashion.run_row(model, space, data, data.test, "netadapt_eqtrain", 0, args)
    assert equal["kept"] == plain["kept"] and equal["meets_target"]
    assert equal["extra_ft_epochs"] == 0.5 and "extra_ft_epochs" not in plain
    assert equal["test_acc_ft0.1"] != plain["test_acc_ft0.1"]  # 0.6 epochs, not 0.1


def test_a_latency_row_times_its_exported_file_against_the_reference() -> None:
    """A latency target's row carries the issue's check: the pruned model and the reference
    exported to ONNX and timed in ONNX Runtime, interleaved; the verdict follows the ratio."""
    from search.compression.graph import analyze
    from spaces.compression import CompressionSpace, LatencyModel

    data, model, _ = small_resnet_on_digits(0.5)
    table = analyze(model, data.input_shape).table
    lm = LatencyModel(0.0, {o.name: 1e-6 for o in table.ops if o.kind != "bn"})
    space = CompressionSpace(table, controls=["prune"], latency_model=lm,
                             target={"metric": "latency", "ratio": 0.5})
    args = argparse.Namespace(signal_val=100, least_squares=True, calib_samples=64, ft_lr=0.02,
                              reward_ft_steps=0, epochs=[0.05], ft_warmup=0.0, onnx_rounds=3)
    row = amc_fashion.run_row(model, space, data, data.test, "uniform", 0, args)
    assert row["meets_target"] and row["onnx_rounds"] == 3
    assert row["onnx_ms"] > 0 and row["reference_onnx_ms"] > 0
    assert row["onnx_latency_ratio"] == pytest.approx(row["onnx_ms"] / row["reference_onnx_ms"])
    assert row["meets_target_onnx"] == (row["onnx_latency_ratio"] <= 0.5)
    same = amc_fashion.exported_latency(model, model, data.input_shape, 0.5, rounds=3)
    assert 0.5 < same["onnx_latency_ratio"] < 2.0 and not same["meets_target_onnx"]


def test_flops_block_must_be_auto_or_a_positive_integer() -> None:
    with pytest.raises(SystemExit):
        amc_fashion.main(["--flops-block", "x", "--seeds", "1"])


def test_amc_iter_refine_keeps_the_candidate_best_after_the_short_fine_tune() -> None:
    """``amc_iter_refine``: stage 2 ends by fine-tuning its best distinct policies and keeps
    the one best after that fine-tune, which need not be the best on the plain signal."""
    data, model, space = small_resnet_on_digits(0.25)
    args = argparse.Namespace(signal_val=100, least_squares=True, calib_samples=64, ft_lr=0.02,
                              reward_ft_steps=0, episodes=8, warmup=2, lbound=0.2,
                              iter_ft_epochs=0.2, epochs=[0.2], iter_bound="original",
                              ft_warmup=0.1, refine_top=3, refine_steps=4)
    _, stage2, arch, info = amc_fashion.iterative_search(model, space, data, 0, args,
                                                         "amc_iter_refine")
    refine = info["refine"]
    assert refine["steps"] == 4 and 1 <= len(refine["refined"]) <= 3
    assert refine["signals"] == sorted(refine["signals"], reverse=True)  # the best first
    assert refine["refined"][refine["picked_rank"]] == max(refine["refined"])
    assert stage2.fits(arch)
    _, _, plain_arch, plain = amc_fashion.iterative_search(model, space, data, 0, args,
                                                           "amc_iter")
    assert "refine" not in plain
    if refine["picked_rank"] == 0:  # the refined pick is the plain search's best ...
        assert stage2.kept_channels(arch) == stage2.kept_channels(plain_arch)


def test_refine_pick_takes_the_best_refined_candidate_and_counts_its_evaluations() -> None:
    data, model, space = small_resnet_on_digits(0.5)
    from agents.compression_baselines import HEURISTICS

    args = argparse.Namespace(signal_val=100, least_squares=True, calib_samples=64, ft_lr=0.02,
                              ft_warmup=0.0)
    score = amc_fashion.Scorer(model, space, data, args, seed=0)
    cands = [(score(a)[0], a) for a in (HEURISTICS[r](space) for r in
                                        ("uniform", "shallow_first", "deep_first"))]
    arch, info = amc_fashion.refine_pick(score, cands, 3)
    assert info["refined"][info["picked_rank"]] == max(info["refined"])
    assert arch is cands[info["picked_rank"]][1]
    before = score.evaluations
    assert score.refined(arch, 3) == max(info["refined"])  # cached: no new evaluation
    assert score.evaluations == before


def test_ft_repeats_keep_the_first_fine_tune_and_average_all() -> None:
    """``--ft-repeats 3``: the first fine-tune is the one-repeat row's (seed for seed), the
    others use other seeds from the same pruned start, and the mean is theirs."""
    data, model, space = small_resnet_on_digits(0.5)
    from agents.compression_baselines import HEURISTICS

    arch = HEURISTICS["uniform"](space)
    base = dict(least_squares=True, calib_samples=64, ft_lr=0.02, epochs=[0.2], ft_warmup=0.1)
    one = amc_fashion._finetune_and_test({}, model, space, arch, data, data.test, 0,
                                         argparse.Namespace(**base, ft_repeats=1))
    three = amc_fashion._finetune_and_test({}, model, space, arch, data, data.test, 0,
                                           argparse.Namespace(**base, ft_repeats=3))
    assert "test_acc_ft0.2_mean" not in one and one["ft_repeats"] == 1
    runs = three["test_acc_ft0.2_runs"]
    assert three["test_acc_ft0.2"] == one["test_acc_ft0.2"] == runs[0]
    assert three["ft_losses0.2"] == one["ft_losses0.2"]
    assert len(set(runs)) > 1  # other seeds, other fine-tunes
    assert three["test_acc_ft0.2_mean"] == pytest.approx(sum(runs) / 3)
    assert amc_fashion.finetune_seed(7, 0) == 7 != amc_fashion.finetune_seed(7, 1)


def test_summary_pairs_the_repeat_means_only_where_rows_have_them() -> None:
    """With ``--ft-repeats`` > 1 the mean over repeats is summarized and paired beside the
    first fine-tune; rows merged from one-repeat runs drop out of the mean's pairs."""
    args = argparse.Namespace(epochs=[1.0], ft_repeats=3)
    rows = []
    for seed in range(3):
        for method, acc in (("amc_iter_refine", 80.0 + seed), ("uniform_iter", 79.0)):
            rows.append({"target": "t", "method": method, "seed": seed,
                         "test_acc_ft1": acc, "test_acc_ft1_mean": acc + 0.5})
    rows.append({"target": "t", "method": "amc_iter_refine", "seed": 3, "test_acc_ft1": 90.0})
    rows.append({"target": "t", "method": "uniform_iter", "seed": 3, "test_acc_ft1": 79.0})
    pairs = {p["metric"]: p for p in amc_fashion.summarize(rows, args)["paired"]
             if (p["a"], p["b"]) == ("amc_iter_refine", "uniform_iter")}
    assert pairs["test_acc_ft1"]["n"] == 4
    assert pairs["test_acc_ft1_mean"]["n"] == 3
    assert pairs["test_acc_ft1_mean"]["mean"] == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    single = amc_fashion.summarize(rows, argparse.Namespace(epochs=[1.0]))["paired"]
    assert {p["metric"] for p in single} == {"test_acc_ft1"}


def test_reference_fingerprint_tells_weights_apart() -> None:
    """Two runs pair only if their references' weights agree: the digest is stable for the
    same weights and changes when any weight does."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    first = amc_fashion.reference_fingerprint(model)
    assert first == amc_fashion.reference_fingerprint(model)
    assert first["cpu"] and len(first["weights_sha1"]) == 16
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-6
    assert amc_fashion.reference_fingerprint(model)["weights_sha1"] != first["weights_sha1"]


def test_summary_reports_the_exported_files_latency_for_latency_rows() -> None:
    def row(method: str, seed: int, ratio: float | None) -> dict:
        r = {"target": "resnet_small:latency:0.5", "method": method, "seed": seed,
             "test_acc_ft1": 80.0 + seed, "test_acc_ft3": 85.0 + seed}
        if ratio is not None:
            r.update(onnx_latency_ratio=ratio, meets_target_onnx=ratio <= 0.5)
        return r

    rows = [row("amc", s, r) for s, r in enumerate([0.47, 0.52, 0.49])]
    rows += [row("uniform", s, None) for s in range(3)]
    summary = amc_fashion.summarize(rows, argparse.Namespace(epochs=[1.0, 3.0], ft_repeats=1))
    by = {e["method"]: e for e in summary["methods"]}
    assert by["amc"]["onnx_rows"] == 3 and by["amc"]["meets_target_onnx"] == 2
    assert by["amc"]["onnx_latency_ratio"] == pytest.approx((0.47 + 0.52 + 0.49) / 3)
    assert "onnx_rows" not in by["uniform"]  # nothing measured, nothing claimed
