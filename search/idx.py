"""IDX files (the MNIST family's format) read straight from disk, and Fashion-MNIST.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the array in C order. Parsing it needs no pickle and no
conversion to images. ``.gz`` files are decompressed on the fly.

Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; MIT) installs from Debian's package
``dataset-fashion-mnist`` into ``/usr/share/datasets/fashion-mnist``; the administrator can
point ``LIGHTSEARCH_FASHION_MNIST_DIR`` elsewhere. Users never name the folder: it is not a
spec field, so no user path reaches this reader.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal",
                         "shirt", "sneaker", "bag", "ankle boot"]
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IdxError(ValueError):
    """The file is not a well-formed IDX file; the message names the file and the fault."""


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """The array held by the bytes of one IDX file."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxError(f"{name}: not an IDX file (bad magic)")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise IdxError(f"{name}: unknown IDX type code 0x{code:02x}")
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise IdxError(f"{name}: truncated header ({ndim} dimensions)")
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = len(data) - 4 - 4 * ndim
    if body != expected:
        raise IdxError(f"{name}: header says {shape} ({expected} bytes) but {body} bytes "
                       f"follow")
    array = np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: Path) -> np.ndarray:
    """Read ``path`` (plain or ``.gz``)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return parse_idx(f.read(), path.name)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as IDX (used by tests to make tiny files; ``.gz`` compresses)."""
    codes = {np.dtype(v): k for k, v in _DTYPES.items()}
    big = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, codes[big.dtype], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + big.tobytes())


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("LIGHTSEARCH_FASHION_MNIST_DIR", FASHION_MNIST_DIR))


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}(.gz) not found in {folder}: install Debian's package "
        f"dataset-fashion-mnist, or set LIGHTSEARCH_FASHION_MNIST_DIR to a folder with the "
        f"four IDX files")


@lru_cache(maxsize=2)
def load_fashion_mnist(folder: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images uint8 (60000, 28, 28), labels), "test": (10000 ...)}``."""
    root = Path(folder) if folder else fashion_mnist_dir()
    out = {}
    for split, (images, labels) in _FILES.items():
        x, y = read_idx(_find(root, images)), read_idx(_find(root, labels))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise IdxError(f"{split}: images {x.shape} and labels {y.shape} do not match")
        out[split] = (x, y.astype(np.int64))
    return out
