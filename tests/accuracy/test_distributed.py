"""Two CPU processes under torchrun (gloo) against one process with the same global batch.

Tolerance: the two runs add the same per-image losses in a different order (two partial sums
all-reduced instead of one sum), so they differ by float32 rounding that Adam carries along:
after 3 epochs the weights agree within 1e-3 (max abs), the losses within 1e-4 (relative), and
the GAS schedule — decided from all-reduced losses and gradients — is identical on both ranks
and equal to the single process's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("distributed_run.py")
TINY = "vitprune_tiny_patch4_32"


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }


def _torchrun(*arguments: str, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return subprocess.run(
        [*command, *arguments], env=_environment(), capture_output=True, text=True, timeout=300, check=False
    )


def test_two_gloo_processes_take_the_single_process_steps_and_the_same_schedule(tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    single.mkdir(), double.mkdir()
    alone = subprocess.Popen([sys.executable, str(WORKER), str(single)], env=_environment())
    pair = _torchrun(str(WORKER), str(double))
    assert alone.wait(timeout=300) == 0
    assert pair.returncode == 0, pair.stderr[-3000:]

    one = json.loads((single / "rank_0.json").read_text())
    ranks = [json.loads((double / f"rank_{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["rates"] == ranks[1]["rates"] and ranks[0]["removed"] == ranks[1]["removed"]
    assert ranks[0]["updates"] == one["updates"] == [2, 3]
    assert ranks[0]["removed"] == one["removed"]
    assert ranks[0]["rates"] == pytest.approx(one["rates"], abs=1e-6)
    assert ranks[0]["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
    assert ranks[0]["accuracy"] == ranks[1]["accuracy"] == pytest.approx(one["accuracy"], abs=1 / 60 + 1e-9)

    weights = [
        torch.load(folder / name, weights_only=True)
        for folder, name in ((single, "rank_0.pt"),) + tuple((double, f"rank_{rank}.pt") for rank in (0, 1))
    ]
    for key in weights[0]:
        assert torch.equal(weights[1][key], weights[2][key]), key  # DDP keeps the ranks identical
        assert (weights[0][key] - weights[1][key]).abs().max() <= 1e-3, key


def test_cli_under_torchrun_prints_one_json_with_the_world_size_and_writes_once(tmp_path):
    from PIL import Image

    for label, colour in enumerate(((255, 0, 0), (0, 0, 255))):
        (tmp_path / "data" / f"class{label}").mkdir(parents=True)
        for index in range(4):
            Image.new("RGB", (8, 8), colour).save(tmp_path / "data" / f"class{label}" / f"{index}.png")
    script = tmp_path / "vitprune_cli.py"
    script.write_text("from vitprune_export.cli import main\nmain()\n")
    output = tmp_path / "tiny.pt"
    arguments = ["finetune", "--model", TINY, "--weights", "random", "--data", str(tmp_path / "data")]
    arguments += ["--epochs", "1", "--batch", "4", "--device", "cpu", "--workers", "0", "-o", str(output), "--json"]
    run = _torchrun(str(script), *arguments)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)  # one JSON document: only rank 0 prints
    assert summary["world_size"] == 2 and summary["global_batch"] == 4
    assert output.is_file() and Path(summary["training_state"]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "tiny.pt", "tiny.pt.state.pt", "vitprune_cli.py"]


def test_eval_under_torchrun_splits_the_images_and_reports_the_single_process_numbers_once(tmp_path):
    script = tmp_path / "vitprune_cli.py"
    script.write_text("from vitprune_export.cli import main\nmain()\n")
    arguments = ["eval", "--model", TINY, "--weights", "random", "--data", "digits", "--method", "topk"]
    arguments += ["--rate", "0.1", "--backend", "ort-cpu", "--batch", "16", "--json"]
    alone = subprocess.run(
        [sys.executable, str(script), *arguments], env=_environment(), capture_output=True, text=True, timeout=300
    )
    pair = _torchrun(str(script), *arguments, "-o", str(tmp_path / "pair.json"))
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert pair.returncode == 0, pair.stderr[-3000:]
    one, two = json.loads(alone.stdout), json.loads(pair.stdout)  # one JSON document: only rank 0 prints
    accuracy, shared = one["accuracy"], two["accuracy"]
    assert (accuracy["world_size"], shared["world_size"]) == (1, 2)
    assert shared["images"] == accuracy["images"] == 360  # every test image once, split between the processes
    for name in ("top1", "top5", "agreement", "reference_top1"):
        assert shared[name] == pytest.approx(accuracy[name], abs=1e-9), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair.json", "vitprune_cli.py"]


def test_the_shards_of_an_evaluation_hold_every_image_once():
    from vitprune_export.accuracy.data import ShardOfDataset, TensorImageDataset

    images, labels = torch.zeros(7, 1, 2, 2), torch.arange(7)
    dataset = TensorImageDataset("seven", images, labels, [str(i) for i in range(7)])
    shards = [ShardOfDataset(dataset, rank, 3) for rank in range(3)]
    seen = sorted(label for shard in shards for _, label in (shard[i] for i in range(len(shard))))
    assert seen == list(range(7)) and [len(shard) for shard in shards] == [3, 2, 2]
    assert all(shard.classes == dataset.classes and shard.in_memory for shard in shards)
