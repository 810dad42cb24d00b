"""FLOPs, parameters and latency of a real torch model, counted from the model itself.

Same counting rule as ``spaces.compression`` and the analytical profiler: multiply-adds of
convolutions and linear layers (bias included); parameters are non-zero weights, biases and
batch-norm affine pairs. Counting the built model independently is what lets the tests check
that a policy shrinks a model by exactly the amount the space predicted.
"""

from __future__ import annotations

import torch
from torch import nn


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass at batch size 1."""
    total = 0

    def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        hw = int(out.shape[2] * out.shape[3]) if out.dim() == 4 else 1
        if isinstance(m, nn.Conv2d):
            w = m.weight.shape[0] * m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
        else:
            w = m.weight.shape[0] * m.weight.shape[1]
        bias = m.weight.shape[0] if m.bias is not None else 0
        total += (w + bias) * hw

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, nn.Conv2d | nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return int(total)


def count_params(model: nn.Module, *, nonzero: bool = True) -> int:
    """Conv/linear weights (only non-zero ones unless ``nonzero=False``), biases and
    batch-norm affine parameters."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            w = m.weight.detach()
            total += int((w != 0).sum()) if nonzero else w.numel()
            if m.bias is not None:
                total += m.bias.numel()
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) and m.affine:
            total += 2 * m.num_features
    return total


def measure_latency_ms(model: nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 1,
                       repeats: int = 10, rounds: int = 5, warmup: int = 5) -> float:
    """Latency of one forward pass on this CPU, one thread, in milliseconds.

    The measured profiler's protocol (``search.profilers.measured``): the thread's CPU time
    per call, minimum over rounds of each round's median, so other processes on a shared
    machine barely move it.
    """
    from search.profilers.measured import measure, threads_set, torch_runner

    was_training = model.training
    try:
        x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0))
        with threads_set(1):
            stats = measure(torch_runner(model, x), warmup=warmup, rounds=rounds,
                            repeats=repeats, clock="cpu")
    finally:
        model.train(was_training)
    return float(stats.min_ms)
