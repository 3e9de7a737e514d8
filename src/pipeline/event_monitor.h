// EventMonitor: the seed's Client.EventMonitor, the loop that starts passes. It runs a pass,
// waits poll_interval (or longer after a pass that met a configuration problem: from 60 s,
// doubling up to an hour, so a refused token is not asked about again every poll_interval), and
// starts the next, until a stop or a reload is asked for. What a pass does, and how the wait is
// woken (signals), is the caller's: it hands the monitor a pass to run and a wait, so the monitor
// sits below the engine (pipeline/ does not include engine/) and the daemon plugs in its
// observers (systemd, status) around the pass.
// Thread safety: Run() on one thread; the hooks are called on that thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace filesync::pipeline {

// What the loop needs to know about a finished pass.
struct PassVerdict {
  // Set when the pass stopped on something only the configuration can fix: passes back off.
  std::optional<std::string> config_error;
};

class EventMonitor {
 public:
  struct Hooks {
    // True once a stop was requested: no further pass starts, no wait begins.
    std::function<bool()> stop_requested;
    // Runs one pass; nullopt when the daemon cannot go on (the loop ends with kFailed).
    std::function<std::optional<PassVerdict>()> run_pass;
    // Waits up to `wait` before the next pass (after `last`); returns true if a reload was asked
    // for meanwhile.
    std::function<bool(std::chrono::seconds wait, const PassVerdict& last)> wait;
  };
  enum class End { kStopped, kReload, kFailed };

  static constexpr std::chrono::seconds kConfigBackoff{60};
  static constexpr std::chrono::seconds kMaxConfigBackoff{3600};

  EventMonitor(std::chrono::seconds poll_interval, Hooks hooks)
      : poll_interval_(poll_interval), hooks_(std::move(hooks)) {}

  // Runs passes until a stop, a reload or a pass that cannot run.
  End Run();

 private:
  const std::chrono::seconds poll_interval_;
  const Hooks hooks_;
};

}  // namespace filesync::pipeline
