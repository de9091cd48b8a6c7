"""``vitprune deploy`` end to end against stand-in ``ssh``/``rsync``/``scp`` that run the commands here
(tests/measure/standins.py): the real bundle, its real build.sh and profile.sh, a stand-in TensorRT."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.measure.deploy import remote_command
from vitprune_export.measure.results import load_results

from . import standins

TINY = "vitprune_tiny_patch4_32"


@pytest.fixture(scope="module")
def jetson_bundle(export_cache, tmp_path_factory):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    folder = tmp_path_factory.mktemp("bundles") / "orin"
    result = CliRunner().invoke(app, ["bundle", str(exported.path), "--profile", "jetson-orin-nano", "-o", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def deploy(tmp_path, monkeypatch, bundle, *extra, with_rsync=True, **switches):
    for key, value in standins.install(tmp_path / "standin", with_rsync=with_rsync).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STANDIN_LOG", str(tmp_path / "ssh.log"))
    for key, value in switches.items():
        monkeypatch.setenv(f"STANDIN_{key.upper()}", str(value))
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(app, ["deploy", str(bundle), "--host", "nvidia@jetson", *extra])


def home(tmp_path):
    return tmp_path / "standin" / "home"


@pytest.mark.parametrize("with_rsync", [True, False], ids=["rsync", "scp"])
def test_deploy_builds_measures_and_brings_results_back(tmp_path, monkeypatch, jetson_bundle, with_rsync):
    result = deploy(tmp_path, monkeypatch, jetson_bundle, "--batch", "1", "--batch", "4", with_rsync=with_rsync)
    assert result.exit_code == 0, result.output
    remote = home(tmp_path) / "vitprune-bundles" / "orin"
    assert (remote / "build.sh").is_file() and (remote / "bundle.json").is_file()  # the copy
    assert any(remote.glob("*.engine"))  # build.sh ran there
    fetched = sorted((tmp_path / "results" / "jetson-orin-nano").glob("*.json"))
    assert [path.name for path in fetched] == [
        "vitprune_tiny_patch4_32_topk_r0.1_trt_b1_fp16.json",
        "vitprune_tiny_patch4_32_topk_r0.1_trt_b4_fp16.json",
    ]
    results = load_results([tmp_path / "results"])
    assert {r["batch"] for r in results} == {1, 4} and all(r["backend"] == "trt" for r in results)
    output = result.output
    assert "== build on nvidia@jetson" in output and "built" in output  # streamed
    assert "median 8.000 ms" in output  # profile.sh's own line for batch 4
    assert "jetson-orin-nano" in output and "fetched" in output  # the compare table and the files
    assert ("rsync" if with_rsync else "scp") in output


def test_a_bundle_name_is_never_run_as_a_command(tmp_path, monkeypatch, jetson_bundle):
    hostile = tmp_path / "x; touch PWNED #"
    shutil.copytree(jetson_bundle, hostile)
    result = deploy(tmp_path, monkeypatch, hostile, "--remote-dir", "bundles")
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.rglob("PWNED")) and not list(home(tmp_path).rglob("PWNED"))
    assert (home(tmp_path) / "bundles" / "x-touch-pwned").is_dir()
    # an argument for build.sh reaches it as one word: build.sh rejects it, nothing else runs
    result = deploy(tmp_path, monkeypatch, hostile, "--build-arg=--x; touch PWNED2")
    assert result.exit_code == 2 and "build failed on nvidia@jetson" in result.output
    assert "error: unknown argument '--x; touch PWNED2'" in result.output
    assert not list(tmp_path.rglob("PWNED2")) and not list(home(tmp_path).rglob("PWNED2"))
    words = remote_command('cd "$1"', "a; rm -rf ~", "$(reboot)")
    assert words.endswith("'a; rm -rf ~' '$(reboot)'")


def test_unreachable_host_is_one_line(tmp_path, monkeypatch, jetson_bundle):
    result = deploy(tmp_path, monkeypatch, jetson_bundle, unreachable=1)
    assert result.exit_code == 2
    assert (
        "cannot reach nvidia@jetson over SSH (ssh: connect to host jetson port 22: Connection refused)" in result.output
    )
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_missing_tensorrt_is_one_line(tmp_path, monkeypatch, jetson_bundle):
    result = deploy(tmp_path, monkeypatch, jetson_bundle, no_tensorrt=1)
    assert result.exit_code == 2
    assert "TensorRT is not installed on nvidia@jetson" in result.output
    assert not (home(tmp_path) / "vitprune-bundles" / "orin").exists()  # nothing copied


def test_full_disk_is_one_line(tmp_path, monkeypatch, jetson_bundle):
    result = deploy(tmp_path, monkeypatch, jetson_bundle, free_kb=1024)
    assert result.exit_code == 2
    assert "nvidia@jetson has 1 MiB free under 'vitprune-bundles'" in result.output
    assert not (home(tmp_path) / "vitprune-bundles" / "orin").exists()


def test_a_run_that_breaks_halfway_keeps_what_it_measured(tmp_path, monkeypatch, jetson_bundle):
    result = deploy(tmp_path, monkeypatch, jetson_bundle, "--batch", "1", "--batch", "4", fail_batch=4)
    assert result.exit_code == 2
    assert "profile failed on nvidia@jetson (exit 1)" in result.output
    assert "kept the 1 result file(s) it wrote" in result.output
    kept = list((tmp_path / "results" / "jetson-orin-nano").glob("*.json"))
    assert [path.name for path in kept] == ["vitprune_tiny_patch4_32_topk_r0.1_trt_b1_fp16.json"]
    assert json.loads(kept[0].read_text())["batch"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--remote-dir", "a;b"], "--remote-dir 'a;b' may hold only"),
        (["--host", "-oProxyCommand=x"], "--host must be user@host"),
        (["--copy", "ftp"], "--copy must be rsync or scp"),
    ],
)
def test_bad_options_are_one_line(tmp_path, monkeypatch, jetson_bundle, extra, message):
    result = deploy(tmp_path, monkeypatch, jetson_bundle, *extra)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "ssh.log").exists()  # nothing ran


def test_not_a_bundle(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    result = deploy(tmp_path, monkeypatch, tmp_path / "empty")
    assert result.exit_code == 2 and "has no bundle.json" in result.output
