"""The CUDA kernels, called through their C ABI from PyTorch, against the PyTorch references
(the onnx_custom_plugin sample's pattern, without TensorRT): several shapes, batch ≥ 1,
fp32 ≤ 1e-4 and fp16 ≤ 1e-2; first the odd input a first GPU should meet (NaN, ±inf, ties, one patch token,
the largest keep, exact copies), then fp16 tokens with fp32 scores, keys and sizes. The shapes cover both
paths of VPA and ToMe (plugins/common/vitpruneKernelMath.h, vpaPlan / tomePlan): ViT-S/16's first layer takes
the multi-launch path in fp32 (50 KB of keys) and the one-block path in fp16, the small shapes one block in both.
Skipped without an NVIDIA GPU or nvcc."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import requires_gpu
from vitprune_export.export.ops import reference
from vitprune_export.export.ops.plugin_library import find_nvcc

pytestmark = [
    pytest.mark.gpu,
    requires_gpu,
    pytest.mark.skipif(find_nvcc() is None, reason="nvcc (CUDA toolkit) is not installed"),
]

# (batch, tokens, channels, key dim, prefix, count): ViT-S/16 and DeiT-T layer shapes, registers, odd counts
SHAPES = [
    (1, 197, 384, 64, 1, 184),
    (32, 197, 192, 64, 1, 150),
    (4, 201, 384, 64, 5, 100),
    (3, 50, 64, 32, 0, 17),
    (2, 9, 8, 8, 1, 1),
]
# ToMe: class token (odd and even N), registers, no prefix, distillation token (P = 2), smallest case
TOME_SHAPES = [
    (1, 197, 384, 64, 1, 13),
    (32, 186, 192, 64, 1, 12),
    (4, 201, 384, 64, 5, 98),
    (3, 51, 64, 32, 0, 25),
    (2, 198, 384, 64, 2, 13),
    (2, 4, 8, 8, 1, 1),
]
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2}


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    from vitprune_export.export.ops.kernels import KernelABI, build_kernel_library

    return KernelABI(build_kernel_library(tmp_path_factory.mktemp("kernels")))


def _inputs(shape, dtype, seed=0):
    """Random CUDA inputs; scores are a permutation (distinct in fp16 too, so the order is unambiguous)."""
    batch, tokens, channels, key_dim, _, _ = shape
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, tokens, channels, generator=generator)
    scores = torch.stack([torch.randperm(tokens, generator=generator) for _ in range(batch)]).float() / tokens
    keys = torch.randn(batch, tokens, key_dim, generator=generator)
    sizes = 1 + 3 * torch.rand(batch, tokens, generator=generator)
    return [t.to(dtype).cuda().contiguous() for t in (x, scores, keys, sizes)]


def _close(got: torch.Tensor, want: torch.Tensor, dtype) -> None:
    assert got.shape == want.shape
    scale = want.abs().max().clamp_min(1.0)
    assert float((got.float().cpu() - want).abs().max() / scale) <= TOLERANCE[dtype]


# ---------------------------------------------------------------- odd input (docs/plugins.md, "What the kernels do …")

ODD_SCORES = {
    "one NaN": lambda s: s.index_fill(1, torch.tensor([4]), float("nan")),
    "NaN beside +inf": lambda s: s.index_fill(1, torch.tensor([3]), float("inf")).index_fill(
        1, torch.tensor([7, 11]), float("nan")
    ),
    "ties": lambda s: (s * 4).round() / 4,
    "all equal": lambda s: torch.full_like(s, 0.5),
}


@pytest.mark.parametrize("case", ODD_SCORES, ids=list(ODD_SCORES))
def test_nan_inf_and_ties_keep_the_reference_tokens_exactly(kernels, case):
    shape = (2, 17, 8, 8, 1, 6)
    x, scores, keys, sizes = _inputs(shape, torch.float32)
    scores = ODD_SCORES[case](scores.cpu()).cuda()
    got = kernels.topk_select(x, scores, 1, 6)
    tokens, _ = kernels.vpa(x, scores, (keys + 2.0).contiguous(), sizes, 1, 6, 0.001)
    torch.cuda.synchronize()
    want = reference.topk_select(x.cpu(), scores.cpu(), 1, 6)
    assert torch.equal(got.cpu(), want) and torch.equal(tokens.cpu(), want)  # the same rows, copied exactly


def test_one_patch_token_the_largest_keep_and_batch_zero(kernels):
    x, scores, keys, sizes = _inputs((1, 2, 8, 8, 1, 1), torch.float32)
    assert torch.equal(kernels.topk_select(x, scores, 1, 1).cpu(), x.cpu())  # the class token and the one patch
    largest = 12284  # 4·keep + 16 bytes of shared memory ≤ 48 KB
    x, scores, keys, sizes = _inputs((1, largest + 2, 4, 4, 1, largest), torch.float32)
    kernels.vpa(x, scores, (keys + 2.0).contiguous(), sizes, 1, largest, 0.001)
    torch.cuda.synchronize()
    x, scores, keys, sizes = _inputs((1, largest + 3, 4, 4, 1, largest + 1), torch.float32)
    with pytest.raises(RuntimeError, match="returned -1"):
        kernels.vpa(x, scores, keys, sizes, 1, largest + 1, 0.001)


def test_tome_copies_unmerged_rows_exactly(kernels):
    x, _, keys, sizes = _inputs((2, 51, 64, 32, 1, 5), torch.float32)
    sizes = torch.full_like(sizes, 3.0)  # x·3/3 is not x in floating point for every x
    got, _ = kernels.tome_merge(x, keys, sizes, 1, 5)
    torch.cuda.synchronize()
    want, _ = reference.tome_merge(x.cpu(), keys.cpu(), sizes.cpu(), 1, 5)
    patch_a = (51 + 1) // 2 - 1  # A = the even positions over all 51 tokens, the class token first
    unmerged = 1 + patch_a - 5  # rows: the class token, then the A patch tokens that did not merge
    assert torch.equal(got.cpu()[:, :unmerged], want[:, :unmerged])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_topk_select_kernel(kernels, shape, dtype):
    x, scores, _, _ = _inputs(shape, dtype)
    prefix, keep = shape[4], shape[5]
    got = kernels.topk_select(x, scores, prefix, keep)
    torch.cuda.synchronize()
    _close(got, reference.topk_select(x.float().cpu(), scores.float().cpu(), prefix, keep), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_vpa_kernel(kernels, shape, dtype):
    x, scores, keys, sizes = _inputs(shape, dtype)
    # Keys share a direction, as real keys do: Σ_k M_jk stays away from 0, where Eq. 5 is ill-conditioned.
    keys = (keys + 2.0).contiguous()
    prefix, keep = shape[4], shape[5]
    tau = 0.001
    got_tokens, got_sizes = kernels.vpa(x, scores, keys, sizes, prefix, keep, tau)
    torch.cuda.synchronize()
    want_tokens, want_sizes = reference.vpa(*(t.float().cpu() for t in (x, scores, keys, sizes)), prefix, keep, tau)
    _close(got_tokens, want_tokens, dtype)
    _close(got_sizes, want_sizes, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", TOME_SHAPES, ids=str)
def test_tome_merge_kernel(kernels, shape, dtype):
    x, _, keys, sizes = _inputs(shape, dtype)
    prefix, merges = shape[4], shape[5]
    got_tokens, got_sizes = kernels.tome_merge(x, keys, sizes, prefix, merges)
    torch.cuda.synchronize()
    want_tokens, want_sizes = reference.tome_merge(*(t.float().cpu() for t in (x, keys, sizes)), prefix, merges)
    _close(got_tokens, want_tokens, dtype)
    _close(got_sizes, want_sizes, dtype)


def test_invalid_sizes_are_refused(kernels):
    x, scores, _, _ = _inputs((1, 10, 4, 4, 1, 3), torch.float32)
    with pytest.raises(RuntimeError, match="returned -1"):
        kernels.topk_select(x, scores, 1, 10)  # 1 + 10 > 10 tokens


# ---------------------------------------------------------------- fp16 tokens with fp32 scores, keys and sizes (the *Typed ABI)


def _typed(kernels, name: str, *arguments):
    """Call vitprune<name>Typed through ctypes: the arguments as the C ABI takes them (tensors as pointers)."""
    import ctypes

    def convert(value):
        if isinstance(value, torch.Tensor):
            return ctypes.c_void_p(value.data_ptr())
        return ctypes.c_float(value) if isinstance(value, float) else value

    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    status = getattr(kernels.lib, f"vitprune{name}Typed")(*map(convert, arguments), stream)
    assert status == 0, f"vitprune{name}Typed returned {status}"


def test_fp16_tokens_are_ranked_by_their_fp32_scores(kernels):
    """Scores 1e-4 apart are one fp16 value: ranked in fp32 the kernel keeps the reference's tokens, copied exactly."""
    x, _, keys, sizes = _inputs((2, 33, 16, 8, 1, 10), torch.float32)
    scores = (0.5 + 1e-4 * torch.randperm(33).float()).expand(2, 33).contiguous().cuda()
    tokens = x.half()
    out = torch.empty(2, 11, 16, dtype=torch.float16, device="cuda")
    workspace = kernels.workspace(kernels.lib.vitpruneVPAWorkspaceSize(2, 33, 1))
    _typed(kernels, "TopKSelect", tokens, scores, out, workspace, 2, 33, 16, 1, 10, 1, 0)
    torch.cuda.synchronize()
    assert torch.equal(out.cpu(), reference.topk_select(tokens.cpu().float(), scores.cpu(), 1, 10).half())
    keys = (keys + 2.0).contiguous()
    out_sizes = torch.empty(2, 11, device="cuda")
    _typed(kernels, "VPA", tokens, scores, keys, sizes, out, out_sizes, workspace, 2, 33, 16, 8, 1, 10, 0.001, 1, 0)
    torch.cuda.synchronize()
    want_tokens, want_sizes = reference.vpa(tokens.cpu().float(), scores.cpu(), keys.cpu(), sizes.cpu(), 1, 10, 0.001)
    assert torch.equal(out.cpu().float(), want_tokens)
    _close(out_sizes, want_sizes, torch.float32)  # sizes stay fp32: the fp32 bound


@pytest.mark.parametrize("shape", TOME_SHAPES[:3], ids=str)
def test_tome_with_fp16_tokens_and_fp32_keys(kernels, shape):
    batch, tokens, channels, key_dim, prefix, merges = shape
    x, _, keys, sizes = _inputs(shape, torch.float32)
    out = torch.empty(batch, tokens - merges, channels, dtype=torch.float16, device="cuda")
    out_sizes = torch.empty(batch, tokens - merges, device="cuda")
    workspace = kernels.workspace(kernels.lib.vitpruneToMeMergeWorkspaceSize(batch, tokens, prefix))
    half = x.half()
    _typed(
        kernels,
        "ToMeMerge",
        half,
        keys,
        sizes,
        out,
        out_sizes,
        workspace,
        batch,
        tokens,
        channels,
        key_dim,
        prefix,
        merges,
        1,
        0,
    )
    torch.cuda.synchronize()
    want_tokens, want_sizes = reference.tome_merge(half.cpu().float(), keys.cpu(), sizes.cpu(), prefix, merges)
    _close(out, want_tokens, torch.float16)
    _close(out_sizes, want_sizes, torch.float32)


def test_fp32_tokens_with_fp16_side_inputs_are_refused(kernels):
    x, scores, _, _ = _inputs((1, 10, 4, 4, 1, 3), torch.float32)
    out = torch.empty(1, 4, 4, device="cuda")
    with pytest.raises(AssertionError, match="returned -1"):
        _typed(kernels, "TopKSelect", x, scores.half(), out, out, 1, 10, 4, 1, 3, 0, 1)
