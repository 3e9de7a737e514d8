// Clock: the time source of whatever waits or stamps time (the Dropbox pacer, token expiry,
// upload-session age; the engine once it is carved), so tests can run backoff, pauses and
// expiry on a fake clock instead of sleeping. SystemClock() is the real one.
// Implementations must be thread-safe.
#pragma once

#include <chrono>

namespace filesync::core {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  // Monotonic time, for intervals and deadlines.
  virtual TimePoint Now() = 0;
  // Wall-clock time, for values persisted across restarts (upload-session start times).
  virtual std::chrono::system_clock::time_point WallNow() = 0;
  // Returns at or after `deadline` (at once if it has passed).
  virtual void SleepUntil(TimePoint deadline) = 0;
  void SleepFor(std::chrono::steady_clock::duration d) { SleepUntil(Now() + d); }
};

// The process-wide real clock (steady_clock / system_clock / this_thread::sleep_until).
Clock& SystemClock();

}  // namespace filesync::core
