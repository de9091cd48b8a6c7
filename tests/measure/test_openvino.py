"""OpenVINO as a CPU backend: the cases in openvino_cases.py, run in a pytest process of their own.

Why a process of their own: in one test process that had run a training with DataLoader worker processes
(tests/accuracy/test_finetune.py's image-folder case) and then compiled OpenVINO models, the next child process
that process spawned (nvcc for `vitprune check`, a compiler, a stand-in script) crashed it with SIGSEGV. A
user's command runs one of these jobs per process; the test suite must not let one worker's history kill it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino", reason="OpenVINO is an extra: pip install -e '.[dev]' installs it")

ROOT = Path(__file__).resolve().parents[2]


def test_the_openvino_cases_pass(tmp_path):
    cases = Path(__file__).with_name("openvino_cases.py")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(cases)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "VITPRUNE_CACHE": str(tmp_path / "cache")},
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
