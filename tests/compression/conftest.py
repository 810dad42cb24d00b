"""Tiny trained reference models on 8x8 digits, shared by the compression tests."""

from __future__ import annotations

import pytest
import torch

from search.compression.data import ImageData, load_dataset
from search.compression.graph import analyze
from search.compression.reference import trained_reference
from spaces.compression import CompressionSpace

torch.set_num_threads(1)

#: The model references of the fixtures below (what an artifact's manifest names).
REFS = {name: {"reference": ref, "dataset": "digits", "limit": 600, "epochs": 6, "width": 0.5,
               "seed": 0} for name, ref in (("resnet", "resnet_small"),
                                            ("mobilenet", "mobilenetv2_small"))}


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("lightsearch-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("LIGHTSEARCH_CACHE", str(path))
    yield str(path)
    mp.undo()


@pytest.fixture(scope="session")
def digits() -> ImageData:
    return load_dataset("digits", seed=0, limit=600)


@pytest.fixture(scope="session")
def resnet(cache: str, digits: ImageData) -> torch.nn.Module:
    model, info = trained_reference("resnet_small", digits, epochs=6, width=0.5, seed=0)
    assert info["val_acc"] > 0.8, info  # a model worth compressing
    return model


@pytest.fixture(scope="session")
def mobilenet(cache: str, digits: ImageData) -> torch.nn.Module:
    model, _ = trained_reference("mobilenetv2_small", digits, epochs=6, width=0.5, seed=0)
    return model


def space_of(model: torch.nn.Module, **kwargs) -> CompressionSpace:
    return CompressionSpace(analyze(model, (1, 8, 8)).table, **kwargs)
