"""A new user's first hour: results land in ./results, nothing is lost on a signal, every next: hint runs when
pasted, messages point at the right option, output fits 80 columns, and `vitprune check` tells the truth."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import TINY_MODEL, tree_state

TINY = ["--model", TINY_MODEL, "--weights", "random"]


def next_hint(output: str) -> list[list[str]]:
    """The commands of the one ``next:`` line (shell comments dropped, ``&&`` split), without ``vitprune``."""
    lines = [line for line in output.splitlines() if line.startswith("next: ")]
    assert len(lines) == 1, output
    words = shlex.split(lines[0][len("next: ") :], comments=True)
    commands, current = [], []
    for word in [*words, "&&"]:
        if word == "&&":
            assert current[0] == "vitprune", lines[0]
            commands.append(current[1:])
            current = []
        else:
            current.append(word)
    return commands


def test_profile_writes_results_in_the_working_directory_never_the_shipped_ones(cli, inputs):
    from vitprune_export.measure.results import reference_results

    shipped = tree_state(reference_results())
    result = cli("profile", inputs["onnx"], "--iterations", "2", "--warm-up", "0")
    assert result.exit_code == 0, result.output
    written = list((cli.work / "results").rglob("*.json"))
    assert len(written) == 1 and written[0].parent.parent == cli.work / "results"
    assert tree_state(reference_results()) == shipped
    again = cli("profile", inputs["onnx"], "--iterations", "2", "--warm-up", "0")
    assert again.exit_code == 2 and "--force" in again.output
    assert cli("profile", inputs["onnx"], "--iterations", "2", "--warm-up", "0", "--force").exit_code == 0


def test_next_hints_are_quoted_unwrapped_and_run_when_pasted(cli, tmp_path):
    """export → profile → compare, and rewrite → build → profile, each typed exactly as printed, from a folder
    whose name has a space and is longer than 80 columns once in a command."""
    folder = tmp_path / "a folder with a long name, to make every hint wider than eighty columns"
    exported = cli("export", *TINY, "--method", "topk", "--rate", "0.1", "--plugin-nodes", "-o", folder / "m.onnx")
    assert exported.exit_code == 0, exported.output
    [profile] = next_hint(exported.output)
    assert profile == ["profile", str(folder / "m.onnx"), "--backend", "ort-cpu"]
    profiled = cli(*profile)
    assert profiled.exit_code == 0, profiled.output
    baseline, compare = next_hint(profiled.output)  # no baseline yet: the hint measures it first
    assert baseline[:2] == ["profile", "--backend"] and "none" in baseline and compare[0] == "compare"
    assert cli(*baseline).exit_code == 0
    compared = cli(*compare)
    assert compared.exit_code == 0, compared.output
    assert next_hint(cli(*profile, "--force").output) == [compare]  # with the baseline there: compare only

    rewritten = cli("rewrite", folder / "m.onnx", "--to", "standard")
    assert rewritten.exit_code == 0, rewritten.output
    [build] = next_hint(rewritten.output)
    assert build[:2] == ["build", str(folder / "m_standard.onnx")] and "--profile" in build
    pytest.importorskip("tensorrt_rtx", reason="building the hinted engine needs TensorRT for RTX")
    built = cli(*build)
    assert built.exit_code == 0, built.output
    [profile_engine] = next_hint(built.output)
    ran = cli(*profile_engine)  # an engine runs on a GPU only: here the one thing missing may be the GPU
    assert ran.exit_code == 0 or ("GPU" in ran.output and ran.exit_code == 2), ran.output

    plugins = cli("rewrite", folder / "m.onnx", "--to", "plugins", "-o", folder / "p.onnx")
    assert plugins.exit_code == 0, plugins.output
    commands = next_hint(plugins.output)
    assert commands[0] == ["plugins", "build"] and commands[1][:2] == ["build", str(folder / "p.onnx")]
    assert "--profile" in commands[1]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_export_leaves_no_file_behind(tmp_path, signum, code):
    """The temporary file appears beside the output as soon as the export starts; the signal comes while it
    is there, and the command removes it on the way out."""
    out = tmp_path / "out"
    # The child starts as from a terminal: Python's own SIGINT handler, SIGINT and SIGTERM unblocked. A test
    # process may hand down SIGINT ignored or blocked (left so by a library in the same worker), which a real
    # shell does not; then the signal never arrives and the export simply finishes.
    terminal_signals = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM}); "
    )
    command = [sys.executable, "-c", terminal_signals + "from vitprune_export.cli import main; main()", "export", *TINY]
    command += ["--method", "topk", "--rate", "0.1", "-o", str(out / "m.onnx")]
    # torch makes its own compile cache folder under TMPDIR on import unless told where: not a vitprune file
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "HF_HUB_OFFLINE": "1"}
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "torch-cache")
    (tmp_path / "tmp").mkdir()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.iterdir())) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the export ended before the signal could be sent"
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == code, output
    assert "interrupted; nothing was written" in output and "Traceback" not in output
    assert list(out.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_compare_messages_name_the_option_and_the_near_miss(cli, inputs):
    plot = cli("compare", "--references", "--plot", Path(inputs["blocker"]) / "plot.png")
    assert plot.exit_code == 2 and "--plot" in plot.output and "--output" not in plot.output
    baseline = cli("compare", "--references", "--baseline", "nonee")
    assert baseline.exit_code == 2 and "did you mean 'none'" in baseline.output


def test_near_miss_of_a_short_model_name_is_the_model_it_starts():
    from typer.testing import CliRunner

    from vitprune_export.cli import app

    result = CliRunner().invoke(app, ["flops", "--model", "deit_tiny", "--method", "topk", "--rate", "0.1"])
    assert result.exit_code == 2 and "did you mean 'deit_tiny_patch16_224'" in result.output


def test_a_foreign_onnx_is_accepted_with_a_note_saying_what_is_unknown(cli, inputs):
    result = cli("build", inputs["foreign"], "--profile", "rtx4090", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "note:" in result.output and "not written by vitprune" in " ".join(result.output.split())


def test_usage_errors_are_one_line_like_every_other_error(cli):
    result = cli("export", "--rat", "0.1")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: No such option: --rat (Possible options: --atol, --rate, --rates); see 'vitprune export -h'"
    ]


COMMANDS = ["export", "flops", "rewrite", "build", "bundle", "profile", "compare", "methods", "check"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_and_keeps_its_defaults(cli, command):
    text = cli(command, "--help").output
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert not re.search(r"\w \.(\s|│|$)", text, re.MULTILINE), "a [default: …] eaten as markup leaves ' .'"


def test_output_is_written_for_80_columns(cli, inputs, monkeypatch):
    """At 200 columns nothing wraps: every line but the paths and the next: hint is ≤ 80 characters by design."""
    monkeypatch.setenv("COLUMNS", "200")
    runs = [
        cli("check"),
        cli("flops", "--method", "topk", "--rate", "0.06"),
        cli("profile", inputs["onnx"], "--iterations", "2", "--warm-up", "0"),
    ]
    for run in runs:
        assert run.exit_code == 0, run.output
        long = [line for line in run.output.splitlines() if len(line) > 80 and not line.startswith(("next:", "wrote"))]
        assert not long, run.output


def test_output_fits_80_columns(cli, inputs):
    runs = [
        cli("methods"),
        cli("check"),
        cli("flops", "--method", "topk", "--rate", "0.06"),
        cli("compare", "--references"),
        cli("profile", inputs["onnx"], "--iterations", "2", "--warm-up", "0"),
        cli("export", *TINY, "--method", "topk", "--rate", "0.1", "-o", "m.onnx"),
    ]
    for run in runs:
        assert run.exit_code == 0, run.output
        long = [line for line in run.output.splitlines() if len(line) > 80 and not line.startswith("next: ")]
        assert not long, run.output
    assert len(runs[0].output.splitlines()) <= 50, "vitprune methods should fit a screen or two"


def test_check_reports_this_machine(cli):
    import importlib.util

    import onnxruntime
    import torch

    result = cli("check", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["torch"]["version"] == torch.__version__
    assert report["onnxruntime"]["providers"] == onnxruntime.get_available_providers()
    assert bool(report["torch"]["gpus"]) == torch.cuda.is_available()
    has_rtx = importlib.util.find_spec("tensorrt_rtx") is not None
    assert (report["tensorrt"]["tensorrt_rtx"] is not None) == has_rtx
    profiles = {row["profile"]: row for row in report["profiles"]}
    assert profiles["cpu"]["can_build"] is True
    assert profiles["rtx-generic"]["can_build"] == has_rtx
    human = cli("check")
    assert human.exit_code == 0 and "ONNX Runtime" in human.output and "profile rtx-generic" in human.output


def test_check_without_tensorrt(cli, monkeypatch):
    """With neither TensorRT importable (as on a machine without the dev extra), no profile but cpu builds."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    result = cli("check", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tensorrt"] == {"tensorrt": None, "tensorrt_rtx": None}
    verdicts = {row["profile"]: row for row in report["profiles"]}
    assert verdicts["cpu"]["can_build"] is True
    if not report["torch"]["gpus"]:
        assert not any(row["can_build"] for name, row in verdicts.items() if name != "cpu")
    assert "pip install tensorrt-rtx" in verdicts["rtx-generic"]["how"]
    human = cli("check")
    assert "TensorRT          not installed" in " ".join(human.output.split()) or "not installed (pip" in human.output


def test_a_warning_during_a_spinner_prints_above_it_not_over_it(monkeypatch):
    import importlib
    import io

    from rich.console import Console

    app_module = importlib.import_module("vitprune_export.cli.app")  # the module, not the Typer app it holds

    terminal = Console(force_terminal=True, file=io.StringIO(), width=80)
    monkeypatch.setattr(app_module, "console", terminal)
    assert app_module._warning_console() is app_module.err_console
    with terminal.status("building the pruned model…"):
        assert app_module._warning_console() is terminal  # the live display prints it above the spinner
        app_module._show_warning("USING RANDOM WEIGHTS for x", UserWarning, "", 0)
    assert "USING RANDOM WEIGHTS for x" in terminal.file.getvalue()


def test_python_dash_m_runs_the_cli():
    run = subprocess.run(
        [sys.executable, "-m", "vitprune_export.cli", "plugins", "build", "--arch", "foo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and run.stderr.strip().startswith("error: --arch takes SM numbers"), run.stderr


def quoted_outputs(page: Path, command: str) -> list[tuple[list[str], list[str]]]:
    """(arguments, the '# ' lines under them) for each ``vitprune COMMAND …`` a docs page quotes with its output."""
    quoted, lines = [], page.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"vitprune {command} "):
            output = []
            for following in lines[index + 1 :]:
                if not following.startswith("# "):
                    break
                output.append(following[2:])
            if output:
                quoted.append((shlex.split(line)[1:], output))
    return quoted


def test_the_user_guide_quotes_what_flops_prints(cli):
    """What a page shows a command printing is what the command prints."""
    page = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"
    quoted = quoted_outputs(page, "flops")
    assert quoted, "the user guide quotes a flops run"
    for arguments, output in quoted:
        result = cli(*arguments)
        assert result.exit_code == 0, result.output
        printed = [" ".join(line.split()) for line in result.output.splitlines() if line.strip()]
        for line in output:
            assert " ".join(line.split()) in printed, (arguments, line, printed)
