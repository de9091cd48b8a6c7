"""What one block's pruning step costs on ONNX Runtime and OpenVINO, alone, against a static slice.

    python benchmarks/pruning_steps.py [--methods first,topk,evit,topk-vpa,etps,tome] [--threads 1]
                                       [--rounds 30] [--keep-onnx DIR]

Each method's ``reduce`` of the first pruning block of ViT-S/16 at rate 0.06 (N = 197 tokens of
C = 384, H = 6 heads of D = 64, 11 tokens removed, one class token) is exported on its own
(inputs: the tokens after attention, q, k, v and the token sizes) and timed in both CPU runtimes,
interleaved: ``rounds`` rounds of 40 calls per method, alternating the order; the median µs per
call. ``first`` (a static slice, the step that costs nothing) is the floor: a method's step costs
its time minus ``first``'s. ``--keep-onnx`` keeps the files, to read with each runtime's profiler
(ONNX Runtime's ``enable_profiling``, OpenVINO's ``PERF_COUNT``). Needs the ``[openvino]`` extra.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

TOKENS, WIDTH, HEADS, HEAD_DIM, REMOVED, PREFIX = 197, 384, 6, 64, 11, 1


def step_module(method_name: str):
    import torch

    from vitprune_export.pruning.methods import get_method
    from vitprune_export.pruning.methods.base import AttentionView, LayerPlan, size_bias

    method = get_method(method_name)
    plan = LayerPlan(layer=0, tokens_in=TOKENS, remove=REMOVED, num_prefix=PREFIX)

    class Step(torch.nn.Module):
        def forward(self, x, q, k, v, size):
            bias = size_bias(size) if method.tracks_size else None
            view = AttentionView(q, k, v, HEAD_DIM**-0.5, bias)
            tokens, sizes = method.reduce(x, view, size if method.tracks_size else None, plan)
            return (tokens, sizes) if sizes is not None else (tokens * 1.0,)  # * 1.0: no input passed through

    return Step().eval()


def export_step(method_name: str, folder: Path) -> tuple[Path, dict]:
    import numpy as np
    import onnx
    import torch

    generator = torch.Generator().manual_seed(0)
    inputs = {
        "x": torch.randn(1, TOKENS, WIDTH, generator=generator),
        "q": torch.randn(1, HEADS, TOKENS, HEAD_DIM, generator=generator),
        "k": torch.randn(1, HEADS, TOKENS, HEAD_DIM, generator=generator),
        "v": torch.randn(1, HEADS, TOKENS, HEAD_DIM, generator=generator),
        "size": torch.rand(1, TOKENS, generator=generator) + 0.5,
    }
    path = folder / f"{method_name}.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step_module(method_name), tuple(inputs.values()), str(path), dynamo=True, input_names=list(inputs)
        )
    used = {value.name for value in onnx.load(str(path)).graph.input}
    return path, {name: np.ascontiguousarray(t.numpy()) for name, t in inputs.items() if name in used}


def runtime_calls(path: Path, feeds: dict, threads: int):
    import onnx
    import onnxruntime as ort
    import openvino as ov

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(
        str(path),
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "f32",
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    request = compiled.create_infer_request()
    for port in compiled.inputs:
        request.set_tensor(port.any_name, ov.Tensor(feeds[port.any_name], shared_memory=True))
    nodes = len(onnx.load(str(path)).graph.node)
    return {"ort": lambda: session.run(None, feeds), "ov": request.infer}, nodes


def interleaved_us(calls: dict, rounds: int, per_round: int = 40) -> dict:
    names = list(calls)
    for call in calls.values():
        for _ in range(100):
            call()
    samples = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 else names[::-1]:
            start = time.perf_counter()
            for _ in range(per_round):
                calls[name]()
            samples[name].append((time.perf_counter() - start) / per_round * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="first,topk,evit,topk-vpa,etps,tome")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--keep-onnx", type=Path, default=None)
    args = parser.parse_args()
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    folder = args.keep_onnx or Path(tempfile.mkdtemp(prefix="vitprune-steps-"))
    folder.mkdir(parents=True, exist_ok=True)
    calls, nodes = {}, {}
    for name in methods:
        path, feeds = export_step(name, folder)
        calls[name], nodes[name] = runtime_calls(path, feeds, args.threads)
    floor = "first" if "first" in methods else None
    print(
        f"one pruning step, ViT-S/16 block 0 (N={TOKENS}, remove {REMOVED}), {args.threads} thread(s), median µs per call"
    )
    print(
        f"{'method':10s} {'nodes':>5s} {'ORT':>8s} {'OpenVINO':>9s}"
        + ("  (minus first: ORT, OpenVINO)" if floor else "")
    )
    timings = {
        runtime: interleaved_us({n: calls[n][runtime] for n in methods}, args.rounds) for runtime in ("ort", "ov")
    }
    for name in methods:
        ort_us, ov_us = timings["ort"][name], timings["ov"][name]
        extra = f"  {ort_us - timings['ort'][floor]:7.1f} {ov_us - timings['ov'][floor]:8.1f}" if floor else ""
        print(f"{name:10s} {nodes[name]:5d} {ort_us:8.1f} {ov_us:9.1f}{extra}")


if __name__ == "__main__":
    main()
