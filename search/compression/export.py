"""The compressed model as a file that is really smaller, and its loader.

An artifact is a zip with three members:

- ``skeleton.pt``: the pruned module structure with every tensor emptied (a torch module
  file, read back weights-only with only ``torch.nn``'s and LightSearch's layer classes
  allowed, so a crafted artifact cannot run code: ``search.weights``);
- ``manifest.json``: per tensor its shape and encoding;
- ``data.bin``: the tensors' bytes. Weights are stored as float32, as b-bit integers packed
  into bytes plus a float32 scale per output channel, as packed sign bits plus XNOR-Net's
  channel scales, or as packed codebook indices plus the codebook. Sparse weights store a
  one-bit-per-weight mask and only the non-zero entries. Biases and batch-norm tensors stay
  float32.

Loading decodes every weight to float32, so the loaded model computes exactly what the
compressed model computed when it was evaluated; its speed comes from the removed channels
(integer kernels are the deployment runtime's business).
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from search.compression.prune import Mask
from search.compression.quantize import Binarize, Quantize, Share
from search.weights import load_skeleton

FORMAT = "lightsearch-compressed/1"


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
                 meta: dict[str, Any] | None = None) -> dict[str, int]:
    """Write ``model`` (pruned, masked, quantized or shared) to ``path``.

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
    skeleton = _emptied(plain)
    sk = io.BytesIO()
    torch.save(skeleton, sk)
    manifest = {"format": FORMAT, "input_shape": list(input_shape), "tensors": writer.entries,
                "meta": meta or {}}
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("skeleton.pt", sk.getvalue())
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


def _emptied(model: nn.Module) -> nn.Module:
    out = copy.deepcopy(model)
    for m in out.modules():
        for n, p in list(m._parameters.items()):
            if p is not None:
                m._parameters[n] = nn.Parameter(torch.empty(0, dtype=p.dtype),
                                                requires_grad=p.requires_grad)
        for n, b in list(m._buffers.items()):
            if b is not None:
                m._buffers[n] = torch.empty(0, dtype=b.dtype)
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


def load_artifact(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of an artifact (float32 weights); returns it and the manifest."""
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{path} is not a LightSearch compressed artifact "
                             f"(format {manifest.get('format')!r})")
        model = load_skeleton(zf.read("skeleton.pt"), f"{Path(path).name} (skeleton.pt)")
        data = zf.read("data.bin")
    for entry in manifest["tensors"]:
        *path_parts, leaf = entry["name"].split(".")
        owner = model.get_submodule(".".join(path_parts))
        tensor = _decode(entry, data)
        if leaf in owner._parameters:
            owner._parameters[leaf] = nn.Parameter(tensor, requires_grad=True)
        else:
            owner._buffers[leaf] = tensor
    return model.eval(), manifest
