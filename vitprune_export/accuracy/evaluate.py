"""Top-1 accuracy of a pruned model, and agreement between backends.

Accuracy is what the VPA paper reports next to FLOPs and throughput
(Ishibashi & Meng 2025, §4.1.5: "Top-1 Accuracy (%)"). ``torch-cpu`` runs the
patched PyTorch model; ``ort-cpu`` exports it to ONNX (static token counts,
dynamic batch) and runs that file in ONNX Runtime, then reports *agreement*:
the share of images whose top-1 class is the same in ONNX Runtime as in
PyTorch (the reference backend). Results are written in the shared results
schema (``vitprune.result/1``, ``kind: "accuracy"``) so ``vitprune compare``
can show accuracy next to latency.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import VitPruneError
from ..portable.results import now_iso, record_fields
from .data import ImageDataset, data_loader

BACKENDS = ("torch-cpu", "ort-cpu")
REFERENCE_BACKEND = "torch-cpu"


@dataclass
class EvalResult:
    """What :func:`evaluate` measured."""

    top1: float
    images: int
    backend: str
    agreement: float | None
    reference_backend: str | None
    reference_top1: float | None
    seconds: float
    onnx_path: str | None = None


def _progress(enabled: bool, description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        disable=not enabled,
    )


@torch.no_grad()
def predict_torch(
    model: torch.nn.Module, dataset: ImageDataset, batch_size: int = 64, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 predictions of the PyTorch model on ``dataset``; returns (predictions, labels)."""
    model.eval()
    predictions, labels = [], []
    with _progress(progress, "PyTorch (CPU)") as bar:
        task = bar.add_task("torch", total=len(dataset))
        for images, targets in data_loader(dataset, batch_size):
            predictions.append(model(images).argmax(dim=-1))
            labels.append(targets)
            bar.update(task, advance=len(targets))
    return torch.cat(predictions), torch.cat(labels)


def predict_onnxruntime(
    path: str | Path, dataset: ImageDataset, batch_size: int = 64, progress: bool = True, custom_ops: bool = False
) -> torch.Tensor:
    """Top-1 predictions of an ONNX file in ONNX Runtime (CPU) on ``dataset``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if custom_ops:
        from ..export.ops.onnxruntime import register_custom_ops

        register_custom_ops(options)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_meta = session.get_inputs()[0]
    fixed_batch = input_meta.shape[0] if isinstance(input_meta.shape[0], int) else None
    predictions = []
    with _progress(progress, "ONNX Runtime (CPU)") as bar:
        task = bar.add_task("ort", total=len(dataset))
        for images, _ in data_loader(dataset, fixed_batch or batch_size):
            if fixed_batch is not None and images.shape[0] != fixed_batch:  # pad the last batch of a static graph
                padding = images[:1].expand(fixed_batch - images.shape[0], *images.shape[1:])
                logits = session.run(None, {input_meta.name: torch.cat([images, padding]).numpy()})[0][
                    : images.shape[0]
                ]
            else:
                logits = session.run(None, {input_meta.name: images.numpy()})[0]
            predictions.append(torch.from_numpy(logits).argmax(dim=-1))
            bar.update(task, advance=images.shape[0])
    return torch.cat(predictions)


def _status(enabled: bool, message: str):
    import contextlib

    if not enabled:
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def top1(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predictions == labels).float().mean()) if labels.numel() else 0.0


def agreement(predictions: torch.Tensor, reference: torch.Tensor) -> float:
    """Share of images with the same top-1 class in both backends."""
    return float((predictions == reference).float().mean()) if reference.numel() else 0.0


def evaluate(
    model: torch.nn.Module,
    dataset: ImageDataset,
    *,
    backend: str = REFERENCE_BACKEND,
    batch_size: int = 64,
    onnx_path: str | Path | None = None,
    model_name: str | None = None,
    plugins: bool = False,
    progress: bool = True,
) -> EvalResult:
    """Top-1 of a patched ``model`` on ``dataset`` with ``backend``.

    ``ort-cpu`` uses ``onnx_path`` when given (it must have been exported from
    this model), otherwise exports the model to a temporary ONNX file first;
    either way it also runs PyTorch and reports their agreement.
    """
    from .data import check_classes

    if backend not in BACKENDS:
        from ..errors import did_you_mean

        raise VitPruneError(
            f"unknown --backend {backend!r}{did_you_mean(backend, BACKENDS)}; choose one of {', '.join(BACKENDS)}"
        )
    if batch_size < 1:
        raise VitPruneError(f"--batch must be ≥ 1, got {batch_size}")
    check_classes(dataset, model)
    started = time.perf_counter()
    reference, labels = predict_torch(model, dataset, batch_size, progress)
    if backend == REFERENCE_BACKEND:
        return EvalResult(
            top1(reference, labels), len(labels), backend, None, None, None, time.perf_counter() - started
        )
    with tempfile.TemporaryDirectory(prefix="vitprune-eval-") as folder:
        path = Path(onnx_path) if onnx_path is not None else Path(folder) / "model.onnx"
        if onnx_path is None:
            from ..export.onnx import export_onnx

            with _status(progress, "exporting the pruned model to ONNX for ONNX Runtime…"):
                export_onnx(
                    model,
                    path,
                    batch=min(batch_size, 2),
                    dynamic_batch=True,
                    check=False,
                    model_name=model_name,
                    plugins=plugins,
                )
        elif not path.is_file():
            raise VitPruneError(f"--onnx {str(path)!r} does not exist; export it with 'vitprune export'")
        predictions = predict_onnxruntime(path, dataset, batch_size, progress, custom_ops=plugins)
    return EvalResult(
        top1=top1(predictions, labels),
        images=len(labels),
        backend=backend,
        agreement=agreement(predictions, reference),
        reference_backend=REFERENCE_BACKEND,
        reference_top1=top1(reference, labels),
        seconds=time.perf_counter() - started,
        onnx_path=str(onnx_path) if onnx_path is not None else None,
    )


def environment() -> dict[str, Any]:
    """Where the numbers were measured: the machine, PyTorch's threads and the library versions."""
    from ..portable.environment import describe_machine
    from ..record import library_versions

    return {**describe_machine(), "threads": torch.get_num_threads(), "libraries": library_versions()}


def accuracy_result(
    model: torch.nn.Module,
    result: EvalResult,
    *,
    model_name: str,
    dataset: str,
    batch_size: int,
    source: str,
) -> dict[str, Any]:
    """The shared results JSON (``vitprune.result/1``, ``kind: "accuracy"``) for one evaluation; the model's
    fields come from its pruning record."""
    from ..record import PruningRecord

    record = PruningRecord.from_model(model, model_name)
    return {
        **record_fields(record.to_metadata(), "accuracy", "cpu", result.backend, "fp32", batch_size, source),
        "accuracy": {
            "top1": result.top1,
            "dataset": dataset,
            "images": result.images,
            "agreement": result.agreement,
            "reference_backend": result.reference_backend,
        },
        "environment": environment(),
        "created": now_iso(),
        "source": source,
    }


__all__ = [
    "BACKENDS",
    "EvalResult",
    "accuracy_result",
    "agreement",
    "evaluate",
    "predict_onnxruntime",
    "predict_torch",
    "top1",
]
