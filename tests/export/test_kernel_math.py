"""The plugins' per-thread maths, compiled with the host C++ compiler from the very headers the CUDA kernels
include (plugins/common/vitpruneKernelMath.h, vitprunePluginShapes.h) and checked on the CPU: the rank is a
total order (NaN as +inf, ties to the lower index) that always gives a permutation and agrees with the
PyTorch reference of the plugin ops; every input's rank, batch and token count are checked; VPA's
shared-memory guard counts every byte; each launcher's plan (one block per image where the keys fit in
48 KB, else the multi-launch path) gives its launches per call. The kernels themselves run in
test_plugin_kernels.py (GPU)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vitprune_export.resources import plugin_sources_dir

COMPILER = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(COMPILER is None, reason="needs a host C++ compiler (g++)")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """Compile tests/export/kernel_math_check.cpp against the plugin headers; return a function running commands."""
    binary = tmp_path_factory.mktemp("kernel-math") / "kernel_math_check"
    source = Path(__file__).with_name("kernel_math_check.cpp")
    flags = ["-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{plugin_sources_dir()}"]
    done = subprocess.run([COMPILER, *flags, str(source), "-o", str(binary)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    def run(*commands: str) -> list[str]:
        result = subprocess.run([str(binary)], input="\n".join(commands) + "\n", capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    return run


def _order(probe, values: list[float]) -> list[int]:
    words = [
        "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v)) for v in values
    ]
    return [int(word) for word in probe(f"rank {len(values)} {' '.join(words)}")[0].split()]


def _reference(values: list[float]) -> list[int]:
    """The plugin ops' reference order (export/ops/reference.py): NaN as +inf, stable descending."""
    from vitprune_export.export.ops.reference import rank_for_plugins

    return rank_for_plugins(torch.tensor([values]), 0)[0].tolist()


CASES = {
    "one NaN": [0.3, math.nan, 0.9, 0.1],
    "NaN and +inf tie by index": [math.inf, 0.5, math.nan, -math.inf, math.inf],
    "all NaN": [math.nan] * 5,
    "all equal": [0.25] * 7,
    "ties": [1.0, 2.0, 1.0, 2.0, 1.0],
    "±inf": [-math.inf, 0.0, math.inf, -math.inf],
    "one patch token": [0.7],
    "negative zero": [0.0, -0.0, 0.0],
}


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_the_rank_is_a_permutation_in_the_reference_order(probe, values):
    order = _order(probe, values)
    assert sorted(order) == list(range(len(values)))  # no rank shared, no slot left stale
    assert order == _reference(values)


def test_random_scores_with_many_ties_and_nans(probe):
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        values = (torch.randint(0, 4, (33,), generator=generator).float() / 4).tolist()
        values = [math.nan if v == 0.75 else v for v in values]
        assert _order(probe, values) == _reference(values)


def test_the_old_count_of_greater_scores_was_not_a_permutation():
    """What the kernels did before: rank = how many are greater (or equal at a lower index). A NaN fails every
    comparison, so it shares rank 0 with the best token and a slot of ``order`` is never written."""
    values = CASES["one NaN"]
    ranks = [sum((w > v) or (w == v and j < i) for j, w in enumerate(values)) for i, v in enumerate(values)]
    assert sorted(ranks) != list(range(len(values)))


@pytest.mark.parametrize(
    ("inputs", "expected", "message"),
    [
        ("3 3 2 65 96  2 2 2 65  3 3 2 65 32  2 2 2 65", 4, "ok"),
        ("3 3 2 65 96  2 2 2 65  3 3 2 65 32  2 2 2 65", 3, "expects 3 inputs, got 4"),
        ("3 3 2 65 96  2 3 2 65 1  3 3 2 65 32  2 2 2 65", 4, "input 1 must have rank 2, not 3"),
        ("3 3 2 65 96  2 2 2 64  3 3 2 65 32  2 2 2 65", 4, "input 1 has 64 tokens, the tokens input 65"),
        ("3 3 2 65 96  2 2 2 65  3 3 1 65 32  2 2 2 65", 4, "input 2 has batch 1, the tokens 2"),
        ("3 3 2 65 96  2 2 2 65  3 2 2 65  2 2 2 65", 4, "input 2 must have rank 3, not 2"),
        ("3 3 2 65 96  2 2 2 65  3 3 2 65 0  2 2 2 65", 4, "input 2 has rows of width 0"),
        ("3 3 -1 65 96  2 2 -1 65  3 3 -1 65 32  2 2 -1 65", 4, "ok"),  # a dynamic batch, not known yet
        ("3 2 65 96  2 2 2 65", 2, "tokens must have rank 3, not 2"),
    ],
)
def test_every_input_is_checked(probe, inputs, expected, message):
    count = 4 if inputs.count("  ") == 3 else 2
    assert probe(f"shapes {count} {inputs} {expected}") == [message]


def test_the_vpa_guard_counts_every_shared_byte(probe):
    """4·keep + 16 bytes: keep 12285–12288 passed the old guard (keep ≤ 12288) and overflowed 48 KB."""
    for keep in (12284, 12285, 12288):
        used, largest, limit = map(int, probe(f"vpa_bytes {keep}")[0].split())
        assert used == 4 * keep + 16 and limit == 48 * 1024
        assert (used <= limit) == (keep <= largest) and largest == 12284


def test_the_kernels_use_these_headers():
    """The CUDA sources rank with ranksBefore, guard with the byte counts and check shapes with checkInputShapes."""
    plugins = plugin_sources_dir()
    common = (plugins / "common" / "vitpruneKernelCommon.cuh").read_text()
    assert '#include "vitpruneKernelMath.h"' in common and "ranksBefore(toFloat(row[j]), j, v, i)" in common
    assert "vpaRowStatsSharedBytes(keep) > kSharedBytesLimit" in (plugins / "vpa" / "vpaKernel.cu").read_text()
    assert (
        "tomeAssembleSharedBytes(merges) > kSharedBytesLimit"
        in (plugins / "tomeMerge" / "tomeMergeKernel.cu").read_text()
    )
    assert "checkInputShapes(" in (plugins / "common" / "vitprunePluginBase.cpp").read_text()


# ---------------------------------------------------------------- launches per call (the launchers' plans)

KEY_BYTES = {"fp32": 4, "fp16": 2}


def _plan(probe, op: str, *numbers: int) -> tuple[bool, int, int]:
    one_block, launches, shared = map(int, probe(f"{op}_plan {' '.join(map(str, numbers))}")[0].split())
    return bool(one_block), launches, shared


def _vpa_bytes(patches: int, dim: int, keep: int, key_bytes: int) -> int:
    """vpaImageSharedBytes written out: staged keys (16-byte aligned), norm + order per patch, similarity +
    gathered size per kept token, the block-sum scratch of 512 / 32 floats."""
    keys = -(-patches * dim * key_bytes // 16) * 16
    return keys + 8 * patches + 8 * keep + 4 * (512 // 32)


def _tome_bytes(tokens: int, prefix: int, dim: int, key_bytes: int) -> int:
    patches, set_a = tokens - prefix, (tokens + 1) // 2 - (prefix + 1) // 2
    return -(-patches * dim * key_bytes // 16) * 16 + 4 * patches + 12 * set_a


@pytest.mark.parametrize(
    ("shape", "one_block", "launches"),
    [
        # (batch, tokens, key dim, prefix, keep, key type): ViT-S/16 rate 0.06, first and a later layer
        ((1, 197, 64, 1, 184, "fp16"), True, 1),  # 25 KB of keys: one launch
        ((1, 197, 64, 1, 184, "fp32"), False, 3),  # 50 KB of keys alone > 48 KB: select, pass A, pass B
        ((32, 170, 64, 1, 159, "fp32"), True, 1),  # 45 KB: a later layer fits, at any batch
        ((1, 260, 64, 1, 259, "fp32"), False, 2),  # nothing removed: no pass A
        ((0, 197, 64, 1, 184, "fp16"), False, 0),  # batch 0: nothing launched
    ],
    ids=str,
)
def test_vpa_launches_per_call(probe, shape, one_block, launches):
    *numbers, key_type = shape
    batch, tokens, dim, prefix, keep = numbers
    got_one_block, got_launches, shared = _plan(probe, "vpa", *numbers, KEY_BYTES[key_type])
    assert (got_one_block, got_launches) == (one_block, launches)
    assert shared == _vpa_bytes(tokens - prefix, dim, keep, KEY_BYTES[key_type])
    assert batch == 0 or got_one_block == (shared <= 48 * 1024)  # the real byte count against the default limit


@pytest.mark.parametrize(
    ("shape", "one_block", "launches"),
    [
        # (batch, tokens, key dim, prefix, merges, key type)
        ((1, 197, 64, 1, 13, "fp16"), True, 2),  # one block per image + assemble
        ((1, 197, 64, 1, 13, "fp32"), False, 6),  # norms, match, rank, invert, list, assemble
        ((1, 196, 64, 0, 13, "fp32"), False, 4),  # no prefix token: the unmerged stay in rank order
        ((1, 197, 64, 1, 98, "fp32"), False, 4),  # every patch A token merges: nothing to list
        ((8, 150, 64, 1, 10, "fp32"), True, 2),  # a later layer fits in fp32
        ((0, 197, 64, 1, 13, "fp32"), False, 0),
    ],
    ids=str,
)
def test_tome_launches_per_call(probe, shape, one_block, launches):
    *numbers, key_type = shape
    batch, tokens, dim, prefix, merges = numbers
    got_one_block, got_launches, shared = _plan(probe, "tome", *numbers, KEY_BYTES[key_type])
    assert (got_one_block, got_launches) == (one_block, launches)
    assert shared == _tome_bytes(tokens, prefix, dim, KEY_BYTES[key_type])
    assert batch == 0 or got_one_block == (shared <= 48 * 1024)


def test_topk_select_is_one_launch_and_none_at_batch_zero(probe):
    assert probe("topk_plan 1", "topk_plan 32", "topk_plan 0") == ["1", "1", "0"]


@pytest.mark.parametrize(("dim", "key_type"), [(64, "fp32"), (64, "fp16"), (32, "fp32")])
def test_the_one_block_path_ends_where_the_bytes_pass_48_kb(probe, dim, key_type):
    """Walk the token count up at rate ~0.06: the plan leaves the one-block path exactly at the first shape whose
    shared bytes exceed 49152, for VPA and ToMe alike."""
    for op, bytes_of in (
        ("vpa", lambda n: _vpa_bytes(n - 1, dim, n - 1 - (n - 1) // 16, KEY_BYTES[key_type])),
        ("tome", lambda n: _tome_bytes(n, 1, dim, KEY_BYTES[key_type])),
    ):
        first_too_big = next(n for n in range(3, 2000) if bytes_of(n) > 48 * 1024)
        for tokens in (first_too_big - 1, first_too_big):
            count = tokens - 1 - (tokens - 1) // 16 if op == "vpa" else (tokens - 1) // 16
            one_block, _, _ = _plan(probe, op, 1, tokens, dim, 1, count, KEY_BYTES[key_type])
            assert one_block == (tokens < first_too_big), (op, tokens)


LAUNCH_SITES = {"topkSelect": ("topkSelectPlan", 1), "vpa": ("vpaPlan", 4), "tomeMerge": ("tomePlan", 7)}


@pytest.mark.parametrize("folder", sorted(LAUNCH_SITES))
def test_every_launch_is_a_step_of_the_plan(folder):
    """Each kernel launch in a launcher sits under `if (plan.<step>)` of the plan the tests above count (TopK's
    plan inline): a kernel added without a step of its own would launch uncounted."""
    plan_function, sites = LAUNCH_SITES[folder]
    lines = (plugin_sources_dir() / folder / f"{folder}Kernel.cu").read_text().splitlines()
    launches = [index for index, line in enumerate(lines) if "<<<" in line]
    assert len(launches) == sites
    assert any(f"{plan_function}(" in line for line in lines)
    for index in launches:
        guard = next(line.strip() for line in reversed(lines[:index]) if line.strip().startswith(("if (", "}")))
        assert guard.startswith("if (") and "plan" in guard.lower(), (folder, lines[index])
