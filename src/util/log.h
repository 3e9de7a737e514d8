// Logging: one spdlog logger per module ("filesync.scan", "filesync.monitor", ...), all sharing
// the sinks and format the CLI installs (text, or one JSON object per line with --log-format json).
// Tokens and secrets are never passed to a logger.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace filesync::log {

enum class Format { kText, kJson };

// Installs the process-wide sinks (stderr) and level. Call once at start-up; safe to call again
// (SIGHUP reload) to change the level.
void Setup(Format format, const std::string& level);

// The logger of a module; created on first use with the installed sinks.
std::shared_ptr<spdlog::logger> Get(const std::string& module);

}  // namespace filesync::log
