/*
 * VitPruneToMeMerge: bipartite soft matching + size-weighted merge (ToMe §3, merge_wavg).
 *   1. clamped L2 norms of the patch keys (one warp per token);
 *   2. for every A token its best B token and that cosine similarity (one warp per A token);
 *   3. stable descending rank of the A tokens by that similarity: the first r merge;
 *   4. the unmerged A tokens listed in their positional order (as the PyTorch reference keeps them, so a
 *      near-tie in the similarity sort cannot reshuffle the next block's A/B split);
 *   5. one block per output row: prefix copy, unmerged A row, or B row plus the A rows merged into it,
 *      each weighted by its size and divided by the summed size (sizes add up).
 * No atomics and no scatter: deterministic.
 */
#include "tomeMergeKernel.h"

#include "../common/vitpruneKernelCommon.cuh"

using namespace vitprune;

namespace
{

struct ToMeWorkspace
{
    float* norms;     // (B, T)
    float* bestValue; // (B, |A|)
    int* bestB;       // (B, |A|) index within set B
    int* order;       // (B, |A|) A indices, most similar edge first
    int* rankOf;      // (B, |A|) rank of each A index in `order`
    int* unmergedA;   // (B, |A| - r) unmerged A indices, ascending
};

ToMeWorkspace carve(void* workspace, int batch, int patches)
{
    int const setA = (patches + 1) / 2;
    char* base = static_cast<char*>(workspace);
    ToMeWorkspace w{};
    w.norms = reinterpret_cast<float*>(base);
    base += alignUp(sizeof(float) * static_cast<size_t>(batch) * patches);
    w.bestValue = reinterpret_cast<float*>(base);
    base += alignUp(sizeof(float) * static_cast<size_t>(batch) * setA);
    w.bestB = reinterpret_cast<int*>(base);
    base += alignUp(sizeof(int) * static_cast<size_t>(batch) * setA);
    w.order = reinterpret_cast<int*>(base);
    base += alignUp(sizeof(int) * static_cast<size_t>(batch) * setA);
    w.rankOf = reinterpret_cast<int*>(base);
    base += alignUp(sizeof(int) * static_cast<size_t>(batch) * setA);
    w.unmergedA = reinterpret_cast<int*>(base);
    return w;
}

//! Grid (ceil(|A| / warps), batch): one warp per A token.
template <typename T>
__global__ void tomeMatchKernel(T const* keys, int tokens, int dim, int prefix, ToMeWorkspace w)
{
    int const b = blockIdx.y;
    int const patches = tokens - prefix;
    int const setA = (patches + 1) / 2;
    int const setB = patches / 2;
    int const a = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (a >= setA)
        return;
    T const* rows = keys + (static_cast<size_t>(b) * tokens + prefix) * dim;
    float const* norms = w.norms + static_cast<size_t>(b) * patches;
    int const tokenA = 2 * a;
    float best = -INFINITY;
    int bestIndex = 0;
    for (int j = 0; j < setB; ++j)
    {
        int const tokenB = 2 * j + 1;
        float const m = warpDot(rows + static_cast<size_t>(tokenA) * dim, rows + static_cast<size_t>(tokenB) * dim, dim)
            / (norms[tokenA] * norms[tokenB]);
        if (m > best)
        {
            best = m;
            bestIndex = j;
        }
    }
    if ((threadIdx.x & 31) == 0)
    {
        w.bestValue[static_cast<size_t>(b) * setA + a] = best;
        w.bestB[static_cast<size_t>(b) * setA + a] = bestIndex;
    }
}

//! Grid (ceil(|A| / threads), batch): rankOf[order[r]] = r.
__global__ void invertOrderKernel(int setA, ToMeWorkspace w)
{
    int const b = blockIdx.y;
    int const r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= setA)
        return;
    size_t const row = static_cast<size_t>(b) * setA;
    w.rankOf[row + w.order[row + r]] = r;
}

//! Grid (ceil(|A| / threads), batch): every unmerged A token (rank >= r) writes itself at its place among
//! the unmerged ones in ascending index order.
__global__ void listUnmergedKernel(int setA, int merges, ToMeWorkspace w)
{
    int const b = blockIdx.y;
    int const i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= setA)
        return;
    int const* rankOf = w.rankOf + static_cast<size_t>(b) * setA;
    if (rankOf[i] < merges)
        return;
    int place = 0;
    for (int j = 0; j < i; ++j)
        place += rankOf[j] >= merges;
    w.unmergedA[static_cast<size_t>(b) * (setA - merges) + place] = i;
}

//! Grid (N - r, batch), dynamic shared memory: r ints. One block per output row.
template <typename T>
__global__ void tomeAssembleKernel(T const* tokens, T const* sizes, int tokensIn, int channels, int prefix, int merges,
    ToMeWorkspace w, T* outTokens, T* outSizes)
{
    extern __shared__ int mergesHere[];
    int const b = blockIdx.y;
    int const row = blockIdx.x;
    int const patches = tokensIn - prefix;
    int const setA = (patches + 1) / 2;
    int const unmerged = setA - merges;
    int const tokensOut = tokensIn - merges;
    int const* order = w.order + static_cast<size_t>(b) * setA;
    int const* bestB = w.bestB + static_cast<size_t>(b) * setA;
    T const* x = tokens + static_cast<size_t>(b) * tokensIn * channels;
    T const* s = sizes + static_cast<size_t>(b) * tokensIn;
    T* out = outTokens + (static_cast<size_t>(b) * tokensOut + row) * channels;
    T* outSize = outSizes + static_cast<size_t>(b) * tokensOut + row;

    if (row < prefix)
    {
        for (int c = threadIdx.x; c < channels; c += blockDim.x)
            out[c] = x[static_cast<size_t>(row) * channels + c];
        if (threadIdx.x == 0)
            *outSize = s[row];
        return;
    }
    if (row < prefix + unmerged)
    {
        int const source = prefix + 2 * w.unmergedA[static_cast<size_t>(b) * unmerged + (row - prefix)];
        float const size = toFloat(s[source]);
        for (int c = threadIdx.x; c < channels; c += blockDim.x)
            out[c] = fromFloat<T>(toFloat(x[static_cast<size_t>(source) * channels + c]) * size / size);
        if (threadIdx.x == 0)
            *outSize = s[source];
        return;
    }
    int const j = row - prefix - unmerged;
    int const destination = prefix + 2 * j + 1;
    for (int m = threadIdx.x; m < merges; m += blockDim.x)
        mergesHere[m] = bestB[order[m]] == j ? prefix + 2 * order[m] : -1;
    __syncthreads();
    float total = toFloat(s[destination]);
    for (int m = 0; m < merges; ++m)
        if (mergesHere[m] >= 0)
            total += toFloat(s[mergesHere[m]]);
    for (int c = threadIdx.x; c < channels; c += blockDim.x)
    {
        float acc = toFloat(x[static_cast<size_t>(destination) * channels + c]) * toFloat(s[destination]);
        for (int m = 0; m < merges; ++m)
        {
            int const source = mergesHere[m];
            if (source >= 0)
                acc += toFloat(x[static_cast<size_t>(source) * channels + c]) * toFloat(s[source]);
        }
        out[c] = fromFloat<T>(acc / total);
    }
    if (threadIdx.x == 0)
        *outSize = fromFloat<T>(total);
}

template <typename T>
int launchToMe(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
    void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges, cudaStream_t stream)
{
    int const patches = tokensIn - numPrefix;
    int const setA = (patches + 1) / 2;
    ToMeWorkspace const w = carve(workspace, batch, patches);
    T const* keyRows = static_cast<T const*>(keys);
    int const warps = kThreads / 32;
    rowNormKernel<T><<<dim3(divUp(patches, warps), batch), kThreads, 0, stream>>>(
        keyRows, tokensIn, keyDim, numPrefix, patches, w.norms);
    tomeMatchKernel<T><<<dim3(divUp(setA, warps), batch), kThreads, 0, stream>>>(keyRows, tokensIn, keyDim, numPrefix, w);
    rankDescendingKernel<float><<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(
        w.bestValue, setA, 0, setA, w.order);
    invertOrderKernel<<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(setA, w);
    if (setA > merges)
        listUnmergedKernel<<<dim3(divUp(setA, kThreads), batch), kThreads, 0, stream>>>(setA, merges, w);
    tomeAssembleKernel<T><<<dim3(tokensIn - merges, batch), kThreads, sizeof(int) * (merges > 0 ? merges : 1), stream>>>(
        static_cast<T const*>(tokens), static_cast<T const*>(sizes), tokensIn, channels, numPrefix, merges, w,
        static_cast<T*>(outTokens), static_cast<T*>(outSizes));
    return static_cast<int>(cudaGetLastError());
}

} // namespace

extern "C" size_t vitpruneToMeMergeWorkspaceSize(int batch, int tokens, int numPrefix)
{
    size_t const patches = static_cast<size_t>(tokens - numPrefix);
    size_t const setA = (patches + 1) / 2;
    size_t const b = static_cast<size_t>(batch);
    return alignUp(sizeof(float) * b * patches) + alignUp(sizeof(float) * b * setA) + 4 * alignUp(sizeof(int) * b * setA);
}

extern "C" int vitpruneToMeMerge(void const* tokens, void const* keys, void const* sizes, void* outTokens, void* outSizes,
    void* workspace, int batch, int tokensIn, int channels, int keyDim, int numPrefix, int merges,
    VitPruneDataType dtype, cudaStream_t stream)
{
    int const patches = tokensIn - numPrefix;
    if (batch < 1 || channels < 1 || keyDim < 1 || numPrefix < 0 || merges < 0 || patches < 2 || merges > patches / 2
        || merges > 12288)
        return VITPRUNE_INVALID_ARGUMENT;
    if (dtype == VITPRUNE_FLOAT32)
        return launchToMe<float>(tokens, keys, sizes, outTokens, outSizes, workspace, batch, tokensIn, channels, keyDim,
            numPrefix, merges, stream);
    if (dtype == VITPRUNE_FLOAT16)
        return launchToMe<__half>(tokens, keys, sizes, outTokens, outSizes, workspace, batch, tokensIn, channels, keyDim,
            numPrefix, merges, stream);
    return VITPRUNE_INVALID_ARGUMENT;
}
