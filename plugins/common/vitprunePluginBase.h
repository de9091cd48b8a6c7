/*
 * Shared base of the vitprune TensorRT plugins (IPluginV3 with the OneCore/OneBuild/OneRuntime
 * capabilities) and a creator template (IPluginCreatorV3One), written against TensorRT 10.3
 * (JetPack 6) and valid on later 10.x / 11.x, where IPluginV3 is the plugin interface.
 *
 * Every op here has the same scalar attributes: `num_prefix`, a count (`keep` or `merges`) and,
 * for VPA, `tau`; the ONNX node also carries `plugin_version` and `plugin_namespace`, which
 * TensorRT's ONNX parser consumes to find the creator. Every noexcept method catches and reports;
 * no exception leaves the library.
 */
#pragma once

#include "../common/vitpruneKernelTypes.h"
#include "../common/vitprunePluginShapes.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

namespace vitprune
{
namespace plugin
{

constexpr char const* kDefaultNamespace = "";

//! Report an error through the logger TensorRT handed to setLoggerFinder (stderr before that).
void reportError(char const* pluginName, char const* where, char const* what) noexcept;

//! The scalar attributes of a vitprune plugin node.
struct PluginParams
{
    int32_t numPrefix{1};
    int32_t count{0}; //!< `keep` (TopKSelect, VPA) or `merges` (ToMeMerge)
    float tau{0.001F};
};

class VitPrunePluginBase : public nvinfer1::IPluginV3,
                           public nvinfer1::IPluginV3OneCore,
                           public nvinfer1::IPluginV3OneBuild,
                           public nvinfer1::IPluginV3OneRuntime
{
public:
    VitPrunePluginBase(PluginParams params, std::string pluginNamespace);
    ~VitPrunePluginBase() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;

    // IPluginV3OneCore (each plugin names itself: getPluginName, getPluginVersion)
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    bool supportsFormatCombination(
        int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    //! Name of the count attribute: "keep" or "merges".
    virtual char const* countField() const noexcept = 0;
    //! Whether the op has the `tau` attribute.
    virtual bool hasTau() const noexcept { return false; }
    //! The op's inputs in order (name, rank), `count` of them; input 0 is the tokens (batch, tokens, channels).
    virtual InputRole const* inputRoles(int32_t& count) const noexcept = 0;
    //! Number of inputs the op takes.
    int32_t nbInputsExpected() const noexcept
    {
        int32_t count = 0;
        static_cast<void>(inputRoles(count));
        return count;
    }
    //! "" when the inputs' shapes fit the op (every input's rank, batch and token count), else what is wrong.
    std::string inputShapeError(nvinfer1::Dims const* const* dims, int32_t nbInputs) const;
    //! Check the token count N of the first input against the attributes (true = valid).
    virtual bool tokensValid(int64_t tokens) const noexcept = 0;

    //! Turn a launcher status into TensorRT's (0 = success) and report failures.
    int32_t checkLaunch(int status, char const* where) const noexcept;
    static VitPruneDataType kernelType(nvinfer1::DataType type) noexcept;

    PluginParams mParams;
    std::string mNamespace;

private:
    std::vector<nvinfer1::PluginField> mSerializeFields;
    nvinfer1::PluginFieldCollection mSerializeCollection{};
};

//! Read `num_prefix`, the count field and `tau` (when asked) from a field collection; false if one is missing.
bool readParams(nvinfer1::PluginFieldCollection const* fc, char const* countField, bool needTau, PluginParams& params,
    std::string& error) noexcept;

//! One creator per op: `Plugin` has a static kName, kVersion, kCountField, kHasTau and a constructor (PluginParams,
//! namespace).
template <typename Plugin>
class VitPruneCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    VitPruneCreator()
    {
        mFields.emplace_back("num_prefix", nullptr, nvinfer1::PluginFieldType::kINT32, 1);
        mFields.emplace_back(Plugin::kCountField, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
        if (Plugin::kHasTau)
            mFields.emplace_back("tau", nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1);
        mCollection.nbFields = static_cast<int32_t>(mFields.size());
        mCollection.fields = mFields.data();
    }

    char const* getPluginName() const noexcept override { return Plugin::kName; }
    char const* getPluginVersion() const noexcept override { return Plugin::kVersion; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override
    {
        try
        {
            static_cast<void>(name);
            static_cast<void>(phase);
            PluginParams params;
            std::string error;
            if (!readParams(fc, Plugin::kCountField, Plugin::kHasTau, params, error))
            {
                reportError(Plugin::kName, "createPlugin", error.c_str());
                return nullptr;
            }
            return new Plugin(params, mNamespace);
        }
        catch (std::exception const& e)
        {
            reportError(Plugin::kName, "createPlugin", e.what());
        }
        catch (...)
        {
            reportError(Plugin::kName, "createPlugin", "unknown exception");
        }
        return nullptr;
    }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
    std::string mNamespace{kDefaultNamespace};
};

} // namespace plugin
} // namespace vitprune
