// A probe of the vitprune IPluginV3 wrappers' type contract, compiled with g++ by test_plugin_contract.py
// against TensorRT's public headers (TENSORRT_ROOT) from the very plugin sources, with the kernels' C ABI
// stubbed to record what enqueue hands it. Prints, per op:
//   <name> formats <tokens> <side> <0|1>   whether supportsFormatCombination takes every tensor so typed
//   <name> outputs <type> …                getOutputDataTypes for fp16 tokens and fp32 side inputs
//   <name> enqueue <tokensType> <sideType> the kernel types enqueue passes (0 fp32, 1 fp16)
// and last `creators <count>` from getCreators.
#include "common/vitprunePluginBase.h"
#include "tomeMerge/tomeMergePlugin.h"
#include "topkSelect/topkSelectPlugin.h"
#include "vpa/vpaPlugin.h"

#include <cstdio>
#include <iterator>
#include <vector>

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace
{

int gTokensType = -1;
int gSideType = -1;

int record(VitPruneDataType tokens, VitPruneDataType side)
{
    gTokensType = tokens;
    gSideType = side;
    return 0;
}

char const* typeName(nvinfer1::DataType type)
{
    return type == nvinfer1::DataType::kHALF ? "half" : type == nvinfer1::DataType::kFLOAT ? "float" : "other";
}

template <typename Op>
void probe()
{
    using nvinfer1::DataType;
    vitprune::plugin::VitPruneCreator<Op> creator;
    int32_t numPrefix = 1;
    int32_t count = 2;
    float tau = 0.001F;
    std::vector<nvinfer1::PluginField> fields{{"num_prefix", &numPrefix, nvinfer1::PluginFieldType::kINT32, 1},
        {Op::kOp.countField, &count, nvinfer1::PluginFieldType::kINT32, 1},
        {"tau", &tau, nvinfer1::PluginFieldType::kFLOAT32, 1}};
    nvinfer1::PluginFieldCollection collection{static_cast<int32_t>(fields.size()), fields.data()};
    nvinfer1::IPluginV3* plugin = creator.createPlugin("probe", &collection, nvinfer1::TensorRTPhase::kBUILD);
    auto* build = static_cast<nvinfer1::IPluginV3OneBuild*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    int32_t const nbInputs = static_cast<int32_t>(std::size(Op::kRoles));
    int32_t const nbOutputs = Op::kOp.nbOutputs;
    for (DataType tokens : {DataType::kFLOAT, DataType::kHALF})
        for (DataType side : {DataType::kFLOAT, DataType::kHALF})
        {
            nvinfer1::DynamicPluginTensorDesc io[8]{};
            for (int32_t i = 0; i < nbInputs + nbOutputs; ++i)
            {
                io[i].desc.format = nvinfer1::TensorFormat::kLINEAR;
                io[i].desc.type = i == 0 || i == nbInputs ? tokens : side;
            }
            bool every = true;
            for (int32_t pos = 0; pos < nbInputs + nbOutputs; ++pos)
                every = every && build->supportsFormatCombination(pos, io, nbInputs, nbOutputs);
            std::printf("%s formats %s %s %d\n", Op::kOp.name, typeName(tokens), typeName(side), every ? 1 : 0);
        }
    DataType inputTypes[4] = {DataType::kHALF, DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT};
    DataType outputTypes[2] = {DataType::kINT32, DataType::kINT32};
    int32_t const status = build->getOutputDataTypes(outputTypes, nbOutputs, inputTypes, nbInputs);
    std::printf("%s outputs %d", Op::kOp.name, status);
    for (int32_t i = 0; i < nbOutputs; ++i)
        std::printf(" %s", typeName(outputTypes[i]));
    std::printf("\n");
    nvinfer1::PluginTensorDesc in[4]{};
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        in[i].format = nvinfer1::TensorFormat::kLINEAR;
        in[i].type = i == 0 ? DataType::kHALF : DataType::kFLOAT;
        in[i].dims.nbDims = Op::kRoles[i].rank;
        in[i].dims.d[0] = 2;
        in[i].dims.d[1] = 9;
        if (Op::kRoles[i].rank == 3)
            in[i].dims.d[2] = 8;
    }
    void const* inputs[4] = {nullptr, nullptr, nullptr, nullptr};
    void* outputs[2] = {nullptr, nullptr};
    gTokensType = gSideType = -1;
    int32_t const enqueued = runtime->enqueue(in, nullptr, inputs, outputs, nullptr, nullptr);
    std::printf("%s enqueue %d %d %d\n", Op::kOp.name, enqueued, gTokensType, gSideType);
    delete plugin;
}

} // namespace

extern "C" size_t vitpruneTopKSelectWorkspaceSize(int, int, int) { return 0; }
extern "C" size_t vitpruneVPAWorkspaceSize(int, int, int) { return 0; }
extern "C" size_t vitpruneToMeMergeWorkspaceSize(int, int, int) { return 0; }

extern "C" int vitpruneTopKSelectTyped(void const*, void const*, void*, void*, int, int, int, int, int,
    VitPruneDataType tokensType, VitPruneDataType scoresType, cudaStream_t)
{
    return record(tokensType, scoresType);
}

extern "C" int vitpruneVPATyped(void const*, void const*, void const*, void const*, void*, void*, void*, int, int, int,
    int, int, int, float, VitPruneDataType tokensType, VitPruneDataType sideType, cudaStream_t)
{
    return record(tokensType, sideType);
}

extern "C" int vitpruneToMeMergeTyped(void const*, void const*, void const*, void*, void*, void*, int, int, int, int,
    int, int, VitPruneDataType tokensType, VitPruneDataType sideType, cudaStream_t)
{
    return record(tokensType, sideType);
}

int main()
{
    probe<vitprune::plugin::TopKSelectOp>();
    probe<vitprune::plugin::VPAOp>();
    probe<vitprune::plugin::ToMeMergeOp>();
    int32_t count = 0;
    static_cast<void>(getCreators(count));
    std::printf("creators %d\n", count);
    return 0;
}
