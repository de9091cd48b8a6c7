"""Per-block keep counts from measured latency curves: the planner's maths (standard library only).

A token-pruned ViT runs ``depth`` blocks; block ``l`` receives ``n_l`` tokens and keeps
``k_l = n_{l+1} ≤ n_l`` (``n_0`` = patches + prefix tokens). The reduction sits after
attention and before the MLP (VPA paper Alg. 1), so one block costs

    cost(n, k) = A(n) + M(k)          when k = n (the block removes nothing)
    cost(n, k) = R(n) + M(k)          when k < n (attention, scores and the reduction step)

where ``A``, ``R`` and ``M`` are read off curves measured on the device: a plain block and its
MLP at ``n`` tokens (``A = block − M``), and the method's block at ``n`` tokens removing a probe
count ``p(n)`` (``R(n) = reduce(n) − M(n − p(n))``). Between measured token counts the curves are
interpolated linearly; a curve need not fall with the token count (devices pad and tile), and
the optimiser only ever compares the costs it reads, so a count where the curve is cheap wins
over a smaller one where it is not. The whole model costs ``fixed + Σ cost`` with ``fixed`` the
measured unpruned latency minus ``depth · block(n_0)`` (patch embedding, head, runtime).

The keep counts maximise ``Σ w_l · k_l`` (weights: early blocks first, or a per-block
sensitivity) subject to ``fixed + Σ cost ≤ budget``, each block removing at most what the
method allows (``max_remove``). The budget constraint is moved into the objective with a price
``λ`` per millisecond (Lagrangian relaxation): for a given ``λ`` an exact dynamic programme over
(block, tokens) finds the best plan in O(depth · n_0); ``λ`` is bisected to the cheapest price
whose plan fits, and a greedy pass then spends what is left of the budget one token at a time.

Runs in a device bundle (``python3 -m portable.plan``): no vitprune, no numpy needed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

CURVES = ("block", "mlp", "reduce")
#: the curves JSON ``vitprune plan`` caches and ``portable.trt_curves`` writes on a device
CURVE_SCHEMA = "vitprune.curves/1"


class PlanError(Exception):
    """A problem the planner cannot solve (the budget is below the cheapest plan, a curve is empty)."""


@dataclass(frozen=True)
class Curve:
    """Latency (ms) measured at some token counts; linear in between and beyond the ends."""

    tokens: tuple[int, ...]
    ms: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.ms) or not self.tokens:
            raise PlanError("a latency curve needs one latency per token count, and at least one point")
        if list(self.tokens) != sorted(set(self.tokens)):
            raise PlanError(f"the token counts of a curve must rise strictly, got {list(self.tokens)}")

    @classmethod
    def from_points(cls, points: dict) -> Curve:
        """``{"tokens": [...], "ms": [...]}`` (any order) → a curve."""
        pairs = sorted(zip((int(n) for n in points["tokens"]), (float(t) for t in points["ms"])))
        return cls(tuple(n for n, _ in pairs), tuple(t for _, t in pairs))

    def to_points(self) -> dict:
        return {"tokens": list(self.tokens), "ms": list(self.ms)}

    def at(self, tokens: float) -> float:
        """The latency at ``tokens``: linear between the two nearest measured counts (the end segments
        extended beyond them; a one-point curve is flat)."""
        xs, ys = self.tokens, self.ms
        if len(xs) == 1:
            return ys[0]
        index = 1
        while index < len(xs) - 1 and xs[index] < tokens:
            index += 1
        x0, x1, y0, y1 = xs[index - 1], xs[index], ys[index - 1], ys[index]
        return y0 + (y1 - y0) * (tokens - x0) / (x1 - x0)


@dataclass(frozen=True)
class CostModel:
    """Block costs from the three measured curves (see the module docstring)."""

    block: Curve
    mlp: Curve
    reduce: Curve
    probe: Callable[[int], int]
    fixed_ms: float = 0.0
    reduction_scale: float = 1.0

    def attention(self, tokens: int) -> float:
        """``A(n)``: the block without its MLP, at ``n`` tokens."""
        return self.block.at(tokens) - self.mlp.at(tokens)

    def reducing(self, tokens: int) -> float:
        """``R(n)``: attention, scores and the reduction step of a block that receives ``n`` tokens; the step's
        own cost ``R(n) − A(n)`` scaled by ``reduction_scale`` (calibrated on a whole pruned model)."""
        attention = self.attention(tokens)
        measured = self.reduce.at(tokens) - self.mlp.at(tokens - self.probe(tokens))
        return attention + self.reduction_scale * (measured - attention)

    def block_cost(self, tokens_in: int, tokens_out: int) -> float:
        front = self.attention(tokens_in) if tokens_out == tokens_in else self.reducing(tokens_in)
        return front + self.mlp.at(tokens_out)

    def total(self, tokens_in: int, keep_counts: Sequence[int]) -> float:
        """Predicted latency of the whole model with these keep counts."""
        total, tokens = self.fixed_ms, tokens_in
        for keep in keep_counts:
            total += self.block_cost(tokens, keep)
            tokens = keep
        return total


@dataclass
class Plan:
    """Keep counts that meet a budget, and what the model predicts for them."""

    keep_counts: list[int]
    tokens_in: list[int]
    predicted_ms: float
    unpruned_ms: float
    budget_ms: float
    weights: list[float]
    price: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def removed(self) -> list[int]:
        return [n - k for n, k in zip(self.tokens_in, self.keep_counts)]

    @property
    def predicted_speedup(self) -> float:
        return self.unpruned_ms / self.predicted_ms if self.predicted_ms > 0 else math.inf

    def to_dict(self) -> dict:
        return {
            "removed": self.removed,
            "tokens_in": self.tokens_in,
            "tokens_out": self.keep_counts,
            "predicted_ms": round(self.predicted_ms, 4),
            "unpruned_ms": round(self.unpruned_ms, 4),
            "budget_ms": round(self.budget_ms, 4),
            "predicted_speedup": round(self.predicted_speedup, 4),
            "weights": [round(w, 6) for w in self.weights],
            "notes": self.notes,
        }


def points_to_refine(curve: Curve, most: int = 2, steepness: float = 3.0) -> list[int]:
    """Token counts to measure next so that a step in ``curve`` is found, not smoothed over.

    A segment between two measured counts whose slope is over ``steepness`` times the curve's median
    slope, or that falls while the token count rises, hides a step (a count where the device pads or
    switches kernels); its midpoint is measured next, so repeated calls bisect the step down to one
    token. The ``most`` steepest segments at least two tokens wide are returned.
    """
    xs, ys = curve.tokens, curve.ms
    slopes = [(ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) for i in range(len(xs) - 1)]
    if len(slopes) < 2:
        return []
    typical = sorted(abs(slope) for slope in slopes)[len(slopes) // 2]
    suspicious = [
        (abs(slope), i)
        for i, slope in enumerate(slopes)
        if xs[i + 1] - xs[i] >= 2 and (slope > steepness * typical or slope < -typical)
    ]
    suspicious.sort(reverse=True)
    return sorted((xs[i] + xs[i + 1]) // 2 for _, i in suspicious[:most])


def early_first_weights(depth: int, tilt: float = 0.25) -> list[float]:
    """Weights that prefer tokens in early blocks: ``1 + tilt`` for the first, falling linearly to 1."""
    if depth < 2:
        return [1.0] * depth
    return [1.0 + tilt * (depth - 1 - layer) / (depth - 1) for layer in range(depth)]


def weights_from_rates(rates: Sequence[float]) -> list[float]:
    """Weights from per-block rates that a sensitivity search chose (GAS gives sensitive blocks low rates):
    ``1 + (r_max − r_l) / r_max``, so the block it pruned least weighs 2 and the one it pruned most 1."""
    top = max(rates) if rates else 0.0
    if top <= 0:
        return [1.0] * len(rates)
    return [1.0 + (top - rate) / top for rate in rates]


def _best_plan(
    model: CostModel,
    tokens_in: int,
    depth: int,
    weights: Sequence[float],
    lowest: Sequence[int],
    price: float,
) -> list[int]:
    """The keep counts maximising ``Σ w_l k_l − price · Σ cost`` exactly (dynamic programme over tokens).

    ``lowest[n]``: the fewest tokens a block that receives ``n`` may keep. ``value[n]`` is the best
    value of the blocks still to come when the next block receives ``n`` tokens; the best removing
    choice is a maximum over a window of keep counts whose ends never move down as ``n`` rises, so a
    monotone queue finds each in O(1).
    """
    counts = range(tokens_in + 1)
    mlp = [model.mlp.at(n) for n in counts]
    attention = [model.attention(n) if n >= 1 else 0.0 for n in counts]
    reducing = [model.reducing(n) if n >= 1 else 0.0 for n in counts]
    value = [0.0] * (tokens_in + 1)  # after the last block: nothing left to gain
    choices: list[list[int]] = []
    for layer in reversed(range(depth)):
        weight = weights[layer]
        gain = [weight * k - price * mlp[k] + value[k] for k in counts]  # keep k, then the rest
        new_value = [-math.inf] * (tokens_in + 1)
        choice = [0] * (tokens_in + 1)
        window: deque[int] = deque()
        next_k = 0
        for n in range(1, tokens_in + 1):  # counts no block can reach cost a little time, nothing else
            keep_all = gain[n] - price * attention[n]
            new_value[n], choice[n] = keep_all, n
            while next_k < n:  # admit keep counts below n
                while window and gain[window[-1]] <= gain[next_k]:
                    window.pop()
                window.append(next_k)
                next_k += 1
            while window and window[0] < lowest[n]:
                window.popleft()
            if window:
                best = window[0]
                removing = gain[best] - price * reducing[n]
                if removing > keep_all:
                    new_value[n], choice[n] = removing, best
        value = new_value
        choices.append(choice)
    choices.reverse()
    keep, tokens = [], tokens_in
    for layer in range(depth):
        tokens = choices[layer][tokens]
        keep.append(tokens)
    return keep


def _objective(keep: Sequence[int], weights: Sequence[float]) -> float:
    return sum(w * k for w, k in zip(weights, keep))


def _fill(
    model: CostModel, tokens_in: int, keep: list[int], lowest: Sequence[int], budget: float, weights: Sequence[float]
) -> list[int]:
    """Spend what the budget leaves: raise a run of blocks ``l..j`` to at least ``c`` tokens (one block alone, or
    a plateau together), best weight per extra millisecond first, until nothing more fits."""
    keep = list(keep)
    current = model.total(tokens_in, keep)
    while True:
        best, best_score = None, -math.inf
        for layer in range(len(keep)):
            previous = tokens_in if layer == 0 else keep[layer - 1]
            for step in (1, 2, 4, 8, 16, 32):
                target = keep[layer] + step
                if target > previous:
                    break
                for last in range(layer, len(keep)):
                    trial = [*keep[:layer], *(max(k, target) for k in keep[layer : last + 1]), *keep[last + 1 :]]
                    if (
                        any(trial[i + 1] < lowest[trial[i]] for i in range(len(trial) - 1))
                        or trial[0] < lowest[tokens_in]
                    ):
                        continue
                    cost = model.total(tokens_in, trial)
                    if cost > budget:
                        continue
                    gain = _objective(trial, weights) - _objective(keep, weights)
                    score = gain / max(cost - current, 1e-9)
                    if gain > 0 and score > best_score:
                        best, best_score = (trial, cost), score
        if best is None:
            return keep
        keep, current = best


def plan_keep_counts(
    model: CostModel,
    tokens_in: int,
    depth: int,
    num_prefix: int,
    budget_ms: float,
    max_remove: Callable[[int], int],
    weights: Sequence[float] | None = None,
) -> Plan:
    """Keep counts for ``depth`` blocks from ``tokens_in`` tokens whose predicted latency is ≤ ``budget_ms``.

    ``max_remove(n)``: the most tokens the method lets a block that receives ``n`` remove (ToMe: half
    the patch tokens). ``weights``: one per block (default :func:`early_first_weights`).
    """
    weights = list(weights) if weights is not None else early_first_weights(depth)
    if len(weights) != depth:
        raise PlanError(f"{len(weights)} weights for {depth} blocks; give one per block")
    if any(not (math.isfinite(w) and w > 0) for w in weights):
        raise PlanError("block weights must be positive numbers")
    least = num_prefix + 1
    lowest = [max(n - max_remove(n), least) if n >= least else n for n in range(tokens_in + 1)]
    unpruned = model.total(tokens_in, [tokens_in] * depth)
    fastest = _best_plan(model, tokens_in, depth, [1e-12] * depth, lowest, 1.0)
    fastest_ms = model.total(tokens_in, fastest)
    if fastest_ms > budget_ms:
        raise PlanError(
            f"the budget of {budget_ms:.3f} ms is below the fastest plan this method allows "
            f"({fastest_ms:.3f} ms, keep counts {' '.join(map(str, fastest))}); ask for less"
        )
    if unpruned <= budget_ms:
        keep = [tokens_in] * depth
        return Plan(keep, [tokens_in] * depth, unpruned, unpruned, budget_ms, weights, 0.0, ["the unpruned model fits"])
    # bisect the price of a millisecond: low prices keep tokens, high prices save time
    low, high = 0.0, 1.0
    while model.total(tokens_in, _best_plan(model, tokens_in, depth, weights, lowest, high)) > budget_ms:
        high *= 4.0
        if high > 1e12:
            break
    best = _best_plan(model, tokens_in, depth, weights, lowest, high)
    if model.total(tokens_in, best) > budget_ms:
        best = fastest
    feasible = [best]
    for _ in range(60):
        middle = (low + high) / 2
        trial = _best_plan(model, tokens_in, depth, weights, lowest, middle)
        if model.total(tokens_in, trial) <= budget_ms:
            high = middle
            feasible.append(trial)
        else:
            low = middle
        if high - low <= 1e-9 * high:
            break
    # the price that just fits need not give the best plan under the budget (the costs are not convex):
    # fill each plan the bisection found feasible and keep the best
    filled = [
        _fill(model, tokens_in, trial, lowest, budget_ms, weights) for trial in {tuple(t): t for t in feasible}.values()
    ]
    keep = max(filled, key=lambda trial: _objective(trial, weights))
    ins = [tokens_in, *keep[:-1]]
    return Plan(keep, ins, model.total(tokens_in, keep), unpruned, budget_ms, weights, high)


# ---------------------------------------------------------------- a problem as JSON (device bundles)


def named_max_remove(rule: str, num_prefix: int) -> Callable[[int], int]:
    """The most one block may remove at ``n`` tokens, for the rule *name* a curves JSON or a plan problem
    records (on a device there are no method objects to ask): ``"all"``: every patch token but one;
    ``"half"``: half the patch tokens (ToMe, PPT); ``"none"``."""
    if rule == "half":
        return lambda n: max((n - num_prefix) // 2, 0)
    if rule == "all":
        return lambda n: max(n - num_prefix - 1, 0)
    if rule == "none":
        return lambda n: 0
    raise PlanError(f"unknown max_remove rule {rule!r}; one of all, half, none")


def probe_rule(share: float, num_prefix: int, max_remove: Callable[[int], int]) -> Callable[[int], int]:
    """Tokens the reducing block removes when its curve is measured: ``share`` of the patch tokens (≥ 1)."""

    def probe(n: int) -> int:
        return max(1, min(max_remove(n), round(share * (n - num_prefix))))

    return probe


def calibrated_reduction_scale(
    model: CostModel, tokens_in: int, keep_counts: Sequence[int], measured_ms: float, lowest: float = 0.0
) -> float:
    """The ``reduction_scale`` under which ``model`` predicts ``measured_ms`` for a whole model with these keep
    counts (a uniform rate: every block reduces), clamped to [``lowest``, 2]."""
    base = CostModel(model.block, model.mlp, model.reduce, model.probe, model.fixed_ms, 0.0)
    full = CostModel(model.block, model.mlp, model.reduce, model.probe, model.fixed_ms, 1.0)
    without, per_unit = base.total(tokens_in, keep_counts), full.total(tokens_in, keep_counts)
    if abs(per_unit - without) < 1e-12:
        return 1.0
    return min(2.0, max(lowest, (measured_ms - without) / (per_unit - without)))


def solve(problem: dict) -> Plan:
    """Plan from a JSON problem: ``curves`` {block, mlp, reduce}, ``fixed_ms``, ``tokens_in``, ``depth``,
    ``num_prefix``, ``max_remove`` rule, ``probe_share``, and ``latency_ms`` or ``speedup``, ``weights``."""
    try:
        num_prefix = int(problem["num_prefix"])
        rule = named_max_remove(problem.get("max_remove", "all"), num_prefix)
        curves = {name: Curve.from_points(problem["curves"][name]) for name in CURVES}
        model = CostModel(
            curves["block"],
            curves["mlp"],
            curves["reduce"],
            probe_rule(float(problem.get("probe_share", 0.1)), num_prefix, rule),
            float(problem.get("fixed_ms", 0.0)),
            float(problem.get("reduction_scale", 1.0)),
        )
        tokens_in, depth = int(problem["tokens_in"]), int(problem["depth"])
    except (KeyError, TypeError, ValueError) as error:
        raise PlanError(f"the plan problem lacks or garbles {error}") from None
    unpruned = model.total(tokens_in, [tokens_in] * depth)
    if problem.get("latency_ms") is not None:
        budget = float(problem["latency_ms"])
    elif problem.get("speedup") is not None:
        budget = unpruned / float(problem["speedup"])
    else:
        raise PlanError("give a latency budget (latency_ms) or a speedup")
    return plan_keep_counts(model, tokens_in, depth, num_prefix, budget, rule, problem.get("weights"))


def main(argv: list[str] | None = None) -> int:
    """``python3 -m portable.plan --problem plan_problem.json --output schedule.json``."""
    parser = argparse.ArgumentParser(prog="python3 -m portable.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--problem", required=True, help="JSON: curves, fixed_ms, tokens_in, depth, … (see solve)")
    parser.add_argument("--output", required=True, help="schedule JSON to write")
    parser.add_argument("--latency-ms", type=float, help="budget in ms (instead of the problem's)")
    parser.add_argument("--speedup", type=float, help="speed-up over the unpruned model (instead of the problem's)")
    args = parser.parse_args(argv)
    try:
        with open(args.problem) as handle:
            problem = json.load(handle)
        if args.latency_ms is not None or args.speedup is not None:
            problem["latency_ms"], problem["speedup"] = args.latency_ms, args.speedup
        plan = solve(problem)
    except (OSError, ValueError, PlanError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from .files import atomic_path

    data = {**plan.to_dict(), "num_prefix": int(problem["num_prefix"]), "planned_from": problem.get("source", {})}
    with atomic_path(args.output) as path, open(path, "w") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    print(
        f"keep counts {' '.join(map(str, plan.keep_counts))}: predicted {plan.predicted_ms:.3f} ms "
        f"(unpruned {plan.unpruned_ms:.3f} ms, ×{plan.predicted_speedup:.2f}); wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
