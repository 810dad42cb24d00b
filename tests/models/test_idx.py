"""IDX reader: tiny generated files always; the Debian package's files where installed."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from search import idx
from search.datasets import DatasetError, load_dataset

FASHION = idx.fashion_mnist_dir()
INSTALLED = (FASHION / "train-images-idx3-ubyte.gz").is_file()


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_of_every_idx_type(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"a-idx3{suffix}"
    idx.write_idx(path, array)
    back = idx.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_header_is_big_endian_as_the_format_says(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    idx.write_idx(path, np.array([3, 1, 4], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])


@pytest.mark.parametrize("data, fault", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "3 bytes"),
])
def test_malformed_files_name_the_fault(data, fault):
    with pytest.raises(idx.IdxError, match=fault):
        idx.parse_idx(data, "f")


def _tiny_fashion(folder, n_train=40, n_test=20):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        idx.write_idx(folder / f"{split}-images-idx3-ubyte.gz",
                      rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        idx.write_idx(folder / f"{split}-labels-idx1-ubyte.gz",
                      (np.arange(n) % 10).astype(np.uint8))


def test_fashion_mnist_source_reads_the_configured_folder(tmp_path, monkeypatch):
    _tiny_fashion(tmp_path)
    monkeypatch.setenv("LIGHTSEARCH_FASHION_MNIST_DIR", str(tmp_path))
    idx.load_fashion_mnist.cache_clear()
    from search import datasets

    datasets._load_raw.cache_clear()
    try:
        data = load_dataset("fashion_mnist", val_fraction=0.25, seed=1)
    finally:
        idx.load_fashion_mnist.cache_clear()
        datasets._load_raw.cache_clear()
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert len(data.y_test) == 20 and len(data.y_val) == 10 and len(data.y_train) == 30
    assert data.classes[9] == "ankle boot"


def test_missing_folder_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTSEARCH_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    idx.load_fashion_mnist.cache_clear()
    from search import datasets

    datasets._load_raw.cache_clear()
    try:
        with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
            load_dataset("fashion_mnist")
    finally:
        idx.load_fashion_mnist.cache_clear()
        datasets._load_raw.cache_clear()


def test_gzip_and_plain_files_are_both_found(tmp_path):
    _tiny_fashion(tmp_path)
    plain = tmp_path / "train-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress((tmp_path / "train-labels-idx1-ubyte.gz").read_bytes()))
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    data = idx.load_fashion_mnist.__wrapped__(str(tmp_path))
    assert data["train"][1].tolist()[:3] == [0, 1, 2]


@pytest.mark.skipif(not INSTALLED, reason="Debian's dataset-fashion-mnist is not installed")
def test_the_debian_package_files():
    data = idx.load_fashion_mnist.__wrapped__(str(FASHION))
    (x, y), (xt, yt) = data["train"], data["test"]
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == np.uint8 and np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10


@pytest.mark.skipif(not INSTALLED, reason="Debian's dataset-fashion-mnist is not installed")
def test_compression_loader_keeps_the_official_test_split():
    from search.compression.data import load_dataset as load_compression

    data = load_compression("fashion_mnist", seed=0, val_fraction=0.1)
    assert len(data.test) == 10000 and len(data.val) == 6000 and len(data.train) == 54000
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
