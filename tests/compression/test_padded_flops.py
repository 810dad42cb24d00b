"""``flops_block``: the search prices FLOPs as ONNX Runtime's blocked kernels compute them
(channels rounded up to the block), while reports keep the model's plain FLOPs."""

from __future__ import annotations

import pytest

from search.compression.apply import apply_policy
from search.compression.factory import resolve_flops_block
from search.compression.measure import count_flops
from search.spec import SpecError, parse_spec
from tests.compression.conftest import REFS, space_of


def test_padded_flops_round_each_convolutions_channels_up_to_the_block(resnet) -> None:
    plain = space_of(resnet, controls=["prune"])
    padded = space_of(resnet, controls=["prune"], flops_block=16)
    ops = {o.name: o for o in plain.table.ops}
    op = ops["layers.2.conv1"]  # 8 -> 16 channels, 3x3, stride 2 (width 0.5)
    assert (op.c_in, op.c_out, op.kernel) == (8, 16, 3)
    want = 16 * 16 * 9 * op.out_hw  # the 8 input channels computed as one block of 16
    assert padded.op_costs({}, "flops")[op.name] == want
    assert plain.op_costs({}, "flops")[op.name] == want // 2
    assert padded.op_costs({}, "flops", padded=False) == plain.op_costs({}, "flops")
    # The classifier (a Gemm) and the image's single channel are not blocked.
    assert padded.op_costs({}, "flops")["fc"] == plain.op_costs({}, "flops")["fc"]
    stem = ops["stem.0"]
    assert padded.op_costs({}, "flops")["stem.0"] == 16 * 1 * 9 * stem.out_hw
    # Pruning within a block saves nothing in padded FLOPs: 16 -> 9 channels prices as 16.
    g = next(g for g in padded.table.groups if g.leader == "layers.2.conv1")
    name = next(n for n in padded.identity() if padded.group_of(n) == g.index)
    assert g.channels == 16
    arch = {**padded.identity(), name: 7 / 16}
    assert padded.keep(g.index, 7 / 16) == 9
    assert padded.cost(arch, "flops") == padded.uncompressed("flops")
    assert plain.cost(arch, "flops") < plain.uncompressed("flops")
    # Reported FLOPs stay the model's own.
    assert padded.cost(arch, "flops", padded=False) == count_flops(
        apply_policy(resnet, padded, arch).model, (1, 8, 8))


def test_targets_are_met_in_padded_flops(resnet) -> None:
    """At width 0.5 (groups of 8, 16 and 32 channels) pruning below a block of 16 saves no
    padded FLOPs: 60% is reachable in plain FLOPs only, and refused in padded ones."""
    from agents.compression_baselines import uniform_policy

    target = {"metric": "flops", "ratio": 0.6}
    assert space_of(resnet, controls=["prune"], target=target).budget is not None
    with pytest.raises(ValueError, match="out of reach"):
        space_of(resnet, controls=["prune"], flops_block=16, target=target)
    space = space_of(resnet, controls=["prune"], flops_block=16,
                     target={"metric": "flops", "ratio": 0.95})
    arch = uniform_policy(space)
    assert space.cost(arch, "flops") <= 0.95 * space.uncompressed("flops") * (1 + 1e-9)
    assert space.cost(arch, "flops", padded=False) < space.uncompressed("flops",
                                                                        padded=False)


def test_flops_block_is_validated_at_submit() -> None:
    def job(value):
        return {"kind": "compress", "model": REFS["resnet"],
                "space": {"name": "compression", "options": {"flops_block": value}}}

    assert parse_spec(job("auto")).space.options["flops_block"] == "auto"
    assert parse_spec(job(16)).space.options["flops_block"] == 16
    for bad in ("fast", 0, 512, 8.5):
        with pytest.raises(SpecError) as err:
            parse_spec(job(bad))
        assert "flops_block" in str(err.value), (bad, str(err.value))
    assert resolve_flops_block(8) == 8 and resolve_flops_block("auto") >= 1
