"""`vitprune build` refuses a profile whose device the installed builder cannot make an engine for."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.tensorrt.trt_checks import requires_tensorrt_rtx
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.tensorrt.build import refuse_unreachable_target
from vitprune_export.tensorrt.profiles import load_profile

TINY = "vitprune_tiny_patch4_32"


@pytest.mark.parametrize(
    ("profile", "flavour", "version", "message"),
    [
        ("h100", "tensorrt_rtx", "1.7.0", "targets sm_90, which TensorRT for RTX"),
        ("jetson-orin-nano", "tensorrt_rtx", "1.7.0", "targets sm_87, which TensorRT for RTX"),
        (
            "jetson-orin-nano",
            "tensorrt",
            "10.8.0",
            "runs engines of TensorRT 10.3 on its device, not of TensorRT 10.8.0",
        ),
        ("jetson-orin-nano", "tensorrt", "10.30.1", "not of TensorRT 10.30.1"),
    ],
)
def test_a_builder_that_cannot_reach_the_device_is_refused(profile, flavour, version, message):
    with pytest.raises(VitPruneError, match=message):
        refuse_unreachable_target(load_profile(profile), flavour, version)


@pytest.mark.parametrize(
    ("profile", "flavour", "version"),
    [
        ("jetson-orin-nano", "tensorrt", "10.3.0.30"),  # JetPack 6's own TensorRT, on the device
        ("h100", "tensorrt", "11.1.0"),
        ("rtx4090", "tensorrt_rtx", "1.7.0"),
        ("rtx-generic", "tensorrt_rtx", "1.7.0"),
    ],
)
def test_a_builder_that_reaches_the_device_is_let_through(profile, flavour, version):
    refuse_unreachable_target(load_profile(profile), flavour, version)


@pytest.mark.tensorrt
@requires_tensorrt_rtx
@pytest.mark.parametrize(("profile", "message"), [("h100", "targets sm_90"), ("jetson-orin-nano", "targets sm_87")])
def test_build_refuses_before_building_and_writes_nothing(export_cache, tmp_path, profile, message):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    engine = tmp_path / "e.engine"
    result = CliRunner().invoke(app, ["build", str(exported.path), "--profile", profile, "-o", str(engine)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
