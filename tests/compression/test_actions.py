"""Every compression action yields a model that runs, shrinks by the predicted amount, and
exports to a file that loads into the same function."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search.compression.apply import apply_policy
from search.compression.bn import recalibrate_bn
from search.compression.export import export_model, load_artifact
from search.compression.finetune import evaluate_accuracy, train_epochs
from search.compression.measure import count_flops, count_params
from search.compression.prune import reconstruct
from search.compression.quantize import Share, kmeans_1d
from spaces.compression import weight_bytes
from tests.compression.conftest import REFS, space_of

CASES = [
    ["prune"],
    ["sparsity"],
    ["bits"],
    ["share"],
    ["prune", "sparsity", "bits"],
    ["prune", "share"],
]


def _weight_bytes_predicted(space, arch) -> float:
    """The space's per-layer weight bytes (its 'size' minus biases and batch norm)."""
    kept = space.kept_channels(arch)
    total = 0.0
    for op in space.table.weighted():
        _, c_out, weights = space._op_counts(op, kept)
        nonzero = int(np.floor(weights * (1 - arch.get(f"sparsity:{op.name}", 0.0)) + 0.5))
        total += weight_bytes(weights, nonzero, arch.get(f"bits:{op.name}"),
                              arch.get(f"share:{op.name}"), c_out)
    return total


@pytest.mark.parametrize("net,controls", [("resnet", c) for c in CASES] + [
    ("mobilenet", ["prune"]), ("mobilenet", ["prune", "sparsity", "bits"])],
    ids=lambda v: "+".join(v) if isinstance(v, list) else v)
def test_policy_runs_shrinks_as_predicted_and_exports_exactly(
        net, controls, request, digits, tmp_path) -> None:
    model = request.getfixturevalue(net)
    space = space_of(model, controls=controls)
    rng = np.random.default_rng(len(controls))
    x = digits.val.x[:32]
    for i in range(2):
        arch = space.sample(rng) if i else space.most_compressed()
        comp = apply_policy(model, space, arch, calib=digits.train)
        out = comp.model(x)
        assert out.shape == (32, 10) and torch.isfinite(out).all()
        # FLOPs exactly as the space predicted; non-zero parameters never above it
        # (quantization may round a few more weights to zero), exactly for channel pruning.
        assert count_flops(comp.model, (1, 8, 8)) == space.cost(arch, "flops")
        params = count_params(comp.model)
        assert params <= space.cost(arch, "params")
        if controls == ["prune"]:
            assert params == space.cost(arch, "params")
        if "prune" in controls or "sparsity" in controls:
            assert space.cost(arch, "params") < space.cost({}, "params")
        path = tmp_path / f"{net}-{i}.lsz"
        sizes = export_model(comp.model, path, input_shape=(1, 8, 8),
                             meta={"model": REFS[net], "kept": comp.kept})
        predicted = _weight_bytes_predicted(space, arch)
        n_layers = len(space.table.weighted())
        # Bit packing rounds each stream up to whole bytes (at most 3 streams per layer).
        assert predicted <= sizes["weight_bytes"] <= predicted + 3 * n_layers
        loaded, manifest = load_artifact(path)
        with torch.no_grad():
            assert torch.allclose(loaded(x), comp.model(x), atol=1e-5)
        assert manifest["input_shape"] == [1, 8, 8]
    # The most compressed export is smaller than the uncompressed one.
    full = export_model(apply_policy(model, space, space.identity()).model,
                        tmp_path / "full.lsz", input_shape=(1, 8, 8),
                        meta={"model": REFS[net], "kept": {}})
    assert sizes["weight_bytes"] < full["weight_bytes"]


def test_quantized_exports_store_integers_not_floats(resnet, tmp_path) -> None:
    space = space_of(resnet, controls=["bits"], bit_choices=[4])
    arch = space.most_compressed()
    comp = apply_policy(resnet, space, arch)
    meta = {"model": REFS["resnet"], "kept": {}}
    float_size = export_model(resnet, tmp_path / "f.lsz", input_shape=(1, 8, 8), meta=meta)
    q_size = export_model(comp.model, tmp_path / "q.lsz", input_shape=(1, 8, 8), meta=meta)
    # 4-bit weights: about 1/8 of float32 (plus per-channel scales).
    assert q_size["weight_bytes"] < 0.2 * float_size["weight_bytes"]
    conv = dict(comp.model.named_modules())["layers.0.conv1"]
    w = conv.weight.detach()
    for c in range(w.shape[0]):  # at most 15 distinct levels per channel
        assert len(torch.unique(w[c])) <= 15


def test_binarized_layer_is_sign_times_channel_mean(resnet) -> None:
    space = space_of(resnet, controls=["bits"], bit_choices=[1])
    comp = apply_policy(resnet, space, space.most_compressed())
    conv = dict(comp.model.named_modules())["layers.1.conv2"]
    w = conv.weight.detach().reshape(conv.weight.shape[0], -1)
    original = dict(resnet.named_modules())["layers.1.conv2"].weight.detach()
    alpha = original.reshape(original.shape[0], -1).abs().mean(1)
    assert torch.allclose(w.abs(), alpha[:, None].expand_as(w))
    assert torch.equal(torch.sign(w), torch.sign(original.reshape(w.shape)))


def test_weight_sharing_uses_a_small_trainable_codebook(resnet, digits) -> None:
    space = space_of(resnet, controls=["share"], share_choices=[2])
    comp = apply_policy(resnet, space, space.most_compressed(), calib=digits.train)
    conv = dict(comp.model.named_modules())["layers.2.conv1"]
    assert len(torch.unique(conv.weight.detach())) <= 4
    share = conv.parametrizations.weight[-1]
    assert isinstance(share, Share)
    before = share.codebook.detach().clone()
    train_epochs(comp.model, digits.train.head(64), epochs=1, lr=0.01, batch_size=32)
    assert not torch.equal(before, share.codebook.detach())  # centroids were fine-tuned
    assert len(torch.unique(conv.weight.detach())) <= 4


def test_kmeans_finds_well_separated_clusters() -> None:
    values = torch.cat([torch.full((50,), -1.0), torch.full((30,), 0.5), torch.full((20,), 2.0)])
    centroids, idx = kmeans_1d(values + 0.01 * torch.randn(100), 3)
    assert torch.allclose(centroids.sort().values, torch.tensor([-1.0, 0.5, 2.0]), atol=0.05)
    assert len(set(idx[:50].tolist())) == 1


def test_sparsity_masks_survive_fine_tuning(resnet, digits) -> None:
    space = space_of(resnet, controls=["sparsity"])
    arch = {n: 0.8 for n in space.identity()}
    comp = apply_policy(resnet, space, arch, calib=digits.train)
    zeros = count_params(resnet) - count_params(comp.model)
    train_epochs(comp.model, digits.train.head(64), epochs=1, lr=0.01, batch_size=32)
    assert count_params(resnet) - count_params(comp.model) >= zeros


def test_bn_recalibration_is_what_makes_a_pruned_model_score(resnet, digits) -> None:
    space = space_of(resnet, controls=["prune"])
    arch = {n: 0.3 for n in space.identity()}
    stale = apply_policy(resnet, space, arch, recalibrate=False).model
    fresh = apply_policy(resnet, space, arch, calib=digits.train).model
    acc_stale = evaluate_accuracy(stale, digits.val)
    acc_fresh = evaluate_accuracy(fresh, digits.val)
    assert acc_fresh > acc_stale + 0.15, (acc_stale, acc_fresh)
    assert recalibrate_bn(stale, digits.train, max_samples=200) == 200


def test_least_squares_refit_brings_outputs_closer_to_the_original(resnet, digits) -> None:
    space = space_of(resnet, controls=["prune"])
    arch = {n: 0.5 for n in space.identity()}
    plain = apply_policy(resnet, space, arch, recalibrate=False)
    x = digits.train.x[:128]
    layer = "layers.1.conv2"

    def output_error(model: torch.nn.Module) -> float:
        store = {}
        for name, net in (("new", model), ("ref", resnet)):
            m = dict(net.named_modules())[layer]
            h = m.register_forward_hook(lambda _m, _i, o, n=name: store.__setitem__(n, o))
            with torch.no_grad():
                net(x)
            h.remove()
        group = space.table.ops[[o.name for o in space.table.ops].index(layer)].out_group
        ref = store["ref"][:, plain.kept_indices[group]] if group in plain.kept_indices \
            else store["ref"]
        return float(((store["new"] - ref) ** 2).mean())

    before = output_error(plain.model)
    refit = reconstruct(plain.model, resnet, space.table, plain.kept_indices, x)
    assert layer in refit
    assert output_error(plain.model) < 0.8 * before


def test_least_squares_refit_follows_changes_of_the_original(resnet, digits) -> None:
    """The original's layer outputs are cached between refits; a changed original (even
    through ``.data``, which keeps tensor versions) must not be fitted to stale outputs."""
    import copy

    space = space_of(resnet, controls=["prune"])
    arch = {n: 0.5 for n in space.identity()}
    x = digits.train.x[:64]
    original = copy.deepcopy(resnet)

    def refit_weights(reference: torch.nn.Module) -> torch.Tensor:
        comp = apply_policy(resnet, space, arch, recalibrate=False)
        reconstruct(comp.model, reference, space.table, comp.kept_indices, x)
        return dict(comp.model.named_modules())["layers.1.conv2"].weight.detach().clone()

    first = refit_weights(original)
    assert torch.equal(refit_weights(original), first)  # cached: the very same fit
    dict(original.named_modules())["layers.1.conv2"].weight.data.mul_(2.0)
    changed = refit_weights(original)
    assert not torch.allclose(changed, first)
    assert torch.allclose(changed, refit_weights(copy.deepcopy(original)))  # fresh, uncached


def test_distillation_fine_tunes_towards_the_teacher(resnet, digits) -> None:
    space = space_of(resnet, controls=["prune"])
    arch = {n: 0.7 for n in space.identity()}
    comp = apply_policy(resnet, space, arch, calib=digits.train)
    before = evaluate_accuracy(comp.model, digits.val)
    losses = train_epochs(comp.model, digits.train, epochs=2, lr=0.02, teacher=resnet,
                          temperature=4.0, distill_weight=0.7)
    assert losses[-1] < losses[0]
    assert evaluate_accuracy(comp.model, digits.val) >= before
    with pytest.raises(ValueError, match="distill_weight"):
        train_epochs(comp.model, digits.train, epochs=1, distill_weight=2.0)


def test_fine_tune_warmup_rises_linearly_then_decays_as_the_cosine() -> None:
    """``warmup``: the rate climbs to ``lr`` over that fraction of the steps, then follows the
    cosine over the rest; without it the schedule is the plain cosine (earlier runs' recipe)."""
    from search.compression.finetune import _schedule

    def rates(total: int, warmup: float) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        sched = _schedule(opt, total, warmup)
        seen = []
        for _ in range(total):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return seen

    warm = rates(20, 0.2)
    assert warm[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert warm[4] == pytest.approx(0.1) and warm[-1] < 0.01
    assert all(a >= b for a, b in zip(warm[4:], warm[5:], strict=False))
    plain = rates(20, 0.0)
    assert plain[0] == pytest.approx(0.1) and plain == pytest.approx(
        [0.05 * (1 + np.cos(np.pi * t / 20)) for t in range(20)])
    with pytest.raises(ValueError, match="warmup"):
        train_epochs(torch.nn.Linear(2, 2), None, epochs=1, warmup=1.0)  # type: ignore[arg-type]
