// Progress display for a pass: on a terminal, a live line (files and bytes done/total, rate,
// ETA) redrawn on stderr; off a terminal, a plain log line every 10 seconds. Owns one thread,
// stopped and joined by the destructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "pipeline/event_monitor.h"

namespace filesync::cli {

class ProgressDisplay {
 public:
  explicit ProgressDisplay(const pipeline::PassProgress& progress, bool enabled);
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

 private:
  void Run();

  const pipeline::PassProgress& progress_;
  const bool tty_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

std::string HumanBytes(std::uint64_t bytes);

}  // namespace filesync::cli
