"""Proxy training: build the candidate, train it briefly, score it on held-out data.

The agent sees ``val_acc`` (percent, on the validation split); ``test_acc`` and the training
curve are recorded only. A training is deterministic for its seed: weights are initialised
from it, batches and dropout masks come from a generator seeded with it, and it runs on a
fixed number of threads. The data split is the job's (``dataset.seed``), the same for
every candidate, so their accuracies are comparable.

The evaluator is shipped to Ray workers: it holds only options, and loads the data on first
use (once per process). Concurrent jobs in one worker keep to themselves: weights are drawn
in a ``seeded`` scope, masks and batches from the job's generator, and the thread count is
held in a ``torch_threads`` scope (``spaces.isolation``). With ``asha`` set, each epoch's
validation accuracy goes to Ray Tune's ASHA scheduler shared by the job
(``search.evaluators.asha``); a stopped candidate is returned with the accuracy it reached
and ``recorded["pruned"] = True``, which the search loop records as a PRUNED trial (no
reward: a partial training is not a score to rank against full ones).

With ``warm_start="net2net"`` a candidate that is a wider and/or deeper version of a candidate
already trained in this process starts from that network's weights, transformed to compute
the same function (``spaces.net2net``), and records the parent's key as ``net2net_parent``.
Trained networks are kept per job in the process (``ParentStore``): on Ray, a candidate
inherits only from candidates its own worker process trained.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search.base import Evaluation, Evaluator
from search.datasets import Dataset, load_dataset
from search.evaluators.asha import AshaGate
from spaces.base import Architecture, Space
from spaces.isolation import seeded, torch_threads

if TYPE_CHECKING:
    import torch
    from torch import nn

SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("sgd", "adam")
WARM_STARTS = (None, "net2net")
_DATA: dict[str, Dataset] = {}


@dataclass
class TrainConfig:
    """How a candidate is trained (one proxy training, or a second-stage retraining)."""

    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    schedule: str = "cosine"  # per-step cosine decay, step (x0.1 at 50% and 75%), constant
    optimizer: str = "sgd"
    label_smoothing: float = 0.0
    threads: int = 1
    eval_batch_size: int = 500
    #: batches of training data that re-estimate batch-norm statistics before each evaluation
    bn_batches: int = 8
    #: knowledge distillation (Hinton et al. 2015): weight of the soft-target loss, temperature
    distill_alpha: float = 0.5
    distill_temperature: float = 4.0
    #: "net2net": inherit weights from the nearest trained wider/deeper-reachable candidate
    warm_start: str | None = None
    net2net_noise: float = 0.01

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 2, ">= 2"),
            ("lr", self.lr > 0, "> 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("threads", self.threads >= 1, ">= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, ">= 1"),
            ("bn_batches", self.bn_batches >= 0, ">= 0"),
            ("distill_alpha", 0 <= self.distill_alpha <= 1, "in [0, 1]"),
            ("distill_temperature", self.distill_temperature > 0, "> 0"),
            ("net2net_noise", 0 <= self.net2net_noise <= 1, "in [0, 1]"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.warm_start not in WARM_STARTS:
            raise ValueError(f"warm_start must be one of {list(WARM_STARTS)}, "
                             f"got {self.warm_start!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")


@dataclass
class TrainResult:
    model: Any  # the trained nn.Module (eval mode)
    val_acc: float
    test_acc: float
    val_curve: list[float] = field(default_factory=list)
    train_loss: float = float("nan")
    epochs_run: int = 0
    pruned: bool = False
    seconds: float = 0.0


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate of optimizer step ``step`` of ``total``."""
    if cfg.schedule == "constant":
        return cfg.lr
    progress = step / max(1, total)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (0.1 ** ((progress >= 0.5) + (progress >= 0.75)))


def recalibrate_bn(model: nn.Module, x: torch.Tensor, batches: int, batch_size: int) -> None:
    """Re-estimate batch-norm statistics as exact averages over ``batches`` training batches.

    After a few hundred steps the running averages still lag the weights (momentum 0.1), so
    a proxy-trained network scores near chance in eval mode; fresh statistics fix that (the
    "BN recalibration" of once-for-all and single-path NAS evaluation).
    """
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or batches <= 0:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    model.train()
    with torch.no_grad():
        for b in range(min(batches, max(1, len(x) // batch_size))):
            xb = x[b * batch_size:(b + 1) * batch_size]
            if len(xb) >= 2:
                model(xb)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent, in eval mode, without gradients."""
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(1, len(y))


def train_model(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    *,
    seed: int,
    teacher: nn.Module | None = None,
    on_epoch: Callable[[int, float], bool] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train`` and score it; deterministic for ``seed``.

    ``teacher`` adds Hinton's distillation loss (``distill_alpha``, ``distill_temperature``).
    ``on_epoch(epoch, val_acc)`` returning False stops training there (ASHA).
    """
    import torch
    import torch.nn.functional as F

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)  # the job's own: batches and dropout masks
    with torch_threads(cfg.threads), dropout_from(model, gen):
        x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        x_val, y_val = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                weight_decay=cfg.weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        n = len(y_train)
        # A last batch of one sample breaks batch norm on 1x1 feature maps: drop it.
        batches = n // cfg.batch_size + (n % cfg.batch_size >= 2)
        total, step = cfg.epochs * batches, 0
        if teacher is not None:
            teacher.eval()
        curve: list[float] = []
        loss_sum, loss_count, pruned = 0.0, 0, False
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            order = torch.randperm(n, generator=gen)
            loss_sum, loss_count = 0.0, 0
            for b in range(batches):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                xb, yb = x_train[idx], y_train[idx]
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, step, total)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
                if teacher is not None:
                    with torch.no_grad():
                        soft = F.softmax(teacher(xb) / cfg.distill_temperature, 1)
                    kd = F.kl_div(F.log_softmax(logits / cfg.distill_temperature, 1), soft,
                                  reduction="batchmean") * cfg.distill_temperature ** 2
                    loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * kd
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                loss_sum += float(loss.detach()) * len(yb)
                loss_count += len(yb)
            if not math.isfinite(loss_sum):
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss is "
                                         f"{loss_sum}); lower lr (now {cfg.lr})")
            # Statistics from a fixed, seeded sample of training data (the first batches of
            # this epoch's order), so evaluation is as deterministic as training.
            recalibrate_bn(model, x_train[order[:cfg.bn_batches * cfg.batch_size]],
                           cfg.bn_batches, cfg.batch_size)
            curve.append(accuracy(model, x_val, y_val, cfg.eval_batch_size))
            if on_epoch is not None and epoch < cfg.epochs and not on_epoch(epoch, curve[-1]):
                pruned = True
                break
        test_acc = accuracy(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test),
                            cfg.eval_batch_size)
        return TrainResult(model, curve[-1], test_acc, curve, loss_sum / max(1, loss_count),
                           len(curve), pruned, time.perf_counter() - start)


def _generator_dropout(p: float, gen: torch.Generator) -> nn.Module:
    """``nn.Dropout(p)`` whose masks come from ``gen`` (torch is imported lazily here)."""
    import torch
    from torch import nn

    class GeneratorDropout(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training:
                return x
            keep = torch.rand(x.shape, generator=gen, dtype=x.dtype) >= p
            return x * keep / (1.0 - p)

    return GeneratorDropout()


@contextmanager
def dropout_from(model: nn.Module, gen: torch.Generator) -> Iterator[None]:
    """While training, the model's dropout layers draw from ``gen`` (the job's generator)
    instead of torch's process-wide one, which concurrent jobs share; restored after."""
    from torch import nn

    swapped = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout and child.p > 0:
                swapped.append((parent, name, child))
    for parent, name, child in swapped:
        setattr(parent, name, _generator_dropout(child.p, gen))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def build_for(space: Space, arch: Architecture, data: Dataset, seed: int) -> nn.Module:
    """The candidate's network with seeded initial weights; a clear error for spaces that
    do not build torch models."""

    build = getattr(space, "build_model", None)
    if build is None:
        raise TypeError(f"space {space.name!r} does not build PyTorch models; the 'train' "
                        f"evaluator needs a space such as 'mnasnet'")
    with seeded(seed):
        return build(arch, data.input_shape, data.num_classes)


class ParentStore:
    """Trained networks of one job in this process, for Net2Net warm starts (newest kept)."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self.trained: dict[str, tuple[Architecture, dict[str, Any]]] = {}

    def add(self, key: str, arch: Architecture, model: nn.Module) -> None:
        self.trained.pop(key, None)
        self.trained[key] = (dict(arch), {k: v.detach().clone()
                                          for k, v in model.state_dict().items()})
        while len(self.trained) > self.capacity:
            self.trained.pop(next(iter(self.trained)))

    def warm_start(self, space: Space, arch: Architecture, data: Dataset, seed: int,
                   noise: float) -> tuple[nn.Module, str] | None:
        """The candidate's network inherited from its nearest trained parent, and the
        parent's key; None when no trained candidate reaches it."""
        import torch

        from spaces.mnasnet import MnasNetSpace
        from spaces.net2net import nearest_parent, transfer

        if not isinstance(space, MnasNetSpace) or not self.trained:
            return None
        candidates = [a for a, _ in self.trained.values()]
        parent = nearest_parent(space, arch, candidates, data.input_shape)
        if parent is None:
            return None
        key = space.key(parent)
        with seeded(seed):
            parent_model = space.build_model(parent, data.input_shape, data.num_classes)
        parent_model.load_state_dict(self.trained[key][1])
        sample = torch.from_numpy(data.x_train[:256])
        child = transfer(space, parent, parent_model, arch, data.input_shape,
                         data.num_classes, seed=seed, noise=noise, sample=sample)
        return child, key


_PARENTS: dict[str, ParentStore] = {}


def get_dataset(options: Mapping[str, Any]) -> Dataset:
    """Load once per process and options (workers keep the arrays between trials)."""
    key = repr(sorted(options.items()))
    if key not in _DATA:
        _DATA[key] = load_dataset(**options)
    return _DATA[key]


class TrainingEvaluator(Evaluator):
    """Proxy-train each candidate (``TrainConfig``) on ``dataset`` (``load_dataset`` options)."""

    name = "train"
    model_exporter = "search.export:export_trial"  # trained again from the search's seed

    def __init__(self, dataset: Mapping[str, Any] | None = None, asha: Mapping[str, Any] |
                 None = None, **train: Any) -> None:
        self.dataset = dict(dataset or {})
        self.config = TrainConfig(**train)
        self.run_id = uuid.uuid4().hex[:16]  # names the job's shared ASHA state
        self.asha: AshaGate | None = None
        if asha is not None:
            self.asha = AshaGate(self.run_id, self.config.epochs, **dict(asha))

    def data(self) -> Dataset:
        return get_dataset(self.dataset)

    def signal_metrics(self) -> list[str]:
        return ["val_acc"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        data = self.data()
        parent_key, store = None, None
        if self.config.warm_start == "net2net":
            store = _PARENTS.setdefault(self.run_id, ParentStore())
            inherited = store.warm_start(space, arch, data, seed, self.config.net2net_noise)
            if inherited is not None:
                model, parent_key = inherited
        if parent_key is None:
            model = build_for(space, arch, data, seed)
        on_epoch = None
        if self.asha is not None:
            gate = self.asha
            trial = hashlib.blake2b(f"{space.key(arch)}#{seed}".encode(),
                                    digest_size=8).hexdigest()

            def on_epoch(epoch: int, val_acc: float) -> bool:
                return gate.report(trial, epoch, val_acc)

        result = train_model(model, data, self.config, seed=seed, on_epoch=on_epoch)
        if store is not None and not result.pruned:
            store.add(space.key(arch), arch, result.model)
        recorded = {
            "test_acc": result.test_acc,
            "val_curve": result.val_curve,
            "train_loss": result.train_loss,
            "epochs_run": result.epochs_run,
            "train_seconds": round(result.seconds, 3),
            "params": sum(p.numel() for p in model.parameters()),
            "dataset": data.name,
        }
        if self.asha is not None:
            recorded["pruned"] = result.pruned
        if self.config.warm_start is not None:
            recorded["net2net_parent"] = parent_key
        return Evaluation(metrics={"val_acc": result.val_acc}, recorded=recorded)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.dataset,
                "config": self.config.__dict__.copy(),
                "asha": None if self.asha is None else {
                    "grace_period": self.asha.grace_period,
                    "reduction_factor": self.asha.reduction_factor}}

    def close(self) -> None:
        """Drop the job's trained parents and its shared ASHA state (a Ray actor when
        trainings ran on Ray)."""
        _PARENTS.pop(self.run_id, None)
        if self.asha is not None:
            self.asha.close()
