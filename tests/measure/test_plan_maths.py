"""The planner's maths on synthetic latency curves (vitprune_export.portable.plan)."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from vitprune_export.portable import plan as planner
from vitprune_export.portable.plan import CostModel, Curve, PlanError, plan_keep_counts


def linear(slope: float, offset: float, top: int = 197) -> Curve:
    return Curve((1, top), (offset + slope, offset + slope * top))


def smooth_model(top: int = 197, reduce_overhead: float = 0.1) -> CostModel:
    block = linear(0.05, 0.5, top)
    mlp = linear(0.03, 0.3, top)
    reduce = linear(0.05, 0.5 + reduce_overhead, top)
    return CostModel(block, mlp, reduce, lambda n: max(1, round(0.1 * (n - 1))), fixed_ms=2.0)


def uniform_keep(tokens: int, depth: int, rate: float) -> list[int]:
    keep = []
    for _ in range(depth):
        tokens -= math.floor(rate * tokens)
        keep.append(tokens)
    return keep


def test_curve_interpolates_linearly_and_extends_its_ends():
    curve = Curve((10, 20, 40), (1.0, 2.0, 2.0))
    assert curve.at(15) == pytest.approx(1.5)
    assert curve.at(30) == pytest.approx(2.0)
    assert curve.at(5) == pytest.approx(0.5)  # the first segment, extended
    assert Curve.from_points({"tokens": [40, 10], "ms": [3.0, 1.0]}).at(25) == pytest.approx(2.0)
    with pytest.raises(PlanError, match="rise strictly"):
        Curve((10, 10), (1.0, 1.0))


def test_cost_model_charges_the_reduction_only_where_a_block_removes_tokens():
    model = smooth_model()
    keep_all = model.block_cost(100, 100)
    assert keep_all == pytest.approx(model.block.at(100))
    removing = model.block_cost(100, 90)
    # attention and reduction at 100 tokens (reduce curve minus the MLP at its probe's keep count), MLP at 90
    assert removing == pytest.approx(model.reduce.at(100) - model.mlp.at(100 - 10) + model.mlp.at(90))
    assert model.total(197, [197] * 12) == pytest.approx(2.0 + 12 * model.block.at(197))


def test_plan_meets_the_budget_and_the_method_limits():
    model = smooth_model()
    unpruned = model.total(197, [197] * 12)
    half = planner.named_max_remove("half", 1)
    plan = plan_keep_counts(model, 197, 12, 1, unpruned / 1.5, half)
    assert plan.predicted_ms <= unpruned / 1.5 + 1e-9
    assert plan.predicted_ms >= unpruned / 1.5 - 0.1  # the greedy fill spends what is left, up to a token
    tokens = 197
    for keep in plan.keep_counts:
        assert tokens - half(tokens) <= keep <= tokens
        tokens = keep
    assert plan.tokens_in == [197, *plan.keep_counts[:-1]]
    assert plan.removed == [n - k for n, k in zip(plan.tokens_in, plan.keep_counts)]


def test_plan_keeps_more_tokens_than_the_uniform_rate_of_the_same_predicted_latency():
    model = smooth_model()
    unpruned = model.total(197, [197] * 12)
    plan = plan_keep_counts(model, 197, 12, 1, unpruned / 1.5, lambda n: min(n - 2, math.floor(0.25 * n)))
    # the smallest uniform rate (percent steps) whose predicted latency is within the plan's
    rate = next(
        r / 1000 for r in range(1, 500) if model.total(197, uniform_keep(197, 12, r / 1000)) <= plan.predicted_ms
    )
    assert sum(plan.keep_counts) >= sum(uniform_keep(197, 12, rate))


def test_plan_is_the_brute_force_optimum_on_a_small_problem():
    """Every non-increasing keep-count sequence of 3 blocks from 12 tokens, scored by the same objective."""
    block = Curve((2, 6, 12), (1.0, 2.5, 6.0))  # convex: attention grows faster than linearly
    mlp = Curve((2, 12), (0.4, 2.4))
    reduce = Curve((2, 12), (1.3, 6.4))
    model = CostModel(block, mlp, reduce, lambda n: 1, fixed_ms=0.5)
    weights = [1.3, 1.1, 1.0]
    limit = planner.named_max_remove("all", 1)
    for budget in (8.0, 10.0, 12.0, 15.0):
        plan = plan_keep_counts(model, 12, 3, 1, budget, limit, weights)
        best = max(
            (
                sum(w * k for w, k in zip(weights, keep))
                for keep in itertools.product(range(2, 13), repeat=3)
                if list(keep) == sorted(keep, reverse=True) and model.total(12, keep) <= budget
            ),
        )
        assert model.total(12, plan.keep_counts) <= budget
        assert sum(w * k for w, k in zip(weights, plan.keep_counts)) == pytest.approx(best), budget


def test_a_curve_with_a_step_is_stepped_around():
    """A device that tiles tokens by 32: a block costs the same from 97 to 128 tokens. The plan keeps the top of a
    tile (no cheaper count exists below it there), where a smooth curve would not land on multiples of 32."""

    def tiled(per_tile: float) -> Curve:
        tokens, ms = [], []
        for tile in range(1, 8):
            tokens += [32 * (tile - 1) + 1, 32 * tile]
            ms += [per_tile * tile, per_tile * tile]
        return Curve(tuple(tokens), tuple(ms))

    model = CostModel(tiled(1.0), tiled(0.6), tiled(1.05), lambda n: 1, fixed_ms=1.0)
    unpruned = model.total(197, [197] * 12)
    plan = plan_keep_counts(model, 197, 12, 1, unpruned / 1.5, planner.named_max_remove("all", 1))
    assert plan.predicted_ms <= unpruned / 1.5
    changed = [keep for keep, tokens in zip(plan.keep_counts, plan.tokens_in) if keep != tokens]
    assert changed, plan.keep_counts
    assert all(keep % 32 == 0 for keep in changed), plan.keep_counts
    # the same budget on the smooth curve through the tile tops lands elsewhere
    smooth = CostModel(linear(1 / 32, 0.0), linear(0.6 / 32, 0.0), linear(1.05 / 32, 0.0), lambda n: 1, fixed_ms=1.0)
    smooth_plan = plan_keep_counts(
        smooth, 197, 12, 1, smooth.total(197, [197] * 12) / 1.5, planner.named_max_remove("all", 1)
    )
    assert any(keep % 32 for keep in smooth_plan.keep_counts)


def test_weights_move_tokens_to_the_blocks_that_matter():
    model = smooth_model()
    budget = model.total(197, [197] * 12) / 1.4
    limit = lambda n: min(n - 2, math.floor(0.25 * n))  # noqa: E731
    early = plan_keep_counts(model, 197, 12, 1, budget, limit, planner.early_first_weights(12))
    assert early.keep_counts[0] == 197
    # sensitivity from a rate search that pruned block 0 hardest and the rest little: block 0 matters least
    late = plan_keep_counts(model, 197, 12, 1, budget, limit, planner.weights_from_rates([0.3] + [0.0] * 11))
    assert late.keep_counts[0] < 197


def test_budgets_out_of_reach_and_the_unpruned_fit():
    model = smooth_model()
    limit = planner.named_max_remove("half", 1)
    with pytest.raises(PlanError, match="below the fastest plan"):
        plan_keep_counts(model, 197, 12, 1, 3.0, limit)
    plan = plan_keep_counts(model, 197, 12, 1, 1000.0, limit)
    assert plan.keep_counts == [197] * 12 and plan.removed == [0] * 12
    with pytest.raises(PlanError, match="one per block"):
        plan_keep_counts(model, 197, 12, 1, 50.0, limit, [1.0] * 3)


def test_weights_from_rates():
    assert planner.weights_from_rates([0.2, 0.1, 0.0]) == pytest.approx([1.0, 1.5, 2.0])
    assert planner.weights_from_rates([0.0, 0.0]) == [1.0, 1.0]


def test_the_device_entry_point_writes_a_schedule(tmp_path):
    problem = {
        "curves": {
            "block": {"tokens": [1, 197], "ms": [0.55, 10.35]},
            "mlp": {"tokens": [1, 197], "ms": [0.33, 6.21]},
            "reduce": {"tokens": [1, 197], "ms": [0.65, 10.45]},
        },
        "fixed_ms": 2.0,
        "tokens_in": 197,
        "depth": 12,
        "num_prefix": 1,
        "max_remove": "half",
        "probe_share": 0.1,
    }
    (tmp_path / "problem.json").write_text(json.dumps(problem))
    out = tmp_path / "schedule.json"
    assert planner.main(["--problem", str(tmp_path / "problem.json"), "--output", str(out), "--speedup", "1.5"]) == 0
    data = json.loads(out.read_text())
    assert len(data["removed"]) == 12 and data["predicted_speedup"] >= 1.5 - 1e-6
    assert [n - m for n, m in zip(data["tokens_in"], data["removed"])] == data["tokens_out"]
    assert planner.main(["--problem", str(tmp_path / "problem.json"), "--output", str(out), "--latency-ms", "1"]) == 2


def test_points_to_refine_bisects_a_step():
    """A block whose cost jumps by 4 ms from 194 tokens on (a kernel that pads, a tile boundary)."""

    def cost(n: int) -> float:
        return 0.02 * n + (4.0 if n >= 194 else 0.0)

    points = [25, 48, 72, 96, 120, 144, 176, 197]
    for _ in range(8):
        found = planner.points_to_refine(Curve(tuple(points), tuple(cost(n) for n in points)))
        if not found:
            break
        points = sorted(set(points) | set(found))
    assert 193 in points and 194 in points  # the step, found to the token
    assert len(points) <= 8 + 6
    smooth = [25, 48, 72, 96, 120, 144, 176, 197]
    assert planner.points_to_refine(Curve(tuple(smooth), tuple(0.02 * n + 0.001 * n * n / 197 for n in smooth))) == []


def test_the_reduction_step_is_calibrated_on_a_whole_model():
    model = smooth_model(reduce_overhead=0.3)
    keep = uniform_keep(197, 12, 0.08)
    truth = CostModel(model.block, model.mlp, model.reduce, model.probe, model.fixed_ms, reduction_scale=0.5)
    scale = planner.calibrated_reduction_scale(model, 197, keep, truth.total(197, keep))
    assert scale == pytest.approx(0.5)
    assert planner.calibrated_reduction_scale(model, 197, keep, 0.0) == 0.0  # clamped: never a negative step
