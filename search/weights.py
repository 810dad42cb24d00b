"""Load model files without running code from them.

A pickle can call any function while it loads, so nothing a user names is read with plain
``pickle`` or ``torch.load(weights_only=False)``. State dicts come from safetensors files or
weights-only torch files. Whole modules are never loaded: a network is rebuilt from its
description (a space and an architecture, or a compressed artifact's JSON manifest) and
takes its tensors from a state dict.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch

SAFETENSORS_MAX_HEADER = 100_000_000


class UnsafeModelFile(ValueError):
    """A model file that is not plain tensors (or allowed layers): it is refused, not run."""


def _torch_load(source: str | Path | IO[bytes], what: str) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        raise UnsafeModelFile(f"{what} holds more than tensors; it is not loaded "
                              f"(weights-only: {first})") from None
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise ValueError(f"cannot load {what}: {str(err)[:300]}") from None


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
    blob = _torch_load(path, what)
    if isinstance(blob, Mapping) and isinstance(blob.get("state"), Mapping):
        blob = blob["state"]
    if not isinstance(blob, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in blob.items()):
        raise ValueError(f"{what} is not a state dict (a mapping of names to tensors)")
    return dict(blob)

