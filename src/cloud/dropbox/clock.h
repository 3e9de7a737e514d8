// Clock: the time source of the Dropbox backend (pacer, token expiry, upload-session age), so
// tests can run backoff and pauses on a fake clock. SystemClock() is the real one.
// Implementations must be thread-safe.
#pragma once

#include <chrono>

namespace filesync::dropbox {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint Now() = 0;
  // Wall-clock time, for values persisted across restarts (upload-session start times).
  virtual std::chrono::system_clock::time_point WallNow() = 0;
  // Returns at or after `deadline` (at once if it has passed).
  virtual void SleepUntil(TimePoint deadline) = 0;
  void SleepFor(std::chrono::steady_clock::duration d) { SleepUntil(Now() + d); }
};

// The process-wide real clock (steady_clock / system_clock / this_thread::sleep_until).
Clock& SystemClock();

}  // namespace filesync::dropbox
