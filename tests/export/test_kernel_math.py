"""The plugins' per-thread maths, compiled with the host C++ compiler from the very headers the CUDA kernels
include (plugins/common/vitpruneKernelMath.h, vitprunePluginShapes.h) and checked on the CPU: the rank is a
total order (NaN as +inf, ties to the lower index) that always gives a permutation and agrees with the
PyTorch reference of the plugin ops; every input's rank, batch and token count are checked; VPA's
shared-memory guard counts every byte. The kernels themselves run in test_plugin_kernels.py (GPU)."""

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
    assert '#include "vitpruneKernelMath.h"' in common and "ranksBefore(w, j, v, i)" in common
    assert "vpaRowStatsSharedBytes(keep) > kSharedBytesLimit" in (plugins / "vpa" / "vpaKernel.cu").read_text()
    assert (
        "tomeAssembleSharedBytes(merges) > kSharedBytesLimit"
        in (plugins / "tomeMerge" / "tomeMergeKernel.cu").read_text()
    )
    assert "checkInputShapes(" in (plugins / "common" / "vitprunePluginBase.cpp").read_text()
