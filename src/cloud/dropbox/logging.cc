#include "cloud/dropbox/logging.h"

#include <memory>

namespace filesync::dropbox {

spdlog::logger& Log() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("filesync.cloud.dropbox")) return existing;
    return spdlog::default_logger()->clone("filesync.cloud.dropbox");
  }();
  return *logger;
}

}  // namespace filesync::dropbox
