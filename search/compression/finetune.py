"""Training and fine-tuning, with optional knowledge distillation (Hinton et al. 2015).

Distillation loss: ``(1 - w) * CE(student, y) + w * T^2 * KL(softmax(t/T) || softmax(s/T))``;
the ``T^2`` keeps the soft-target gradients on the same scale as the hard ones. Masks and
quantizers are weight parametrizations (see ``quantize``), so fine-tuning keeps pruned
weights at zero and trains through the quantizer with a straight-through estimator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from search.compression.data import Split, batches


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, split: Split, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1] (eval mode; the model's mode is restored)."""
    was_training = model.training
    model.eval()
    correct = 0
    for x, y in batches(split, batch_size):
        correct += int((model(x).argmax(1) == y).sum())
    model.train(was_training)
    return correct / max(1, len(split))


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                      temperature: float, weight: float) -> torch.Tensor:
    hard = F.cross_entropy(student, labels)
    if weight == 0:
        return hard
    soft = F.kl_div(F.log_softmax(student / temperature, 1),
                    F.softmax(teacher / temperature, 1), reduction="batchmean")
    return (1 - weight) * hard + weight * temperature ** 2 * soft


def _schedule(opt: torch.optim.Optimizer, total: int, warmup: float
              ) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay over ``total`` steps, after a linear warm-up of ``warmup * total``."""
    warm = int(round(warmup * total))
    if warm == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    decay = max(1, total - warm)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, decay) / decay))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_epochs(model: nn.Module, split: Split, *, epochs: float, lr: float = 0.05,
                 batch_size: int = 64, seed: int = 0, weight_decay: float = 5e-4,
                 teacher: nn.Module | None = None, temperature: float = 4.0,
                 distill_weight: float = 0.0, warmup: float = 0.0) -> list[float]:
    """SGD with momentum and a cosine schedule; ``epochs`` may be fractional (0.5 = half).

    Returns the mean loss of each epoch. A ``teacher`` with ``distill_weight > 0`` adds the
    distillation term; the teacher stays in eval mode and is not trained. ``warmup``: the
    fraction of steps over which the rate rises linearly from ``lr / warm-up steps`` to
    ``lr`` before the cosine decay (Goyal et al. 2017); a heavily pruned model can diverge
    on its first steps at the full rate.
    """
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be in [0, 1), got {warmup}")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if not 0 <= distill_weight <= 1:
        raise ValueError(f"distill_weight must be in [0, 1], got {distill_weight}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    steps_per_epoch = math.ceil(len(split) / batch_size)
    total = int(round(epochs * steps_per_epoch))
    if total == 0:
        return []
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    sched = _schedule(opt, total, warmup)
    gen = torch.Generator().manual_seed(seed)
    if teacher is not None:
        teacher.eval()
    model.train()
    losses: list[float] = []
    step = 0
    while step < total:
        running, n = 0.0, 0
        for x, y in batches(split, batch_size, shuffle=True, generator=gen):
            out = model(x)
            if teacher is not None and distill_weight > 0:
                with torch.no_grad():
                    t_out = teacher(x)
                loss = distillation_loss(out, t_out, y, temperature, distill_weight)
            else:
                loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(y)
            n += len(y)
            step += 1
            if step >= total:
                break
        losses.append(running / max(1, n))
    model.eval()
    return losses
