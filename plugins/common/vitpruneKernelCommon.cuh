/*
 * Device helpers shared by the vitprune kernels: fp32/fp16 conversion, warp
 * reductions, a descending rank on a total order (vitpruneKernelMath.h: NaN as +inf,
 * ties to the lower index, the order of a stable descending sort; `order` is always a
 * permutation), and a row gather. Header-only; every kernel file includes it.
 */
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "vitpruneKernelMath.h"

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

//! Sum over a block of kThreads threads; every thread gets the result. `scratch` holds kThreads / 32 floats.
__device__ __forceinline__ float blockSum(float v, float* scratch)
{
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    v = warpSum(v);
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float total = 0.F;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w)
        total += scratch[w];
    return total;
}

__device__ __forceinline__ float blockMax(float v, float* scratch)
{
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffU, v, offset));
    __syncthreads();
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float best = scratch[0];
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w)
        best = fmaxf(best, scratch[w]);
    return best;
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
    float const v = toFloat(row[i]);
    int rank = 0;
    for (int j = 0; j < count; ++j)
    {
        float const w = toFloat(row[j]);
        rank += ranksBefore(w, j, v, i) ? 1 : 0;
    }
    order[static_cast<size_t>(b) * count + rank] = i;
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

//! dst[c] = src[c] for c < channels, by the block: 16 bytes at a time where both rows are 16-byte aligned.
template <typename T>
__device__ __forceinline__ void copyRow(T const* src, T* dst, int channels)
{
    size_t const bytes = sizeof(T) * static_cast<size_t>(channels);
    bool const aligned = (reinterpret_cast<uintptr_t>(src) % 16 == 0) && (reinterpret_cast<uintptr_t>(dst) % 16 == 0);
    if (aligned && bytes % 16 == 0)
    {
        float4 const* from = reinterpret_cast<float4 const*>(src);
        float4* to = reinterpret_cast<float4*>(dst);
        for (size_t c = threadIdx.x; c < bytes / 16; c += blockDim.x)
            to[c] = from[c];
        return;
    }
    for (int c = threadIdx.x; c < channels; c += blockDim.x)
        dst[c] = src[c];
}

//! Clear an error an earlier, unrelated CUDA call left behind, so a launcher reports only its own launches.
inline void forgetEarlierError() { static_cast<void>(cudaGetLastError()); }

//! out[b, r] = r < prefix ? in[b, r] : in[b, prefix + order[b, r - prefix]] (rows of width `channels`).
//! Grid (prefix + keep, batch).
template <typename T>
__global__ void gatherRowsKernel(
    T const* in, int tokensIn, int channels, int prefix, int const* order, int orderStride, int keep, T* out)
{
    int const b = blockIdx.y;
    int const r = blockIdx.x;
    int const source = r < prefix ? r : prefix + order[static_cast<size_t>(b) * orderStride + (r - prefix)];
    T const* src = in + (static_cast<size_t>(b) * tokensIn + source) * channels;
    T* dst = out + (static_cast<size_t>(b) * (prefix + keep) + r) * channels;
    copyRow(src, dst, channels);
}

inline size_t alignUp(size_t bytes) { return (bytes + 255) & ~static_cast<size_t>(255); }

inline int divUp(int a, int b) { return (a + b - 1) / b; }

} // namespace vitprune
