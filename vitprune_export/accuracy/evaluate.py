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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import VitPruneError
from ..portable.results import now_iso, record_fields
from .data import ImageDataset, data_loader
from .runtime import Processes

BACKENDS = ("torch-cpu", "ort-cpu", "ov-cpu", "trt")
TOP_K = 5
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
    top5: float | None = None
    reference_top5: float | None = None
    artifact: str | None = None
    world_size: int = 1  # processes that shared the images (torchrun)
    token_agreement: dict[str, Any] | None = None  # a quantized/fp16 file's kept tokens vs its fp32 model's


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
    model: torch.nn.Module,
    dataset: ImageDataset,
    batch_size: int = 64,
    progress: bool = True,
    workers: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The PyTorch model's ``TOP_K`` best classes per image (N, k), best first; returns (classes, labels).

    Images are read by ``workers`` loader processes (default: none for in-memory data)."""
    from .runtime import ShardSampler, loader

    model.eval()
    device = _device_of(model)
    predictions, labels = [], []
    with _progress(progress, f"PyTorch ({device})") as bar:
        task = bar.add_task("torch", total=len(dataset))
        batches = ShardSampler(len(dataset), batch_size)
        for images, targets in loader(dataset, batches, device, workers):
            predictions.append(top_classes(model(images.to(device, non_blocking=True)).float().cpu()))
            labels.append(targets)
            bar.update(task, advance=len(targets))
    return torch.cat(predictions), torch.cat(labels)


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def top1_on(
    model: torch.nn.Module,
    dataset: ImageDataset,
    *,
    batch_size: int = 256,
    processes: Processes | None = None,
    amp: str = "off",
    workers: int | None = None,
) -> float:
    """Top-1 of ``model`` (on its device) over ``dataset``; under torchrun each process takes every
    W-th image and the counts are summed, so every process returns the same number."""
    from .runtime import ShardSampler, autocast, loader

    processes = processes or Processes.current()
    device = _device_of(model)
    was_training = model.training
    model.eval()
    correct, count = 0, 0
    for images, labels in loader(dataset, ShardSampler(len(dataset), batch_size, processes), device, workers):
        with autocast(amp, device):
            logits = model(images.to(device, non_blocking=True))
        correct += int((logits.argmax(dim=-1).cpu() == labels).sum())
        count += int(labels.shape[0])
    model.train(was_training)
    correct, count = processes.sum([correct, count])
    return correct / count if count else 0.0


def predict_onnxruntime(
    path: str | Path, dataset: ImageDataset, batch_size: int = 64, progress: bool = True, custom_ops: bool = False
) -> torch.Tensor:
    """The ``TOP_K`` best classes (N, k) of an ONNX file in ONNX Runtime (CPU) on ``dataset``."""
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
            padded, count = pad_batch(images, fixed_batch)
            logits = session.run(None, {input_meta.name: padded.numpy()})[0][:count]
            predictions.append(top_classes(torch.from_numpy(logits).float()))
            bar.update(task, advance=count)
    return torch.cat(predictions)


def predict_openvino(path: str | Path, dataset: ImageDataset, batch_size: int = 64, progress: bool = True):
    """The ``TOP_K`` best classes (N, k) of an ONNX file in OpenVINO on the CPU (f32, as ``ov-cpu`` measures)."""
    from ..measure.runners.ov_runner import OpenVinoRunner

    runner = OpenVinoRunner(tune=False, cache=False)
    fixed = _static_batch_of(path)
    runner.load(path, batch=fixed or batch_size)
    predictions = []
    with _progress(progress, "OpenVINO (CPU)") as bar:
        task = bar.add_task("ov", total=len(dataset))
        for images, _ in data_loader(dataset, fixed or batch_size):
            padded, count = pad_batch(images, fixed or batch_size)
            runner.feed = {runner.input_name: padded.numpy()}
            runner.infer()
            predictions.append(top_classes(torch.from_numpy(runner.output()[:count]).float()))
            bar.update(task, advance=count)
    runner.close()
    return torch.cat(predictions)


def _static_batch_of(path: str | Path) -> int | None:
    import onnx

    shape = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape
    return shape.dim[0].dim_value if shape.dim and shape.dim[0].HasField("dim_value") else None


def top_classes(logits: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """The ``k`` highest-scoring classes per row (fewer when there are fewer classes), best first."""
    return logits.topk(min(k, logits.shape[-1]), dim=-1).indices


def pad_batch(images: torch.Tensor, batch: int | None) -> tuple[torch.Tensor, int]:
    """A static-batch graph takes exactly ``batch`` images: repeat the first to fill a short last batch.
    Returns (images to run, how many of the outputs are real)."""
    count = images.shape[0]
    if batch is None or count == batch:
        return images, count
    if count > batch:
        raise ValueError(f"{count} images do not fit a batch of {batch}")
    padding = images[:1].expand(batch - count, *images.shape[1:])
    return torch.cat([images, padding]), count


def engine_batch(description: dict, requested: int) -> int:
    """The batch an engine runs: its static batch (from the I/O in its description), else ``requested``."""
    inputs = [t for t in description.get("io") or [] if str(t.get("mode", "")).upper().endswith("INPUT")]
    if inputs and inputs[0].get("shape") and int(inputs[0]["shape"][0]) > 0:
        return int(inputs[0]["shape"][0])
    return requested


def predict_tensorrt(
    path: str | Path,
    dataset: ImageDataset,
    batch_size: int = 64,
    progress: bool = True,
    plugin_library: str | Path | None = None,
) -> tuple[torch.Tensor, dict]:
    """The ``TOP_K`` best classes (N, k) of a TensorRT engine on ``dataset`` (needs TensorRT and a CUDA GPU).

    Runs through the ``trt`` latency runner: each batch is copied into the engine's input buffer,
    executed, and its logits read back. Returns (classes, the engine's description).
    """
    from ..measure.runners.trt_runner import TensorRTRunner, engine_description

    path = Path(path)
    if not path.is_file():
        raise VitPruneError(f"engine {str(path)!r} does not exist; build one with 'vitprune build'")
    description = engine_description(path)
    batch = engine_batch(description, batch_size)
    runner = TensorRTRunner(plugin_library=plugin_library)
    predictions = []
    with runner:
        runner.load(path, batch=batch)
        name = next(n for n in runner.buffers if n not in runner.outputs)
        with _progress(progress, "TensorRT (CUDA)") as bar:
            task = bar.add_task("trt", total=len(dataset))
            for images, _ in data_loader(dataset, batch):
                padded, count = pad_batch(images, batch)
                runner.buffers[name].copy_(padded.to(runner.buffers[name].dtype))
                runner._run()
                predictions.append(top_classes(torch.from_numpy(runner.output()[:count]).float()))
                bar.update(task, advance=count)
    return torch.cat(predictions), description


def _status(enabled: bool, message: str):
    import contextlib

    if not enabled:
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def _best(predictions: torch.Tensor) -> torch.Tensor:
    return predictions[:, 0] if predictions.ndim == 2 else predictions


def top1(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images whose best class is the label (``predictions``: (N,) classes or (N, k), best first)."""
    return float((_best(predictions) == labels).float().mean()) if labels.numel() else 0.0


def top5(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images whose label is among the (up to) five best classes of ``predictions`` (N, k)."""
    if not labels.numel():
        return 0.0
    return float((predictions[:, :5] == labels[:, None]).any(dim=1).float().mean())


def agreement(predictions: torch.Tensor, reference: torch.Tensor) -> float:
    """Share of images with the same top-1 class in both backends."""
    return float((_best(predictions) == _best(reference)).float().mean()) if reference.numel() else 0.0


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
    engine_path: str | Path | None = None,
    plugin_library: str | Path | None = None,
) -> EvalResult:
    """Top-1 of a patched ``model`` on ``dataset`` with ``backend``.

    ``ort-cpu`` uses ``onnx_path`` when given (it must have been exported from
    this model), otherwise exports the model to a temporary ONNX file first;
    ``trt`` runs the engine at ``engine_path`` (TensorRT and a CUDA GPU). Either
    way PyTorch runs too, and the share of images with the same top-1 class is
    the agreement.
    """
    from .data import check_classes

    if backend not in BACKENDS:
        from ..errors import did_you_mean

        raise VitPruneError(
            f"unknown --backend {backend!r}{did_you_mean(backend, BACKENDS)}; choose one of {', '.join(BACKENDS)}"
        )
    if batch_size < 1:
        raise VitPruneError(f"--batch must be ≥ 1, got {batch_size}")
    if backend == "trt" and engine_path is None:
        raise VitPruneError("--backend trt evaluates an engine file: vitprune eval MODEL.engine --weights …")
    check_classes(dataset, model)
    started = time.perf_counter()
    processes = Processes.current()
    if processes.distributed:  # under torchrun: this process's share; the counts are summed at the end
        from .data import ShardOfDataset

        dataset = ShardOfDataset(dataset, processes.rank, processes.world_size)
        progress = progress and processes.is_main
    result = _evaluate_here(
        model, dataset, backend, batch_size, onnx_path, model_name, plugins, progress, engine_path, plugin_library
    )
    return _summed_over(result, processes, started)


def _summed_over(result: EvalResult, processes: Processes, started: float) -> EvalResult:
    """Every process's share added up: the rates weighted by each share's images (one process: as it is)."""
    if not processes.distributed:
        return result
    rates = ("top1", "top5", "agreement", "reference_top1", "reference_top5")
    present = [name for name in rates if getattr(result, name) is not None]
    totals = processes.sum([result.images] + [getattr(result, name) * result.images for name in present])
    images = int(totals[0])
    summed = {name: total / images if images else 0.0 for name, total in zip(present, totals[1:])}
    return replace(
        result, images=images, seconds=time.perf_counter() - started, world_size=processes.world_size, **summed
    )


def _evaluate_here(
    model, dataset, backend, batch_size, onnx_path, model_name, plugins, progress, engine_path, plugin_library
) -> EvalResult:
    """:func:`evaluate` on the images this process holds."""
    started = time.perf_counter()
    reference, labels = predict_torch(model, dataset, batch_size, progress)
    if backend == REFERENCE_BACKEND:
        return EvalResult(
            top1(reference, labels),
            len(labels),
            backend,
            None,
            None,
            None,
            time.perf_counter() - started,
            top5=top5(reference, labels),
        )
    if backend == "trt":
        predictions, _ = predict_tensorrt(engine_path, dataset, batch_size, progress, plugin_library)
    else:
        predictions = _predict_onnx(model, dataset, batch_size, onnx_path, model_name, plugins, progress, backend)
    return EvalResult(
        top1=top1(predictions, labels),
        images=len(labels),
        backend=backend,
        agreement=agreement(predictions, reference),
        reference_backend=REFERENCE_BACKEND,
        reference_top1=top1(reference, labels),
        seconds=time.perf_counter() - started,
        onnx_path=str(onnx_path) if onnx_path is not None else None,
        top5=top5(predictions, labels),
        reference_top5=top5(reference, labels),
        artifact=str(engine_path or onnx_path) if (engine_path or onnx_path) else None,
    )


def _predict_onnx(
    model, dataset, batch_size, onnx_path, model_name, plugins, progress, backend: str = "ort-cpu"
) -> torch.Tensor:
    """ONNX Runtime (or OpenVINO) on ``onnx_path``, or on the model exported to a temporary file first."""
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
        if backend == "ov-cpu":
            return predict_openvino(path, dataset, batch_size, progress)
        return predict_onnxruntime(path, dataset, batch_size, progress, custom_ops=plugins)


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
    record: dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict[str, Any]:
    """The shared results JSON (``vitprune.result/1``, ``kind: "accuracy"``) for one evaluation; the model's
    fields come from its pruning record (``record``: the evaluated file's, else made from ``model``)."""
    from ..record import PruningRecord

    metadata = record if record is not None else PruningRecord.from_model(model, model_name).to_metadata()
    return {
        **record_fields(metadata, "accuracy", device, result.backend, precision, batch_size, source),
        "accuracy": {
            "top1": result.top1,
            "top5": result.top5,
            "dataset": dataset,
            "images": result.images,
            "agreement": result.agreement,
            "reference_backend": result.reference_backend,
            "reference_top1": result.reference_top1,
            "reference_top5": result.reference_top5,
            "artifact": result.artifact,
            "world_size": result.world_size,
            "kept_token_agreement": result.token_agreement,
        },
        "environment": environment(),
        "created": now_iso(),
        "source": source,
    }


ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def evaluate_artifact(
    path: str | Path,
    data: str,
    *,
    weights: str,
    split: str = "test",
    batch_size: int = 64,
    plugin_library: str | Path | None = None,
    progress: bool = True,
    backend: str | None = None,
) -> tuple[dict[str, Any], EvalResult, torch.nn.Module]:
    """Accuracy of an exported ONNX file (ONNX Runtime) or a built engine (TensorRT) against PyTorch.

    The PyTorch reference is the file's pruning record rebuilt (same model, method, options and
    schedule, checked against its keep counts) with ``weights`` — the checkpoint it was exported
    from. Returns (the results JSON, the evaluation, the reference model).
    """
    from ..record import PruningRecord
    from .data import Preprocessing, load_dataset

    path = Path(path)
    if not path.is_file():
        raise VitPruneError(f"{str(path)!r} does not exist; give an ONNX file or an engine to evaluate")
    engine = path.suffix.lower() in ENGINE_SUFFIXES
    if not engine and path.suffix.lower() != ".onnx":
        raise VitPruneError(
            f"{str(path)!r} is neither an ONNX file (.onnx) nor an engine ({', '.join(ENGINE_SUFFIXES)})"
        )
    description: dict[str, Any] = {}
    if engine:
        from ..measure.runners.trt_runner import engine_description

        description = engine_description(path)
        record = PruningRecord.from_metadata(description.get("onnx_metadata") or {}, str(path))
    else:
        record = PruningRecord.read(path)
    if backend not in (None, "ort-cpu", "ov-cpu") or (engine and backend not in (None, "trt")):
        runs = "an engine runs on TensorRT" if engine else "an ONNX file runs on ort-cpu or ov-cpu"
        raise VitPruneError(f"--backend {backend}: {runs}")
    if weights == "auto" and str(record.weights or "").startswith("checkpoint"):
        raise VitPruneError(
            f"{str(path)!r} was exported from a checkpoint; pass the same one with --weights/--checkpoint"
        )
    model = record.rebuild(weights, source=str(path))
    dataset = load_dataset(data, split, Preprocessing.for_model(model))
    plugins = bool(record.plugins)
    result = evaluate(
        model,
        dataset,
        backend="trt" if engine else (backend or "ort-cpu"),
        batch_size=batch_size,
        onnx_path=None if engine else path,
        model_name=record.model,
        plugins=plugins,
        progress=progress,
        engine_path=path if engine else None,
        plugin_library=plugin_library,
    )
    if not engine and record.precision not in (None, "fp32") and not Processes.current().distributed:
        result = replace(
            result, token_agreement=token_agreement_with_fp32(model, path, dataset, batch_size, progress, record.model)
        )
    metadata = record.to_metadata()
    output = accuracy_result(
        model,
        result,
        model_name=record.model,
        dataset=dataset.name,
        batch_size=batch_size,
        source=str(path),
        record=metadata,
        device="cuda" if engine else "cpu",
        precision=str((description.get("precision") if engine else record.precision) or "fp32"),
    )
    return output, result, model


def token_agreement_with_fp32(
    model, path: Path, dataset: ImageDataset, batch_size: int, progress: bool, model_name: str | None = None
) -> dict:
    """:func:`~.token_agreement.kept_token_agreement` of the file at ``path`` against ``model`` (its fp32
    PyTorch reference) exported to a temporary fp32 ONNX file, on ``dataset``."""
    from ..export.onnx import export_onnx
    from .token_agreement import kept_token_agreement

    fixed = _static_batch_of(path)
    batch = fixed or batch_size  # the reference is exported with this static batch: its TopK sizes are constants

    def batches():
        for images, _ in data_loader(dataset, batch):
            padded, count = pad_batch(images, batch)
            yield padded.numpy(), count

    with tempfile.TemporaryDirectory(prefix="vitprune-tokens-") as folder:
        reference = Path(folder) / "fp32.onnx"
        with _status(progress, "exporting the fp32 model to compare the kept tokens…"):
            export_onnx(model, reference, batch=batch, check=False, model_name=model_name)
        with _progress(progress, "kept tokens vs fp32") as bar:
            task = bar.add_task("tokens", total=len(dataset))
            try:
                agreement = kept_token_agreement(
                    reference, path, batches(), on_batch=lambda count: bar.update(task, advance=count)
                )
            except VitPruneError as error:  # the accuracy stands; say why the token choice was not compared
                return {"mean": None, "per_selection": [], "error": str(error)}
    agreement["reference"] = "the fp32 PyTorch model exported to ONNX, in ONNX Runtime"
    return agreement


__all__ = [
    "BACKENDS",
    "evaluate_artifact",
    "EvalResult",
    "accuracy_result",
    "agreement",
    "evaluate",
    "engine_batch",
    "pad_batch",
    "predict_onnxruntime",
    "predict_tensorrt",
    "predict_torch",
    "top1",
    "top5",
    "top_classes",
    "top1_on",
]
