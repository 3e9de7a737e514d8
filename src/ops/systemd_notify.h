// SystemdNotifier: tells systemd what the daemon is doing, for a Type=notify unit (sd_notify(3)).
//
//   PassStarting()   READY=1 before the first pass (and after a reload), so a first pass that
//                    takes hours does not look like a hung start; STATUS=pass running
//   PassFinished()   STATUS=<one-line summary of that pass> (see PassSummary)
//   Reloading()      RELOADING=1 with MONOTONIC_USEC=<now>; Reloaded() then sends READY=1
//   Stopping()       STOPPING=1 (once)
// With WATCHDOG_USEC set for this process (sd_watchdog_enabled), a thread owned by the notifier
// sends WATCHDOG=1 every half period until destruction: it proves the process is alive and
// scheduled, not that a pass is progressing (a first sync may legitimately take hours).
//
// Without NOTIFY_SOCKET (not started by systemd, or NotifyAccess=none) every call does nothing
// and no thread is started. Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include "core/thread_annotations.h"
#include "engine/pass_report.h"

namespace filesync::ops {

class SystemdNotifier {
 public:
  SystemdNotifier();
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  void PassStarting() EXCLUDES(mu_);
  void PassFinished(const engine::PassReport& report);
  void Reloading() EXCLUDES(mu_);
  void Reloaded() EXCLUDES(mu_);
  void Stopping() EXCLUDES(mu_);

 private:
  void Send(const std::string& state);
  void PingWatchdog(std::chrono::microseconds period) EXCLUDES(mu_);

  const bool enabled_;
  core::Mutex mu_;
  core::CondVar cv_;
  bool ready_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  bool closing_ GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

// "last pass complete in 1.25 s: 2 dir(s), 12 uploaded (3.1 MiB), 1 moved, 0 deleted, 0 failed"
// or "last pass INCOMPLETE ...; /srv/a NOT SYNCED: <why>" for the first dir that was stopped.
std::string PassSummary(const engine::PassReport& report);

}  // namespace filesync::ops
