"""``vitprune deploy`` against a device that sends back what it should not: links to local files, FIFOs,
oversized files, files for other devices, odd names and terminal escape sequences (stand-in
``ssh``/``rsync``/``scp`` of tests/measure/standins.py, which copy links and FIFOs as they are)."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.measure.deploy import MAX_RESULT_BYTES, DeployRequest, _scp, _ssh, _transport, printable

from .test_deploy import TINY, deploy, home

DEVICE = "jetson-orin-nano"
GOOD = "vitprune_tiny_patch4_32_topk_r0.1_trt_b1_fp16.json"


@pytest.fixture(scope="module")
def jetson_bundle(export_cache, tmp_path_factory):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    folder = tmp_path_factory.mktemp("bundles") / "orin"
    result = CliRunner().invoke(app, ["bundle", str(exported.path), "--profile", DEVICE, "-o", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def _plant(tmp_path):
    """What a hostile host holds in the bundle's results/ before the run; returns the local secret."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id.json").write_text('{"secret": "local key"}')
    results = home(tmp_path) / "vitprune-bundles" / "orin" / "results"
    mine = results / DEVICE
    mine.mkdir(parents=True)
    os.symlink(secret / "id.json", mine / "link.json")  # a link to a file of the user's machine
    os.symlink(secret, mine / "linked")  # a link to a folder of it
    os.mkfifo(mine / "fifo.json")
    (mine / "big.json").write_bytes(b" " * (MAX_RESULT_BYTES + 1))
    (mine / "x[red]\x1b[2J.json").write_text("{}")
    (results / "other-device").mkdir()
    (results / "other-device" / "x.json").write_text('{"foreign": true}')
    (results / "top.json").write_text('{"foreign": true}')
    return secret


@pytest.mark.parametrize("with_rsync", [True, False], ids=["rsync", "scp"])
def test_only_regular_json_files_of_this_device_come_back(tmp_path, monkeypatch, jetson_bundle, with_rsync):
    _plant(tmp_path)
    (tmp_path / "results" / "other-device").mkdir(parents=True)
    (tmp_path / "results" / "other-device" / "x.json").write_text('{"mine": true}')
    result = deploy(
        tmp_path, monkeypatch, jetson_bundle, "--batch", "1", with_rsync=with_rsync, copy_log=tmp_path / "copy.log"
    )
    assert result.exit_code == 0, result.output
    local = tmp_path / "results"
    landed = sorted(str(p.relative_to(local)) for p in local.rglob("*") if not p.is_dir())
    assert landed == [f"{DEVICE}/{GOOD}", "other-device/x.json"]
    assert json.loads((local / "other-device" / "x.json").read_text()) == {"mine": True}  # not overwritten
    assert "local key" not in "".join(p.read_text() for p in local.rglob("*.json"))
    output = " ".join(result.output.split())  # the console wraps long lines
    assert "link.json from nvidia@jetson: not a regular file" in output
    assert "fifo.json from nvidia@jetson: not a regular file" in output
    assert "big.json from nvidia@jetson: 4194305 bytes, over the 4 MiB" in output
    assert "results/other-device/x.json from nvidia@jetson: not under results/jetson-orin-nano/" in output
    assert "results/top.json from nvidia@jetson: not under" in output
    assert "a name outside letters" in output and "\x1b" not in output
    if with_rsync:
        log = (tmp_path / "copy.log").read_text().splitlines()
        fetch = next(line for line in log if ":vitprune-bundles/orin/results/" in line)
        for flag in ("--no-links", "--no-specials", "--no-devices", f"--max-size={MAX_RESULT_BYTES}"):
            assert flag in fetch


def test_a_fifo_does_not_hide_the_failed_step(tmp_path, monkeypatch, jetson_bundle):
    _plant(tmp_path)
    result = deploy(tmp_path, monkeypatch, jetson_bundle, "--batch", "1", "--batch", "4", fail_batch=4)
    assert result.exit_code == 2
    assert "profile failed on nvidia@jetson (exit 1)" in result.output
    assert "kept the 1 result file(s) it wrote" in result.output
    assert [p.name for p in (tmp_path / "results" / DEVICE).iterdir()] == [GOOD]


def test_device_output_is_printed_without_escape_sequences(tmp_path, monkeypatch, jetson_bundle):
    result = deploy(tmp_path, monkeypatch, jetson_bundle, "--build-arg=\x1b]0;pwned\x07\x1b[2J")
    assert result.exit_code == 2 and "error: unknown argument '" in result.output  # build.sh echoed it back
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert printable("a\x1b[31mb\x9bc\td\n") == "a[31mbc\td\n"


@pytest.mark.parametrize(
    "host",
    ["u@-oProxyCommand=touch", "-oProxyCommand=x", "@jetson", "u@", "u;x@jetson", "u@jet son", "u@h:/tmp", "a@b@c"],
)
def test_user_and_host_are_checked_on_their_own(tmp_path, monkeypatch, jetson_bundle, host):
    result = deploy(tmp_path, monkeypatch, jetson_bundle, "--host", host)
    assert result.exit_code == 2 and "--host must be user@host" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "ssh.log").exists()  # nothing ran


def test_every_connection_has_a_timeout_and_keepalive(tmp_path):
    request = DeployRequest(bundle=tmp_path, host="nvidia@jetson", port=2222)
    for words in (_ssh(request), _transport(request), _scp(request, "a", "b")):
        text = " ".join(words)
        assert "ConnectTimeout=" in text and "ServerAliveInterval=" in text and "BatchMode=yes" in text


def test_a_device_named_like_markup_prints_in_the_table(tmp_path):
    from tests.measure.test_compare import latency
    from vitprune_export.measure.results import write_result

    for method, median in (("none", 2.0), ("topk", 1.5)):
        write_result(tmp_path / f"{method}.json", latency(method, median, device="x[/x]"))
    result = CliRunner().invoke(app, ["compare", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "x[/x]" in result.output
