// SignalWatcher: SIGINT, SIGTERM and SIGHUP for the sync and run subcommands.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "core/thread_annotations.h"

namespace filesync::cli {

// Blocks SIGINT, SIGTERM and SIGHUP in every thread and handles them on one thread with
// sigwait(), so no work happens in a signal handler. The first SIGINT/SIGTERM asks for a stop
// (in-flight work finishes, nothing more starts); a second one ends the process at once with
// 128 + the signal number: uploads go through staging or upload sessions and the state store
// commits in transactions, so nothing half-done is ever taken for done.
class SignalWatcher {
 public:
  SignalWatcher();
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // Runs `fn` (on the signal thread) at the first SIGINT/SIGTERM; nullptr removes it.
  void OnStop(std::function<void()> fn) EXCLUDES(mu_);
  [[nodiscard]] bool stop() const { return stop_.load(); }
  // Waits up to `timeout`; returns true if a reload (SIGHUP) was requested.
  bool WaitFor(std::chrono::seconds timeout) EXCLUDES(mu_);

 private:
  void Run() EXCLUDES(mu_);

  sigset_t set_{};
  core::Mutex mu_;
  core::CondVar cv_;
  std::function<void()> on_stop_ GUARDED_BY(mu_);
  std::atomic<bool> stop_{false};
  bool reload_ GUARDED_BY(mu_) = false;
  bool closing_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace filesync::cli
