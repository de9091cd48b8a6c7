"""finetune/adjust: outputs checked before work, one training state per output, and ``--resume`` only for
the same run (model, method, schedule, data, processes, recipe)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.accuracy.test_finetune import _colour_folder
from vitprune_export.accuracy.finetune import check_run_outputs, training_state_path
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError

TINY = "vitprune_tiny_patch4_32"


def test_a_checkpoint_and_a_schedule_of_one_name_keep_their_states_apart(tmp_path):
    assert training_state_path(tmp_path / "x.pt").name == "x.pt.state.pt"
    assert training_state_path(tmp_path / "x.json").name == "x.json.state.pt"


def test_a_new_run_does_not_overwrite_an_interrupted_runs_state(tmp_path):
    output = tmp_path / "x.pt"
    state = training_state_path(output)
    state.write_bytes(b"an interrupted run")
    with pytest.raises(VitPruneError, match="holds the training state of an earlier run.*--resume.*--force"):
        check_run_outputs(output, resume=False, force=False)
    assert check_run_outputs(output, resume=True, force=False) == state
    assert check_run_outputs(output, resume=False, force=True) == state
    assert state.read_bytes() == b"an interrupted run"  # checking writes nothing


def test_an_output_in_the_way_or_unwritable_is_refused_before_work(tmp_path):
    output = tmp_path / "x.pt"
    output.write_bytes(b"an earlier checkpoint")
    with pytest.raises(VitPruneError, match="--force"):
        check_run_outputs(output, resume=False, force=False)
    check_run_outputs(output, resume=False, force=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(VitPruneError):
        check_run_outputs(tmp_path / "file" / "x.pt", resume=False, force=False)
    with pytest.raises(VitPruneError, match="--save-checkpoint"):
        check_run_outputs(tmp_path / "s.json", resume=False, force=False, extra=((output, "--save-checkpoint"),))


def test_resume_refuses_another_method_or_rate_and_a_rerun_needs_force(tmp_path):
    data = _colour_folder(tmp_path / "data")
    output = tmp_path / "x.pt"

    def run(*extra):
        arguments = ["finetune", "--model", TINY, "--weights", "random", "--data", str(data), "--epochs", "1"]
        arguments += ["--batch", "4", "--device", "cpu", "-o", str(output), *extra]
        return CliRunner().invoke(app, arguments)

    first = run("--method", "topk", "--rate", "0.1")
    assert first.exit_code == 0, first.output
    written = output.read_bytes()
    again = run("--method", "topk", "--rate", "0.1")
    assert again.exit_code == 2 and "--force" in again.output
    other = run("--method", "evit", "--rate", "0.1", "--resume")
    assert other.exit_code == 2 and "method topk → evit" in other.output, other.output
    rate = run("--method", "topk", "--rate", "0.2", "--resume")
    assert rate.exit_code == 2 and "keep_counts" in rate.output, rate.output
    assert output.read_bytes() == written
