"""Time a block's part engines against their token count on the device; write the planner's curves JSON.

A bundle made with ``vitprune bundle --plan`` ships the three parts :mod:`.plan` prices a block
with (``block``, ``mlp``, ``reduce``; one static ONNX per token count, listed in
``parts/parts.json``); ``plan.sh`` builds each with ``python3 -m portable.trt_build`` and then
runs this module, which times every part engine and the bundle's own engine **interleaved**
(round-robin, ``rounds`` passes, each query between CUDA events as :func:`.trt_measure.time_engine`
times it), so a clock or temperature that drifts touches every point alike.

The bundle's engine calibrates the model's fixed cost (patch embedding, head, runtime): with its
keep counts ``k`` from ``metadata.json``, ``fixed = engine − Σ cost(k)``, and the unpruned model
is predicted as ``fixed + depth · block(n_0)``. The reduction step keeps its measured cost
(``reduction_scale`` 1): one engine calibrates one unknown.

Command line (in a bundle)::

    python3 -m portable.trt_curves --parts parts/parts.json --engine model.engine --metadata metadata.json \
        --device jetson-orin-nano --output results/jetson-orin-nano/curves/x.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from . import plan as planner
from .cuda import CudaError
from .environment import describe_machine
from .files import atomic_write_text
from .interleave import interleave, samples_of
from .results import now_iso
from .stats import latency_stats
from .trt_build import BuildError
from .trt_measure import MeasureError

PARTS_SCHEMA = "vitprune.parts/1"

#: (engine path, batch, warm-up, iterations) → samples in ms
Timer = Callable[[str, int, int, int], list]


class CurvesError(Exception):
    """The curves could not be measured; the message says why and what to do."""


def part_engine(onnx: str | Path) -> Path:
    """Where ``plan.sh`` builds a part's engine: beside its ONNX, ``.engine`` for ``.onnx``."""
    return Path(onnx).with_suffix(".engine")


def read_parts(path: str | Path) -> dict:
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise CurvesError(f"cannot read the parts list {str(path)!r} ({error}); make the bundle with --plan") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != PARTS_SCHEMA:
        raise CurvesError(f"{str(path)!r} is not a {PARTS_SCHEMA} parts list")
    return manifest


def time_interleaved(
    timer: Timer, engines: dict[str, str], batch: int, warmup: int, iterations: int, rounds: int, say=print
) -> dict[str, float]:
    """Median ms of each engine, timed round-robin: ``rounds`` passes of ``iterations / rounds`` queries each
    (every pass loads the engine afresh, so each starts with ``warmup`` untimed queries)."""
    per_round = max(1, iterations // max(rounds, 1))
    samplers = {key: functools.partial(timer, path, batch, warmup) for key, path in engines.items()}
    chunks = interleave(
        samplers,
        rounds,
        per_round,
        on_round=lambda index: say(f"timing round {index + 1}/{rounds} over {len(engines)} engines"),
    )
    return {key: latency_stats(values)["median"] for key, values in samples_of(chunks).items()}


def measure_engine_curves(
    manifest: dict,
    folder: Path,
    engine: str,
    metadata: dict,
    timer: Timer,
    warmup: int = 20,
    iterations: int = 120,
    rounds: int = 3,
    say=print,
) -> dict:
    """Time the parts and the bundle's engine; return the curves JSON (:mod:`.plan` reads it as a problem)."""
    keep = [int(k) for k in metadata.get("keep_counts") or []]
    depth, tokens_in = int(manifest["depth"]), int(manifest["tokens_in"])
    if len(keep) != depth:
        raise CurvesError(
            f"metadata.json has {len(keep)} keep counts for {depth} blocks; the bundle's engine cannot calibrate"
        )
    engines = {}
    for part in manifest["parts"]:
        path = part_engine(folder / part["onnx"])
        if not path.is_file():
            raise CurvesError(f"{path} does not exist; plan.sh builds the part engines first")
        engines[f"{part['kind']}:{int(part['tokens'])}"] = str(path)
    engines["engine"] = engine
    batch = int(manifest["batch"])
    medians = time_interleaved(timer, engines, batch, warmup, iterations, rounds, say)
    points = sorted({int(part["tokens"]) for part in manifest["parts"]})
    curves = {kind: {"tokens": points, "ms": [medians[f"{kind}:{n}"] for n in points]} for kind in planner.CURVES}
    num_prefix = int(manifest["num_prefix"])
    rule = planner.named_max_remove(manifest["max_remove"], num_prefix)
    blocks = planner.CostModel(
        *(planner.Curve.from_points(curves[kind]) for kind in planner.CURVES),
        probe=planner.probe_rule(float(manifest["probe_share"]), num_prefix, rule),
    )
    fixed = medians["engine"] - blocks.total(tokens_in, keep)
    return {
        "schema": planner.CURVE_SCHEMA,
        "model": manifest["model"],
        "method": manifest["method"],
        "method_options": manifest.get("method_options", {}),
        "backend": "trt",
        "precision": manifest.get("precision"),
        "batch": batch,
        "threads": None,
        "tokens_in": tokens_in,
        "num_prefix": num_prefix,
        "depth": depth,
        "layer": manifest["layer"],
        "probe_share": manifest["probe_share"],
        "max_remove": manifest["max_remove"],
        "curves": curves,
        "unpruned_ms": fixed + depth * curves["block"]["ms"][-1],
        "fixed_ms": fixed,
        "reduction_scale": 1.0,
        "calibration": {"engine": engine, "keep_counts": keep, "measured_ms": medians["engine"]},
        "warmup": warmup,
        "iterations": iterations,
        "rounds": rounds,
        "statistic": "median",
        "clock": "cuda-events",
        "source": {"engine": engine, "curves_from": "portable.trt_curves"},
        "created": now_iso(),
    }


def tensorrt_timer(plugins: str | None = None) -> Timer:
    """Time engines with TensorRT and CUDA events (:func:`.trt_measure.time_engine`)."""
    from .trt_build import import_flavour
    from .trt_measure import time_engine

    trt = import_flavour()

    def timer(path: str, batch: int, warmup: int, iterations: int) -> list:
        return time_engine(trt, path, batch, warmup, iterations, plugins)[0]

    return timer


def main(argv: list[str] | None = None, timer: Timer | None = None) -> int:
    """``timer``: how an engine is timed (TensorRT by default; tests pass a stand-in)."""
    parser = argparse.ArgumentParser(prog="python3 -m portable.trt_curves", description=__doc__.splitlines()[0])
    parser.add_argument("--parts", required=True, help="parts/parts.json of the bundle")
    parser.add_argument("--engine", required=True, help="the bundle's engine (calibrates the fixed cost)")
    parser.add_argument("--metadata", required=True, help="metadata.json: the engine's keep counts")
    parser.add_argument("--output", required=True, help="curves JSON to write")
    parser.add_argument("--warm-up", "--warmup", dest="warmup", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=120, help="timed queries per engine, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plugins", default=None)
    args = parser.parse_args(argv)
    if args.iterations < args.rounds or args.rounds < 1 or args.warmup < 0:
        print("error: need --rounds ≥ 1, --iterations ≥ --rounds and --warm-up ≥ 0", file=sys.stderr)
        return 2
    try:
        manifest = read_parts(args.parts)
        metadata = json.loads(Path(args.metadata).read_text())
        if timer is None:
            timer = tensorrt_timer(args.plugins)
        data = measure_engine_curves(
            manifest, Path(args.parts).parent, args.engine, metadata, timer, args.warmup, args.iterations, args.rounds
        )
        data["environment"] = describe_machine()
    except (
        CurvesError,
        planner.PlanError,
        MeasureError,
        CudaError,
        BuildError,
        OSError,
        ValueError,
        KeyError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    atomic_write_text(args.output, json.dumps(data, indent=2) + "\n")
    print(
        f"curves at {', '.join(map(str, data['curves']['block']['tokens']))} tokens; engine "
        f"{data['calibration']['measured_ms']:.3f} ms, unpruned predicted {data['unpruned_ms']:.3f} ms → {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
