"""Automated model compression: real pruning, quantization, weight sharing, export.

Modules, one job each:
``reference`` (reference models and their training), ``data`` (small image data sets),
``graph`` (a model's prunable channel groups, via Torch-Pruning), ``prune`` (structured and
fine-grained pruning, least-squares reconstruction), ``quantize`` (bit-widths, binarization,
k-means sharing as weight parametrizations), ``bn`` (batch-norm recalibration), ``finetune``
(training with optional distillation), ``apply`` (a policy applied to a model), ``export``
(the compact artifact), ``measure`` (FLOPs, parameters, latency), ``latency`` (a latency
cost model fitted to any profiler), ``factory`` (the ``compression`` space for a job).
"""
