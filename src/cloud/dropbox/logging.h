// The "filesync.cloud.dropbox" logger (util/log.h: the sinks, format and level the CLI
// installs). Never pass a token, an Authorization header or a refresh token to it. Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

namespace filesync::dropbox {

spdlog::logger& Log();

}  // namespace filesync::dropbox
