/*
 * VitPruneTopKSelect: tokens (B, N, C), scores (B, N) -> (B, P + keep, C) (VPA paper §3.1, Alg. 1).
 * TensorRT IPluginV3 wrapper of the kernel in topkSelectKernel.cu; the creator is
 * VitPruneCreator<TopKSelectPlugin> (plugin name "VitPruneTopKSelect", version "1").
 */
#pragma once

#include "../common/vitprunePluginBase.h"

namespace vitprune
{
namespace plugin
{

class TopKSelectPlugin : public VitPrunePluginBase
{
public:
    static constexpr char const* kName = "VitPruneTopKSelect";
    static constexpr char const* kVersion = "1";
    static constexpr char const* kCountField = "keep";
    static constexpr bool kHasTau = false;

    TopKSelectPlugin(PluginParams params, std::string pluginNamespace)
        : VitPrunePluginBase(params, std::move(pluginNamespace))
    {
    }

    nvinfer1::IPluginV3* clone() noexcept override;
    char const* getPluginName() const noexcept override { return kName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

protected:
    char const* countField() const noexcept override { return kCountField; }
    bool hasTau() const noexcept override { return kHasTau; }
    InputRole const* inputRoles(int32_t& count) const noexcept override
    {
        static constexpr InputRole kRoles[2] = {{"tokens", 3}, {"scores", 2}};
        count = 2;
        return kRoles;
    }
    bool tokensValid(int64_t tokens) const noexcept override
    {
        return mParams.count >= 1 && tokens >= mParams.numPrefix + mParams.count;
    }
};

using TopKSelectCreator = VitPruneCreator<TopKSelectPlugin>;

} // namespace plugin
} // namespace vitprune
