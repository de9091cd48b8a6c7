/* VitPruneToMeMerge IPluginV3: shapes, workspace and launch; see the header and README.md. */
#include "tomeMergePlugin.h"

#include "tomeMergeKernel.h"

#include <exception>

namespace vitprune
{
namespace plugin
{

nvinfer1::IPluginV3* ToMeMergePlugin::clone() noexcept
{
    try
    {
        return new ToMeMergePlugin(*this);
    }
    catch (std::exception const& e)
    {
        reportError(kName, "clone", e.what());
    }
    catch (...)
    {
        reportError(kName, "clone", "unknown exception");
    }
    return nullptr;
}

int32_t ToMeMergePlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
    nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    try
    {
        static_cast<void>(shapeInputs);
        static_cast<void>(nbShapeInputs);
        if (nbInputs != 3 || nbOutputs != 2 || inputs[0].nbDims != 3)
        {
            reportError(kName, "getOutputShapes", "expects 3 inputs, tokens of rank 3, 2 output(s)");
            return -1;
        }
        auto const* left = exprBuilder.operation(
            nvinfer1::DimensionOperation::kSUB, *inputs[0].d[1], *exprBuilder.constant(mParams.count));
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];
        outputs[0].d[1] = left;
        outputs[0].d[2] = inputs[0].d[2];
        outputs[1].nbDims = 2;
        outputs[1].d[0] = inputs[0].d[0];
        outputs[1].d[1] = left;
        return 0;
    }
    catch (std::exception const& e)
    {
        reportError(kName, "getOutputShapes", e.what());
    }
    catch (...)
    {
        reportError(kName, "getOutputShapes", "unknown exception");
    }
    return -1;
}

size_t ToMeMergePlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept
{
    try
    {
        static_cast<void>(nbInputs);
        static_cast<void>(outputs);
        static_cast<void>(nbOutputs);
        nvinfer1::Dims const& largest = inputs[0].max;
        return vitpruneToMeMergeWorkspaceSize(static_cast<int>(largest.d[0]), static_cast<int>(largest.d[1]), mParams.numPrefix);
    }
    catch (...)
    {
        reportError(kName, "getWorkspaceSize", "unknown exception");
    }
    return 0;
}

int32_t ToMeMergePlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        static_cast<void>(outputDesc);
        nvinfer1::Dims const& dims = inputDesc[0].dims;
        int const status = vitpruneToMeMerge(inputs[0], inputs[1], inputs[2], outputs[0], outputs[1], workspace,
            static_cast<int>(dims.d[0]), static_cast<int>(dims.d[1]), static_cast<int>(dims.d[2]),
            static_cast<int>(inputDesc[1].dims.d[2]), mParams.numPrefix, mParams.count, kernelType(inputDesc[0].type),
            stream);
        return checkLaunch(status, "enqueue");
    }
    catch (std::exception const& e)
    {
        reportError(kName, "enqueue", e.what());
    }
    catch (...)
    {
        reportError(kName, "enqueue", "unknown exception");
    }
    return -1;
}

} // namespace plugin
} // namespace vitprune
