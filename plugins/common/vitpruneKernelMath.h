/*
 * The per-thread maths of the vitprune kernels that does not need a GPU: the total order tokens are
 * ranked by, and the shared-memory sizes the launchers check. `__host__ __device__` under nvcc, plain
 * inline functions under a C++ compiler, so tests/export/test_kernel_math.py compiles this very file
 * with g++ and checks it on the CPU in CI.
 */
#pragma once

#include <cstddef>

#if defined(__CUDACC__)
#define VITPRUNE_HOST_DEVICE __host__ __device__
#else
#define VITPRUNE_HOST_DEVICE
#endif

namespace vitprune
{

//! Threads per block of every vitprune kernel.
constexpr int kThreads = 128;
//! Dynamic + static shared memory a block may use without an opt-in (every GPU since Kepler).
constexpr size_t kSharedBytesLimit = 48 * 1024;

//! The key a score is ranked by: NaN counts as +infinity (PyTorch sorts NaN as the largest value), so
//! the order below is total and a rank is never shared.
VITPRUNE_HOST_DEVICE inline float rankKey(float value)
{
    float const infinity = __builtin_inff();
    return value != value ? infinity : value;
}

//! True when the score `other` at index `j` comes before the score `value` at index `i` in descending order:
//! larger key first, equal keys (ties, NaN against +inf, NaN against NaN) by the lower index — the order of a
//! stable descending sort. For every i != j exactly one of ranksBefore(i, j), ranksBefore(j, i) holds.
VITPRUNE_HOST_DEVICE inline bool ranksBefore(float other, int j, float value, int i)
{
    float const a = rankKey(other);
    float const b = rankKey(value);
    return a > b || (a == b && j < i);
}

//! Bytes of shared memory VPA's row-statistics pass takes for `keep` kept tokens: one float similarity
//! per kept token (dynamic) and the block-sum scratch of kThreads / 32 floats (static).
VITPRUNE_HOST_DEVICE inline size_t vpaRowStatsSharedBytes(int keep)
{
    return sizeof(float) * static_cast<size_t>(keep) + sizeof(float) * (kThreads / 32);
}

//! The largest `keep` VPA's row-statistics pass fits in kSharedBytesLimit.
VITPRUNE_HOST_DEVICE inline int vpaMaxKeep()
{
    return static_cast<int>((kSharedBytesLimit - sizeof(float) * (kThreads / 32)) / sizeof(float));
}

//! Bytes of shared memory ToMe's assemble pass takes for `merges` merged tokens (one int each, at least one).
VITPRUNE_HOST_DEVICE inline size_t tomeAssembleSharedBytes(int merges)
{
    return sizeof(int) * static_cast<size_t>(merges > 0 ? merges : 1);
}

} // namespace vitprune
