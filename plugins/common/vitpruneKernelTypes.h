/* C ABI types shared by the vitprune kernel launchers (usable from C, C++ and ctypes). */
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element type of every floating-point tensor a launcher reads or writes. */
typedef enum VitPruneDataType
{
    VITPRUNE_FLOAT32 = 0,
    VITPRUNE_FLOAT16 = 1
} VitPruneDataType;

/* Launchers return 0 on success, VITPRUNE_INVALID_ARGUMENT for bad sizes, else a cudaError_t. */
#define VITPRUNE_INVALID_ARGUMENT (-1)

#ifdef __cplusplus
}
#endif
