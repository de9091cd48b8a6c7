"""``ort-cpu``: an exported ONNX file in ONNX Runtime's CPU execution provider.

``threads`` sets ``intra_op_num_threads`` (ONNX Runtime's default is one per
physical core). Graph optimisations are on (``ORT_ENABLE_ALL``). A file with
vitprune custom nodes (``vitprune export --plugins``) needs their reference
kernels, registered through ``vitprune_export.export.ops.onnxruntime``; those run in
Python, so their latency says nothing about TensorRT plugins — the runner
warns in :attr:`note`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...errors import MissingDependencyError, VitPruneError
from ...record import PruningRecord
from .base import Runner

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}


def custom_domains(path: Path) -> set[str]:
    """Op domains in the graph that ONNX Runtime does not know (vitprune custom nodes)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    local = {function.domain for function in proto.functions}
    return {node.domain for node in proto.graph.node if node.domain not in STANDARD_DOMAINS | local}


class OrtCpuRunner(Runner):
    backend = "ort-cpu"
    device_kind = "cpu"

    note: str = ""

    def load(self, target, batch: int = 1, model_name: str | None = None) -> PruningRecord:
        import onnxruntime as ort

        path = Path(target) if not hasattr(target, "forward") else None
        if path is None:
            raise VitPruneError("backend 'ort-cpu' runs an ONNX file; export one with 'vitprune export' first")
        if not path.is_file():
            raise VitPruneError(f"ONNX file {str(path)!r} does not exist; export one with 'vitprune export'")
        self.loaded = PruningRecord.read(path) or PruningRecord.from_metadata({}, str(path))
        self.source = str(path)
        if model_name:
            self.loaded = self.loaded.replace(model=model_name)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        domains = custom_domains(path)
        if domains:
            try:
                from ...export.ops.onnxruntime import register_custom_ops
            except ImportError as error:
                raise MissingDependencyError(
                    f"{str(path)!r} has vitprune custom nodes ({', '.join(sorted(domains))}) but their ONNX Runtime "
                    f"kernels cannot be loaded ({error}); install onnxruntime-extensions or profile a file exported without --plugins"
                ) from None
            register_custom_ops(options)
            self.note = "custom nodes run as Python reference kernels: this latency is not representative"
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise VitPruneError(f"ONNX Runtime cannot load {str(path)!r}: {str(error).splitlines()[0]}") from None
        model_input = self.session.get_inputs()[0]
        shape = list(model_input.shape)
        if isinstance(shape[0], int) and shape[0] != batch:
            raise VitPruneError(
                f"{str(path)!r} has a static batch of {shape[0]}, not {batch}; "
                f"pass --batch {shape[0]} or re-export with --dynamic-batch"
            )
        if not all(isinstance(d, int) for d in shape[1:]):
            raise VitPruneError(f"{str(path)!r} has a dynamic image size {shape[1:]}; export it with a static one")
        self.batch = batch
        self.input_shape = tuple(shape[1:])
        self.input_name = model_input.name
        self.feed = {self.input_name: np.random.default_rng(0).standard_normal((batch, *shape[1:]), dtype=np.float32)}
        self._output = None
        return self.loaded

    def _run(self) -> float:
        started = time.perf_counter()
        self._output = self.session.run(None, self.feed)[0]
        return (time.perf_counter() - started) * 1e3

    def output(self):
        return self._output

    def close(self) -> None:
        self.session = None
        self.feed = {}
