/*
 * Device helpers shared by the vitprune kernels: fp32/fp16 conversion, warp
 * reductions, a stable descending rank (the order torch.topk(sorted=True) and
 * argsort(descending=True) give when no two scores tie; ties go to the lower index),
 * and a row gather. Header-only; every kernel file includes it.
 */
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace vitprune
{

constexpr int kThreads = 128;
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

//! order[b, rank(i)] = i for the `count` values row[b, offset + i]; rank = how many beat value i
//! (greater, or equal at a lower index). Grid (ceil(count / kThreads), batch).
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
        rank += (w > v) || (w == v && j < i);
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
    for (int c = threadIdx.x; c < channels; c += blockDim.x)
        dst[c] = src[c];
}

inline size_t alignUp(size_t bytes) { return (bytes + 255) & ~static_cast<size_t>(255); }

inline int divUp(int a, int b) { return (a + b - 1) / b; }

} // namespace vitprune
