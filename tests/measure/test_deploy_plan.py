"""``vitprune deploy --plan-speedup``: after build and profile, the bundle's plan.sh runs on the host (stand-in
ssh and TensorRT, stand-in timer; tests/measure/standins.py) and its curves and schedule come back."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.pruning.schedule import load_removed_counts

from .test_deploy import TINY, deploy, home


@pytest.fixture(scope="module")
def plan_bundle(export_cache, tmp_path_factory):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    folder = tmp_path_factory.mktemp("bundles") / "orin"
    result = CliRunner().invoke(
        app,
        [
            "bundle",
            str(exported.path),
            "--profile",
            "jetson-orin-nano",
            "-o",
            str(folder),
            "--plan",
            "--plan-points",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    return folder


def test_deploy_plans_on_the_device_and_brings_the_schedule_back(tmp_path, monkeypatch, plan_bundle):
    monkeypatch.setenv("STANDIN_TIMING_LOG", str(tmp_path / "timed.log"))
    result = deploy(tmp_path, monkeypatch, plan_bundle, "--plan-speedup", "1.5")
    assert result.exit_code == 0, result.output
    output = result.output
    assert output.index("== profile on") < output.index("== plan on nvidia@jetson: ./plan.sh --speedup 1.5")
    assert "timing round 3/3 over 10 engines" in output  # plan.sh's own output, streamed
    local = tmp_path / "results" / "jetson-orin-nano"
    (schedule,) = (local / "plans").glob("*_x1.5.json")
    assert schedule.name == "vitprune_tiny_patch4_32_topk_trt_b1_fp16_x1.5.json"
    remote = home(tmp_path) / "vitprune-bundles" / "orin" / "results" / "jetson-orin-nano" / "plans" / schedule.name
    assert schedule.read_bytes() == remote.read_bytes()  # the device's schedule, fetched
    removed = load_removed_counts(schedule)
    assert len(removed) == 6 and sum(removed) > 0
    assert json.loads(schedule.read_text())["predicted_speedup"] == pytest.approx(1.5, rel=0.02)
    assert len(list((local / "curves").glob("*.json"))) == 1
    assert f"schedule {schedule.relative_to(tmp_path)}" in output.replace("\n", "")
    assert any(local.glob("*_trt_b1_fp16.json"))  # the latency result came back too


def test_plan_budget_without_parts_or_out_of_range_is_one_line(tmp_path, monkeypatch, plan_bundle, export_cache):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    plain = tmp_path / "plain"
    assert CliRunner().invoke(app, ["bundle", str(exported.path), "-o", str(plain)]).exit_code == 0
    assert not (plain / "plan.sh").exists() and not (plain / "parts").exists()  # only with --plan
    for bundle, extra, message in (
        (plain, ["--plan-speedup", "1.5"], "has no block parts to plan with; make it again with 'vitprune bundle"),
        (plan_bundle, ["--plan-speedup", "0.5"], "--plan-speedup must be ≥ 1"),
        (plan_bundle, ["--plan-latency-ms", "-2"], "--plan-latency-ms must be a positive number"),
        (plan_bundle, ["--plan-speedup", "2", "--plan-latency-ms", "3"], "give one plan budget"),
    ):
        result = deploy(tmp_path, monkeypatch, bundle, *extra)
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
        assert not (tmp_path / "ssh.log").exists()  # refused before anything ran on the host
