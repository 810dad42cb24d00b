"""Load model files without running code from them.

A pickle can call any function while it loads, so nothing a user names is read with plain
``pickle`` or ``torch.load(weights_only=False)``. State dicts come from safetensors files or
weights-only torch files; a whole torch module (an artifact's skeleton, or a saved model) is
read weights-only with only ``torch.nn``'s and LightSearch's own module classes allowed, so
a crafted file can build nothing but those layers.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from search.pickle_scan import MODEL_MODULES

SAFETENSORS_MAX_HEADER = 100_000_000


class UnsafeModelFile(ValueError):
    """A model file that is not plain tensors (or allowed layers): it is refused, not run."""


@lru_cache(maxsize=1)
def module_classes() -> tuple[type[nn.Module], ...]:
    """Every ``nn.Module`` class of ``torch.nn`` and of ``MODEL_MODULES``."""
    found: set[type[nn.Module]] = set()
    names = [m for m in dir(nn.modules) if not m.startswith("_")]
    for source in [getattr(nn.modules, n) for n in names] + [
            importlib.import_module(m) for m in MODEL_MODULES]:
        members = [source] if inspect.isclass(source) else [
            v for _k, v in inspect.getmembers(source, inspect.isclass)]
        found.update(c for c in members if issubclass(c, nn.Module))
    return tuple(sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}"))


def _torch_load(source: str | Path | IO[bytes], what: str, *, modules: bool) -> Any:
    try:
        if modules:
            with torch.serialization.safe_globals(list(module_classes())):
                return torch.load(source, map_location="cpu", weights_only=True)
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        raise UnsafeModelFile(f"{what} holds more than tensors and LightSearch layers; it is "
                              f"not loaded (weights-only: {first})") from None
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise ValueError(f"cannot load {what}: {str(err)[:300]}") from None


def load_module(source: str | Path | IO[bytes], what: str = "model file") -> nn.Module:
    """A whole torch module, read weights-only (allowed layer classes only)."""
    obj = _torch_load(source, what, modules=True)
    if not isinstance(obj, nn.Module):
        raise ValueError(f"{what} holds a {type(obj).__name__}, not a torch module (give a "
                         "state dict as model.weights with model.reference or model.space)")
    return obj


def is_safetensors(path: str | Path) -> bool:
    """A safetensors file starts with an 8-byte header length and a JSON object."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], "little")
    return 0 < size < SAFETENSORS_MAX_HEADER and head[8:9] == b"{"


def load_state_dict(path: str | Path, what: str = "model.weights") -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a weights-only torch file (a plain mapping,
    or LightSearch's ``{"state": ..., "info": ...}`` cache blob)."""
    if is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"cannot load {what}: {err}") from None
    blob = _torch_load(path, what, modules=False)
    if isinstance(blob, Mapping) and isinstance(blob.get("state"), Mapping):
        blob = blob["state"]
    if not isinstance(blob, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in blob.items()):
        raise ValueError(f"{what} is not a state dict (a mapping of names to tensors)")
    return dict(blob)


def load_skeleton(data: bytes, what: str = "artifact") -> nn.Module:
    """An artifact's module structure (tensors emptied), read weights-only."""
    return load_module(io.BytesIO(data), what)
