// The engine's options from the configuration: the one place that turns config::Config into
// engine::EngineOptions, so the engine never reads the configuration (or where a key was set).
#pragma once

#include "config/config.h"
#include "engine/sync_engine.h"

namespace filesync::cli {

// Throws config::ConfigError (one line naming the file and key) when an exclude pattern does
// not compile.
engine::EngineOptions EngineOptionsFor(const config::Config& config);

}  // namespace filesync::cli
