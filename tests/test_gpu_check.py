"""benchmarks/gpu_check.py, the one script a lent GPU runs: every step it names exists, so the first GPU runs tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_test_files_it_runs_exist_and_hold_gpu_tests():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in module.GPU_TEST_FILES:
        path = ROOT / name.split("::")[0]
        assert path.is_file(), name
        assert "pytest.mark.gpu" in path.read_text(), name
