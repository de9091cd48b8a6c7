"""One block of a model cut into the parts whose latency the planner reads, at a few token counts.

The planner (:mod:`..portable.plan`) prices a block from three curves measured on the target:

* ``block``: the block with no reduction at ``n`` tokens;
* ``mlp``: its MLP half (norm, MLP, residual) at ``n`` tokens;
* ``reduce``: the method's block at ``n`` tokens removing a probe count (a tenth of the patch tokens).

:func:`block_part` builds each as a module on ``(B, n, C)``; :func:`export_block_parts` writes
them as static-shape ONNX files (the same exporter call as ``vitprune export``), which
``vitprune plan`` times on ONNX Runtime and a device bundle builds and times with TensorRT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import VitPruneError
from ..portable import plan as planner

#: share of the patch tokens the ``reduce`` part removes
PROBE_SHARE = 0.1


def curve_points(tokens_in: int, num_prefix: int, count: int) -> list[int]:
    """``count`` token counts from an eighth of the patch tokens up to ``tokens_in``, evenly spaced, rounded to 8
    (the last is ``tokens_in`` itself)."""
    patches = tokens_in - num_prefix
    low = num_prefix + max(1, patches // 8)
    if count < 2:
        raise VitPruneError(f"--points must be at least 2, got {count}")
    points = {tokens_in, low}
    for index in range(1, count - 1):
        n = low + (tokens_in - low) * index / (count - 1)
        points.add(min(tokens_in - 1, max(low, int(round(n / 8) * 8))))
    return sorted(points)


def max_remove_rule(method, num_prefix: int, max_rate: float):
    """The most one block may remove: the method's limit and ``max_rate`` of the tokens entering it."""

    def limit(tokens: int) -> int:
        return max(0, min(method.max_remove(tokens, num_prefix), math.floor(max_rate * tokens)))

    return limit


def max_remove_name(method, tokens_in: int, num_prefix: int) -> str:
    """The method's removal limit as the planner's rule name: ``half`` (ToMe, PPT) or ``all``."""
    return "half" if method.max_remove(tokens_in, num_prefix) < tokens_in - num_prefix - 1 else "all"


def probe_of(method, num_prefix: int):
    """Tokens the ``reduce`` part removes at ``n`` tokens (:func:`..portable.plan.probe_rule`)."""
    return planner.probe_rule(PROBE_SHARE, num_prefix, max_remove_rule(method, num_prefix, 1.0))


def block_part(block, method, tokens: int, remove: int, num_prefix: int, layer: int, kind: str):
    """A module that runs one part (``block``, ``mlp`` or ``reduce``) of the timm ``block`` on (B, tokens, C)."""
    import torch

    from ..pruning.methods import get_method
    from ..pruning.methods.base import LayerPlan, TokenState
    from ..pruning.patch import TimmBlockOps

    ops = TimmBlockOps(block)
    if kind == "mlp":
        step, plan = None, None
    else:
        step = method if kind == "reduce" else get_method("none")
        plan = LayerPlan(layer, tokens, remove if kind == "reduce" else 0, num_prefix)
        step.setup(plan)

    class Part(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = block

        def forward(self, x):
            if step is None:
                return ops.mlp_residual(x)
            return step.block_forward(ops, x, TokenState(), plan)

    return Part().eval()


@dataclass
class BlockParts:
    """The parts written for one model and method: where they are, and the facts the planner needs."""

    files: dict[str, Path]  # "kind:tokens" → ONNX file
    tokens_in: int
    num_prefix: int
    depth: int
    layer: int
    points: list[int]
    max_remove: str
    method_options: dict


def export_block_parts(
    model: str, method_name: str, knobs: dict, folder: Path, points: int, batch: int = 1, say=lambda m: None
) -> BlockParts:
    """Write the three parts of ``model``'s middle block at ``points`` token counts as static ONNX files in
    ``folder`` (``<kind>_<tokens>.onnx``); weights are random (they do not change latency)."""
    import torch

    from ..pruning.models import CLI_RANDOM_SEED, check_model_name, create_model
    from ..pruning.patch import num_tokens_of
    from ..pruning.spec import resolve_method
    from .onnx import _onnx_program

    method = resolve_method(method_name, knobs)
    if not method.changes_token_count:
        raise VitPruneError(f"method {method_name!r} keeps every token; plan a method that removes tokens")
    check_model_name(model)
    network = create_model(model, "random", seed=CLI_RANDOM_SEED)
    tokens_in, num_prefix, depth = num_tokens_of(network), int(network.num_prefix_tokens), len(network.blocks)
    layer, dim = depth // 2, int(network.embed_dim)
    probe = probe_of(method, num_prefix)
    counts = curve_points(tokens_in, num_prefix, points)
    generator = torch.Generator().manual_seed(0)
    files: dict[str, Path] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for n in counts:
        example = torch.randn((batch, n, dim), generator=generator)
        for kind in planner.CURVES:
            say(f"exporting the {kind} part at {n} tokens")
            part = block_part(network.blocks[layer], method, n, probe(n), num_prefix, layer, kind)
            with torch.no_grad():
                program = _onnx_program(part, example, False, 18)
            path = folder / f"{kind}_{n}.onnx"
            program.save(str(path))
            files[f"{kind}:{n}"] = path
    return BlockParts(
        files,
        tokens_in,
        num_prefix,
        depth,
        layer,
        counts,
        max_remove_name(method, tokens_in, num_prefix),
        method.knob_values(),
    )


__all__ = [
    "PROBE_SHARE",
    "BlockParts",
    "block_part",
    "curve_points",
    "export_block_parts",
    "max_remove_name",
    "max_remove_rule",
    "probe_of",
]
