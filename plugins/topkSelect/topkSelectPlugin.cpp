/* VitPruneTopKSelect IPluginV3: shapes, workspace and launch; see the header and README.md. */
#include "topkSelectPlugin.h"

#include "topkSelectKernel.h"

#include <exception>

namespace vitprune
{
namespace plugin
{

nvinfer1::IPluginV3* TopKSelectPlugin::clone() noexcept
{
    try
    {
        return new TopKSelectPlugin(*this);
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

int32_t TopKSelectPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
    nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    try
    {
        static_cast<void>(shapeInputs);
        static_cast<void>(nbShapeInputs);
        if (nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 3)
        {
            reportError(kName, "getOutputShapes", "expects 2 inputs, tokens of rank 3, 1 output(s)");
            return -1;
        }
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];
        outputs[0].d[1] = exprBuilder.constant(mParams.numPrefix + mParams.count);
        outputs[0].d[2] = inputs[0].d[2];
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

size_t TopKSelectPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept
{
    try
    {
        static_cast<void>(nbInputs);
        static_cast<void>(outputs);
        static_cast<void>(nbOutputs);
        nvinfer1::Dims const& largest = inputs[0].max;
        return vitpruneTopKSelectWorkspaceSize(static_cast<int>(largest.d[0]), static_cast<int>(largest.d[1]), mParams.numPrefix);
    }
    catch (...)
    {
        reportError(kName, "getWorkspaceSize", "unknown exception");
    }
    return 0;
}

int32_t TopKSelectPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        static_cast<void>(outputDesc);
        nvinfer1::Dims const& dims = inputDesc[0].dims;
        int const status = vitpruneTopKSelect(inputs[0], inputs[1], outputs[0], workspace, static_cast<int>(dims.d[0]),
            static_cast<int>(dims.d[1]), static_cast<int>(dims.d[2]), mParams.numPrefix, mParams.count,
            kernelType(inputDesc[0].type), stream);
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
