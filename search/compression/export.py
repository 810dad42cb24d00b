"""The compressed model as a file that is really smaller, and its loader (no pickle).

An artifact (``.lsz``, format ``lightsearch-compressed/2``) is a zip with two members:

- ``manifest.json``: the format, the input shape, ``meta`` (``model``: the job's model
  reference, ``kept``: channels kept per prunable group, ``removed``: blocks replaced by the
  identity, ``policy``), and per tensor its
  name, shape, encoding and the byte ranges of its parts in ``data.bin``;
- ``data.bin``: the tensors' bytes. Weights are stored as float32, as b-bit integers packed
  into bytes plus a float32 scale per output channel, as packed sign bits plus XNOR-Net's
  channel scales, or as packed codebook indices plus the codebook. Sparse weights store a
  one-bit-per-weight mask and only the non-zero entries. Biases and batch-norm tensors stay
  float32.

Loading rebuilds the module structure from ``meta.model`` (the reference network, or the
space architecture, it was compressed from) without the ``meta.removed`` blocks and with
``meta.kept`` channels per group, then
decodes every weight to float32, so the loaded model computes exactly what the compressed
model computed when it was evaluated. Nothing is unpickled: the manifest is JSON and the
data raw little-endian bytes. Integer kernels are the ONNX export's business
(``search.compression.ship``).
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from search.compression.prune import Mask
from search.compression.quantize import Binarize, Quantize, Share
from spaces.compression import LayerTable

FORMAT = "lightsearch-compressed/2"


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Unsigned integers < 2**bits, ``bits`` bits each, little-endian bit order."""
    v = values.astype(np.uint32).ravel()
    if v.size and int(v.max()) >= 2 ** bits:
        raise ValueError(f"value {int(v.max())} does not fit in {bits} bits")
    planes = ((v[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(planes.ravel(), bitorder="little").tobytes()


def unpack_bits(data: bytes, count: int, bits: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[: count * bits]
    planes = planes.reshape(count, bits).astype(np.uint32)
    return (planes << np.arange(bits, dtype=np.uint32)).sum(1)


class _Writer:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.entries: list[dict[str, Any]] = []

    def blob(self, data: bytes) -> dict[str, int]:
        offset = self.buf.tell()
        self.buf.write(data)
        return {"offset": offset, "nbytes": len(data)}


def _layer_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None, nn.Module | None]:
    """(effective weight, mask or None, weight format or None) of a possibly parametrized
    layer."""
    if not parametrize.is_parametrized(module, "weight"):
        return module.weight.detach(), None, None
    mask, fmt = None, None
    for p in module.parametrizations.weight:
        if isinstance(p, Mask):
            mask = p.mask
        elif isinstance(p, Quantize | Binarize | Share):
            fmt = p
    return module.weight.detach(), mask, fmt


def export_model(model: nn.Module, path: str | Path, *, input_shape: tuple[int, ...],
                 meta: dict[str, Any]) -> dict[str, int]:
    """Write ``model`` (pruned, masked, quantized or shared) to ``path``; ``meta`` must hold
    ``model`` (a ``ModelRef`` as JSON) and ``kept`` (group -> channels) to rebuild it.

    Returns ``{"size_bytes": file size, "weight_bytes": bytes of conv/linear weights}``.
    """
    writer = _Writer()
    weight_bytes = 0
    handled: set[str] = set()
    for mname, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        weight, mask, fmt = _layer_weight(module)
        entry: dict[str, Any] = {"name": f"{mname}.weight" if mname else "weight",
                                 "shape": list(weight.shape)}
        if isinstance(fmt, Share):
            mask = fmt.nonzero  # the shared values sit exactly where its input was non-zero
            if bool(mask.all()):
                mask = None
        select = mask.flatten() if mask is not None else None
        if mask is not None:
            entry["mask"] = writer.blob(pack_bits(mask.flatten().numpy().astype(np.uint32), 1))
        if isinstance(fmt, Quantize):
            codes, scales = fmt.codes(_shadow(module))
            flat = codes.flatten()
            flat = flat[select] if select is not None else flat
            entry.update(encoding="int", bits=fmt.bits,
                         values=writer.blob(pack_bits((flat + fmt.qmax).numpy(), fmt.bits)),
                         scales=writer.blob(scales.numpy().astype(np.float32).tobytes()))
        elif isinstance(fmt, Binarize):
            signs, alpha = fmt.codes(_shadow(module))
            flat = signs.flatten()
            flat = flat[select] if select is not None else flat
            entry.update(encoding="binary", bits=1,
                         values=writer.blob(pack_bits((flat > 0).numpy(), 1)),
                         scales=writer.blob(alpha.numpy().astype(np.float32).tobytes()))
        elif isinstance(fmt, Share):
            index, codebook = fmt.codes(weight)
            entry.update(encoding="shared", bits=fmt.bits,
                         values=writer.blob(pack_bits(index.numpy(), fmt.bits)),
                         codebook=writer.blob(codebook.numpy().astype(np.float32).tobytes()))
        else:
            flat = weight.flatten()
            flat = flat[select] if select is not None else flat
            entry.update(encoding="float32",
                         values=writer.blob(flat.numpy().astype(np.float32).tobytes()))
        weight_bytes += sum(entry[k]["nbytes"] for k in ("mask", "values", "scales", "codebook")
                            if k in entry)
        writer.entries.append(entry)
        handled.add(entry["name"])
    plain = _materialized(model)
    for name, tensor in list(plain.state_dict().items()):
        if name in handled:
            continue
        t = tensor.detach().cpu()
        writer.entries.append({"name": name, "shape": list(t.shape), "encoding": "raw",
                               "dtype": str(t.dtype).removeprefix("torch."),
                               "values": writer.blob(t.numpy().tobytes())})
    missing = [k for k in ("model", "kept") if k not in meta]
    if missing:
        raise ValueError(f"artifact meta needs {missing} to rebuild the model without pickle")
    meta = {**meta, "kept": {str(g): int(k) for g, k in dict(meta["kept"]).items()}}
    manifest = {"format": FORMAT, "input_shape": list(input_shape), "tensors": writer.entries,
                "meta": meta}
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, separators=(",", ":")))
        zf.writestr("data.bin", writer.buf.getvalue())
    return {"size_bytes": path.stat().st_size, "weight_bytes": int(weight_bytes)}


def _shadow(module: nn.Module) -> torch.Tensor:
    """The weight a layer's format quantizes: the original weight after any mask."""
    w = module.parametrizations.weight.original.detach()
    for p in module.parametrizations.weight:
        if isinstance(p, Mask):
            w = p(w)
    return w


def _materialized(model: nn.Module) -> nn.Module:
    """A plain copy with every parametrized weight replaced by its effective value.

    Not ``remove_parametrizations`` on a deep copy: the copy shares torch's generated
    ``Parametrized*`` class with the original, and removal deletes the class's ``weight``
    property, which would break the original model too.
    """
    effective = {n: m.weight.detach().clone() for n, m in model.named_modules()
                 if parametrize.is_parametrized(m, "weight")}
    out = copy.deepcopy(model)
    for n, m in out.named_modules():
        if n in effective:
            m.__class__ = m.__class__.__bases__[0]  # torch's Parametrized* subclasses it
            del m._modules["parametrizations"]
            m._parameters["weight"] = nn.Parameter(effective[n])
    return out


def _decode(entry: dict[str, Any], data: bytes) -> torch.Tensor:
    def part(key: str) -> bytes:
        ref = entry[key]
        return data[ref["offset"]: ref["offset"] + ref["nbytes"]]

    shape = tuple(entry["shape"])
    n = int(np.prod(shape)) if shape else 1
    enc = entry["encoding"]
    if enc == "raw":
        arr = np.frombuffer(part("values"), dtype=np.dtype(entry["dtype"])).copy()
        return torch.from_numpy(arr.reshape(shape))
    mask = unpack_bits(part("mask"), n, 1).astype(bool) if "mask" in entry else np.ones(n, bool)
    count = int(mask.sum())
    out = np.zeros(n, np.float32)
    channels = shape[0]
    per_channel = np.repeat(np.arange(channels), n // channels)[mask]
    if enc == "float32":
        out[mask] = np.frombuffer(part("values"), np.float32, count)
    elif enc == "int":
        qmax = 2 ** (entry["bits"] - 1) - 1
        codes = unpack_bits(part("values"), count, entry["bits"]).astype(np.int64) - qmax
        scales = np.frombuffer(part("scales"), np.float32, channels)
        out[mask] = (torch.from_numpy(codes.astype(np.float32))
                     * torch.from_numpy(scales[per_channel])).numpy()
    elif enc == "binary":
        signs = unpack_bits(part("values"), count, 1).astype(np.float32) * 2 - 1
        scales = np.frombuffer(part("scales"), np.float32, channels)
        out[mask] = signs * scales[per_channel]
    elif enc == "shared":
        index = unpack_bits(part("values"), count, entry["bits"]).astype(np.int64)
        codebook = np.frombuffer(part("codebook"), np.float32)
        out[mask] = codebook[index]
    else:
        raise ValueError(f"unknown tensor encoding {enc!r} in artifact")
    return torch.from_numpy(out.reshape(shape))


def manifest_model(model: Any, kept: Mapping[int, int], removed: Sequence[str] = (),
                   table: LayerTable | None = None) -> dict[str, Any]:
    """The manifest's ``model``, ``kept`` and ``removed`` (blocks replaced by the identity),
    naming no file. A job that starts from an artifact records that artifact's own base
    model, with the parent's kept channels and removed blocks under its own, so a manifest
    never points at another file; weights paths are dropped (the tensors are in the
    artifact). ``table`` (this job's, on the parent's model): when the parent removed
    blocks, its groups are numbered apart from the base model's and are matched by leader."""
    from spaces.compression import ModelRef

    ref = model if isinstance(model, ModelRef) else ModelRef.model_validate(dict(model))
    counts = {int(g): int(k) for g, k in kept.items()}
    if ref.artifact is None:
        return {"model": {**ref.model_dump(mode="json"), "weights": None}, "kept": counts,
                "removed": list(removed)}
    with zipfile.ZipFile(ref.artifact) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    parent = manifest["meta"]
    before = list(parent.get("removed", []))
    if before:
        if table is None:
            raise ValueError("manifest_model: the parent artifact removed blocks; pass the "
                             "job's layer table to number its groups as the base model's")
        base = _base_table(parent, tuple(manifest["input_shape"]))
        index = {g.leader: g.index for g in base.groups}
        counts = {index[table.groups[g].leader]: k for g, k in counts.items()}
    return {"model": dict(parent["model"]),
            "kept": {**{int(g): int(k) for g, k in parent["kept"].items()}, **counts},
            "removed": before + [b for b in removed if b not in before]}


def _base_table(meta: dict[str, Any], input_shape: tuple[int, ...]) -> LayerTable:
    from search.compression.factory import architecture
    from search.compression.graph import analyze
    from spaces.compression import ModelRef

    ref = ModelRef.model_validate({**meta["model"], "weights": None})
    return analyze(copy.deepcopy(architecture(ref)[0]).eval(), input_shape).table


def skeleton(meta: dict[str, Any], input_shape: tuple[int, ...]) -> nn.Module:
    """The module structure of an artifact: its model rebuilt and pruned to ``kept``
    channels per group (which channels does not matter: every tensor is then replaced)."""
    from search.compression.factory import architecture
    from search.compression.graph import analyze, remove_blocks
    from search.compression.prune import prune_channels
    from search.spec_paths import options_model
    from spaces.compression import ModelRef
    from spaces.paths import walk_paths

    # Only the structure matters here, so a weights file named in the manifest is not read,
    # and a manifest naming any other file (an uploaded .lsz is read outside the service's
    # path policy) is refused: manifests written here name none (``manifest_model``).
    doc = {**meta["model"], "weights": None}
    named = [ref.field for ref in walk_paths(ModelRef, doc, "model", options_model)]
    if named:
        raise ValueError(f"artifact manifest names files ({', '.join(named)}); an artifact's "
                         "model must be a reference network or a space architecture")
    ref = ModelRef.model_validate(doc)
    net = copy.deepcopy(architecture(ref)[0]).eval()
    table = analyze(net, tuple(input_shape)).table
    removed = list(meta.get("removed", []))
    unknown = sorted(set(removed) - {b.name for b in table.blocks})
    if unknown:
        raise ValueError(f"artifact manifest removes {unknown}, which are not removable "
                         "blocks of its model")
    remove_blocks(net, removed)
    prune_channels(net, table, {int(g): int(k) for g, k in meta["kept"].items()})
    return net


def load_artifact(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of an artifact (float32 weights); returns it and the manifest."""
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{path} is not a LightSearch compressed artifact "
                             f"(format {manifest.get('format')!r}, expected {FORMAT!r})")
        data = zf.read("data.bin")
    model = skeleton(manifest["meta"], tuple(manifest["input_shape"]))
    state = model.state_dict()
    for entry in manifest["tensors"]:
        if entry["name"] not in state:
            raise ValueError(f"{path}: tensor {entry['name']!r} is not in the rebuilt model")
        tensor = _decode(entry, data)
        if tuple(tensor.shape) != tuple(state[entry["name"]].shape):
            raise ValueError(f"{path}: tensor {entry['name']!r} has shape "
                             f"{tuple(tensor.shape)}, the rebuilt model "
                             f"{tuple(state[entry['name']].shape)}")
        state[entry["name"]] = tensor
    model.load_state_dict(state)
    return model.eval(), manifest
