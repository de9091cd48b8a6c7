"""PyTorch → ONNX with static token counts, checked against PyTorch in ONNX Runtime.

Uses the dynamo exporter (``torch.onnx.export(..., dynamo=True)``, opset ≥ 18:
that exporter's lowest). Every token dimension is a static integer baked from
the schedule; only the batch axis may stay dynamic (``dynamic_batch``). After
export: ``onnx.checker``, a run in ONNX Runtime on a random input compared with
PyTorch (max |Δ|), and the pruning record (:class:`~vitprune_export.record.PruningRecord`:
model, method, knobs, schedule, rate, MACs, weights source, versions, batch, opset)
in ``metadata_props``. The file is written to a temporary name and renamed only
when everything passed, so a failed export leaves nothing.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import VitPruneError
from ..files import atomic_output, check_output
from ..pruning.models import input_size_of
from ..pruning.patch import num_tokens_of, pruning_info
from ..record import PruningRecord, library_versions
from .gelu_order import order_gelu_for_fusion
from .parity import DEFAULT_PARITY_TOLERANCE, check_tolerance

log = logging.getLogger("vitprune")

DEFAULT_FOLDER = Path("engines")


@dataclass
class ExportResult:
    """What :func:`export_onnx` made."""

    path: Path
    keep_counts: list[int]
    parity_max_abs_diff: float | None
    seconds: float
    size_bytes: int
    record: PruningRecord
    parity_batches: list[int] = field(default_factory=list)

    @property
    def metadata(self) -> dict[str, Any]:
        """The record as written into the file's metadata."""
        return self.record.to_metadata()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The pruning record of an exported ONNX file as its JSON object ({} when it has none)."""
    record = PruningRecord.read(path)
    return record.to_metadata() if record is not None else {}


def default_onnx_path(record: PruningRecord, plugins: bool = False) -> Path:
    """``engines/<model>_<method>_<rate tag>[_plugins].onnx``."""
    return DEFAULT_FOLDER / f"{record.tag}{'_plugins' if plugins else ''}.onnx"


def _onnx_program(model, example, dynamic_batch: bool, opset: int, plugins: bool = False):
    from torch.export import Dim

    dynamic_shapes = ({0: Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    extra = {}
    if plugins:  # one vitprune::VitPrune… node per pruning layer (vitprune_export.export.ops.emit)
        from .ops.emit import translation_table

        extra["custom_translation_table"] = translation_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
            report=False,
            **extra,
        )


def run_onnxruntime(path: str | Path, images: torch.Tensor, threads: int | None = None, custom_ops: bool = False):
    """Run an ONNX file on the CPU; returns the first output as a numpy array."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if custom_ops:
        from .ops.onnxruntime import register_custom_ops

        register_custom_ops(options)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]


def parity(model: torch.nn.Module, path: str | Path, batch: int, seed: int = 0, custom_ops: bool = False) -> float:
    """max |PyTorch − ONNX Runtime| on a random batch."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn((batch, *input_size_of(model)), generator=generator)
    with torch.no_grad():
        reference = model(images).numpy()
    produced = run_onnxruntime(path, images, custom_ops=custom_ops)
    return float(abs(reference - produced).max())


def export_onnx(
    model: torch.nn.Module,
    path: str | Path | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = 18,
    check: bool = True,
    tolerance: float = DEFAULT_PARITY_TOLERANCE,
    model_name: str | None = None,
    parity_batches: list[int] | None = None,
    plugins: bool = False,
    force: bool = True,
) -> ExportResult:
    """Export a patched model to ``path`` (default :func:`default_onnx_path`); verify it; return an :class:`ExportResult`.

    ``check``: run ``onnx.checker`` and fail (VitPruneError, nothing written) when
    ONNX Runtime differs from PyTorch by more than ``tolerance``. Parity is always
    measured; ``parity_batches`` defaults to ``[batch]`` (plus 3 with a dynamic batch).
    ``plugins``: emit one custom node per pruning layer (see ``vitprune_export.export.ops``).
    ``force``: replace ``path`` when it exists (else a VitPruneError before any work).
    The pruning record (:meth:`PruningRecord.from_model`, with the library versions, batch and
    opset) is made here and written into the file's metadata.
    """
    import onnx

    if opset < 18:
        raise VitPruneError(f"--opset {opset} is below 18, the lowest the dynamo exporter writes; use 18 or later")
    if opset > onnx.defs.onnx_opset_version():
        raise VitPruneError(
            f"--opset {opset} is above {onnx.defs.onnx_opset_version()}, the newest the installed onnx knows; "
            "use 18 (the default)"
        )
    if batch < 1:
        raise VitPruneError(f"--batch must be ≥ 1, got {batch}")
    check_tolerance(tolerance)
    model = model.eval()
    if plugins:
        from .ops import check_method_has_plugin

        info = pruning_info(model)
        check_method_has_plugin(info["method"].name)
        info["method"].check_plugins(info["schedule"].num_prefix)
    record = PruningRecord.from_model(model, model_name).replace(
        versions=library_versions(), batch="dynamic" if dynamic_batch else batch, opset=opset, plugins=bool(plugins)
    )
    path = Path(path) if path is not None else default_onnx_path(record, plugins)
    check_output(path, "--output", force=force, suffix=".onnx")
    started = time.perf_counter()
    # torch.export specialises a size-1 axis: trace a dynamic batch with 2 images
    example = torch.randn((max(batch, 2) if dynamic_batch else batch, *input_size_of(model)))
    with atomic_output(path, suffix=".onnx") as temporary:
        with torch.no_grad(), _plugin_context(plugins):
            try:
                program = _onnx_program(model, example, dynamic_batch, opset, plugins)
            except VitPruneError:
                raise
            except Exception as error:
                raise VitPruneError(
                    f"ONNX export failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                ) from error
        proto = program.model_proto
        order_gelu_for_fusion(proto)  # one Gelu kernel in ONNX Runtime; the same ops elsewhere
        record.write_into(proto)
        if plugins:  # onnxruntime-extensions and TensorRT 10.3's parser read IR ≤ 10
            proto.ir_version = min(proto.ir_version, 10)
        onnx.save_model(proto, str(temporary))
        if check:
            try:
                onnx.checker.check_model(str(temporary))
            except onnx.checker.ValidationError as error:
                raise VitPruneError(f"the exported graph fails onnx.checker: {str(error).splitlines()[0]}") from None
        batches = parity_batches or ([batch, 3] if dynamic_batch and batch != 3 else [batch])
        worst = max(parity(model, temporary, b, custom_ops=plugins) for b in batches)
        if check and not worst <= tolerance:
            raise VitPruneError(
                f"ONNX Runtime differs from PyTorch by {worst:.3g} (> --atol {tolerance:g}); nothing written. "
                f"{_parity_hint(model, record)}Re-run with --no-check to keep the file anyway"
            )
    seconds = time.perf_counter() - started
    return ExportResult(
        path=path,
        keep_counts=list(record.keep_counts),
        parity_max_abs_diff=worst,
        seconds=seconds,
        size_bytes=path.stat().st_size,
        record=record,
        parity_batches=batches,
    )


def _parity_hint(model: torch.nn.Module, record: PruningRecord) -> str:
    """Why parity may fail: selection near-ties (the method's own, or random weights'), not a broken graph."""
    info = pruning_info(model)
    hint = info["method"].near_tie_hint(info["schedule"].num_prefix)
    if not record.weights.startswith("random"):
        return hint
    if not info["method"].changes_token_count:
        return hint
    return hint + (
        "With random weights the token scores nearly tie (timm starts LayerScale at 1e-5 and the class token "
        "at ~1e-6), so float rounding can make ONNX Runtime keep other tokens than PyTorch; use trained weights "
        "(--weights PATH) for a meaningful check. "
    )


def _plugin_context(plugins: bool):
    if not plugins:
        import contextlib

        return contextlib.nullcontext()
    from .ops.emit import plugin_export_mode

    return plugin_export_mode()


def token_dimensions(path: str | Path) -> list[list[int | str]]:
    """Shapes of every value in the graph whose rank is 3 (B, N, C): dims as int or symbol.

    Shape inference runs with data propagation, so the exporter's shape arithmetic
    (Shape → Concat → Reshape) folds into constants wherever it is static.
    """
    import onnx

    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)
    shapes = []
    for value in list(proto.graph.value_info) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 3:
            shapes.append([d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims])
    return shapes


__all__ = [
    "ExportResult",
    "default_onnx_path",
    "export_onnx",
    "input_size_of",
    "library_versions",
    "num_tokens_of",
    "parity",
    "read_metadata",
    "run_onnxruntime",
    "token_dimensions",
]
