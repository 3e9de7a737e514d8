#include "ops/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "util/log.h"

namespace filesync::ops {
namespace {

std::string Bytes(std::uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return buf;
}

// CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC against.
unsigned long long MonotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
         static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
}

}  // namespace

SystemdNotifier::SystemdNotifier() : enabled_(std::getenv("NOTIFY_SOCKET") != nullptr) {
  std::uint64_t usec = 0;
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_ = std::thread([this, usec] { PingWatchdog(std::chrono::microseconds(usec / 2)); });
  }
}

SystemdNotifier::~SystemdNotifier() {
  {
    core::MutexLock lock(&mu_);
    closing_ = true;
  }
  cv_.SignalAll();
  if (watchdog_.joinable()) watchdog_.join();
}

void SystemdNotifier::Send(const std::string& state) {
  if (!enabled_) return;
  if (const int r = sd_notify(0, state.c_str()); r < 0) {
    log::Get("systemd")->warn("sd_notify failed: error {}", -r);
  }
}

void SystemdNotifier::PingWatchdog(std::chrono::microseconds period) {
  core::MutexLock lock(&mu_);
  while (true) {
    Send("WATCHDOG=1");
    const auto next = std::chrono::steady_clock::now() + period;
    while (!closing_ && cv_.WaitUntil(&mu_, next)) {
    }
    if (closing_) return;
  }
}

void SystemdNotifier::PassStarting() {
  core::MutexLock lock(&mu_);
  Send(ready_ ? "STATUS=pass running" : "READY=1\nSTATUS=pass running");
  ready_ = true;
}

void SystemdNotifier::PassFinished(const engine::PassReport& report) {
  Send("STATUS=" + PassSummary(report));
}

void SystemdNotifier::Reloading() {
  core::MutexLock lock(&mu_);
  ready_ = false;
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(MonotonicUsec()) +
       "\nSTATUS=reloading the configuration");
}

void SystemdNotifier::Reloaded() {
  core::MutexLock lock(&mu_);
  ready_ = true;
  Send("READY=1\nSTATUS=configuration reloaded");
}

void SystemdNotifier::Stopping() {
  core::MutexLock lock(&mu_);
  if (stopping_) return;
  stopping_ = true;
  Send("STOPPING=1\nSTATUS=stopping: starting nothing more, abandoning transfers in flight");
}

std::string PassSummary(const engine::PassReport& report) {
  const engine::PassReport::Totals t = report.totals();
  std::string stopped;
  for (const auto& r : report.roots) {
    if (r.stopped && stopped.empty()) stopped = "; " + r.local_dir + " NOT SYNCED: " + *r.stopped;
  }
  char head[96];
  std::snprintf(head, sizeof head,
                "last pass %s in %.2f s: ", report.converged() ? "complete" : "INCOMPLETE",
                static_cast<double>(report.finished_unix_ms - report.started_unix_ms) / 1000.0);
  std::string line = head + std::to_string(report.roots.size()) + " dir(s), " +
                     std::to_string(t.uploaded) + " uploaded (" + Bytes(t.bytes_uploaded) + "), " +
                     std::to_string(t.moved) + " moved, " + std::to_string(t.deleted) +
                     " deleted, " + std::to_string(t.failed) + " failed" + stopped;
  // sd_notify separates assignments with newlines: a newline in a dir name or message must not
  // start a new one.
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

}  // namespace filesync::ops
