/*
 * Shape checks of the vitprune plugins' inputs, without TensorRT types: every input's rank, its batch
 * against the tokens' batch, its token count against the tokens', and a key width of at least 1.
 * Used by configurePlugin (build time; -1 marks a dimension not known yet) and onShapeChange (run time);
 * header-only, so tests/export/test_kernel_math.py compiles it with g++ and checks it on the CPU.
 */
#pragma once

#include <cstdint>
#include <string>

namespace vitprune
{

//! One input of a plugin: its name in error messages and its rank (3: rows of width d[2]; 2: one value per token).
struct InputRole
{
    char const* name;
    int rank;
};

//! An input's shape: nbDims and up to 8 dimensions (negative: not known yet).
struct InputShape
{
    int nbDims;
    int64_t d[8];
};

//! "" when `shapes` fit `roles` (input 0 is the tokens, (batch, tokens, channels)), else what is wrong.
inline std::string checkInputShapes(InputShape const* shapes, int count, InputRole const* roles, int nbRoles)
{
    if (count != nbRoles)
        return "expects " + std::to_string(nbRoles) + " inputs, got " + std::to_string(count);
    InputShape const& tokens = shapes[0];
    for (int i = 0; i < count; ++i)
    {
        InputShape const& shape = shapes[i];
        std::string const name = roles[i].name;
        if (shape.nbDims != roles[i].rank)
            return name + " must have rank " + std::to_string(roles[i].rank) + ", not " + std::to_string(shape.nbDims);
        auto const differs = [](int64_t a, int64_t b) { return a >= 0 && b >= 0 && a != b; };
        if (differs(shape.d[0], tokens.d[0]))
            return name + " has batch " + std::to_string(shape.d[0]) + ", the tokens " + std::to_string(tokens.d[0]);
        if (differs(shape.d[1], tokens.d[1]))
            return name + " has " + std::to_string(shape.d[1]) + " tokens, the tokens input "
                + std::to_string(tokens.d[1]);
        if (shape.nbDims == 3 && shape.d[2] == 0)
            return name + " has rows of width 0";
    }
    return "";
}

} // namespace vitprune
