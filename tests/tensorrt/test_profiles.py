"""Device profiles: the shipped ones load, bad ones fail with one line naming the key."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.tensorrt.profiles import list_profiles, load_profile, profile_from_dict

REQUIRED_PROFILES = ("rtx4090", "rtx-generic", "jetson-orin-nano", "h100", "cpu")


def minimal(**build):
    return {"build": {"backend": "trt", "precision": "fp16", **build}}


@pytest.mark.parametrize("name", REQUIRED_PROFILES)
def test_shipped_profiles_load_and_follow_the_protocol(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.measure.warmup == 20
    assert profile.measure.iterations >= 100
    assert profile.build.min_batch <= profile.measure_batch <= profile.build.max_batch


def test_every_toml_in_profiles_is_valid():
    known = list_profiles()
    assert set(REQUIRED_PROFILES) <= set(known)
    for name in known:
        load_profile(name)


def test_jetson_profile_describes_jetpack6_orin_nano():
    profile = load_profile("jetson-orin-nano")
    assert (profile.device.arch, profile.device.tensorrt, profile.device.memory_gb) == ("sm_87", "10.3", 8)
    assert (profile.build.backend, profile.build.precision) == ("trt", "fp16")
    setup = " ".join(profile.device.setup)
    assert "nvpmodel" in setup and "jetson_clocks" in setup
    assert profile.build.workspace_mb <= 2048  # 8 GB shared with the CPU


def test_backends_of_the_shipped_profiles():
    assert load_profile("cpu").build.backend == "ort-cpu"
    assert not load_profile("cpu").uses_tensorrt
    assert load_profile("rtx-generic").build.backend == "trt-rtx"
    assert load_profile("h100").device.arch == "sm_90"


def test_unknown_key_is_named_with_its_near_miss():
    with pytest.raises(VitPruneError, match=r"unknown key 'build.workspac_mb' \(did you mean 'workspace_mb'\?\)"):
        profile_from_dict(minimal(workspac_mb=1024), "x")


def test_unknown_section_is_named():
    with pytest.raises(VitPruneError, match=r"unknown section \[mesure\] \(did you mean 'measure'\?\)"):
        profile_from_dict({"mesure": {"warmup": 1}}, "x")


@pytest.mark.parametrize(
    "data, fragment",
    [
        (minimal(workspace_mb="1G"), "'build.workspace_mb' must be an integer (MiB), got str '1G'"),
        (minimal(max_batch=True), "'build.max_batch' must be a positive integer, got bool True"),
        (minimal(precision="int8"), "'build.precision' must be one of fp32, fp16"),
        (minimal(backend="tensorrt"), "'build.backend' must be one of trt, trt-rtx, ort-cpu"),
        (minimal(builder_optimization_level=7), "'build.builder_optimization_level' must be an integer 0–5"),
        (minimal(min_batch=4, opt_batch=2, max_batch=8), "min_batch ≤ opt_batch ≤ max_batch, got 4 / 2 / 8"),
        (minimal(compute_capabilities=["89"]), "'build.compute_capabilities' must be a list of 'sm_XY'"),
        ({"measure": {"iterations": 50}}, "'measure.iterations' must be an integer ≥ 100"),
        ({"measure": {"batch": 16}}, "'measure.batch' must be between build.min_batch and build.max_batch"),
        ({"device": {"setup": ["ok", 3]}}, "'device.setup' must be a list of strings"),
        ({"device": {"memory_gb": "8"}}, "'device.memory_gb' must be a number"),
    ],
)
def test_wrong_values_name_the_key(data, fragment):
    with pytest.raises(VitPruneError) as error:
        profile_from_dict(data, "x")
    assert fragment in str(error.value)
    assert str(error.value).startswith("profile 'x': ")


def test_unknown_name_suggests_the_near_miss():
    with pytest.raises(
        VitPruneError, match=r"unknown device profile 'jetson-orin' \(did you mean 'jetson-orin-nano'\?\)"
    ):
        load_profile("jetson-orin")


def test_missing_path_is_reported_as_a_path(tmp_path):
    with pytest.raises(VitPruneError, match="profile file .*nope.toml' does not exist"):
        load_profile(tmp_path / "nope.toml")


def test_profile_by_path_and_by_extra_folder(tmp_path, monkeypatch):
    path = tmp_path / "orin-lab.toml"
    path.write_text('name = "orin-bench"\n[build]\nbackend = "trt"\nmax_batch = 4\n[measure]\niterations = 100\n')
    profile = load_profile(path)
    assert profile.name == "orin-bench" and profile.build.max_batch == 4 and profile.source == str(path)
    monkeypatch.setenv("VITPRUNE_PROFILES", str(tmp_path))
    assert load_profile("orin-lab").build.max_batch == 4


def test_invalid_toml_is_one_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[build\nbackend = 'trt'\n")
    with pytest.raises(VitPruneError, match="is not valid TOML"):
        load_profile(path)


def test_cli_build_unknown_profile_exits_2(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not used")
    result = CliRunner().invoke(app, ["build", str(onnx), "--profile", "rtx409"])
    assert result.exit_code == 2
    assert "unknown device profile 'rtx409' (did you mean 'rtx4090'?)" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["model.onnx"]
