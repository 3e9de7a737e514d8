// The "filesync.cloud.dropbox" spdlog logger (sinks of the default logger). Never pass a token,
// an Authorization header or a refresh token to it. Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

namespace filesync::dropbox {

spdlog::logger& Log();

}  // namespace filesync::dropbox
