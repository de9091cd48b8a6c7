/*
 * Entry points TensorRT looks for when it loads libvitprune_plugins.so
 * (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, Python registry.load_library):
 * setLoggerFinder and getCreators, which hands out one IPluginCreatorV3One per op.
 */
#include "../tomeMerge/tomeMergePlugin.h"
#include "../topkSelect/topkSelectPlugin.h"
#include "../vpa/vpaPlugin.h"

namespace vitprune
{
namespace plugin
{
void setGlobalLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
} // namespace plugin
} // namespace vitprune

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    vitprune::plugin::setGlobalLoggerFinder(finder);
}

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static vitprune::plugin::TopKSelectCreator topkSelectCreator;
    static vitprune::plugin::VPACreator vpaCreator;
    static vitprune::plugin::ToMeMergeCreator tomeMergeCreator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&topkSelectCreator, &vpaCreator, &tomeMergeCreator};
    nbCreators = 3;
    return creators;
}
