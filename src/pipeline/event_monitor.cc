#include "pipeline/event_monitor.h"

#include <algorithm>

namespace filesync::pipeline {

EventMonitor::End EventMonitor::Run() {
  std::chrono::seconds backoff{0};
  while (!hooks_.stop_requested()) {
    const std::optional<PassVerdict> verdict = hooks_.run_pass();
    if (!verdict) return End::kFailed;
    if (hooks_.stop_requested()) break;
    std::chrono::seconds wait = poll_interval_;
    if (verdict->config_error) {
      backoff = backoff.count() == 0 ? kConfigBackoff : std::min(backoff * 2, kMaxConfigBackoff);
      wait = std::max(wait, backoff);
    } else {
      backoff = std::chrono::seconds(0);
    }
    if (hooks_.wait(wait, *verdict)) return End::kReload;
  }
  return End::kStopped;
}

}  // namespace filesync::pipeline
