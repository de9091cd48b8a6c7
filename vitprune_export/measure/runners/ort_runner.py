"""``ort-cpu``: an exported ONNX file in ONNX Runtime's CPU execution provider.

Session settings (:attr:`Runner.settings`, written into every result):

| setting | values | left open (``None``) |
| --- | --- | --- |
| ``threads`` | intra-op threads | tried: the physical cores and half of them (1 and 2 on a 2-core machine) |
| ``spinning`` | ``session.intra_op.allow_spinning`` on/off (threads > 1) | tried: both |
| ``graph_optimization`` | ``all`` \\| ``extended`` \\| ``basic`` \\| ``disable`` | tried: ``all`` and ``extended`` |

Settings a user gives are kept; the open ones are chosen at :meth:`OrtCpuRunner.load`
by timing each candidate session on the prepared input, interleaved in rounds so a
drifting machine hits all alike, and keeping the fastest (``tune=False``: ONNX
Runtime's own defaults — one thread per physical core, spinning on, ``all``). Spinning
matters most: idle intra-op threads that spin win on a quiet machine and lose to
the OS scheduler when other processes want the cores. A spinning session also sets
``session.force_spinning_stop``: its idle threads stop spinning when a query returns
(and spin again in the next one). Without it they keep spinning for a while after
each query and slow whatever runs next — here another session timed in the same
interleaved round: ViT-S/16, 2 threads, a session run right after another spinning
session took 33.9 ms against 27.2 ms alone; with the stop, 28.4 against 27.1 ms, and
alone as fast as without it (``docs/results.md``).

A file with vitprune custom nodes (``vitprune export --plugins``) needs their
reference kernels, registered through ``vitprune_export.export.ops.onnxruntime``; those
run in Python, so their latency says nothing about TensorRT plugins — the runner
warns in :attr:`note`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MissingDependencyError, VitPruneError
from ...record import OnnxArtifact, PruningRecord
from .base import Runner, interleaved_medians

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}

#: ``graph_optimization`` names → ``onnxruntime.GraphOptimizationLevel`` members
GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
#: levels tried when the user leaves ``graph_optimization`` open (the others are never faster)
TUNED_GRAPH_OPTIMIZATIONS = ("all", "extended")
#: timed queries per candidate while tuning (after one untimed), interleaved round by round
TUNING_ROUNDS = 5


def custom_domains(path: Path, proto=None) -> set[str]:
    """Op domains in the graph that ONNX Runtime does not know (vitprune custom nodes); ``proto``: already parsed."""
    import onnx

    proto = proto if proto is not None else onnx.load(str(path), load_external_data=False)
    local = {function.domain for function in proto.functions}
    return {node.domain for node in proto.graph.node if node.domain not in STANDARD_DOMAINS | local}


def opened_artifact(target, backend: str) -> OnnxArtifact:
    """``target`` as an :class:`OnnxArtifact`: as given (opened by an earlier stage), or a path opened now."""
    if isinstance(target, OnnxArtifact):
        return target
    if hasattr(target, "forward"):
        raise VitPruneError(f"backend {backend!r} runs an ONNX file; export one with 'vitprune export' first")
    path = Path(target)
    if not path.is_file():
        raise VitPruneError(f"ONNX file {str(path)!r} does not exist; export one with 'vitprune export'")
    return OnnxArtifact.open(path)


def _on_off(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "1", "true", "yes"):
        return True
    if text in ("off", "0", "false", "no"):
        return False
    if text == "auto":
        return None
    raise VitPruneError(f"{name} must be on, off or auto, not {value!r}")


#: precisions of the Q/DQ files 'vitprune quantize' writes; their results say so (never fp32)
QUANTIZED_PRECISIONS = ("int8", "fp8")


class OrtCpuRunner(Runner):
    backend = "ort-cpu"
    device_kind = "cpu"

    note: str = ""

    def __init__(
        self,
        threads: int | None = None,
        precision: str = "fp32",
        spinning: bool | str | None = None,
        graph_optimization: str | None = None,
        tune: bool = True,
    ):
        super().__init__(threads=threads, precision=precision)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise VitPruneError(f"--threads must be a whole number ≥ 1, not {threads!r}")
        self.spinning = _on_off(spinning, "spinning")
        if graph_optimization in (None, "auto"):
            self.graph_optimization = None
        elif graph_optimization in GRAPH_OPTIMIZATION_LEVELS:
            self.graph_optimization = graph_optimization
        else:
            raise VitPruneError(
                f"graph optimisation must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)} or auto, not {graph_optimization!r}"
            )
        self.tune = tune

    # -- settings ------------------------------------------------------------------------
    def candidate_settings(self) -> list[dict[str, Any]]:
        """The session settings to try: the user's choices fixed, the open ones varied."""
        from ...portable.environment import physical_cores

        cores = physical_cores()
        if self.threads:
            thread_options = [self.threads]
        elif self.tune:
            thread_options = sorted({cores, max(1, cores // 2)}, reverse=True)
        else:
            thread_options = [cores]
        if self.graph_optimization:
            levels = [self.graph_optimization]
        else:
            levels = list(TUNED_GRAPH_OPTIMIZATIONS) if self.tune else ["all"]
        candidates = []
        for threads in thread_options:
            if threads == 1:
                spin_options = [False]  # one thread: nothing spins
            elif self.spinning is not None:
                spin_options = [self.spinning]
            else:
                spin_options = [True, False] if self.tune else [True]
            for spinning in spin_options:
                for level in levels:
                    candidates.append({"threads": threads, "spinning": spinning, "graph_optimization": level})
        return candidates

    def _session_options(self, settings: dict[str, Any], custom_ops: bool):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[settings["graph_optimization"]]
        )
        options.intra_op_num_threads = settings["threads"]
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings["spinning"] else "0")
        if settings["spinning"]:  # spin between the ops of a query, not after it (see the module docstring)
            options.add_session_config_entry("session.force_spinning_stop", "1")
        if custom_ops:
            from ...export.ops.onnxruntime import register_custom_ops

            register_custom_ops(options)
        return options

    def _session(self, path: Path, settings: dict[str, Any], custom_ops: bool):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(
                str(path), self._session_options(settings, custom_ops), providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise VitPruneError(f"ONNX Runtime cannot load {str(path)!r}: {str(error).splitlines()[0]}") from None

    def _choose(
        self, path: Path, custom_ops: bool, candidates: list[dict[str, Any]], first
    ) -> tuple[Any, dict[str, Any]]:
        """Build a session per candidate (``first`` is the first one's), time them interleaved, keep the fastest."""
        if len(candidates) == 1:
            return first, dict(candidates[0], chosen_by="given" if self._all_given() else "default")
        sessions = [first] + [self._session(path, settings, custom_ops) for settings in candidates[1:]]
        medians = interleaved_medians(
            [lambda session=session: session.run(None, self.feed) for session in sessions], TUNING_ROUNDS
        )
        best = min(range(len(candidates)), key=medians.__getitem__)
        settings = dict(
            candidates[best],
            chosen_by="tuned",
            tuning_ms={_label(candidate): round(median, 3) for candidate, median in zip(candidates, medians)},
        )
        return sessions[best], settings

    def _all_given(self) -> bool:
        return (
            bool(self.threads)
            and self.graph_optimization is not None
            and (self.spinning is not None or self.threads == 1)
        )

    # -- runner --------------------------------------------------------------------------
    def load(self, target, batch: int = 1, model_name: str | None = None) -> PruningRecord:
        import onnxruntime as ort

        artifact = opened_artifact(target, self.backend)
        path = artifact.path
        self.loaded = artifact.record or PruningRecord.from_metadata({}, str(path))
        self.source = str(path)
        if self.loaded.precision in QUANTIZED_PRECISIONS:
            self.precision = self.loaded.precision  # a Q/DQ file is measured at the precision it was quantized to
        if model_name:
            self.loaded = self.loaded.replace(model=model_name)
        domains = custom_domains(path, artifact.proto)
        if domains:
            try:
                from ...export.ops.onnxruntime import register_custom_ops  # noqa: F401 - checked here, used per session
            except ImportError as error:
                raise MissingDependencyError(
                    f"{str(path)!r} has vitprune custom nodes ({', '.join(sorted(domains))}) but their ONNX Runtime "
                    f"kernels cannot be loaded ({error}); install onnxruntime-extensions or profile a file exported without --plugins"
                ) from None
            self.note = "custom nodes run as Python reference kernels: this latency is not representative"
        candidates = self.candidate_settings()
        first = self._session(path, candidates[0], bool(domains))
        model_input = first.get_inputs()[0]
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
        self.session, self.settings = self._choose(path, bool(domains), candidates, first)
        self.settings["onnxruntime"] = ort.__version__
        self.threads = self.settings["threads"]
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


def _label(settings: dict[str, Any]) -> str:
    """``2t spin all``: one candidate in a short form."""
    return f"{settings['threads']}t {'spin' if settings['spinning'] else 'nospin'} {settings['graph_optimization']}"
