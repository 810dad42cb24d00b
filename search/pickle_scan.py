"""Check a torch file's pickle without loading it (torch-free: the API checks uploads with it).

``pickletools.genops`` only reads opcodes, it runs nothing. A file passes when every global
it names is one that ``torch.load(weights_only=True)`` rebuilds tensors with (and, for a
whole module, a layer class of ``torch.nn`` or of LightSearch's model modules). The worker
still loads it weights-only (``search.weights``): this is the early answer at upload time.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

#: Modules whose ``nn.Module`` classes a saved model may contain (besides ``torch.nn``).
MODEL_MODULES = ("spaces.blocks", "spaces.mnasnet", "search.compression.reference")
_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
             "Bool", "Untyped")
TENSOR_GLOBALS = frozenset({
    "collections OrderedDict", "torch._utils _rebuild_tensor_v2",
    "torch._utils _rebuild_parameter", "torch._utils _rebuild_parameter_with_state",
    "__builtin__ set", "builtins set", *(f"torch {s}Storage" for s in _STORAGES)})
#: Opcodes that name a global in a way this scan does not follow: refused.
_OPAQUE = frozenset({"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"})


class UnsafePickle(ValueError):
    """The pickle names something besides tensors (and allowed layers)."""


def _allowed(name: str, modules: bool) -> bool:
    if name in TENSOR_GLOBALS:
        return True
    module, _, attr = name.partition(" ")
    return modules and attr[:1].isupper() and (  # classes (CapWords), never functions
        module.startswith("torch.nn.modules.") or module in MODEL_MODULES)


def check_pickle(data: bytes, *, modules: bool = False) -> None:
    """Raise ``UnsafePickle`` unless every global in ``data`` is an allowed one."""
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in _OPAQUE:
                raise UnsafePickle(f"opcode {op.name} is not allowed")
            if op.name == "GLOBAL" and not _allowed(str(arg), modules):
                raise UnsafePickle(f"global {str(arg).replace(' ', '.')} is not allowed")
    except UnsafePickle:
        raise
    except Exception as err:  # noqa: BLE001 - any malformed pickle is refused the same way
        raise UnsafePickle(f"not a readable pickle ({type(err).__name__})") from None


def check_torch_zip(path: str | Path, *, modules: bool = False) -> None:
    """A ``torch.save`` zip whose ``data.pkl`` passes ``check_pickle``."""
    try:
        with zipfile.ZipFile(path) as zf:
            pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pickles) != 1:
                raise UnsafePickle("not a torch.save file (one data.pkl expected)")
            if zf.getinfo(pickles[0]).file_size > 100_000_000:
                raise UnsafePickle("data.pkl is implausibly large")
            data = zf.read(pickles[0])
    except (zipfile.BadZipFile, OSError) as err:
        raise UnsafePickle(f"not a torch.save file ({err})") from None
    check_pickle(data, modules=modules)
