/*
 * VitPruneVPA: rank the patch tokens by score, copy the kept ones, and spread every removed token's size over
 * the kept tokens (VPA paper Eq. 4–5). vpaPlan (vitpruneKernelMath.h) picks one of two paths:
 *  - one launch where an image's keys and per-token state fit in shared memory (vpaImageSharedBytes), grid
 *    (1 + N, batch). Block 0 of an image stages its patch keys, ranks the patches, computes the key norms and,
 *    for each removed token j in turn, M_j· (every cosine once), t_j = nudge(Σ_k M_jk)·τ, the softmax statistics,
 *    and adds s_j · softmax_k(M_jk / t_j) to each kept token's size. Blocks 1 … N each select one token
 *    (selectToken: rank it, copy its row when kept), as VitPruneTopKSelect does.
 *  - three launches otherwise: select (as above, plus the token's key norm and its place in the order); pass A
 *    (one block per removed token j): M_j·, t_j, max_k(M_jk / t_j), Σ_k exp(M_jk / t_j − max); pass B (one block
 *    per kept token k): s_k += Σ_j s_j · exp(M_jk / t_j − max_j) / denom_j, its cosines computed again.
 * No atomics: deterministic. Keys are normalised through their norms (clamped at 1e-6).
 */
#include "vpaKernel.h"

#include "../common/vitpruneKernelCommon.cuh"

using namespace vitprune;

namespace
{

//! Tensors and sizes of one call: tokens of type T, scores, keys, sizes and the output sizes of type S.
template <typename T, typename S>
struct VPAArgs
{
    SelectArgs<T, S> select;
    S const* keys;
    S const* sizes;
    S* outSizes;
    int keyDim;
    float tau;
};

struct VPAWorkspace
{
    int* order;         // (B, T) patch indices, best score first
    float* norms;       // (B, T) clamped L2 norms of the patch keys
    float* temperature; // (B, R) nudge(row sum) · τ
    float* rowMax;      // (B, R)
    float* rowDenom;    // (B, R)
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

//! Eq. 5's softmax over one removed token's similarities to the kept tokens: t = nudge(Σ_k M_k) · τ, the row
//! maximum of M_k / t and Σ_k exp(M_k / t − max). By the block; `scratch` holds blockDim.x / 32 floats.
struct SoftmaxStats
{
    float t;
    float max;
    float denom;
};

__device__ __forceinline__ SoftmaxStats softmaxStats(float const* similarity, int keep, float tau, float* scratch)
{
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
    return SoftmaxStats{t, rowMax, blockSum(localSum, scratch)};
}

//! Block 0 of an image on the one-block path: every kept token's new size. Shared memory as vpaImageSharedBytes
//! counts it: staged keys, norms, order, similarity row, gathered sizes, scratch.
template <typename T, typename S>
__device__ void spreadImage(VPAArgs<T, S> const& a, int b, unsigned char* shared)
{
    int const prefix = a.select.prefix;
    int const keep = a.select.keep;
    int const tokens = a.select.tokensIn;
    int const dim = a.keyDim;
    int const patches = tokens - prefix;
    int const removed = patches - keep;
    S* keys = reinterpret_cast<S*>(shared);
    float* norms = reinterpret_cast<float*>(shared + alignTo16(sizeof(S) * static_cast<size_t>(patches) * dim));
    int* order = reinterpret_cast<int*>(norms + patches);
    float* similarity = reinterpret_cast<float*>(order + patches);
    float* added = similarity + keep;
    float* scratch = added + keep;
    copyRow(a.keys + (static_cast<size_t>(b) * tokens + prefix) * dim, keys, patches * dim);
    rankByBlock(a.select.scores + static_cast<size_t>(b) * tokens + prefix, patches, order);
    for (int k = threadIdx.x; k < keep; k += blockDim.x)
        added[k] = 0.F;
    __syncthreads();
    int const warp = threadIdx.x >> 5;
    int const warps = blockDim.x >> 5;
    int const lane = threadIdx.x & 31;
    for (int p = warp; p < patches; p += warps)
    {
        float const sum = warpDot(keys + static_cast<size_t>(p) * dim, keys + static_cast<size_t>(p) * dim, dim);
        if (lane == 0)
            norms[p] = fmaxf(sqrtf(sum), kNormEps);
    }
    __syncthreads();
    S const* rowSizes = a.sizes + static_cast<size_t>(b) * tokens;
    for (int r = 0; r < removed; ++r)
    {
        int const j = order[keep + r];
        S const* removedKey = keys + static_cast<size_t>(j) * dim;
        for (int k = warp; k < keep; k += warps)
        {
            int const kept = order[k];
            float const m = warpDot(removedKey, keys + static_cast<size_t>(kept) * dim, dim) / (norms[j] * norms[kept]);
            if (lane == 0)
                similarity[k] = m;
        }
        __syncthreads();
        SoftmaxStats const stats = softmaxStats(similarity, keep, a.tau, scratch);
        float const share = toFloat(rowSizes[prefix + j]);
        for (int k = threadIdx.x; k < keep; k += blockDim.x)
            added[k] += share * expf(similarity[k] / stats.t - stats.max) / stats.denom;
        __syncthreads(); // the next removed token overwrites the similarity row
    }
    S* out = a.outSizes + static_cast<size_t>(b) * (prefix + keep);
    for (int p = threadIdx.x; p < prefix; p += blockDim.x)
        out[p] = rowSizes[p];
    for (int k = threadIdx.x; k < keep; k += blockDim.x)
        out[prefix + k] = fromFloat<S>(toFloat(rowSizes[prefix + order[k]]) + added[k]);
}

//! The one-block path. Grid (1 + N, batch), kImageThreads threads, vpaImageSharedBytes of dynamic shared memory.
template <typename T, typename S>
__global__ void __launch_bounds__(kImageThreads) vpaImageKernel(VPAArgs<T, S> a)
{
    extern __shared__ __align__(16) unsigned char vpaShared[];
    if (blockIdx.x == 0)
        spreadImage(a, blockIdx.y, vpaShared);
    else
        static_cast<void>(selectToken(a.select, blockIdx.y, blockIdx.x - 1, reinterpret_cast<int*>(vpaShared)));
}

//! Multi-launch path, select. Grid (N, batch): selectToken, then the patch's place in the order and its key norm
//! (warp 0, the arithmetic of the one-block path).
template <typename T, typename S>
__global__ void vpaSelectKernel(VPAArgs<T, S> a, VPAWorkspace w)
{
    __shared__ int scratch[kThreads / 32];
    int const b = blockIdx.y;
    int const rank = selectToken(a.select, b, blockIdx.x, scratch);
    if (rank < 0)
        return; // a prefix token: its row is copied, its size passes through in pass B
    int const patches = a.select.tokensIn - a.select.prefix;
    int const patch = blockIdx.x - a.select.prefix;
    if (threadIdx.x == 0)
        w.order[static_cast<size_t>(b) * patches + rank] = patch;
    if (threadIdx.x < 32)
    {
        S const* key = a.keys + (static_cast<size_t>(b) * a.select.tokensIn + blockIdx.x) * a.keyDim;
        float const sum = warpDot(key, key, a.keyDim);
        if (threadIdx.x == 0)
            w.norms[static_cast<size_t>(b) * patches + patch] = fmaxf(sqrtf(sum), kNormEps);
    }
}

template <typename S>
__device__ __forceinline__ float cosineOf(
    S const* keys, float const* norms, int tokens, int dim, int prefix, int b, int patchA, int patchB, int patches)
{
    S const* a = keys + (static_cast<size_t>(b) * tokens + prefix + patchA) * dim;
    S const* c = keys + (static_cast<size_t>(b) * tokens + prefix + patchB) * dim;
    float const dot = warpDot(a, c, dim);
    return dot / (norms[static_cast<size_t>(b) * patches + patchA] * norms[static_cast<size_t>(b) * patches + patchB]);
}

//! Multi-launch path, pass A. Grid (removed, batch), dynamic shared memory: keep floats.
template <typename S>
__global__ void vpaRowStatsKernel(S const* keys, int tokens, int dim, int prefix, int keep, float tau, VPAWorkspace w)
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
    SoftmaxStats const stats = softmaxStats(similarity, keep, tau, scratch);
    if (threadIdx.x == 0)
    {
        size_t const at = static_cast<size_t>(b) * removed + blockIdx.x;
        w.temperature[at] = stats.t;
        w.rowMax[at] = stats.max;
        w.rowDenom[at] = stats.denom;
    }
}

//! Multi-launch path, pass B. Grid (keep, batch): the new size of kept token k; block 0 also copies the prefix sizes.
template <typename S>
__global__ void vpaSpreadKernel(S const* keys, S const* sizes, int tokens, int dim, int prefix, int keep, VPAWorkspace w, S* outSizes)
{
    __shared__ float scratch[kThreads / 32];
    int const b = blockIdx.y;
    int const k = blockIdx.x;
    int const patches = tokens - prefix;
    int const removed = patches - keep;
    int const* order = w.order + static_cast<size_t>(b) * patches;
    int const kept = order[k];
    S const* rowSizes = sizes + static_cast<size_t>(b) * tokens;
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
    S* out = outSizes + static_cast<size_t>(b) * (prefix + keep);
    if (threadIdx.x == 0)
        out[prefix + k] = fromFloat<S>(toFloat(rowSizes[prefix + kept]) + added);
    if (k == 0)
        for (int p = threadIdx.x; p < prefix; p += blockDim.x)
            out[p] = rowSizes[p];
}

struct VPALaunch
{
    template <typename T, typename S>
    static int run(void const* tokens, void const* scores, void const* keys, void const* sizes, void* outTokens,
        void* outSizes, void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int keep,
        float tau, cudaStream_t stream)
    {
        int const patches = tokensIn - numPrefix;
        int const removed = patches - keep;
        VPAPlan const plan = vpaPlan(batch, patches, keyDim, keep, static_cast<int>(sizeof(S)));
        VPAArgs<T, S> const a{{static_cast<T const*>(tokens), static_cast<S const*>(scores), static_cast<T*>(outTokens),
                                  tokensIn, channels, numPrefix, keep},
            static_cast<S const*>(keys), static_cast<S const*>(sizes), static_cast<S*>(outSizes), keyDim, tau};
        VPAWorkspace const w = plan.oneBlock ? VPAWorkspace{} : carve(workspace, batch, patches, removed);
        forgetEarlierError();
        if (plan.oneBlock)
            vpaImageKernel<T, S><<<dim3(1 + tokensIn, batch), kImageThreads,
                vpaImageSharedBytes(patches, keyDim, keep, static_cast<int>(sizeof(S))), stream>>>(a);
        if (plan.select)
            vpaSelectKernel<T, S><<<dim3(tokensIn, batch), kThreads, 0, stream>>>(a, w);
        if (plan.rowStats)
            vpaRowStatsKernel<S><<<dim3(removed, batch), kThreads,
                vpaRowStatsSharedBytes(keep) - sizeof(float) * (kThreads / 32), stream>>>(
                a.keys, tokensIn, keyDim, numPrefix, keep, tau, w);
        if (plan.spread)
            vpaSpreadKernel<S><<<dim3(keep, batch), kThreads, 0, stream>>>(
                a.keys, a.sizes, tokensIn, keyDim, numPrefix, keep, w, a.outSizes);
        return static_cast<int>(cudaGetLastError());
    }
};

} // namespace

extern "C" size_t vitpruneVPAWorkspaceSize(int batch, int tokens, int numPrefix)
{
    // what the multi-launch path carves (the one-block path needs none); R ≤ T
    size_t const bt = static_cast<size_t>(batch) * static_cast<size_t>(tokens - numPrefix);
    return alignUp(sizeof(int) * bt) + alignUp(sizeof(float) * bt) + 3 * alignUp(sizeof(float) * bt);
}

extern "C" int vitpruneVPATyped(void const* tokens, void const* scores, void const* keys, void const* sizes,
    void* outTokens, void* outSizes, void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix,
    int keep, float tau, VitPruneDataType tokensType, VitPruneDataType sideType, cudaStream_t stream)
{
    if (batch == 0)
        return 0; // nothing to select
    // the guard counts every byte pass A's block holds: the keep similarities and the static block-sum scratch
    if (batch < 1 || channels < 1 || keyDim < 1 || numPrefix < 0 || keep < 1 || numPrefix + keep > tokensIn
        || !(tau > 0.F) || vpaRowStatsSharedBytes(keep) > kSharedBytesLimit)
        return VITPRUNE_INVALID_ARGUMENT;
    return launchForTypes<VPALaunch>(tokensType, sideType, tokens, scores, keys, sizes, outTokens, outSizes, workspace,
        batch, tokensIn, channels, keyDim, numPrefix, keep, tau, stream);
}

extern "C" int vitpruneVPA(void const* tokens, void const* scores, void const* keys, void const* sizes, void* outTokens,
    void* outSizes, void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int keep,
    float tau, VitPruneDataType dtype, cudaStream_t stream)
{
    return vitpruneVPATyped(tokens, scores, keys, sizes, outTokens, outSizes, workspace, batch, tokensIn, channels,
        keyDim, numPrefix, keep, tau, dtype, dtype, stream);
}
