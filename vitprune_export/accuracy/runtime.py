"""Where training and evaluation run: the device, mixed precision, data loaders and processes.

* ``--device auto|cpu|cuda|cuda:N``: ``auto`` takes CUDA when PyTorch sees a
  device; under ``torchrun`` each process takes ``cuda:LOCAL_RANK``.
* ``--amp off|bf16|fp16``: :func:`torch.autocast` around the forward pass;
  fp16 (CUDA only) adds a :class:`torch.amp.GradScaler`, bf16 needs none and
  also runs on the CPU.
* Processes: ``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``;
  :func:`processes` opens the process group (NCCL on CUDA, gloo on the CPU) and
  the training loop wraps the model in DistributedDataParallel.
* :class:`GlobalBatchSampler`: every process takes its share of each *global*
  batch of one seeded permutation, so ``W`` processes with ``batch / W`` images
  each take the steps one process takes with ``batch`` images.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..errors import VitPruneError

AMP_MODES = ("off", "bf16", "fp16")
MAX_DEFAULT_WORKERS = 8


# -- device and precision -----------------------------------------------------------------
def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` → a :class:`torch.device` that exists here.

    ``auto`` and ``cuda`` without an index take ``cuda:local_rank`` (one GPU per
    process under torchrun).
    """
    text = str(spec).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise VitPruneError(f"--device must be auto, cpu, cuda or cuda:N, not {spec!r}")
    if not torch.cuda.is_available():
        raise VitPruneError(f"--device {spec} but PyTorch sees no CUDA device here; use --device cpu (or auto)")
    index = int(text[5:]) if ":" in text else local_rank
    count = torch.cuda.device_count()
    if index >= count:
        raise VitPruneError(f"--device {spec}: cuda:{index} does not exist ({count} CUDA device(s): 0…{count - 1})")
    return torch.device("cuda", index)


def check_amp(mode: str, device: torch.device) -> None:
    if mode not in AMP_MODES:
        raise VitPruneError(f"--amp must be one of {', '.join(AMP_MODES)}, not {mode!r}")
    if mode == "fp16" and device.type != "cuda":
        raise VitPruneError("--amp fp16 needs a CUDA device; on the CPU use --amp bf16 or off")


def autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass (``off``: no autocast)."""
    if mode == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(mode: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""
    return torch.amp.GradScaler(device.type) if mode == "fp16" else None


# -- processes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Processes:
    """This process's place among the ``world_size`` processes of one run (1 without torchrun)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def current(cls) -> Processes:
        """The process group opened by :func:`processes`, or one process."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))
        return cls()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over the processes (float64, so counts stay exact)."""
        if not self.distributed:
            return [float(v) for v in values]
        import torch.distributed as dist

        tensor = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def sum_tensors(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Sum each tensor over the processes (in place on a copy)."""
        if not self.distributed:
            return list(tensors)
        import torch.distributed as dist

        summed = []
        for tensor in tensors:
            copy = tensor.detach().clone()
            dist.all_reduce(copy)
            summed.append(copy)
        return summed

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def _collective_device() -> torch.device:
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def processes(device_spec: str = "auto") -> Iterator[tuple[Processes, torch.device]]:
    """Open the process group when torchrun started several processes; yield (processes, device).

    NCCL when the processes train on CUDA, gloo on the CPU. The group is closed on the way out.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    if not launched_by_torchrun():
        yield Processes(), device
        return
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    opened = not dist.is_initialized()
    if opened:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield Processes.current(), device
    finally:
        if opened:
            dist.destroy_process_group()


# -- data loading -------------------------------------------------------------------------
class GlobalBatchSampler(torch.utils.data.Sampler):
    """Index lists of this process's share of each global batch of one seeded permutation.

    Epoch ``e`` shuffles with ``seed · 100003 + e``; global batch ``k`` is
    ``perm[k·B : (k+1)·B]``, split into ``world_size`` contiguous near-equal
    parts. A last global batch with fewer images than processes is dropped
    (only possible with more than one process).
    """

    def __init__(
        self, size: int, global_batch: int, processes: Processes = Processes(), seed: int = 0, shuffle: bool = True
    ):
        if global_batch < processes.world_size:
            raise VitPruneError(
                f"--batch {global_batch} is smaller than the {processes.world_size} processes; "
                f"give at least one image per process"
            )
        self.size, self.global_batch, self.processes = size, global_batch, processes
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_sizes(self) -> list[int]:
        """Images in each global batch of an epoch (the same on every process)."""
        sizes = [min(self.global_batch, self.size - start) for start in range(0, self.size, self.global_batch)]
        if sizes and sizes[-1] < self.processes.world_size:
            sizes.pop()
        return sizes

    def __len__(self) -> int:
        return len(self.global_sizes())

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            # one draw first, as a shuffling DataLoader takes its base seed from the same generator:
            # one process keeps the order (and so the results) of the single-process loader before it
            torch.empty((), dtype=torch.int64).random_(generator=generator)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        world, rank = self.processes.world_size, self.processes.rank
        for step, size in enumerate(self.global_sizes()):
            batch = order[step * self.global_batch : step * self.global_batch + size]
            yield [int(i) for i in torch.tensor(batch).tensor_split(world)[rank].tolist()]


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation batches of this process's images ``rank, rank + W, …`` (every image once over all processes)."""

    def __init__(self, size: int, batch: int, processes: Processes = Processes()):
        self.indices = list(range(processes.rank, size, processes.world_size))
        self.batch = batch

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch)

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.indices), self.batch):
            yield self.indices[start : start + self.batch]


def default_workers(dataset: torch.utils.data.Dataset) -> int:
    """Loader processes: none for images already in memory, else the CPUs shared by the local processes (≤ 8)."""
    if getattr(dataset, "in_memory", False):
        return 0
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(MAX_DEFAULT_WORKERS, cpus // max(local_world, 1) - 1))


def loader(
    dataset: torch.utils.data.Dataset,
    batch_sampler: torch.utils.data.Sampler,
    device: torch.device,
    workers: int | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader with ``workers`` processes (default :func:`default_workers`), pinned memory on CUDA."""
    workers = default_workers(dataset) if workers is None else workers
    if workers < 0:
        raise VitPruneError(f"--workers must be ≥ 0, got {workers}")
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        generator=torch.Generator().manual_seed(0),  # workers' base seed; the global RNG is left alone
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )


__all__ = [
    "AMP_MODES",
    "GlobalBatchSampler",
    "Processes",
    "ShardSampler",
    "autocast",
    "check_amp",
    "default_workers",
    "grad_scaler",
    "launched_by_torchrun",
    "loader",
    "processes",
    "resolve_device",
]
