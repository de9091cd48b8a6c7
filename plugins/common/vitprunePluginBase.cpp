/* Shared parts of the vitprune IPluginV3 plugins: capabilities, formats, fields, error reporting. */
#include "vitprunePluginBase.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>

namespace vitprune
{
namespace plugin
{

nvinfer1::ILoggerFinder* gLoggerFinder{nullptr};
//! Guards gLoggerFinder: TensorRT may set it while another thread's build reports an error.
std::mutex gLoggerMutex;

void setGlobalLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    std::lock_guard<std::mutex> const lock(gLoggerMutex);
    gLoggerFinder = finder;
}

void reportError(char const* pluginName, char const* where, char const* what) noexcept
{
    try
    {
        std::string const message = std::string(pluginName) + "::" + where + ": " + what;
        std::lock_guard<std::mutex> const lock(gLoggerMutex);
        nvinfer1::ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
        if (logger != nullptr)
            logger->log(nvinfer1::ILogger::Severity::kERROR, message.c_str());
        else
            std::fprintf(stderr, "[vitprune] %s\n", message.c_str());
    }
    catch (...)
    {
        std::fprintf(stderr, "[vitprune] %s::%s failed\n", pluginName, where);
    }
}

namespace
{

bool readScalar(nvinfer1::PluginField const& field, double& value) noexcept
{
    if (field.data == nullptr || field.length < 1)
        return false;
    switch (field.type)
    {
    case nvinfer1::PluginFieldType::kINT32: value = *static_cast<int32_t const*>(field.data); return true;
    case nvinfer1::PluginFieldType::kINT64: value = static_cast<double>(*static_cast<int64_t const*>(field.data)); return true;
    case nvinfer1::PluginFieldType::kFLOAT32: value = *static_cast<float const*>(field.data); return true;
    case nvinfer1::PluginFieldType::kFLOAT64: value = *static_cast<double const*>(field.data); return true;
    default: return false;
    }
}

} // namespace

bool readParams(nvinfer1::PluginFieldCollection const* fc, char const* countField, bool needTau, PluginParams& params,
    std::string& error) noexcept
{
    try
    {
        bool haveNumPrefix = false;
        bool haveCount = false;
        bool haveTau = !needTau;
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            nvinfer1::PluginField const& field = fc->fields[i];
            if (field.name == nullptr)
                continue;
            double value = 0.0;
            bool const known = std::strcmp(field.name, "num_prefix") == 0 || std::strcmp(field.name, countField) == 0
                || std::strcmp(field.name, "tau") == 0;
            if (!known)
                continue; // plugin_version / plugin_namespace are the parser's business
            if (!readScalar(field, value))
            {
                error = std::string("attribute ") + field.name + " has an unsupported type or no data";
                return false;
            }
            if (std::strcmp(field.name, "num_prefix") == 0)
            {
                params.numPrefix = static_cast<int32_t>(value);
                haveNumPrefix = true;
            }
            else if (std::strcmp(field.name, countField) == 0)
            {
                params.count = static_cast<int32_t>(value);
                haveCount = true;
            }
            else
            {
                params.tau = static_cast<float>(value);
                haveTau = true;
            }
        }
        if (!haveNumPrefix || !haveCount || !haveTau)
        {
            error = std::string("missing attribute(s): need num_prefix, ") + countField + (needTau ? ", tau" : "");
            return false;
        }
        if (params.numPrefix < 0 || params.count < 0 || (needTau && !(params.tau > 0.F)))
        {
            error = "num_prefix and the count must be >= 0 and tau > 0";
            return false;
        }
        return true;
    }
    catch (std::exception const& e)
    {
        error = e.what();
    }
    catch (...)
    {
        error = "unknown exception";
    }
    return false;
}

VitPrunePluginBase::VitPrunePluginBase(PluginParams params, std::string pluginNamespace)
    : mParams(params)
    , mNamespace(std::move(pluginNamespace))
{
}

nvinfer1::IPluginCapability* VitPrunePluginBase::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    try
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
    }
    catch (...)
    {
        reportError(getPluginName(), "getCapabilityInterface", "unknown exception");
    }
    return nullptr;
}

std::string VitPrunePluginBase::inputShapeError(nvinfer1::Dims const* const* dims, int32_t nbInputs) const
{
    int32_t count = 0;
    InputRole const* roles = inputRoles(count);
    std::vector<InputShape> shapes(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        shapes[static_cast<size_t>(i)].nbDims = dims[i]->nbDims;
        for (int32_t d = 0; d < dims[i]->nbDims && d < 8; ++d)
            shapes[static_cast<size_t>(i)].d[d] = dims[i]->d[d];
    }
    return checkInputShapes(shapes.data(), nbInputs, roles, count);
}

int32_t VitPrunePluginBase::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        static_cast<void>(out);
        static_cast<void>(nbOutputs);
        if (nbInputs != nbInputsExpected())
        {
            reportError(getPluginName(), "configurePlugin", "wrong number of inputs");
            return -1;
        }
        std::vector<nvinfer1::Dims const*> dims;
        for (int32_t i = 0; i < nbInputs; ++i)
            dims.push_back(&in[i].desc.dims); // -1 where a dimension is not known yet
        std::string const error = inputShapeError(dims.data(), nbInputs);
        if (!error.empty())
        {
            reportError(getPluginName(), "configurePlugin", error.c_str());
            return -1;
        }
        int64_t const tokens = in[0].desc.dims.d[1];
        if (tokens >= 0 && !tokensValid(tokens))
        {
            reportError(getPluginName(), "configurePlugin", "token count does not fit num_prefix and the count attribute");
            return -1;
        }
        return 0;
    }
    catch (std::exception const& e)
    {
        reportError(getPluginName(), "configurePlugin", e.what());
    }
    catch (...)
    {
        reportError(getPluginName(), "configurePlugin", "unknown exception");
    }
    return -1;
}

int32_t VitPrunePluginBase::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        if (nbInputs < 1)
            return -1;
        for (int32_t i = 0; i < nbOutputs; ++i)
            outputTypes[i] = inputTypes[0];
        return 0;
    }
    catch (...)
    {
        reportError(getPluginName(), "getOutputDataTypes", "unknown exception");
    }
    return -1;
}

bool VitPrunePluginBase::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        if (pos < 0 || pos >= nbInputs + nbOutputs)
            return false;
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        bool const floating = desc.type == nvinfer1::DataType::kFLOAT || desc.type == nvinfer1::DataType::kHALF;
        return desc.format == nvinfer1::TensorFormat::kLINEAR && floating && desc.type == inOut[0].desc.type;
    }
    catch (...)
    {
        reportError(getPluginName(), "supportsFormatCombination", "unknown exception");
    }
    return false;
}

int32_t VitPrunePluginBase::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        static_cast<void>(out);
        static_cast<void>(nbOutputs);
        std::vector<nvinfer1::Dims const*> dims;
        for (int32_t i = 0; i < nbInputs; ++i)
            dims.push_back(&in[i].dims);
        std::string error = inputShapeError(dims.data(), nbInputs);
        if (error.empty() && !tokensValid(in[0].dims.d[1]))
            error = "the token count does not fit num_prefix and the count attribute";
        if (!error.empty())
        {
            reportError(getPluginName(), "onShapeChange", error.c_str());
            return -1;
        }
        return 0;
    }
    catch (...)
    {
        reportError(getPluginName(), "onShapeChange", "unknown exception");
    }
    return -1;
}

nvinfer1::IPluginV3* VitPrunePluginBase::attachToContext(nvinfer1::IPluginResourceContext* context) noexcept
{
    try
    {
        static_cast<void>(context);
        return clone();
    }
    catch (...)
    {
        reportError(getPluginName(), "attachToContext", "unknown exception");
    }
    return nullptr;
}

nvinfer1::PluginFieldCollection const* VitPrunePluginBase::getFieldsToSerialize() noexcept
{
    try
    {
        mSerializeFields.clear();
        mSerializeFields.emplace_back("num_prefix", &mParams.numPrefix, nvinfer1::PluginFieldType::kINT32, 1);
        mSerializeFields.emplace_back(countField(), &mParams.count, nvinfer1::PluginFieldType::kINT32, 1);
        if (hasTau())
            mSerializeFields.emplace_back("tau", &mParams.tau, nvinfer1::PluginFieldType::kFLOAT32, 1);
        mSerializeCollection.nbFields = static_cast<int32_t>(mSerializeFields.size());
        mSerializeCollection.fields = mSerializeFields.data();
        return &mSerializeCollection;
    }
    catch (std::exception const& e)
    {
        reportError(getPluginName(), "getFieldsToSerialize", e.what());
    }
    catch (...)
    {
        reportError(getPluginName(), "getFieldsToSerialize", "unknown exception");
    }
    return nullptr;
}

int32_t VitPrunePluginBase::checkLaunch(int status, char const* where) const noexcept
{
    if (status == 0)
        return 0;
    char message[96];
    std::snprintf(message, sizeof(message), "kernel launch failed with status %d", status);
    reportError(getPluginName(), where, message);
    return status;
}

VitPruneDataType VitPrunePluginBase::kernelType(nvinfer1::DataType type) noexcept
{
    return type == nvinfer1::DataType::kHALF ? VITPRUNE_FLOAT16 : VITPRUNE_FLOAT32;
}

} // namespace plugin
} // namespace vitprune
