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

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "engine/pass_report.h"

namespace filesync::ops {

class SystemdNotifier {
 public:
  SystemdNotifier();
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  void PassStarting();
  void PassFinished(const engine::PassReport& report);
  void Reloading();
  void Reloaded();
  void Stopping();

 private:
  void Send(const std::string& state);
  void PingWatchdog(std::chrono::microseconds period);

  const bool enabled_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  bool stopping_ = false;
  bool closing_ = false;
  std::thread watchdog_;
};

// "last pass complete in 1.25 s: 2 dir(s), 12 uploaded (3.1 MiB), 1 moved, 0 deleted, 0 failed"
// or "last pass INCOMPLETE ...; /srv/a NOT SYNCED: <why>" for the first dir that was stopped.
std::string PassSummary(const engine::PassReport& report);

}  // namespace filesync::ops
