"""The ``depth`` control: residual blocks with an identity shortcut dropped whole.

A dropped block must leave a model that runs with the same output shape, costs exactly the
block's FLOPs and parameters less, exports (ONNX equal to PyTorch, packed artifact, card),
and every compression agent must be able to use the decision.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest
import torch

from agents.base import TrialState
from agents.compression_baselines import NetAdaptAgent, uniform_policy
from search.compression.apply import apply_policy
from search.compression.export import load_artifact
from search.compression.factory import make_space
from search.compression.measure import count_flops, count_params
from search.profilers.measured import onnx_bytes, ort_session
from search.sinks import MemorySink, TrialRecord
from search.spec import SpecError, parse_spec
from spaces.compression import CompressionSpace, LayerTable
from tests.compression.conftest import REFS, space_of

SHAPE = (1, 8, 8)


def _drop(space: CompressionSpace, blocks: list[str], base: dict | None = None) -> dict:
    arch = dict(base or space.identity())
    for b in blocks:
        arch[f"depth:{b}"] = "drop"
    return arch


def test_identity_shortcut_blocks_are_found(resnet, mobilenet) -> None:
    """Stride-1 blocks of equal channels only: downsampling blocks (1x1 shortcut, or no
    shortcut in MobileNetV2) are not removable."""
    res = space_of(resnet, controls=["prune", "depth"])
    assert [b.name for b in res.table.blocks] == ["layers.0", "layers.1", "layers.3",
                                                  "layers.5"]
    mob = space_of(mobilenet, controls=["depth"])
    assert [b.name for b in mob.table.blocks] == ["blocks.2", "blocks.4", "blocks.6"]
    assert [d.name for d in mob.decisions] == ["depth:blocks.2", "depth:blocks.4",
                                               "depth:blocks.6"]
    # The decision sits at the block's first layer, beside its prune decision.
    step = next(s for s in res.steps if "depth" in s.decisions)
    assert step.layer == "layers.0.conv1" and step.decisions["prune"] == "prune:layers.0.conv1"
    # The table round-trips through JSON with its blocks.
    assert LayerTable.from_dict(json.loads(json.dumps(res.table.to_dict()))) == res.table


@pytest.mark.parametrize("which", ["resnet", "mobilenet"])
def test_dropping_a_block_keeps_the_output_shape_and_removes_exactly_its_cost(
        which, request, digits) -> None:
    model = request.getfixturevalue(which)
    space = space_of(model, controls=["prune", "depth"])
    full = apply_policy(model, space, space.identity()).model
    flops0, params0 = count_flops(full, SHAPE), count_params(full, nonzero=False)
    per_op_flops = space.op_costs(space.identity(), "flops")
    per_op_params = space.op_costs(space.identity(), "params")
    x = digits.val.x[:16]
    for block in space.table.blocks:
        dropped = apply_policy(model, space, _drop(space, [block.name])).model
        assert isinstance(dropped.get_submodule(block.name), torch.nn.Identity)
        with torch.no_grad():
            assert dropped(x).shape == model(x).shape
        own_flops = sum(per_op_flops[o] for o in block.ops)
        own_params = sum(per_op_params[o] for o in block.ops)
        assert own_flops > 0 and own_params > 0
        assert count_flops(dropped, SHAPE) == flops0 - own_flops
        assert count_params(dropped, nonzero=False) == params0 - own_params
        assert space.cost(_drop(space, [block.name]), "flops") == flops0 - own_flops
        assert space.cost(_drop(space, [block.name]), "params") == params0 - own_params
    # With channels pruned as well (random policies, some blocks dropped): still exact.
    rng = np.random.default_rng(3)
    for _ in range(4):
        arch = space.sample(rng)
        pruned = apply_policy(model, space, arch).model
        assert count_flops(pruned, SHAPE) == space.cost(arch, "flops")
        assert count_params(pruned, nonzero=False) == space.cost(arch, "params")


def test_a_model_without_removable_blocks_refuses_the_depth_control(resnet) -> None:
    table = dataclasses.replace(space_of(resnet).table, blocks=())
    with pytest.raises(ValueError, match="'depth'.*none"):
        CompressionSpace(table, controls=["prune", "depth"])


def test_the_most_compressed_policy_drops_every_block_and_targets_count_it(mobilenet) -> None:
    plain = space_of(mobilenet, controls=["prune"])
    deep = space_of(mobilenet, controls=["prune", "depth"])
    least = deep.cost(deep.most_compressed(), "flops")
    assert least < plain.cost(plain.most_compressed(), "flops")
    ratio = least / deep.uncompressed("flops")
    assert deep.removed_blocks(deep.most_compressed()) == ["blocks.2", "blocks.4", "blocks.6"]
    # A target only depth pruning reaches: refused without it, met with it.
    target = {"metric": "flops", "ratio": 1.02 * ratio}
    with pytest.raises(ValueError, match="out of reach"):
        space_of(mobilenet, controls=["prune"], target=target)
    space = space_of(mobilenet, controls=["prune", "depth"], target=target)
    assert space.fits(space.most_compressed())


def test_a_block_dropping_policy_ships_onnx_equal_to_pytorch(cache, tmp_path, digits) -> None:
    """Through the job's export code: ONNX without the block's operators and equal to
    PyTorch under ONNX Runtime; the packed artifact rebuilds the same model; the card names
    the removed blocks and marks their layers."""
    from search.compression.ship import export_compressed_trial

    model = REFS["mobilenet"]
    options = {"controls": ["prune", "depth"], "channel_multiple": 4}
    target = {"metric": "flops", "ratio": 0.3}
    space = make_space(model=model, target=target, **options)
    arch = uniform_policy(space)
    removed = space.removed_blocks(arch)
    assert removed  # at 30% the uniform rule drops blocks
    spec = parse_spec({"kind": "compress", "model": model, "target": target,
                       "space": {"name": "compression", "options": options},
                       "agent": {"name": "uniform"},
                       "evaluator": {"name": "compress", "options": {}}})
    trial = TrialRecord(0, arch, space.key(arch), TrialState.COMPLETE, metrics={})
    result = export_compressed_trial(spec, trial, tmp_path, measure_latency=False)
    files = result.files
    card = result.card["compression"]
    assert card["removed_blocks"] == removed
    assert card["flops"]["ratio"] == pytest.approx(space.cost(arch, "flops")
                                                   / space.uncompressed("flops"))
    marked = {r["layer"] for r in card["policy"] if r.get("removed")}
    assert marked and all(any(m.startswith(f"{b}.") for b in removed) for m in marked)
    assert "Blocks removed" in (tmp_path / "trial0_card.md").read_text()

    loaded, manifest = load_artifact(files["lsz"])
    assert manifest["meta"]["removed"] == removed
    for b in removed:
        assert isinstance(loaded.get_submodule(b), torch.nn.Identity)
    x = digits.val.x[:32].numpy()
    with torch.no_grad():
        want = loaded(torch.from_numpy(x)).numpy()
    session = ort_session(files["onnx"], 1)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-4, rtol=1e-3)
    # The ONNX file lost the dropped blocks' operators: 3 convs (expand, depthwise,
    # project) and the add of each MobileNetV2 block.
    import onnx

    from search.compression.factory import resolve_model

    base = resolve_model(model)[0]
    ref_nodes = onnx.load_from_string(onnx_bytes(base, torch.zeros(1, *SHAPE))).graph.node
    nodes = onnx.load(files["onnx"]).graph.node

    def convs(ns) -> int:
        return sum(n.op_type == "Conv" for n in ns)

    assert convs(nodes) == convs(ref_nodes) - 3 * len(removed)
    assert sum(n.op_type == "Add" for n in nodes) == \
        sum(n.op_type == "Add" for n in ref_nodes) - len(removed)
    with zipfile.ZipFile(files["lsz"]) as zf:  # no tensor of a dropped block is stored
        names = [t["name"] for t in json.loads(zf.read("manifest.json"))["tensors"]]
    assert not [n for n in names if any(n.startswith(f"{b}.") for b in removed)]


def test_the_depth_control_is_validated_at_submit() -> None:
    spec = parse_spec({"kind": "compress", "model": REFS["resnet"],
                       "space": {"name": "compression",
                                 "options": {"controls": ["prune", "depth"]}}})
    assert spec.space.options["controls"] == ["prune", "depth"]
    with pytest.raises(SpecError) as err:
        parse_spec({"kind": "compress", "model": REFS["resnet"],
                    "space": {"name": "compression", "options": {"controls": ["blocks"]}}})
    assert err.value.field == "space" and "controls.0" in err.value.message
    assert "'depth'" in err.value.message  # the valid names are listed


def test_baselines_use_depth(resnet, mobilenet) -> None:
    """Uniform drops blocks only when it would prune them by half its range or more, then
    gives their budget back to the remaining widths; NetAdapt proposes each drop as a
    candidate of its step."""
    loose = space_of(mobilenet, controls=["prune", "depth"],
                     target={"metric": "flops", "ratio": 0.8})
    assert uniform_policy(loose) == uniform_policy(
        space_of(mobilenet, controls=["prune"], target={"metric": "flops", "ratio": 0.8})) \
        | {n: "keep" for n in loose.identity() if n.startswith("depth:")}
    tight = space_of(mobilenet, controls=["prune", "depth"],
                     target={"metric": "flops", "ratio": 0.15})
    width_only = uniform_policy(space_of(mobilenet, controls=["prune"],
                                         target={"metric": "flops", "ratio": 0.15}))
    arch = uniform_policy(tight)
    assert tight.fits(arch) and tight.removed_blocks(arch) == ["blocks.2", "blocks.4",
                                                               "blocks.6"]
    # The dropped blocks' budget went to the rest: no remaining layer is narrower.
    for name, ratio in width_only.items():
        assert arch[name] <= ratio + 1e-12
    space = space_of(resnet, controls=["prune", "depth"],
                     target={"metric": "flops", "ratio": 0.3})
    agent = NetAdaptAgent(space)
    proposals = [agent.ask() for _ in range(len(agent.queue))]
    drops = [p for p in proposals if p.info["layer"].startswith("depth:")]
    assert len(drops) == 4
    assert all(len(space.removed_blocks(p.arch)) == 1 for p in drops)


@pytest.mark.parametrize("agent", [
    {"name": "amc", "options": {"warmup": 3, "hidden1": 16, "hidden2": 16, "batch_size": 8}},
    {"name": "tpe"},
    {"name": "netadapt", "options": {"initial_reduction": 0.2}},
], ids=["amc", "tpe", "netadapt"])
def test_agents_run_through_the_loop_with_depth(cache, agent) -> None:
    spec = parse_spec({
        "kind": "compress", "name": "depth", "model": REFS["resnet"],
        "target": {"metric": "flops", "ratio": 0.4},
        "space": {"name": "compression", "options": {"controls": ["prune", "depth"]}},
        "agent": agent,
        "evaluator": {"name": "compress", "options": {"measure_latency": False}},
        "objectives": [{"metric": "val_acc", "direction": "max"}],
        "budget": {"evaluations": 6}, "seed": 2,
    })
    from search.loop import run_search

    sink = MemorySink()
    summary = run_search(spec, sink)
    assert summary.status == "succeeded", summary.reason
    done = [t for t in sink.trials if t.state is TrialState.COMPLETE]
    assert len(done) >= 4
    space = make_space(**{k: v for k, v in spec.space.options.items()})
    dropped = 0
    for t in done:
        # The measured FLOPs of the model the evaluator built are the space's price.
        assert t.metrics["flops"] == space.cost(t.arch, "flops")
        dropped += len(space.removed_blocks(t.arch))
        rows = t.recorded["policy"]
        assert sum(1 for r in rows if r.get("depth") == "drop") == \
            len(space.removed_blocks(t.arch))
        if agent["name"] == "amc":
            assert space.fits(t.arch)
    assert dropped > 0  # the agent used the decision


def test_an_artifact_without_blocks_is_compressed_again(cache, tmp_path, digits) -> None:
    """A job on the artifact of a depth-pruned job numbers its groups apart from the base
    model's (the dropped blocks' groups are gone): its manifest maps them back by leader,
    keeps the parent's removed blocks, and loads into the model that was scored."""
    from search.evaluators.compress import CompressionEvaluator

    def compress(model: dict, controls: list[str], ratio: float, out: str):
        space = make_space(model=model, controls=controls,
                           target={"metric": "flops", "ratio": ratio})
        arch = uniform_policy(space)
        ev = CompressionEvaluator(model=model, export_dir=out, measure_latency=False)
        return space, arch, ev.evaluate(arch, space, seed=0)

    space, arch, first = compress(REFS["mobilenet"], ["prune", "depth"], 0.3,
                                  str(tmp_path / "a"))
    removed = space.removed_blocks(arch)
    assert removed
    again = {"artifact": first.artifacts["model"], "dataset": "digits", "limit": 600}
    second_space, _, second = compress(again, ["prune"], 0.6, str(tmp_path / "b"))
    assert len(second_space.table.groups) < len(space.table.groups)
    model, manifest = load_artifact(second.artifacts["model"])
    assert manifest["meta"]["removed"] == removed
    assert manifest["meta"]["model"]["artifact"] is None
    for b in removed:
        assert isinstance(model.get_submodule(b), torch.nn.Identity)
    from search.compression.finetune import evaluate_accuracy

    assert 100 * evaluate_accuracy(model, digits.val) == pytest.approx(
        second.metrics["val_acc"])
