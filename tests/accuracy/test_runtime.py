"""Where runs train: device resolution, mixed precision, loaders and the global-batch sampler."""

from __future__ import annotations

import pytest
import torch

from vitprune_export.accuracy.runtime import (
    GlobalBatchSampler,
    Processes,
    ShardSampler,
    autocast,
    check_amp,
    default_workers,
    grad_scaler,
    resolve_device,
)
from vitprune_export.errors import VitPruneError


def test_auto_and_cpu_resolve_here(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_index_follows_the_local_rank_and_is_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)
    with pytest.raises(VitPruneError, match="cuda:2 does not exist"):
        resolve_device("cuda:2")


@pytest.mark.parametrize(
    "spec, fragment", [("gpu", "must be auto, cpu, cuda or cuda:N"), ("cuda:x", "must be auto, cpu, cuda")]
)
def test_bad_device_names(spec, fragment):
    with pytest.raises(VitPruneError, match=fragment):
        resolve_device(spec)


def test_cuda_without_a_gpu_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(VitPruneError, match="sees no CUDA device"):
        resolve_device("cuda")


def test_amp_modes():
    cpu = torch.device("cpu")
    with pytest.raises(VitPruneError, match="needs a CUDA device"):
        check_amp("fp16", cpu)
    with pytest.raises(VitPruneError, match="must be one of off, bf16, fp16"):
        check_amp("fp8", cpu)
    check_amp("bf16", cpu)
    assert grad_scaler("bf16", cpu) is None and grad_scaler("off", cpu) is None
    layer = torch.nn.Linear(4, 4)
    with autocast("bf16", cpu):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with autocast("off", cpu):
        assert layer(torch.randn(2, 4)).dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_on_cuda_uses_a_grad_scaler():
    device = resolve_device("cuda")
    check_amp("fp16", device)
    assert isinstance(grad_scaler("fp16", device), torch.amp.GradScaler)
    with autocast("fp16", device):
        assert torch.nn.Linear(4, 4).to(device)(torch.randn(2, 4, device=device)).dtype == torch.float16


def test_global_batches_split_across_processes_are_the_single_process_batches():
    single = GlobalBatchSampler(103, 16, Processes(), seed=3)
    shares = [GlobalBatchSampler(103, 16, Processes(2, rank), seed=3) for rank in (0, 1)]
    for epoch in (0, 1):
        for sampler in (single, *shares):
            sampler.set_epoch(epoch)
        batches = list(single)
        for whole, first, second in zip(batches, *shares, strict=True):
            assert first + second == whole
            assert abs(len(first) - len(second)) <= 1
    assert sorted(i for batch in single for i in batch) == list(range(103))
    assert single.global_sizes() == [16] * 6 + [7]
    assert list(GlobalBatchSampler(103, 16, Processes(), seed=3)) != batches  # epoch 1 reshuffled


def test_a_last_batch_smaller_than_the_processes_is_dropped():
    assert GlobalBatchSampler(17, 8, Processes(3, 0)).global_sizes() == [8, 8]
    assert GlobalBatchSampler(17, 8, Processes()).global_sizes() == [8, 8, 1]
    with pytest.raises(VitPruneError, match="smaller than the 4 processes"):
        GlobalBatchSampler(17, 2, Processes(4, 0))


def test_shards_cover_every_image_once():
    shards = [list(ShardSampler(11, 3, Processes(3, rank))) for rank in range(3)]
    flat = sorted(i for shard in shards for batch in shard for i in batch)
    assert flat == list(range(11))
    assert all(len(batch) <= 3 for shard in shards for batch in shard)


def test_default_workers(monkeypatch):
    class InMemory(torch.utils.data.Dataset):
        in_memory = True

    class Files(torch.utils.data.Dataset):
        pass

    assert default_workers(InMemory()) == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(16)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_workers(Files()) == 7
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert default_workers(Files()) == 8


def test_compiled_training_takes_the_eager_steps():
    """``--compile``: torch.compile of the training forward changes how the steps run, not what they compute."""
    from torch._dynamo.utils import counters

    from vitprune_export.accuracy.data import Preprocessing, TensorImageDataset, load_dataset
    from vitprune_export.accuracy.finetune import RunSettings, TrainingRecipe, finetune
    from vitprune_export.pruning.models import create_model
    from vitprune_export.pruning.patch import apply_method

    torch._dynamo.reset()
    counters.clear()
    weights = []
    for compile in (False, True):
        model = create_model("vitprune_tiny_patch4_32", "random", seed=0, num_classes=10)
        model = apply_method(model, "topk", rate=0.1)
        digits = load_dataset("digits", "train", Preprocessing.for_model(model))
        train = TensorImageDataset("train", digits.images[:64], digits.labels[:64], digits.classes)
        recipe = TrainingRecipe(epochs=1, batch_size=32, lr=1e-3, seed=0)
        finetune(model, train, None, recipe, run=RunSettings(device="cpu", compile=compile), progress=False)
        weights.append(model.state_dict())
    eager, compiled = weights
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo compiled the forward
    for name in eager:
        assert (eager[name] - compiled[name]).abs().max() <= 1e-4, name
