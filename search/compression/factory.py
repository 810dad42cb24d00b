"""Resolve a job's ``model`` to a trained torch model, and build its compression space.

The space registry names ``search.compression.factory:make_space`` lazily, so the API
process validates a compression job without torch; only the worker that runs it imports this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from torch import nn

from search.compression.data import ImageData, load_dataset
from search.compression.graph import analyze
from search.compression.reference import build_reference, trained_reference
from spaces.compression import CompressionSpace, ModelRef, TargetSpec


def _ref_key(ref: ModelRef) -> str:
    return ref.model_dump_json()


@lru_cache(maxsize=8)
def _resolve(key: str) -> tuple[nn.Module, ImageData, dict[str, float]]:
    ref = ModelRef.model_validate_json(key)
    data = load_dataset(ref.dataset, seed=ref.seed, limit=ref.limit)
    if ref.reference is not None and ref.weights is None:
        model, info = trained_reference(ref.reference, data, epochs=ref.epochs, width=ref.width,
                                        seed=ref.seed)
        return model, data, info
    if ref.reference is not None:
        model = build_reference(ref.reference, num_classes=data.num_classes, width=ref.width,
                                seed=ref.seed)
        _load_weights(model, ref.weights)
    elif ref.artifact is not None:
        model = load_model_file(ref.artifact)
    else:
        model = _from_space(ref)
    from search.compression.finetune import evaluate_accuracy

    return model.eval(), data, {"val_acc": evaluate_accuracy(model, data.val),
                                "test_acc": evaluate_accuracy(model, data.test)}


def resolve_model(ref: ModelRef | Mapping[str, Any]) -> tuple[nn.Module, ImageData,
                                                               dict[str, float]]:
    """(trained model, data, its accuracies); cached per process (do not modify the model)."""
    ref = ref if isinstance(ref, ModelRef) else ModelRef.model_validate(dict(ref))
    return _resolve(_ref_key(ref))


def architecture(ref: ModelRef) -> tuple[nn.Module, tuple[int, ...]]:
    """The model's structure (weights may be untrained) and its input shape, cheaply."""
    shape = (1, 8, 8) if ref.dataset == "digits" else (1, 28, 28)
    if ref.reference is not None and ref.weights is None:
        return build_reference(ref.reference, width=ref.width, seed=ref.seed), shape
    return resolve_model(ref)[0], shape


def load_model_file(path: str) -> nn.Module:
    """A LightSearch compressed artifact (``.lsz``: JSON and raw bytes). Whole pickled torch
    modules are refused: nothing a user names is unpickled (a state dict goes through
    ``model.space`` + ``arch`` + ``weights``, loaded with ``weights_only``)."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if "manifest.json" in zf.namelist():
                from search.compression.export import load_artifact

                return load_artifact(path)[0]
    raise ValueError(f"model.artifact: {path} is not a LightSearch compressed artifact "
                     "(.lsz); for a network of a LightSearch space give model.space, "
                     "model.arch and model.weights (a state dict)")


def _load_weights(model: nn.Module, path: str | None) -> None:
    """``model.weights``: a state dict (safetensors or weights-only torch file)."""
    if not path:
        return
    from search.weights import load_state_dict

    try:
        model.load_state_dict(load_state_dict(path))
    except RuntimeError as err:  # shapes or names that do not match the architecture
        raise ValueError(f"model.weights do not fit the model: {str(err)[:500]}") from None


def _from_space(ref: ModelRef) -> nn.Module:
    from spaces.registry import SPACES

    space = SPACES.create(ref.space, options=ref.space_options)
    build = getattr(space, "build_model", None)
    if build is None:
        raise ValueError(f"model.space: space {ref.space!r} cannot build torch models")
    shape = (1, 8, 8) if ref.dataset == "digits" else (1, 28, 28)
    model = build(space.validate(ref.arch or {}), shape, 10)
    _load_weights(model, ref.weights)
    return model


def make_space(model: Mapping[str, Any] | ModelRef | None = None,
               controls: Sequence[str] = ("prune",),
               target: Mapping[str, Any] | TargetSpec | None = None, max_prune: float = 0.9,
               max_sparsity: float = 0.95, bit_choices: Sequence[int] = (8, 4, 2, 1),
               share_choices: Sequence[int] = (8, 4, 2),
               channel_multiple: int = 1,
               soft_share: Mapping[str, Any] | None = None,
               flops_block: int | str = 1) -> CompressionSpace:
    """The ``compression`` space of a job (registry factory)."""
    if model is None:
        raise ValueError("model: a compression space needs the model to compress")
    ref = model if isinstance(model, ModelRef) else ModelRef.model_validate(dict(model))
    tgt = target if isinstance(target, TargetSpec | None) else TargetSpec.model_validate(
        dict(target))
    net, shape = architecture(ref)
    table = analyze(net, shape).table
    config = {"model": ref.model_dump(), "controls": list(controls),
              "target": tgt.model_dump() if tgt else None, "max_prune": max_prune,
              "max_sparsity": max_sparsity, "bit_choices": list(bit_choices),
              "share_choices": list(share_choices), "channel_multiple": channel_multiple,
              "soft_share": dict(soft_share) if soft_share else None,
              "flops_block": flops_block}
    kwargs = dict(controls=controls, max_prune=max_prune, max_sparsity=max_sparsity,
                  bit_choices=bit_choices, share_choices=share_choices, config=config,
                  channel_multiple=channel_multiple, soft_share=soft_share,
                  flops_block=resolve_flops_block(flops_block))
    latency_model = None
    if tgt is not None and tgt.metric == "latency":
        from search.compression.latency import cached_latency_model

        plain = CompressionSpace(table, controls=["prune"], max_prune=max_prune,
                                 channel_multiple=channel_multiple)  # fitted on such policies
        latency_model = cached_latency_model(net, plain, tgt.profiler, shape, seed=ref.seed)
    space = CompressionSpace(table, target=tgt, latency_model=latency_model, **kwargs)
    check_cost_model(net, space, shape)
    return space


def resolve_flops_block(flops_block: int | str) -> int:
    """``flops_block``: an integer, or ``"auto"``: ONNX Runtime's NCHWc block on this CPU
    (1 where it uses no blocked kernels)."""
    if flops_block == "auto":
        from search.compression.latency import ort_nchwc_block

        return ort_nchwc_block() or 1
    if isinstance(flops_block, str) or int(flops_block) < 1:
        raise ValueError(f"flops_block must be 'auto' or an integer >= 1, got {flops_block!r}")
    return int(flops_block)


def check_cost_model(net: nn.Module, space: CompressionSpace, shape: tuple[int, ...]) -> None:
    """The target guarantee rests on the space's FLOPs/parameter count being exact: check it
    on the most compressed and two random pruning (and block-dropping) policies. Layers
    coupled through concatenations or squeeze-excite gates can break the proportional
    channel rule; such a model is refused, not mispriced."""
    import numpy as np

    from search.compression.apply import apply_policy
    from search.compression.measure import count_flops, count_params

    if "prune" not in space.controls and "depth" not in space.controls:
        return
    rng = np.random.default_rng(0)
    policies = [space.most_compressed(), space.sample(rng), space.sample(rng)]
    for arch in policies:
        plain = {**space.identity(), **{n: v for n, v in arch.items()
                                        if n.startswith(("prune:", "depth:"))}}
        pruned = apply_policy(net, space, plain).model
        real = (count_flops(pruned, shape), count_params(pruned, nonzero=False))
        predicted = (space.cost(plain, "flops", padded=False), space.cost(plain, "params"))
        if real != predicted:
            raise ValueError(
                f"model: channel pruning of this architecture is not priced exactly (FLOPs, "
                f"params real {real} vs predicted {predicted}); its layers are coupled in a way "
                "the compression space does not model (concatenation, squeeze-excite or "
                "shuffle)")
