#include "cloud/dropbox/logging.h"

#include <memory>

#include "util/log.h"

namespace filesync::dropbox {

spdlog::logger& Log() {
  static const std::shared_ptr<spdlog::logger> logger = log::Get("cloud.dropbox");
  return *logger;
}

}  // namespace filesync::dropbox
