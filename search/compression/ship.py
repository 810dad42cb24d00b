"""Deployable files of a compression trial: the same files as a NAS job's, plus the packed
artifact and, for integer policies, an int8 ONNX model.

``export_compressed_trial`` compresses the trial's policy again with the search's seed
(``search.compression.pipeline``: the state that scored best on validation, before or
after fine-tuning), then writes, in one folder:

- ``<name>.pt`` / ``.ts`` / ``.onnx``: float32 weights (the decoded compressed weights),
  TorchScript and ONNX, each checked against PyTorch (``search.export.export_model``);
- ``<name>.lsz``: the packed artifact (``search.compression.export``; b-bit integers,
  codebooks and masks as packed bits, JSON manifest, no pickle);
- ``<name>_int8.onnx``, when every weighted layer of the policy is 8 bits or fewer (or a
  codebook): ONNX Runtime's static quantization (QDQ, int8 per-channel weights, int32
  biases, uint8 activations calibrated on training images) with every optional tensor cut
  (``slim_qdq``), checked by accuracy against the float model;
- ``<name>_card.json`` / ``.md``: reference model, target, policy per layer, accuracy
  before/after fine-tuning and which state was shipped, sizes in bytes against float32,
  and ONNX Runtime latency measured on the files next to the reference's.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from search.compression.data import Split
from search.compression.export import _materialized, manifest_model
from search.compression.export import export_model as export_packed
from search.compression.options import CompressEvaluatorOptions
from search.compression.pipeline import compress_trial
from search.export import ExportResult, _sha256, card_markdown, export_model
from search.profilers.measured import (
    measure_interleaved,
    onnx_bytes,
    ort_runner,
    ort_session,
    threads_set,
)
from spaces.compression import CompressionSpace

if TYPE_CHECKING:
    from search.sinks import TrialRecord
    from search.spec import JobSpec


def latency_protocol(rounds: int, repeats: int) -> str:
    """How ``file_latency`` timed the files, in words (recorded beside the figures)."""
    return ("ONNX Runtime, batch 1, 1 thread, files measured in interleaved rounds (min over "
            f"{rounds} rounds of {repeats} runs' medians, thread CPU time)")


def integer_policy(space: CompressionSpace, arch: Mapping[str, Any]) -> bool:
    """True when every weighted layer stores 8 bits or fewer (bit-width or codebook)."""
    for op in space.table.weighted():
        bits, share = arch.get(f"bits:{op.name}"), arch.get(f"share:{op.name}")
        if share is None and (bits is None or int(bits) > 8):
            return False
    return True


def onnx_accuracy(session: Any, split: Split, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent of an ONNX Runtime session on ``split``."""
    name = session.get_inputs()[0].name
    x, y = split.x.numpy(), split.y.numpy()
    correct = 0
    for i in range(0, len(y), batch_size):
        out = session.run(None, {name: np.ascontiguousarray(x[i:i + batch_size])})[0]
        correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(1, len(y))


def quantize_int8(src: Path, dest: Path, calib: Split, samples: int = 256, *,
                  slim: bool = True) -> None:
    """Static int8 quantization with ONNX Runtime's tools (QDQ format, per-channel symmetric
    int8 weights, int32 biases, uint8 activations with ranges from ``samples`` training
    images), then ``compact`` (``slim=False`` keeps every tensor the quantizer wrote: for
    comparison)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            x = calib.x[:samples].numpy()
            self.batches = iter([{"input": x[i:i + 32]} for i in range(0, len(x), 32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:  # its helper files stay out of the folder
            staged = Path(tmp) / "int8.onnx"
            quantize_static(str(src), str(staged), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8,
                            extra_options={"WeightSymmetric": True})
            dest.write_bytes(compact(staged, slim=slim).SerializeToString())
    finally:
        logging.getLogger().setLevel(quiet)


def compact(path: Path, *, slim: bool = True) -> Any:
    """The quantizer's ONNX graph with every optional byte cut (``slim_qdq``), short tensor
    names and no node names, doc strings or shape annotations: for a small network they
    took a seventh of the file (MobileNetV2-style, 8x8 digits: 179,033 -> 152,812 bytes,
    0.347 -> 0.296 of the float32 file). Inputs and outputs keep their names."""
    import onnx

    model = onnx.load(str(path))
    if slim:
        slim_qdq(model)
    g = model.graph
    keep = {v.name for v in (*g.input, *g.output)}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in names:
            n, code = len(names), ""
            while True:  # base 62: two characters name 3,844 tensors
                n, r = divmod(n, 62)
                code += _DIGITS[r]
                if n == 0:
                    break
            while code in keep:
                code += "_"
            names[name] = code
        return names[name]

    for t in g.initializer:
        t.name = short(t.name)
    for n in g.node:
        n.name, n.doc_string = "", ""
        n.input[:] = [short(x) for x in n.input]
        n.output[:] = [short(x) for x in n.output]
    del g.value_info[:]
    onnx.checker.check_model(model)
    return model


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def slim_qdq(model: Any) -> dict[str, int]:
    """Cut what a QDQ model stores but need not, in place, without changing what it computes
    or what ONNX Runtime fuses (every Conv still becomes a QLinearConv, the Gemm a QGemm):

    - a bias's dequantization scale is by construction ``input scale x weight scale`` (the
      standard QDQ bias): it becomes a ``Mul`` of those two initializers, folded by ONNX
      Runtime when the session loads, instead of a stored per-channel float array;
    - all-zero zero points of the stored weights and biases of Conv layers are dropped
      (optional inputs, zero by default): a per-channel int32 array per bias. The Gemm keeps
      its own: without them ONNX Runtime no longer fuses it into a QGemm;
    - nodes whose outputs nothing reads (the float model's Clip bounds, left behind when the
      quantizer folded the Clip into a quantize step) and initializers nothing reads;
    - duplicate initializers (the same scalar scale or zero point stored once per use).

    Returns how many of each were cut, for the tests and the curious.
    """
    from onnx import helper, numpy_helper

    g = model.graph
    init = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    cut = {"bias_scales": 0, "zero_points": 0, "dead_nodes": 0, "duplicates": 0}

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(init[name])

    def dq(name: str) -> Any:
        n = producer.get(name)
        return n if n is not None and n.op_type == "DequantizeLinear" else None

    muls = []
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm") or len(n.input) < 3:
            continue
        x_dq, w_dq, b_dq = (dq(x) for x in n.input[:3])
        if x_dq is None or w_dq is None or b_dq is None:
            continue
        xs, ws, bs = x_dq.input[1], w_dq.input[1], b_dq.input[1]
        if not (xs in init and ws in init and bs in init) or len(consumers[bs]) != 1:
            continue
        stored, derived = array(bs), (array(xs) * array(ws)).astype(np.float32)
        if stored.shape != derived.shape or not np.allclose(stored, derived, rtol=1e-6,
                                                             atol=0):
            continue
        out = f"{bs}/derived"
        muls.append(helper.make_node("Mul", [xs, ws], [out]))
        b_dq.input[1] = out
        cut["bias_scales"] += 1
    for n in g.node:
        readers = consumers.get(n.output[0], []) if n.op_type == "DequantizeLinear" else []
        if len(n.input) == 3 and n.input[0] in init and n.input[2] in init and readers \
                and all(c.op_type == "Conv" for c in readers):  # a stored weight or bias
            zp = array(n.input[2])
            if zp.dtype in (np.int8, np.int32) and not zp.any():
                del n.input[2]
                cut["zero_points"] += 1
    for m in reversed(muls):  # their inputs are initializers: first is a topological place
        g.node.insert(0, m)
    outputs = {o.name for o in g.output}
    while True:
        used = {x for n in g.node for x in n.input} | outputs
        alive = [n for n in g.node if any(o in used for o in n.output)]
        if len(alive) == len(g.node):
            break
        cut["dead_nodes"] += len(g.node) - len(alive)
        del g.node[:]
        g.node.extend(alive)
    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        rename[t.name] = first.setdefault((str(a.dtype), a.shape, a.tobytes()), t.name)
    for n in g.node:
        n.input[:] = [rename.get(x, x) for x in n.input]
    cut["duplicates"] = sum(1 for a, b in rename.items() if a != b)
    used = {x for n in g.node for x in n.input} | outputs
    alive_init = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(alive_init)
    return cut


def export_compressed_trial(spec: JobSpec, trial: TrialRecord, out_dir: str | Path, *,
                            name: str | None = None, measure_latency: bool = True
                            ) -> ExportResult:
    """Compress ``trial``'s policy again and write its deployable files (module docstring)."""
    from search.loop import evaluation_seed
    from spaces.registry import SPACES

    space = SPACES.create(spec.space.name, options=spec.space.options)
    if not isinstance(space, CompressionSpace):
        raise ValueError(f"a compress export needs the 'compression' space, got "
                         f"{spec.space.name!r}")
    opts = CompressEvaluatorOptions.model_validate(spec.evaluator.options)
    seed = evaluation_seed(spec.seed, trial.arch_key)
    arch = space.validate(trial.arch)
    ct = compress_trial(opts, space, arch, seed=seed,
                        lineage=trial.recorded.get("warm_start_lineage"))
    data, shape = ct.data, ct.data.input_shape
    name = name or f"trial{trial.trial_id}"
    out = Path(out_dir)
    plain = _materialized(ct.model).eval()
    dataset = {"name": data.name, "sizes": {k: len(getattr(data, k))
                                            for k in ("train", "val", "test")},
               "normalization": "standardized with the training split's mean and std",
               "source": "search.compression.data"}
    recorded = {k: v for k, v in trial.recorded.items() if k != "policy"}
    result = export_model(plain, out, input_shape=shape, arch=arch, space=space,
                          metrics=trial.metrics, recorded=recorded, dataset=dataset,
                          seed=seed, name=name, measure_latency=measure_latency,
                          extra={"trial_id": trial.trial_id, "job": spec.name,
                                 "searched_val_acc": trial.metrics.get("val_acc"),
                                 "reproduced_val_acc": 100 * ct.signal})
    files = {k: Path(v) for k, v in result.files.items()}
    files["lsz"] = out / f"{name}.lsz"
    export_packed(ct.model, files["lsz"], input_shape=shape,
                  meta={**manifest_model(opts.model, ct.kept, space.removed_blocks(arch),
                                         space.table), "policy": arch})
    float_session = ort_session(str(files["onnx"]), 1)
    accuracy = {"onnx_val_acc": onnx_accuracy(float_session, data.val),
                "onnx_test_acc": onnx_accuracy(float_session, data.test)}
    int8_session = None
    if integer_policy(space, arch):
        files["onnx_int8"] = out / f"{name}_int8.onnx"
        quantize_int8(files["onnx"], files["onnx_int8"], data.train)
        int8_session = ort_session(str(files["onnx_int8"]), 1)
        accuracy["onnx_int8_val_acc"] = onnx_accuracy(int8_session, data.val)
        accuracy["onnx_int8_test_acc"] = onnx_accuracy(int8_session, data.test)
    ref_bytes = onnx_bytes(ct.base, torch.zeros(1, *shape), dynamic_batch=True)
    compression = {
        "reference_model": opts.model.model_dump(mode="json", exclude_none=True),
        "reference_accuracy": {"val_acc": 100 * ct.base_info["val_acc"],
                               "test_acc": 100 * ct.base_info["test_acc"]},
        "target": space.target.model_dump() if space.target else None,
        "meets_target": space.fits(arch),
        "controls": list(space.controls),
        "channel_multiple": space.channel_multiple,
        "removed_blocks": space.removed_blocks(arch),
        "policy": ct.recorded["policy"],
        "accuracy": {k: ct.recorded.get(k) for k in (
            "val_acc_before_finetune", "test_acc_before_finetune", "val_acc_after_finetune",
            "test_acc_after_finetune", "val_acc_shipped")} | accuracy,
        "shipped_state": ct.recorded["shipped_state"],
        "size": sizes(space, arch, files, len(ref_bytes)),
        "flops": flops_summary(space, arch),
    }
    if measure_latency:
        compression["latency"] = file_latency(ref_bytes, float_session, int8_session, shape)
        judged = target_on_file(compression["target"], compression["latency"])
        if judged is not None:
            compression["target_on_file"] = judged
    card = result.card
    card["compression"] = compression
    card["files"] = {k: {"path": p.name, "sha256": _sha256(p), "bytes": p.stat().st_size}
                     for k, p in files.items() if k not in ("card_json", "card_md")}
    files["card_json"].write_text(json.dumps(card, indent=2, default=str))
    files["card_md"].write_text(card_markdown(card) + compression_markdown(compression))
    return ExportResult({k: str(p) for k, p in files.items()}, card)


def flops_summary(space: CompressionSpace, arch: Mapping[str, Any]) -> dict[str, Any]:
    """FLOPs of the model against the reference's; with ``flops_block`` > 1 also the padded
    FLOPs the search priced (what ONNX Runtime's blocked kernels compute)."""
    plain, full = space.cost(arch, "flops", padded=False), space.uncompressed("flops",
                                                                             padded=False)
    out: dict[str, Any] = {"compressed": plain, "reference": full, "ratio": plain / full}
    if space.flops_block > 1:
        out["padded"] = {"block": space.flops_block,
                         "compressed": space.cost(arch, "flops"),
                         "reference": space.uncompressed("flops"),
                         "ratio": space.cost(arch, "flops") / space.uncompressed("flops")}
    return out


def sizes(space: CompressionSpace, arch: Mapping[str, Any], files: Mapping[str, Path],
          reference_onnx: int) -> dict[str, Any]:
    """Bytes of the weights and of each file, with ratios against float32."""
    float_weights = space.uncompressed("size")
    policy = space.cost(arch, "size")
    out: dict[str, Any] = {"float32_weight_bytes": float_weights,
                           "policy_weight_bytes": policy,
                           "policy_ratio_of_float32": policy / float_weights,
                           "reference_onnx_bytes": reference_onnx}
    for key in ("lsz", "onnx", "onnx_int8"):
        if key in files:
            n = files[key].stat().st_size
            out[f"{key}_bytes"] = n
            out[f"{key}_ratio_of_reference_onnx"] = n / reference_onnx
    return out


def file_latency(reference: bytes, compressed: Any, int8: Any, shape: tuple[int, ...], *,
                 rounds: int = 7, repeats: int = 20) -> dict[str, Any]:
    """ONNX Runtime latency of the reference's ONNX, the exported ONNX and the int8 ONNX,
    measured side by side in interleaved rounds (a shared machine's drift hits all alike)."""
    x = np.zeros((1, *shape), np.float32)
    sessions = {"reference_onnx": ort_session(reference, 1), "onnx": compressed}
    if int8 is not None:
        sessions["onnx_int8"] = int8
    with threads_set(1):
        stats = measure_interleaved([ort_runner(s, x) for s in sessions.values()],
                                    rounds=rounds, repeats=repeats, clock="cpu")
    ms = {k: float(s.min_ms) for k, s in zip(sessions, stats, strict=True)}
    out: dict[str, Any] = {f"{k}_ort_ms": v for k, v in ms.items()}
    for k in ("onnx", "onnx_int8"):
        if k in ms:
            out[f"{k}_ratio_of_reference"] = ms[k] / ms["reference_onnx"]
    out["protocol"] = latency_protocol(rounds, repeats)
    return out


def target_on_file(target: Mapping[str, Any] | None, latency: Mapping[str, Any] | None
                   ) -> dict[str, Any] | None:
    """An ONNX Runtime latency target judged on the exported file, not only as the search's
    latency model priced it: that linear model missed by up to 40% on the policies searches
    chose (README, issue 15's seventeenth run). None unless both exist and are comparable."""
    if not target or target.get("metric") != "latency" or not latency:
        return None
    if "onnxruntime" not in str(target.get("profiler", "")):
        return None  # priced with another runtime: the ONNX Runtime file is not its measure
    measured = float(latency["onnx_ratio_of_reference"])
    return {"ratio_measured": measured, "ratio_target": float(target["ratio"]),
            "met": measured <= float(target["ratio"])}


def compression_markdown(c: Mapping[str, Any]) -> str:
    """The compression section of the Markdown card."""
    acc, size = c["accuracy"], c["size"]
    lines = ["", "## Compression", "",
             f"- Reference model: `{json.dumps(c['reference_model'])}` (val "
             f"{c['reference_accuracy']['val_acc']:.2f}%, test "
             f"{c['reference_accuracy']['test_acc']:.2f}%)",
             f"- Target: {c['target']} (met: {c['meets_target']}); controls {c['controls']}, "
             f"channel multiple {c['channel_multiple']}",
             *([f"- On the exported file: {c['target_on_file']['ratio_measured']:.3f} of the "
                f"reference's ONNX Runtime time (target {c['target_on_file']['ratio_target']:g}"
                f"; met: {c['target_on_file']['met']})"] if c.get("target_on_file") else []),
             f"- FLOPs: {c['flops']['compressed']:,.0f} of {c['flops']['reference']:,.0f} "
             f"({c['flops']['ratio']:.3f})",
             f"- Blocks removed (now the identity): "
             f"{', '.join(c.get('removed_blocks') or []) or 'none'}",
             f"- Shipped state: **{c['shipped_state']}**",
             "", "| accuracy (%) | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in acc.items() if isinstance(v, int | float)]
    lines += ["", "| size | bytes | ratio |", "| --- | --- | --- |",
              f"| weights, float32 | {size['float32_weight_bytes']:,.0f} | 1 |",
              f"| weights, policy's formats | {size['policy_weight_bytes']:,.0f} | "
              f"{size['policy_ratio_of_float32']:.4f} |",
              f"| reference ONNX (float32) | {size['reference_onnx_bytes']:,} | 1 |"]
    for key in ("lsz", "onnx", "onnx_int8"):
        if f"{key}_bytes" in size:
            lines.append(f"| {key} file | {size[f'{key}_bytes']:,} | "
                         f"{size[f'{key}_ratio_of_reference_onnx']:.4f} |")
    lat = c.get("latency")
    if lat:
        lines += ["", f"Latency ({lat['protocol']}):", ""]
        lines += [f"- {k}: {v:.4g}" for k, v in lat.items() if isinstance(v, float)]
    lines += ["", "| layer | policy |", "| --- | --- |"]
    lines += [f"| {r['layer']} | " + ", ".join(f"{k}={v}" for k, v in r.items()
                                                if k != "layer") + " |" for r in c["policy"]]
    return "\n".join(lines) + "\n"



