/*
 * Device helpers shared by the vitprune kernels: fp32/fp16 conversion, warp and block
 * reductions, a descending rank on a total order (vitpruneKernelMath.h: NaN as +inf,
 * ties to the lower index, the order of a stable descending sort; `order` is always a
 * permutation), exact row copies, the select kernel (rank a token and copy its row in one
 * launch) and the dispatch on the tokens' and the side inputs' element types.
 * Header-only; every kernel file includes it.
 */
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "vitpruneKernelMath.h"
#include "vitpruneKernelTypes.h"

namespace vitprune
{

constexpr float kNormEps = 1e-6F;

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v) { return __float2half(v); }

__device__ __forceinline__ float warpSum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffU, v, offset);
    return v;
}

struct Add
{
    template <typename V>
    __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};

struct Max
{
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

//! combine(…) of `v` over the block: within each warp by shuffles, then across the warps in warp order; every
//! thread gets the result. `scratch` holds blockDim.x / 32 values; a block-wide barrier comes first, so the
//! scratch of a previous reduction may be reused at once.
template <typename V, typename Combine>
__device__ __forceinline__ V blockReduce(V v, V* scratch, Combine combine)
{
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    for (int offset = 16; offset > 0; offset >>= 1)
        v = combine(v, __shfl_xor_sync(0xffffffffU, v, offset));
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    V total = scratch[0];
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w)
        total = combine(total, scratch[w]);
    return total;
}

__device__ __forceinline__ float blockSum(float v, float* scratch) { return blockReduce(v, scratch, Add{}); }
__device__ __forceinline__ float blockMax(float v, float* scratch) { return blockReduce(v, scratch, Max{}); }
//! Integer sum over the block: exact, whatever the order.
__device__ __forceinline__ int blockSumInt(int v, int* scratch) { return blockReduce(v, scratch, Add{}); }

//! How many of row[first], row[first + step], … (below `count`) come before row[i] in the order of ranksBefore.
template <typename S>
__device__ __forceinline__ int countBefore(S const* row, int count, int i, int first, int step)
{
    float const v = toFloat(row[i]);
    int before = 0;
    for (int j = first; j < count; j += step)
        before += ranksBefore(toFloat(row[j]), j, v, i) ? 1 : 0;
    return before;
}

//! order[rank(i)] = i for the `count` values of `row`, by the block (one thread per value).
template <typename S>
__device__ __forceinline__ void rankByBlock(S const* row, int count, int* order)
{
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        order[countBefore(row, count, i, 0, 1)] = i;
}

//! order[b, rank(i)] = i for the `count` values row[b, offset + i]; rank = how many come before value i in
//! the total order of ranksBefore (a larger key, or an equal key at a lower index; NaN as +inf), so the
//! ranks are 0 … count − 1, each once. Grid (ceil(count / kThreads), batch).
template <typename T>
__global__ void rankDescendingKernel(T const* values, int stride, int offset, int count, int* order)
{
    int const b = blockIdx.y;
    int const i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count)
        return;
    T const* row = values + static_cast<size_t>(b) * stride + offset;
    order[static_cast<size_t>(b) * count + countBefore(row, count, i, 0, 1)] = i;
}

//! L2 norm (clamped at kNormEps) of `count` rows of width `dim` starting at row `offset`: one warp per row.
//! Grid (ceil(count / (kThreads / 32)), batch); norms (batch, count).
template <typename T>
__global__ void rowNormKernel(T const* rows, int tokens, int dim, int offset, int count, float* norms)
{
    int const b = blockIdx.y;
    int const i = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int const lane = threadIdx.x & 31;
    if (i >= count)
        return;
    T const* row = rows + (static_cast<size_t>(b) * tokens + offset + i) * dim;
    float sum = 0.F;
    for (int d = lane; d < dim; d += 32)
    {
        float const v = toFloat(row[d]);
        sum += v * v;
    }
    sum = warpSum(sum);
    if (lane == 0)
        norms[static_cast<size_t>(b) * count + i] = fmaxf(sqrtf(sum), kNormEps);
}

//! Dot product of two rows of width `dim` by one warp; every lane gets it.
template <typename T>
__device__ __forceinline__ float warpDot(T const* a, T const* b, int dim)
{
    float sum = 0.F;
    for (int d = threadIdx.x & 31; d < dim; d += 32)
        sum += toFloat(a[d]) * toFloat(b[d]);
    return warpSum(sum);
}

//! True when both addresses and the byte count are multiples of `unit`.
__device__ __forceinline__ bool alignedFor(void const* src, void const* dst, size_t bytes, size_t unit)
{
    return reinterpret_cast<uintptr_t>(src) % unit == 0 && reinterpret_cast<uintptr_t>(dst) % unit == 0 && bytes % unit == 0;
}

//! The block copies `bytes` bytes (a multiple of sizeof(Unit)) from src to dst, one Unit per thread at a time.
template <typename Unit>
__device__ __forceinline__ void copyUnits(void const* src, void* dst, size_t bytes)
{
    Unit const* from = static_cast<Unit const*>(src);
    Unit* to = static_cast<Unit*>(dst);
    for (size_t c = threadIdx.x; c < bytes / sizeof(Unit); c += blockDim.x)
        to[c] = from[c];
}

//! dst[c] = src[c] for c < channels, bit for bit, by the block: 16 bytes at a time (float4) where both rows
//! are 16-byte aligned, else 4 bytes at a time (one float, or a half2 pair) where they are 4-byte aligned.
template <typename T>
__device__ __forceinline__ void copyRow(T const* src, T* dst, int channels)
{
    size_t const bytes = sizeof(T) * static_cast<size_t>(channels);
    if (alignedFor(src, dst, bytes, 16))
        copyUnits<float4>(src, dst, bytes);
    else if (alignedFor(src, dst, bytes, 4))
        copyUnits<uint32_t>(src, dst, bytes);
    else
        copyUnits<T>(src, dst, bytes);
}

//! Clear an error an earlier, unrelated CUDA call left behind, so a launcher reports only its own launches.
inline void forgetEarlierError() { static_cast<void>(cudaGetLastError()); }

//! What the select kernel reads and writes for one image batch: tokens (B, N, C) of type T, scores (B, N) of
//! type S, the output (B, P + keep, C).
template <typename T, typename S>
struct SelectArgs
{
    T const* tokens;
    S const* scores;
    T* out;
    int tokensIn;
    int channels;
    int prefix;
    int keep;
};

//! The work of the block of token `token` of image `b`, one of P + (N − P) such blocks: a prefix block copies its
//! row; a patch block ranks its patch among the patches (a block-wide count of ranksBefore: every block ranks
//! alike, so the kept rows are those of a stable descending sort) and, below `keep`, copies its row to
//! out[P + rank]. Returns the patch's rank (−1 for a prefix token); `scratch` holds blockDim.x / 32 ints.
template <typename T, typename S>
__device__ __forceinline__ int selectToken(SelectArgs<T, S> const& a, int b, int token, int* scratch)
{
    T const* image = a.tokens + static_cast<size_t>(b) * a.tokensIn * a.channels;
    T* out = a.out + static_cast<size_t>(b) * (a.prefix + a.keep) * a.channels;
    if (token < a.prefix)
    {
        copyRow(image + static_cast<size_t>(token) * a.channels, out + static_cast<size_t>(token) * a.channels, a.channels);
        return -1;
    }
    int const patch = token - a.prefix;
    S const* row = a.scores + static_cast<size_t>(b) * a.tokensIn + a.prefix;
    int const rank
        = blockSumInt(countBefore(row, a.tokensIn - a.prefix, patch, static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x)), scratch);
    if (rank < a.keep)
        copyRow(image + static_cast<size_t>(token) * a.channels,
            out + static_cast<size_t>(a.prefix + rank) * a.channels, a.channels);
    return rank;
}

//! Grid (N, batch), kThreads threads: one block per token (selectToken).
template <typename T, typename S>
__global__ void selectKernel(SelectArgs<T, S> a)
{
    __shared__ int scratch[kThreads / 32];
    static_cast<void>(selectToken(a, blockIdx.y, blockIdx.x, scratch));
}

//! Launch::run<T, S>(args…) for the tokens' element type T and the side inputs' (scores, keys, sizes) type S:
//! S is T, or fp32 whatever T is (fp16 tokens do not round the scores before ranking). Any other pair is refused.
template <typename Launch, typename... Args>
int launchForTypes(VitPruneDataType tokens, VitPruneDataType side, Args... args)
{
    if (tokens == VITPRUNE_FLOAT32 && side == VITPRUNE_FLOAT32)
        return Launch::template run<float, float>(args...);
    if (tokens == VITPRUNE_FLOAT16 && side == VITPRUNE_FLOAT32)
        return Launch::template run<__half, float>(args...);
    if (tokens == VITPRUNE_FLOAT16 && side == VITPRUNE_FLOAT16)
        return Launch::template run<__half, __half>(args...);
    return VITPRUNE_INVALID_ARGUMENT;
}

inline size_t alignUp(size_t bytes) { return (bytes + 255) & ~static_cast<size_t>(255); }

inline int divUp(int a, int b) { return (a + b - 1) / b; }

} // namespace vitprune
