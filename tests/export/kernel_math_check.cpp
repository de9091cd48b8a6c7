// A command-line probe of the plugins' host-testable maths (plugins/common/vitpruneKernelMath.h and
// vitprunePluginShapes.h), compiled with g++ by test_kernel_math.py from the very headers the kernels use.
// One command per line on stdin, one answer per line on stdout:
//   rank N v1 … vN               → the order the kernels' rank gives: order[rank(i)] = i (a permutation, or "-1")
//   shapes R0 … | dims … | …     → checkInputShapes of the inputs (ranks R and dims, see the test) or "ok"
//   vpa_bytes KEEP               → shared bytes of VPA's pass A, and the largest keep that fits
//   topk_plan B                  → launches of a TopKSelect call
//   vpa_plan B N D P KEEP BYTES  → one-block path (0/1), launches, one-block shared bytes (keys of BYTES each)
//   tome_plan B N D P R BYTES    → one-block path (0/1), launches, one-block shared bytes
#include "common/vitpruneKernelMath.h"
#include "common/vitprunePluginShapes.h"

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace
{

float parse(std::string const& word)
{
    if (word == "nan")
        return std::nanf("");
    if (word == "inf")
        return INFINITY;
    if (word == "-inf")
        return -INFINITY;
    return std::strtof(word.c_str(), nullptr);
}

void rank(std::istringstream& in)
{
    int count = 0;
    in >> count;
    std::vector<float> values(static_cast<size_t>(count));
    for (auto& value : values)
    {
        std::string word;
        in >> word;
        value = parse(word);
    }
    // the loop of rankDescendingKernel, one "thread" per i
    std::vector<int> order(static_cast<size_t>(count), -1);
    for (int i = 0; i < count; ++i)
    {
        int position = 0;
        for (int j = 0; j < count; ++j)
            position += vitprune::ranksBefore(values[static_cast<size_t>(j)], j, values[static_cast<size_t>(i)], i) ? 1 : 0;
        if (position < count)
            order[static_cast<size_t>(position)] = i;
    }
    for (int i = 0; i < count; ++i)
        std::cout << (i ? " " : "") << order[static_cast<size_t>(i)];
    std::cout << "\n";
}

void shapes(std::istringstream& in)
{
    // shapes <inputs> then per input: <rank expected> <nbDims> <d0> … <d(nbDims-1)>
    int count = 0;
    in >> count;
    std::vector<vitprune::InputRole> roles;
    std::vector<vitprune::InputShape> given;
    static char const* names[] = {"tokens", "input 1", "input 2", "input 3", "input 4"};
    for (int i = 0; i < count; ++i)
    {
        vitprune::InputRole role{names[i < 5 ? i : 4], 0};
        vitprune::InputShape shape{0, {0, 0, 0, 0, 0, 0, 0, 0}};
        in >> role.rank >> shape.nbDims;
        for (int d = 0; d < shape.nbDims && d < 8; ++d)
            in >> shape.d[d];
        roles.push_back(role);
        given.push_back(shape);
    }
    int expected = count;
    in >> expected; // how many inputs the plugin takes (the tests pass a wrong number too)
    std::string const error = vitprune::checkInputShapes(given.data(), count, roles.data(), expected);
    std::cout << (error.empty() ? "ok" : error) << "\n";
}

} // namespace

int main()
{
    std::string line;
    while (std::getline(std::cin, line))
    {
        std::istringstream in(line);
        std::string command;
        in >> command;
        if (command == "rank")
            rank(in);
        else if (command == "shapes")
            shapes(in);
        else if (command == "vpa_bytes")
        {
            int keep = 0;
            in >> keep;
            std::cout << vitprune::vpaRowStatsSharedBytes(keep) << " " << vitprune::vpaMaxKeep() << " "
                      << vitprune::kSharedBytesLimit << "\n";
        }
        else if (command == "topk_plan")
        {
            int batch = 0;
            in >> batch;
            std::cout << vitprune::topkSelectPlan(batch).launches() << "\n";
        }
        else if (command == "vpa_plan")
        {
            int batch = 0, tokens = 0, dim = 0, prefix = 0, keep = 0, bytes = 0;
            in >> batch >> tokens >> dim >> prefix >> keep >> bytes;
            vitprune::VPAPlan const plan = vitprune::vpaPlan(batch, tokens - prefix, dim, keep, bytes);
            std::cout << plan.oneBlock << " " << plan.launches() << " "
                      << vitprune::vpaImageSharedBytes(tokens - prefix, dim, keep, bytes) << "\n";
        }
        else if (command == "tome_plan")
        {
            int batch = 0, tokens = 0, dim = 0, prefix = 0, merges = 0, bytes = 0;
            in >> batch >> tokens >> dim >> prefix >> merges >> bytes;
            vitprune::ToMePlan const plan = vitprune::tomePlan(batch, tokens, dim, prefix, merges, bytes);
            std::cout << plan.oneBlock << " " << plan.launches() << " "
                      << vitprune::tomeImageSharedBytes(tokens - prefix, dim, vitprune::tomeSetA(tokens, prefix), bytes)
                      << "\n";
        }
        else
            std::cout << "unknown command\n";
    }
    return 0;
}
