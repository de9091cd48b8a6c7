/*
 * VitPruneVPA: rank patch tokens by score, gather the kept ones, and spread every
 * removed token's size over the kept tokens (VPA paper Eq. 4–5) in two passes:
 *   A (one block per removed token j): M_j· = cosine similarities with every kept key,
 *     t_j = nudge(Σ_k M_jk)·τ, and the softmax statistics max_k(M_jk/t_j), Σ_k exp(M_jk/t_j − max);
 *   B (one block per kept token k): s_k += Σ_j s_j · exp(M_jk/t_j − max_j) / denom_j.
 * No atomics: deterministic. Keys are normalised through precomputed norms (clamped at 1e-6).
 */
#include "vpaKernel.h"

#include "../common/vitpruneKernelCommon.cuh"

using namespace vitprune;

namespace
{

struct VPAWorkspace
{
    int* order;       // (B, T) patch indices, best score first
    float* norms;     // (B, T) clamped L2 norms of the patch keys
    float* temperature; // (B, R) nudge(row sum) · τ
    float* rowMax;    // (B, R)
    float* rowDenom;  // (B, R)
};

VPAWorkspace carve(void* workspace, int batch, int patches, int removed)
{
    char* base = static_cast<char*>(workspace);
    VPAWorkspace w{};
    size_t const bt = static_cast<size_t>(batch) * patches;
    size_t const br = static_cast<size_t>(batch) * (removed > 0 ? removed : 1);
    w.order = reinterpret_cast<int*>(base);
    base += alignUp(sizeof(int) * bt);
    w.norms = reinterpret_cast<float*>(base);
    base += alignUp(sizeof(float) * bt);
    w.temperature = reinterpret_cast<float*>(base);
    base += alignUp(sizeof(float) * br);
    w.rowMax = reinterpret_cast<float*>(base);
    base += alignUp(sizeof(float) * br);
    w.rowDenom = reinterpret_cast<float*>(base);
    return w;
}

template <typename T>
__device__ __forceinline__ float cosineOf(
    T const* keys, float const* norms, int tokens, int dim, int prefix, int b, int patchA, int patchB, int patches)
{
    T const* a = keys + (static_cast<size_t>(b) * tokens + prefix + patchA) * dim;
    T const* c = keys + (static_cast<size_t>(b) * tokens + prefix + patchB) * dim;
    float const dot = warpDot(a, c, dim);
    return dot / (norms[static_cast<size_t>(b) * patches + patchA] * norms[static_cast<size_t>(b) * patches + patchB]);
}

//! Pass A. Grid (removed, batch), dynamic shared memory: keep floats.
template <typename T>
__global__ void vpaRowStatsKernel(T const* keys, int tokens, int dim, int prefix, int keep, float tau, VPAWorkspace w)
{
    extern __shared__ float similarity[];
    __shared__ float scratch[kThreads / 32];
    int const b = blockIdx.y;
    int const patches = tokens - prefix;
    int const removed = patches - keep;
    int const* order = w.order + static_cast<size_t>(b) * patches;
    int const j = order[keep + blockIdx.x];
    int const warp = threadIdx.x >> 5;
    int const warps = blockDim.x >> 5;
    for (int k = warp; k < keep; k += warps)
    {
        float const m = cosineOf(keys, w.norms, tokens, dim, prefix, b, j, order[k], patches);
        if ((threadIdx.x & 31) == 0)
            similarity[k] = m;
    }
    __syncthreads();
    float partial = 0.F;
    for (int k = threadIdx.x; k < keep; k += blockDim.x)
        partial += similarity[k];
    float const rowSum = blockSum(partial, scratch);
    float const nudged = rowSum >= 0.F ? fmaxf(rowSum, 1e-6F) : fminf(rowSum, -1e-6F);
    float const t = nudged * tau;
    float localMax = -INFINITY;
    for (int k = threadIdx.x; k < keep; k += blockDim.x)
        localMax = fmaxf(localMax, similarity[k] / t);
    float const rowMax = blockMax(localMax, scratch);
    float localSum = 0.F;
    for (int k = threadIdx.x; k < keep; k += blockDim.x)
        localSum += expf(similarity[k] / t - rowMax);
    float const denom = blockSum(localSum, scratch);
    if (threadIdx.x == 0)
    {
        size_t const at = static_cast<size_t>(b) * removed + blockIdx.x;
        w.temperature[at] = t;
        w.rowMax[at] = rowMax;
        w.rowDenom[at] = denom;
    }
}

//! Pass B. Grid (keep, batch): the new size of kept token k; block 0 also copies the prefix sizes.
template <typename T>
__global__ void vpaSpreadKernel(
    T const* keys, T const* sizes, int tokens, int dim, int prefix, int keep, VPAWorkspace w, T* outSizes)
{
    __shared__ float scratch[kThreads / 32];
    int const b = blockIdx.y;
    int const k = blockIdx.x;
    int const patches = tokens - prefix;
    int const removed = patches - keep;
    int const* order = w.order + static_cast<size_t>(b) * patches;
    int const kept = order[k];
    T const* rowSizes = sizes + static_cast<size_t>(b) * tokens;
    int const warp = threadIdx.x >> 5;
    int const warps = blockDim.x >> 5;
    float partial = 0.F;
    for (int r = warp; r < removed; r += warps)
    {
        int const j = order[keep + r];
        float const m = cosineOf(keys, w.norms, tokens, dim, prefix, b, j, kept, patches);
        size_t const at = static_cast<size_t>(b) * removed + r;
        if ((threadIdx.x & 31) == 0)
            partial += toFloat(rowSizes[prefix + j]) * expf(m / w.temperature[at] - w.rowMax[at]) / w.rowDenom[at];
    }
    float const added = blockSum(partial, scratch);
    T* out = outSizes + static_cast<size_t>(b) * (prefix + keep);
    if (threadIdx.x == 0)
        out[prefix + k] = fromFloat<T>(toFloat(rowSizes[prefix + kept]) + added);
    if (k == 0)
        for (int p = threadIdx.x; p < prefix; p += blockDim.x)
            out[p] = rowSizes[p];
}

template <typename T>
int launchVPA(void const* tokens, void const* scores, void const* keys, void const* sizes, void* outTokens,
    void* outSizes, void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int keep,
    float tau, cudaStream_t stream)
{
    int const patches = tokensIn - numPrefix;
    int const removed = patches - keep;
    VPAWorkspace const w = carve(workspace, batch, patches, removed);
    T const* keyRows = static_cast<T const*>(keys);
    forgetEarlierError();
    rankDescendingKernel<T><<<dim3(divUp(patches, kThreads), batch), kThreads, 0, stream>>>(
        static_cast<T const*>(scores), tokensIn, numPrefix, patches, w.order);
    rowNormKernel<T><<<dim3(divUp(patches, kThreads / 32), batch), kThreads, 0, stream>>>(
        keyRows, tokensIn, keyDim, numPrefix, patches, w.norms);
    if (removed > 0)
        vpaRowStatsKernel<T><<<dim3(removed, batch), kThreads, vpaRowStatsSharedBytes(keep) - sizeof(float) * (kThreads / 32), stream>>>(
            keyRows, tokensIn, keyDim, numPrefix, keep, tau, w);
    vpaSpreadKernel<T><<<dim3(keep, batch), kThreads, 0, stream>>>(
        keyRows, static_cast<T const*>(sizes), tokensIn, keyDim, numPrefix, keep, w, static_cast<T*>(outSizes));
    gatherRowsKernel<T><<<dim3(numPrefix + keep, batch), kThreads, 0, stream>>>(static_cast<T const*>(tokens),
        tokensIn, channels, numPrefix, w.order, patches, keep, static_cast<T*>(outTokens));
    return static_cast<int>(cudaGetLastError());
}

} // namespace

extern "C" size_t vitpruneVPAWorkspaceSize(int batch, int tokens, int numPrefix)
{
    size_t const bt = static_cast<size_t>(batch) * static_cast<size_t>(tokens - numPrefix);
    return alignUp(sizeof(int) * bt) + alignUp(sizeof(float) * bt) + 3 * alignUp(sizeof(float) * bt);
}

extern "C" int vitpruneVPA(void const* tokens, void const* scores, void const* keys, void const* sizes, void* outTokens,
    void* outSizes, void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int keep,
    float tau, VitPruneDataType dtype, cudaStream_t stream)
{
    if (batch == 0)
        return 0; // nothing to select
    // the guard counts every byte pass A's block holds: the keep similarities and the static block-sum scratch
    if (batch < 1 || channels < 1 || keyDim < 1 || numPrefix < 0 || keep < 1 || numPrefix + keep > tokensIn
        || !(tau > 0.F) || vpaRowStatsSharedBytes(keep) > kSharedBytesLimit)
        return VITPRUNE_INVALID_ARGUMENT;
    if (dtype == VITPRUNE_FLOAT32)
        return launchVPA<float>(tokens, scores, keys, sizes, outTokens, outSizes, workspace, batch, tokensIn, channels,
            keyDim, numPrefix, keep, tau, stream);
    if (dtype == VITPRUNE_FLOAT16)
        return launchVPA<__half>(tokens, scores, keys, sizes, outTokens, outSizes, workspace, batch, tokensIn, channels,
            keyDim, numPrefix, keep, tau, stream);
    return VITPRUNE_INVALID_ARGUMENT;
}
