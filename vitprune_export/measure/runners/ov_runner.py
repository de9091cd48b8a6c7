"""``ov-cpu`` (and ``ov-gpu``, ``ov-npu``): an exported ONNX file in OpenVINO.

OpenVINO reads vitprune's ONNX as it is (static token counts; TopK, GatherElements and the
one-hot merge MatMuls are standard ops) and runs it on the CPU — and on Intel iGPUs and NPUs
where it lists them (``openvino.Core().available_devices``).

Compile settings (:attr:`Runner.settings`, written into every result):

| setting | OpenVINO property | left open (``None``) |
| --- | --- | --- |
| ``threads`` | ``INFERENCE_NUM_THREADS`` (CPU) | tried: the physical cores and half of them |
| ``streams`` | ``NUM_STREAMS`` | 1: one query at a time, as latency is measured |
| ``hint`` | ``PERFORMANCE_HINT`` | ``LATENCY`` |
| ``inference_precision`` | ``INFERENCE_PRECISION_HINT`` | ``f32`` |

The inference precision is always set: on CPUs with bf16 units (AMX, AVX-512 BF16) OpenVINO
would otherwise choose bf16 by itself and an "fp32" result would not be one. An fp32 file's
first run is checked once against ONNX Runtime's output on the same input (≤ 1e-4 of the largest
logit; export checked ONNX Runtime against PyTorch to the same bound), and the check is remembered
per file in the cache. An INT8/FP8 Q/DQ file runs at its own precision (OpenVINO fuses the pairs
into its low-precision kernels); its outputs are not compared, quantization moves them more.

Compiled models are cached (OpenVINO's ``CACHE_DIR``) in ``results/cache/openvino`` under the
folder the command runs in, or in ``$VITPRUNE_CACHE/openvino``: never in the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError, VitPruneError, did_you_mean
from ...record import PruningRecord
from .base import Runner, interleaved_medians
from .ort_runner import QUANTIZED_PRECISIONS, custom_domains, opened_artifact

INSTALL = "pip install 'vitprune[openvino]' (or pip install openvino)"
#: OpenVINO's precision hint per measured precision (a Q/DQ file keeps its float parts in f32)
PRECISION_HINTS = {"fp32": "f32", "int8": "f32", "fp8": "f32"}
HINTS = ("LATENCY", "THROUGHPUT")
#: the largest |Δ| against ONNX Runtime, as a share of the largest |logit|
PARITY_BOUND = 1e-4
TUNING_ROUNDS = 5


def import_openvino():
    """The ``openvino`` module, or a one-line error saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(f"OpenVINO is not installed; {INSTALL}") from None
    return openvino


def openvino_devices() -> list[str]:
    """The devices OpenVINO lists here (``CPU``, ``GPU``, ``GPU.0``, ``NPU``, …); empty without OpenVINO."""
    try:
        openvino = import_openvino()
    except MissingDependencyError:
        return []
    return list(openvino.Core().available_devices)


def cache_folder() -> Path:
    """Where compiled models and parity checks are kept: ``$VITPRUNE_CACHE/openvino`` or ``results/cache/openvino``."""
    root = os.environ.get("VITPRUNE_CACHE")
    return (Path(root) if root else Path("results") / "cache") / "openvino"


class OpenVinoRunner(Runner):
    """An ONNX file compiled by OpenVINO for :attr:`device`."""

    backend = "ov-cpu"
    device = "CPU"
    precisions = ("fp32", "int8", "fp8")
    note: str = ""

    def __init__(
        self,
        threads: int | None = None,
        precision: str = "fp32",
        streams: int | None = None,
        hint: str | None = None,
        tune: bool = True,
        cache: bool = True,
    ):
        super().__init__(threads=threads, precision=precision)
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise VitPruneError(f"--threads must be a whole number ≥ 1, not {threads!r}")
        if streams is not None and (not isinstance(streams, int) or isinstance(streams, bool) or streams < 1):
            raise VitPruneError(f"streams must be a whole number ≥ 1, not {streams!r}")
        if hint is not None and str(hint).upper() not in HINTS:
            raise VitPruneError(f"the performance hint must be one of {', '.join(HINTS)}, not {hint!r}")
        self.streams = streams
        self.hint = str(hint).upper() if hint is not None else None
        self.tune = tune
        self.cache = cache
        self.compiled = None
        self.request = None

    # -- settings ------------------------------------------------------------------------
    def candidate_settings(self) -> list[dict[str, Any]]:
        """The compile settings to try: the user's fixed, the thread count varied when left open (CPU)."""
        from ...portable.environment import physical_cores

        base = {
            "streams": self.streams or 1,
            "hint": self.hint or "LATENCY",
            "inference_precision": PRECISION_HINTS[self.precision],
        }
        if self.device != "CPU":
            return [dict(base, threads=None)]
        cores = physical_cores()
        if self.threads:
            counts = [self.threads]
        else:
            counts = sorted({cores, max(1, cores // 2)}, reverse=True) if self.tune else [cores]
        return [dict(base, threads=count) for count in counts]

    def _properties(self, settings: dict[str, Any]) -> dict[str, Any]:
        properties = {
            "PERFORMANCE_HINT": settings["hint"],
            "NUM_STREAMS": str(settings["streams"]),
            "INFERENCE_PRECISION_HINT": settings["inference_precision"],
        }
        if settings.get("threads"):
            properties["INFERENCE_NUM_THREADS"] = int(settings["threads"])
        if self.cache:
            folder = cache_folder()
            folder.mkdir(parents=True, exist_ok=True)
            properties["CACHE_DIR"] = str(folder)
        return properties

    def _compile(self, core, model, settings: dict[str, Any], path: Path):
        try:
            return core.compile_model(model, self.device, self._properties(settings))
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise VitPruneError(f"OpenVINO cannot compile {str(path)!r} for {self.device}: {first}") from None

    def _choose(self, core, model, path: Path, candidates: list[dict[str, Any]]):
        if len(candidates) == 1:
            given = bool(self.threads) or self.device != "CPU"
            return self._compile(core, model, candidates[0], path), dict(
                candidates[0], chosen_by="given" if given else "default"
            )
        compiled = [self._compile(core, model, settings, path) for settings in candidates]
        requests = [item.create_infer_request() for item in compiled]
        medians = interleaved_medians(
            [lambda request=request: request.infer(self.feed) for request in requests], TUNING_ROUNDS
        )
        best = min(range(len(candidates)), key=medians.__getitem__)
        settings = dict(
            candidates[best],
            chosen_by="tuned",
            tuning_ms={f"{c['threads']}t": round(m, 3) for c, m in zip(candidates, medians)},
        )
        return compiled[best], settings

    # -- runner --------------------------------------------------------------------------
    def load(self, target, batch: int = 1, model_name: str | None = None) -> PruningRecord:
        openvino = import_openvino()
        artifact = opened_artifact(target, self.backend)
        path = artifact.path
        core = openvino.Core()
        self._check_device(core)
        domains = custom_domains(path, artifact.proto)
        if domains:
            raise VitPruneError(
                f"{str(path)!r} has vitprune plugin nodes ({', '.join(sorted(domains))}), which OpenVINO cannot run; "
                f"make it standard with 'vitprune rewrite {path} --to standard -o "
                f"{path.with_name(path.stem + '_standard.onnx')}' or export without --plugins"
            )
        self.loaded = artifact.record or PruningRecord.from_metadata({}, str(path))
        if self.loaded.precision in QUANTIZED_PRECISIONS:
            self.precision = self.loaded.precision
        if model_name:
            self.loaded = self.loaded.replace(model=model_name)
        self.source = str(path)
        try:
            model = core.read_model(str(path))
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise VitPruneError(f"OpenVINO cannot read {str(path)!r}: {first}") from None
        model_input = model.inputs[0]
        shape = model_input.get_partial_shape()
        if shape.rank.is_dynamic or not all(dim.is_static for dim in list(shape)[1:]):
            raise VitPruneError(f"{str(path)!r} has a dynamic image size {shape}; export it with a static one")
        if shape[0].is_static and shape[0].get_length() != batch:
            raise VitPruneError(
                f"{str(path)!r} has a static batch of {shape[0].get_length()}, not {batch}; "
                f"pass --batch {shape[0].get_length()} or re-export with --dynamic-batch"
            )
        dims = [dim.get_length() for dim in list(shape)[1:]]
        if shape[0].is_dynamic:
            model.reshape({model_input.any_name: [batch, *dims]})
        self.batch = batch
        self.input_shape = tuple(dims)
        self.input_name = model_input.any_name
        self.feed = {self.input_name: np.random.default_rng(0).standard_normal((batch, *dims), dtype=np.float32)}
        self.compiled, self.settings = self._choose(core, model, path, self.candidate_settings())
        self.request = self.compiled.create_infer_request()
        self.settings.update(self._compiled_facts(openvino))
        self.threads = self.settings.get("threads")
        if self.precision == "fp32":
            self.settings["parity_vs_onnxruntime"] = self._checked_parity(path)
        self._output = None
        return self.loaded

    def _check_device(self, core) -> None:
        present = list(core.available_devices)
        family = [name for name in present if name.split(".")[0] == self.device]
        if not family:
            raise VitPruneError(
                f"OpenVINO lists no {self.device} device here{did_you_mean(self.device, present)}; "
                f"it lists {', '.join(present) or 'none'}: use --backend "
                + " or ".join(f"ov-{name.split('.')[0].lower()}" for name in dict.fromkeys(present))
            )

    def _compiled_facts(self, openvino) -> dict[str, Any]:
        """What OpenVINO compiled with (read back: a hint is a wish, the compiled model says what it does)."""
        facts: dict[str, Any] = {"openvino": openvino.__version__, "device": self.device}
        for key, name in (
            ("compiled_inference_precision", "INFERENCE_PRECISION_HINT"),
            ("compiled_streams", "NUM_STREAMS"),
            ("compiled_threads", "INFERENCE_NUM_THREADS"),
        ):
            try:
                value = self.compiled.get_property(name)
            except Exception:  # a device that does not report the property
                continue
            facts[key] = value.to_string() if hasattr(value, "to_string") else str(value)  # an element type: "f32"
        return facts

    def _checked_parity(self, path: Path) -> dict[str, Any]:
        """OpenVINO's output against ONNX Runtime's on the prepared input, once per file (remembered by hash)."""
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        key = f"{digest}-{self.device}-{self.batch}-{self.settings['inference_precision']}"
        memo = cache_folder() / "parity" / f"{key}.json"
        if self.cache and memo.is_file():
            try:
                remembered = json.loads(memo.read_text())
                if isinstance(remembered, dict) and isinstance(remembered.get("relative"), float):
                    return {**remembered, "remembered": True}
            except (OSError, ValueError):
                pass
        import onnxruntime as ort

        reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        expected = reference.run(None, {reference.get_inputs()[0].name: self.feed[self.input_name]})[0]
        got = np.asarray(self.request.infer(self.feed)[self.compiled.outputs[0]])
        scale = float(np.abs(expected).max()) or 1.0
        relative = float(np.abs(got - expected).max()) / scale
        if relative > PARITY_BOUND:
            raise VitPruneError(
                f"OpenVINO's output of {str(path)!r} differs from ONNX Runtime's by {relative:.1e} of the largest "
                f"logit (bound {PARITY_BOUND:g}) at inference precision {self.settings['inference_precision']}; "
                "this is not an fp32 measurement"
            )
        checked = {"relative": relative, "bound": PARITY_BOUND}
        if self.cache:
            from ...portable.files import atomic_write_text

            memo.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(memo, json.dumps(checked) + "\n")
        return checked

    def _run(self) -> float:
        started = time.perf_counter()
        self.request.infer(self.feed)
        elapsed = (time.perf_counter() - started) * 1e3
        self._output = self.request.get_output_tensor(0).data
        return elapsed

    def output(self):
        return None if self._output is None else np.array(self._output)

    def close(self) -> None:
        self.request = None
        self.compiled = None
        self.feed = {}


class OpenVinoGpuRunner(OpenVinoRunner):
    backend = "ov-gpu"
    device = "GPU"


class OpenVinoNpuRunner(OpenVinoRunner):
    backend = "ov-npu"
    device = "NPU"


__all__ = ["OpenVinoGpuRunner", "OpenVinoNpuRunner", "OpenVinoRunner", "import_openvino", "openvino_devices"]
