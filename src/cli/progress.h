// Progress of a running pass. With a live line (text logs, stderr a terminal) one line is
// redrawn on stderr: actions and bytes done/total, rate, ETA and the last file done, cut to the
// terminal's width so it never wraps. Otherwise a log record (structured in JSON) every
// 10 seconds. A `tick` callback, if given, runs every `tick_every` and as soon as more actions
// are planned (the status snapshot).
// Owns one thread, stopped and joined by the destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "core/thread_annotations.h"
#include "engine/pass_report.h"

namespace filesync::cli {

class ProgressDisplay {
 public:
  ProgressDisplay(const engine::PassProgress& progress, std::function<void()> tick,
                  std::chrono::milliseconds tick_every);
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

 private:
  void Run() EXCLUDES(mu_);

  const engine::PassProgress& progress_;
  const std::function<void()> tick_;
  const std::chrono::milliseconds tick_every_;
  const bool live_line_;
  core::Mutex mu_;
  core::CondVar cv_;
  bool done_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

std::string HumanBytes(std::uint64_t bytes);

// The progress line's text for `columns` columns: counters first, then as much of the end of
// `current` (the last file done) as fits; never wider than `columns`.
std::string ProgressLine(std::uint64_t files_done, std::uint64_t files_total,
                         std::uint64_t bytes_done, std::uint64_t bytes_total, double rate,
                         const std::string& current, std::size_t columns);

}  // namespace filesync::cli
