"""INT8 (and FP8) for a pruned ViT: an fp32 ONNX → explicit Q/DQ ONNX, calibrated on real images.

Built on ``onnxruntime.quantization.quantize_static`` with ``QuantFormat.QDQ``:
a ``QuantizeLinear``/``DequantizeLinear`` pair in front of each quantized input,
which TensorRT (≥ 10, explicit quantization) fuses into INT8 layers and ONNX
Runtime's CPU provider into integer kernels.

Placement, and why:

* the inputs of the linear layers — MatMul/Gemm with a weight (qkv, projection,
  MLP, head) and the patch embedding's Conv — are quantized: that is where the
  FLOPs are and where TensorRT fuses Q/DQ into INT8 GEMMs;
* weights per output channel (``per_channel``), activations per tensor, both
  symmetric (``ActivationSymmetric``/``WeightSymmetric``: zero points 0;
  TensorRT's ONNX parser refuses non-zero zero points); weights on 7 bits
  (``reduce_range``, INT8 only): ONNX Runtime's x86 integer kernels otherwise lose accuracy
  (measured on the digits tiny ViT, topk: 98.9 % top-1 agreement with 8-bit
  weights, 99.7 % with 7-bit, 99.7 % for the Q/DQ graph run unfused);
* biases stay float (``QuantizeBias`` off): ONNX Runtime would store them as int32
  behind a ``DequantizeLinear``, which TensorRT's parser refuses ("input has type
  Int32 but must have type FP8, FP4, Int4, Int8, or UInt8"); TensorRT folds a float
  bias into the INT8 layer itself;
* everything that decides which tokens stay — the scores, similarities, the
  inputs of TopK/ArgMax, sizes and VPA's spread — plus Softmax and LayerNorm,
  stay in float: the very nodes :func:`~.fp16.fp32_nodes` keeps in fp32 for
  fp16, passed as ``nodes_to_exclude``; quantization noise then cannot reorder
  near-tied scores any more than float rounding does;
* the attention products (MatMuls of two activations) stay float unless
  ``attention_matmuls`` asks for them: those outside the score path are then
  quantized too.

Calibration (:data:`METHODS`): ``minmax`` takes each tensor's largest |value|,
``entropy`` the range minimising the KL divergence of the INT8 histogram (the
TensorRT calibrator's rule), ``percentile`` the 99.999th percentile. FP8 (e4m3)
uses ONNX Runtime's ``Distribution`` calibration, which its FP8 types need.

The images come as batches of model inputs from the caller (``vitprune quantize``
loads them with the loaders ``eval`` uses); the result carries the pruning record
with ``precision`` and ``calibration`` (data, images, method) set.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import VitPruneError, did_you_mean
from ..files import atomic_output, check_output
from ..record import PruningRecord, check_onnx_input
from .fp16 import FLOAT16, activation_matmul_nodes, fp32_nodes, weight_test

#: calibration method name → onnxruntime.quantization.CalibrationMethod member
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
DEFAULT_METHOD = "minmax"
PRECISIONS = ("int8", "fp8")
#: the FP8 types of ONNX Runtime's quantizer need this calibration
FP8_CALIBRATION = "Distribution"
#: the linear layers: what is quantized
LINEAR_OP_TYPES = ("MatMul", "Gemm", "Conv")
QDQ_OP_TYPES = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
CALIBRATION_BATCH = 32


@dataclass(frozen=True)
class QuantizeReport:
    """What a quantization did: counts for logs, tests and the CLI."""

    path: Path
    precision: str
    method: str
    data: str
    images: int
    quantized_nodes: int
    float_nodes: int
    seconds: float


def check_method(method: str, precision: str = "int8") -> None:
    """A known calibration method and precision, or one line naming the choices."""
    if precision not in PRECISIONS:
        raise VitPruneError(
            f"unknown precision {precision!r}{did_you_mean(precision, PRECISIONS)}; choose {' or '.join(PRECISIONS)}"
        )
    if method not in METHODS:
        raise VitPruneError(
            f"unknown calibration --method {method!r}{did_you_mean(method, METHODS)}; "
            f"choose one of {', '.join(METHODS)}"
        )


def is_quantized(proto) -> bool:
    """The graph already holds Q/DQ nodes (or its record says it was quantized)."""
    record = PruningRecord.from_proto(proto)
    return any(node.op_type in QDQ_OP_TYPES for node in proto.graph.node) or bool(
        record is not None and record.precision not in (None, "fp32")
    )


def check_quantizable(proto, path: str | Path) -> PruningRecord:
    """Refuse, in one line, a file vitprune cannot quantize; return its record."""
    from ..portable.plugin_nodes import is_plugin_node

    name = repr(str(path))
    record = PruningRecord.from_proto(proto, str(path))
    if record is None:
        raise VitPruneError(
            f"{name} was not written by vitprune: its model's input size and classes are unknown; "
            "export it with 'vitprune export' and quantize that"
        )
    plugins = [node for node in proto.graph.node if is_plugin_node(node.op_type, node.domain)]
    if plugins:
        standard = Path(path).with_name(f"{Path(path).stem}_standard.onnx")
        raise VitPruneError(
            f"{name} has {len(plugins)} plugin node(s) ({plugins[0].op_type}), which cannot be quantized; "
            f"rewrite them first with 'vitprune rewrite {path} --to standard -o {standard}' and quantize that"
        )
    if is_quantized(proto):
        raise VitPruneError(f"{name} is already quantized; give the fp32 ONNX file it was made from")
    if any(tensor.data_type == FLOAT16 for tensor in proto.graph.initializer):
        raise VitPruneError(f"{name} holds fp16 weights; give the fp32 ONNX file from 'vitprune export'")
    return record


def float_nodes(proto, attention_matmuls: bool = False) -> list[str]:
    """The nodes left in float (``nodes_to_exclude``): the fp16 conversion's fp32 nodes, and the attention
    products unless ``attention_matmuls``."""
    kept = set(fp32_nodes(proto))
    if not attention_matmuls:
        kept.update(activation_matmul_nodes(proto))
    is_weight = weight_test(proto)
    for node in proto.graph.node:  # a constant on the left (sizes, a one-hot built from ones) is no linear layer
        if node.op_type == "MatMul" and is_weight(node.input[0]):
            kept.add(node.name)
    return [node.name for node in proto.graph.node if node.name in kept]


class _Batches:
    """``CalibrationDataReader``: the caller's image batches, cut or padded to a static batch, counted."""

    def __init__(self, input_name: str, batches: Iterable, fixed_batch: int | None, on_batch: Callable | None):
        self.input_name, self.fixed_batch, self.on_batch = input_name, fixed_batch, on_batch
        self.images = 0
        self._chunks = self._cut(batches)

    def _cut(self, batches):
        import numpy as np

        pending = None
        for batch in batches:
            array = np.ascontiguousarray(np.asarray(batch, dtype=np.float32))
            if self.fixed_batch is None:
                yield array, len(array)
                continue
            pending = array if pending is None else np.concatenate([pending, array])
            while len(pending) >= self.fixed_batch:
                yield pending[: self.fixed_batch], self.fixed_batch
                pending = pending[self.fixed_batch :]
        if pending is not None and len(pending):  # a short last batch: repeat its images to fill the graph's batch
            count = len(pending)
            yield np.resize(pending, (self.fixed_batch, *pending.shape[1:])), count

    def get_next(self):
        chunk = next(self._chunks, None)
        if chunk is None:
            return None
        array, count = chunk
        self.images += count
        if self.on_batch is not None:
            self.on_batch(count)
        return {self.input_name: array}

    def rewind(self):  # pragma: no cover - asked for by some calibrators only
        raise RuntimeError("calibration images are read once")


def _static_batch(proto) -> int | None:
    shape = proto.graph.input[0].type.tensor_type.shape.dim
    return int(shape[0].dim_value) if shape and shape[0].HasField("dim_value") and shape[0].dim_value > 0 else None


def quantize_model(
    proto,
    batches: Iterable,
    *,
    method: str = DEFAULT_METHOD,
    precision: str = "int8",
    attention_matmuls: bool = False,
    on_batch: Callable[[int], None] | None = None,
):
    """A Q/DQ copy of an fp32 ONNX ``ModelProto``; returns (model, images calibrated on, quantized nodes).

    ``batches``: model inputs (N, C, H, W) float arrays, read once.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    check_method(method, precision)
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for index, node in enumerate(proto.graph.node):  # the quantizer excludes nodes by name
        if not node.name:
            node.name = f"vitprune_node_{index}"
    excluded = float_nodes(proto, attention_matmuls)
    record = PruningRecord.from_proto(proto)
    reader = _Batches(proto.graph.input[0].name, batches, _static_batch(proto), on_batch)
    if precision == "fp8":
        quant_type, calibration = QuantType.QFLOAT8E4M3FN, getattr(CalibrationMethod, FP8_CALIBRATION)
    else:
        quant_type, calibration = QuantType.QInt8, getattr(CalibrationMethod, METHODS[method])
    with tempfile.TemporaryDirectory(prefix="vitprune-quantize-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "qdq.onnx"
        onnx.save_model(proto, str(source))
        quantize_static(
            str(source),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(LINEAR_OP_TYPES),
            per_channel=True,
            reduce_range=precision == "int8",  # 7-bit INT8 weights; FP8 has no reduced range
            activation_type=quant_type,
            weight_type=quant_type,
            nodes_to_exclude=excluded,
            calibrate_method=calibration,
            # biases stay float: TensorRT's DequantizeLinear takes 8-bit (and FP8/4-bit) inputs, not int32
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
        if reader.images == 0:
            raise VitPruneError("no calibration images were given; pass a data set with images")
        quantized = onnx.load(str(target))
    if record is not None:
        calibration_facts = {"method": FP8_CALIBRATION.lower() if precision == "fp8" else method}
        record.replace(precision=precision, calibration=calibration_facts).write_into(quantized)
    return quantized, reader.images, len(quantized_nodes(quantized))


def quantized_nodes(proto) -> list[str]:
    """Names of the linear layers that read a ``DequantizeLinear`` output: the ones that run quantized."""
    dequantized = {output for node in proto.graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    return [
        node.name
        for node in proto.graph.node
        if node.op_type in LINEAR_OP_TYPES and any(name in dequantized for name in node.input)
    ]


def quantize_onnx(
    source: str | Path,
    target: str | Path,
    batches: Iterable,
    *,
    data: str,
    method: str = DEFAULT_METHOD,
    precision: str = "int8",
    attention_matmuls: bool = False,
    force: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> QuantizeReport:
    """fp32 ONNX file → Q/DQ ONNX file (written atomically), calibrated on ``batches`` of ``data``.

    Refuses before any work: an unreadable file, plugin nodes (with the rewrite command), a file already
    quantized or fp16, an unknown method, and an existing ``target`` without ``force``.
    """
    import onnx

    started = time.perf_counter()
    check_method(method, precision)
    check_onnx_input(source)
    target = check_output(target, "-o", force=force, suffix=".onnx")
    proto = onnx.load(str(source))
    check_quantizable(proto, source)
    quantized, images, count = quantize_model(
        proto, batches, method=method, precision=precision, attention_matmuls=attention_matmuls, on_batch=on_batch
    )
    record = PruningRecord.from_proto(quantized)
    record.replace(calibration={**record.calibration, "data": str(data), "images": images}).write_into(quantized)
    with atomic_output(target, suffix=".onnx", option="-o") as temporary:
        onnx.save_model(quantized, str(temporary))
    return QuantizeReport(
        path=Path(target),
        precision=precision,
        method=record.calibration["method"],
        data=str(data),
        images=images,
        quantized_nodes=count,
        float_nodes=len(float_nodes(proto, attention_matmuls)),
        seconds=time.perf_counter() - started,
    )


__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "PRECISIONS",
    "QuantizeReport",
    "check_method",
    "check_quantizable",
    "float_nodes",
    "is_quantized",
    "quantize_model",
    "quantize_onnx",
    "quantized_nodes",
]
