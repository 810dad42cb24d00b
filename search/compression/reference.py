"""Reference models to compress, and their training inside a job.

A small ResNet (basic blocks, three stages) and a small MobileNetV2 (inverted residuals),
both for one-channel images of any size (global pooling before the classifier). Trained
weights are cached on disk by (model, dataset, seed, epochs, width), so a job's workers and
its evaluator share one training run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from search.compression.data import ImageData, load_dataset
from search.compression.finetune import evaluate_accuracy, train_epochs
from spaces.isolation import seeded


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem conv, three stages of ``blocks`` basic blocks (w, 2w, 4w channels), linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16,
                 blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        layers: list[nn.Module] = []
        c = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(BasicBlock(c, c_out, 2 if stage > 0 and b == 0 else 1))
                c = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


class SmallMobileNetV2(nn.Module):
    """MobileNetV2's layout scaled down: (expand, channels, repeats, stride) stages."""

    STAGES = ((1, 8, 1, 1), (4, 16, 2, 2), (4, 24, 2, 2), (4, 32, 2, 1))

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0,
                 last_channels: int = 128) -> None:
        super().__init__()
        c = max(4, int(16 * width))
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU6())
        blocks: list[nn.Module] = []
        for expand, channels, repeats, stride in self.STAGES:
            c_out = max(4, int(channels * width))
            for i in range(repeats):
                blocks.append(InvertedResidual(c, c_out, stride if i == 0 else 1, expand))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        last = max(8, int(last_channels * width))
        self.head = nn.Sequential(nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last),
                                  nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.head(self.blocks(self.stem(x)))), 1))


REFERENCE_MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet_small": lambda num_classes, width: SmallResNet(num_classes, width=int(16 * width)),
    "mobilenetv2_small": lambda num_classes, width: SmallMobileNetV2(num_classes, width=width),
}


def build_reference(name: str, *, num_classes: int = 10, width: float = 1.0,
                    seed: int = 0) -> nn.Module:
    """An untrained reference model (weights drawn from ``seed``)."""
    if name not in REFERENCE_MODELS:
        raise ValueError(f"reference model must be one of {sorted(REFERENCE_MODELS)}, "
                         f"got {name!r}")
    with seeded(seed):  # per job: concurrent jobs' draws are not disturbed
        return REFERENCE_MODELS[name](num_classes, width)


def cache_dir() -> Path:
    """Where trained reference weights are kept (``LIGHTSEARCH_CACHE`` overrides)."""
    root = os.environ.get("LIGHTSEARCH_CACHE") or Path.home() / ".cache" / "lightsearch"
    path = Path(root) / "compression"
    path.mkdir(parents=True, exist_ok=True)
    return path


def trained_reference(name: str, data: ImageData, *, epochs: int = 10, width: float = 1.0,
                      seed: int = 0, lr: float = 0.05, batch_size: int = 64,
                      use_cache: bool = True) -> tuple[nn.Module, dict[str, float]]:
    """Train (or load from the cache) a reference model; returns it and its accuracies."""
    key = json.dumps({"model": name, "data": data.name, "n": len(data.train), "seed": seed,
                      "epochs": epochs, "width": width, "lr": lr, "bs": batch_size,
                      "torch": torch.__version__, "v": 1}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{data.name}-{digest}.pt"
    model = build_reference(name, num_classes=data.num_classes, width=width, seed=seed)
    if use_cache and path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["state"])
        return model.eval(), dict(blob["info"])
    train_epochs(model, data.train, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    info = {"val_acc": evaluate_accuracy(model, data.val),
            "test_acc": evaluate_accuracy(model, data.test)}
    if use_cache:
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as fh:
            torch.save({"state": model.state_dict(), "info": info}, fh)
        os.replace(fh.name, path)  # atomic: concurrent workers never read half a file
    return model.eval(), info


def load_reference_job(name: str, dataset: str, *, seed: int = 0, epochs: int = 10,
                       width: float = 1.0, limit: int | None = None
                       ) -> tuple[nn.Module, ImageData, dict[str, float]]:
    data = load_dataset(dataset, seed=seed, limit=limit)
    model, info = trained_reference(name, data, epochs=epochs, width=width, seed=seed)
    return model, data, info
