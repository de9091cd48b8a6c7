"""The JSON written beside every engine (``<engine>.json``): one versioned schema, one writer, one reader.

Portable (standard library only): ``vitprune build`` and a device bundle's
:mod:`.trt_build` write it, and ``vitprune profile --backend trt`` / ``vitprune
compare`` read engines' JSON through :func:`read_engine_description`. Schema ``vitprune.engine/2``::

    schema          "vitprune.engine/2"
    engine          the engine file as written; size_bytes, sha256 of its bytes
    onnx            the ONNX it was built from; onnx_metadata: the pruning record
                    (model, method, schedule, keep counts, MACs, weights)
    device          the device profile's name; profile: the profile as data (or null)
    precision       fp32 | fp16; precision_source: how (builder flag, ONNX types)
    builder         the builder settings (vitprune_export.tensorrt.build.BuilderSettings)
    tensorrt        {flavour: tensorrt | tensorrt_rtx, version}
    io              the network's inputs and outputs as parsed: name, mode, dtype,
                    shape (-1 for the dynamic batch); null when the builder was trtexec
    layers          layers in the parsed network (null for trtexec)
    gpu, plugin_library, build_seconds, built_with ("vitprune build",
    "portable.trt_build", "trtexec"), vitprune (its version, null on a device), created

``vitprune.engine/1`` (written before the I/O was recorded) is read too.

Command line (a bundle's ``build.sh --trtexec`` describes the engine trtexec wrote)::

    python3 -m portable.engine_description --engine model.engine --onnx model.onnx \
        --settings build_settings.json --metadata metadata.json --built-with trtexec
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from .files import atomic_write_bytes
from .results import now_iso

SCHEMA = "vitprune.engine/2"
READABLE_SCHEMAS = ("vitprune.engine/1", SCHEMA)
REQUIRED = ("schema", "engine", "onnx_metadata", "device", "precision", "builder", "tensorrt")


class EngineDescriptionError(Exception):
    """An engine's JSON exists but cannot be used; the message says why and what to do."""


def description_path(engine_path: str | Path) -> Path:
    """``model.engine`` → ``model.engine.json``."""
    return Path(str(engine_path) + ".json")


def network_io(trt, network) -> list[dict]:
    """Inputs then outputs of a parsed ``INetworkDefinition``: name, mode, dtype, shape (-1 = dynamic)."""
    tensors = [("input", network.get_input(i)) for i in range(network.num_inputs)]
    tensors += [("output", network.get_output(i)) for i in range(network.num_outputs)]
    return [
        {"name": t.name, "mode": mode, "dtype": _dtype_name(trt, t.dtype), "shape": [int(d) for d in t.shape]}
        for mode, t in tensors
    ]


def _dtype_name(trt, dtype) -> str:
    for name in ("float32", "float16", "bfloat16", "int8", "int32", "int64", "bool", "uint8"):
        if hasattr(trt, name) and dtype == getattr(trt, name):
            return name
    return str(dtype)


def describe_engine(
    engine_path: str | Path,
    engine_bytes: bytes,
    onnx_path: str | Path,
    onnx_metadata: dict,
    settings: dict,
    tensorrt: dict,
    built_with: str,
    io: list | None = None,
    layers: int | None = None,
    gpu: str | None = None,
    plugin_library: str | None = None,
    build_seconds: float | None = None,
    vitprune: str | None = None,
) -> dict:
    """The description of one engine (the schema above).

    ``settings``: the builder settings as data, with ``device`` (the profile's
    name) and optionally ``profile`` (the profile as data) beside them — what
    ``vitprune build`` holds and what a bundle's ``build_settings.json`` holds.
    """
    builder = {key: value for key, value in settings.items() if key not in ("device", "profile")}
    return {
        "schema": SCHEMA,
        "engine": str(engine_path),
        "size_bytes": len(engine_bytes),
        "sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "onnx": str(onnx_path),
        "onnx_metadata": dict(onnx_metadata or {}),
        "device": settings.get("device"),
        "profile": settings.get("profile"),
        "precision": builder.get("precision"),
        "precision_source": builder.get("precision_source"),
        "builder": builder,
        "tensorrt": dict(tensorrt),
        "io": io,
        "layers": layers,
        "gpu": gpu,
        "plugin_library": plugin_library,
        "build_seconds": None if build_seconds is None else round(float(build_seconds), 2),
        "built_with": built_with,
        "vitprune": vitprune,
        "created": now_iso(),
    }


def encode(description: dict) -> bytes:
    return (json.dumps(description, indent=2) + "\n").encode()


def write_engine_description(engine_path: str | Path, description: dict) -> Path:
    """Write ``<engine>.json`` atomically (temporary name, then rename)."""
    path = description_path(engine_path)
    atomic_write_bytes(path, encode(description))
    return path


def is_engine_description(data) -> bool:
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("vitprune.engine/")


def validate_engine_description(data, source: str = "engine description") -> dict:
    """``data`` when it is a readable engine description, else :class:`EngineDescriptionError`."""
    if not is_engine_description(data):
        raise EngineDescriptionError(f"{source} is not a vitprune engine description (no 'vitprune.engine/…' schema)")
    if data["schema"] not in READABLE_SCHEMAS:
        raise EngineDescriptionError(
            f"{source} has schema {data['schema']!r}, newer than this reader ({', '.join(READABLE_SCHEMAS)}); "
            "update vitprune or rebuild the engine"
        )
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise EngineDescriptionError(f"{source} lacks {', '.join(missing)}; rebuild the engine with 'vitprune build'")
    return data


def read_engine_description(engine_path: str | Path, required: bool = False) -> dict:
    """The description beside ``engine_path`` (``x.engine.json``), or {} when there is none (unless ``required``)."""
    path = description_path(engine_path)
    if not path.is_file():
        if required:
            raise EngineDescriptionError(f"{str(path)!r} does not exist; rebuild the engine with 'vitprune build'")
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EngineDescriptionError(f"{str(path)!r} is not valid JSON ({error}); rebuild the engine") from None
    return validate_engine_description(data, repr(str(path)))


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the vitprune engine description beside an engine.")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--settings", required=True, help="build_settings.json of the bundle")
    parser.add_argument("--metadata", required=True, help="metadata.json of the ONNX")
    parser.add_argument("--built-with", default="trtexec")
    parser.add_argument("--plugins", default=None)
    args = parser.parse_args(argv)
    try:
        engine = Path(args.engine).read_bytes()
        settings = json.loads(Path(args.settings).read_text())
        metadata = json.loads(Path(args.metadata).read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tensorrt = {"flavour": settings.get("flavour"), "version": settings.get("tensorrt_version")}
    description = describe_engine(
        args.engine, engine, args.onnx, metadata, settings, tensorrt, args.built_with, plugin_library=args.plugins
    )
    print(f"wrote {write_engine_description(args.engine, description)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
