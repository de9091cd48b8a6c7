"""The pruning record: what a pruned model is, made once and carried forward with every artifact.

A record holds the model, the method and its options, the schedule (removed
tokens per block, the counts that follow, the rates), the single rate when every
block has the same, the weights' source and the analytic MACs of the pruned and
of the unpruned model — computed once, when the record is made from a patched
model (:meth:`PruningRecord.from_model`), never again downstream. Export writes
it into the ONNX's ``metadata_props``; build embeds it in the engine description
and a bundle's ``metadata.json``; profile, eval and compare copy its fields into
every result; profile rebuilds the PyTorch model from it (:meth:`rebuild`).

Files written by older versions may lack fields: :meth:`from_metadata` reads
what is there and leaves the rest None.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import VitPruneError
from .files import parse_json, slug
from .pruning.schedule import Schedule

#: the ``metadata_props`` key holding the record as JSON (``vitprune.model`` etc. repeat three fields for viewers)
METADATA_KEY = "vitprune"
SHOWN_FIELDS = ("model", "method", "weights")


#: the libraries whose versions a record (and a result's environment) carries, besides vitprune's own
LIBRARIES = ("torch", "timm", "onnx", "onnxruntime", "numpy")


def library_versions() -> dict[str, str]:
    """vitprune's version and the installed versions of :data:`LIBRARIES`."""
    from . import __version__
    from .portable.environment import package_versions

    return {"vitprune": __version__, **package_versions(LIBRARIES)}


def single_rate(rates) -> float | None:
    """The rate every block shares (a schedule made with ``--rate``), else None."""
    if not rates:
        return None
    first = float(rates[0])
    return first if all(float(rate) == first for rate in rates) else None


@dataclass(frozen=True)
class PruningRecord:
    """One pruned model: the pruning, its cost, its weights, and the facts of the file it was exported to."""

    model: str
    method: str
    method_options: dict[str, Any] = field(default_factory=dict)
    schedule: Schedule | None = None
    keep_counts: list[int] = field(default_factory=list)
    rate: float | None = None
    weights: str = "unknown"
    macs: int | None = None
    baseline_macs: int | None = None
    input_size: tuple[int, ...] | None = None
    num_classes: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    # facts of the ONNX file: batch (int or "dynamic"), opset, plugin nodes, rewrite form
    batch: int | str | None = None
    opset: int | None = None
    plugins: bool | None = None
    rewrite: str | None = None
    # quantization: "int8"/"fp8" for a Q/DQ file (None: the float file export wrote), and its calibration
    precision: str | None = None
    calibration: dict[str, Any] | None = None

    # ---------------------------------------------------------------- making one

    @classmethod
    def from_model(cls, model, model_name: str | None = None) -> PruningRecord:
        """The record of a patched model (``apply_method``): schedule, rate and MACs computed here, once."""
        from .pruning.flops import count_macs
        from .pruning.models import architecture, input_size_of, weights_source
        from .pruning.patch import pruning_info

        info = pruning_info(model)
        method, schedule = info["method"], info["schedule"]
        return cls(
            model=model_name or architecture(model),
            method=method.name,
            method_options=method.knob_values(),
            schedule=schedule,
            keep_counts=list(schedule.tokens_out),
            rate=single_rate(schedule.rates),
            weights=weights_source(model),
            macs=count_macs(model).macs,
            baseline_macs=count_macs(model, unpruned=True).macs,
            input_size=tuple(input_size_of(model)),
            num_classes=int(getattr(model, "num_classes", 0)),
        )

    def replace(self, **changes: Any) -> PruningRecord:
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- names

    @property
    def rate_tag(self) -> str:
        """``r0.06`` for one rate; ``sched-<hash of the keep counts>`` for any other schedule (even one whose
        counts are all equal: it still prunes, or is not the baseline's method); ``r0`` for the baseline."""
        if self.rate is not None:
            return f"r{self.rate:g}"
        counts = list(self.keep_counts)
        if self.method == "none" or not counts:
            return "r0"
        return "sched-" + hashlib.sha1(",".join(map(str, counts)).encode()).hexdigest()[:6]

    @property
    def tag(self) -> str:
        """``<model>_<method>_<rate tag>``: the stem of every file named after this record (ONNX, results)."""
        return f"{slug(self.model)}_{slug(self.method)}_{self.rate_tag}"

    # ---------------------------------------------------------------- metadata (JSON)

    def to_metadata(self) -> dict[str, Any]:
        """The record as the JSON object written into ONNX metadata, engine descriptions and bundles."""
        return {
            "model": self.model,
            "method": self.method,
            "method_options": dict(self.method_options),
            "schedule": self.schedule.to_dict() if self.schedule is not None else None,
            "keep_counts": list(self.keep_counts),
            "rate": self.rate,
            "weights": self.weights,
            "macs": self.macs,
            "baseline_macs": self.baseline_macs,
            "input_size": list(self.input_size) if self.input_size is not None else None,
            "num_classes": self.num_classes,
            "versions": dict(self.versions),
            "batch": self.batch,
            "opset": self.opset,
            "plugins": self.plugins,
            "rewrite": self.rewrite,
            "precision": self.precision,
            "calibration": dict(self.calibration) if self.calibration is not None else None,
        }

    @classmethod
    def from_metadata(cls, data: dict[str, Any], source: str = "") -> PruningRecord:
        """A record from its JSON object (:meth:`to_metadata`, or a result); missing fields stay None or empty."""
        schedule = Schedule.from_dict(data["schedule"]) if isinstance(data.get("schedule"), dict) else None
        counts = data.get("keep_counts")
        if not counts and schedule is not None:
            counts = schedule.tokens_out
        rate = data["rate"] if "rate" in data else single_rate(schedule.rates if schedule else None)
        return cls(
            model=str(data.get("model") or (Path(source).stem if source else "unknown")),
            method=str(data.get("method") or "unknown"),
            method_options=dict(data.get("method_options") or {}),
            schedule=schedule,
            keep_counts=[int(n) for n in counts or ()],
            rate=None if rate is None else float(rate),
            weights=str(data.get("weights") or "unknown"),
            macs=_int_or_none(data.get("macs")),
            baseline_macs=_int_or_none(data.get("baseline_macs")),
            input_size=tuple(int(d) for d in data["input_size"]) if data.get("input_size") else None,
            num_classes=_int_or_none(data.get("num_classes")),
            versions=dict(data.get("versions") or {}),
            batch=data.get("batch"),
            opset=_int_or_none(data.get("opset")),
            plugins=data.get("plugins"),
            rewrite=data.get("rewrite"),
            precision=data.get("precision"),
            calibration=dict(data["calibration"]) if isinstance(data.get("calibration"), dict) else None,
        )

    # ---------------------------------------------------------------- ONNX files

    def write_into(self, proto) -> None:
        """Replace the ``metadata_props`` of an ONNX ``ModelProto`` with this record."""
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(self.to_metadata(), sort_keys=True)
        for key in SHOWN_FIELDS:
            entry = proto.metadata_props.add()
            entry.key, entry.value = f"{METADATA_KEY}.{key}", str(getattr(self, key))

    @classmethod
    def from_proto(cls, proto, source: str = "") -> PruningRecord | None:
        """The record in an ONNX ``ModelProto``'s metadata, or None when it has none."""
        for prop in proto.metadata_props:
            if prop.key == METADATA_KEY:
                data = parse_json(prop.value, f"the pruning record of {source or 'the ONNX file'}", "re-export it")
                if not isinstance(data, dict):
                    raise VitPruneError(
                        f"the pruning record of {source or 'the ONNX file'} is not an object; re-export it"
                    )
                return cls.from_metadata(data, source)
        return None

    @classmethod
    def read(cls, path: str | Path) -> PruningRecord | None:
        """The record of an ONNX file (None when it has none); a one-line error when the file is unreadable."""
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as error:
            raise VitPruneError(
                f"{str(path)!r} is not a readable ONNX file ({type(error).__name__}); re-export it"
            ) from None
        return cls.from_proto(proto, str(path))

    # ---------------------------------------------------------------- back to PyTorch

    def rebuild(self, weights: str = "random", source: str = "the record"):
        """The patched PyTorch model with exactly these keep counts (same model, method, options, schedule)."""
        from .pruning.methods import checked_knobs
        from .pruning.patch import create_pruned, keep_counts

        if self.schedule is None or self.model == "unknown":
            raise VitPruneError(
                f"{source} has no vitprune metadata; profile a model spec with --model/--method/--rate instead"
            )
        how = {"rate": self.rate} if self.rate is not None else {"schedule": list(self.schedule.removed)}
        options = checked_knobs(self.method, self.method_options, source)
        network = create_pruned(self.model, self.method, weights=weights, **how, **options)
        if keep_counts(network) != self.keep_counts:
            raise VitPruneError(
                f"rebuilding {source} in PyTorch gave other keep counts than its metadata; re-export it"
            )
        return network


#: the first bytes of a serialized TensorRT engine (TensorRT, TensorRT for RTX)
ENGINE_MAGICS = (b"ftrt", b"vtrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass(frozen=True)
class OnnxArtifact:
    """An ONNX file opened once: its path, its parsed ``ModelProto`` (external data not loaded) and its record.

    The first stage that opens a file makes it (:meth:`open`) and hands it down, so ``build``,
    ``bundle`` and ``profile`` parse the file once (Polygraphy's loaders pass one model the same way).
    """

    path: Path
    proto: Any
    record: PruningRecord | None

    @classmethod
    def open(cls, path: str | Path, hint: str = "make one with 'vitprune export'") -> OnnxArtifact:
        """Check that ``path`` is an ONNX file before any work and parse it.

        A missing file, a folder, an empty file, a TensorRT engine, a file that is not ONNX and a model with no
        graph each give a one-line :class:`VitPruneError` that names the file and what to do (``hint``); a file
        vitprune did not write gets a warning saying what will not be known (its record is None).
        """
        import warnings

        import onnx

        from .errors import VitPruneWarning

        path = Path(path)
        name = repr(str(path))
        if path.is_dir():
            raise VitPruneError(f"{name} is a folder, not an ONNX file; {hint}")
        if not path.is_file():
            raise VitPruneError(f"ONNX file {name} does not exist; {hint}")
        try:
            with open(path, "rb") as handle:
                head = handle.read(64)
        except OSError as error:
            raise VitPruneError(f"cannot read {name} ({error.strerror}); check its permissions") from None
        if not head:
            raise VitPruneError(f"{name} is empty (0 bytes), perhaps from an interrupted export; {hint}")
        if head[:4] in ENGINE_MAGICS or path.suffix.lower() in ENGINE_SUFFIXES:
            raise VitPruneError(f"{name} is a TensorRT engine, not an ONNX file; give the ONNX file it was built from")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as error:
            raise VitPruneError(f"{name} is not a readable ONNX file ({type(error).__name__}); {hint}") from None
        if not proto.graph.node or not proto.graph.output:
            raise VitPruneError(f"{name} holds no ONNX graph (no nodes or no outputs); {hint}")
        record = PruningRecord.from_proto(proto, str(path))
        if record is None:
            warnings.warn(
                f"{name} was not written by vitprune: its model, method, keep counts and MACs are unknown "
                "(shown as 'unknown' in results)",
                VitPruneWarning,
                stacklevel=3,
            )
        return cls(path, proto, record)

    @property
    def has_external_data(self) -> bool:
        """Weights stored beside the file (a model over 2 GB): :attr:`proto` holds references, not the weights."""
        from onnx import TensorProto

        return any(tensor.data_location == TensorProto.EXTERNAL for tensor in self.proto.graph.initializer)


def check_onnx_input(path: str | Path, hint: str = "make one with 'vitprune export'") -> PruningRecord | None:
    """:meth:`OnnxArtifact.open`'s checks; return the file's record (None for a file vitprune did not write)."""
    return OnnxArtifact.open(path, hint).record


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


__all__ = [
    "ENGINE_SUFFIXES",
    "OnnxArtifact",
    "LIBRARIES",
    "METADATA_KEY",
    "check_onnx_input",
    "PruningRecord",
    "library_versions",
    "single_rate",
]
