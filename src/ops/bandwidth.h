// Bandwidth: the `bwlimit` schedule and the limiter every transfer draws from.
//
// BandwidthSchedule is the parsed `bwlimit` value: "off", a rate ("8MiB", "500k", "1.5M", a
// plain byte count), or a day timetable like rclone's "08:00,1MiB 19:00,off": from each local
// time the rate after it applies, and before the first time of the day the last entry's rate
// (the day wraps). Rates are bytes per second; k/K/KiB, M/MiB, G/GiB are powers of 1024 (as in
// rclone), B is bytes; at least 1 KiB/s, so a forgotten unit ("500") is an error, not a crawl.
//
// BandwidthLimiter is one token bucket shared by every worker and both backends. A transfer
// loop asks before each piece it sends:
//
//   for (each buffer of n bytes read from the file) {
//     if (Status s = limiter.Acquire(n, &cancel); !s.ok()) return s;   // kCancelled on a stop
//     send the n bytes;
//   }
//
// Acquire blocks until the bytes fit under the current rate (any n: a large n is granted in
// pieces of at most 0.1 s of rate), returns at once when the limit is off, and gives up with
// Status::Cancelled within ~50 ms of *cancel becoming true. The rate follows the local time of
// day; SetSchedule (on SIGHUP) takes effect for waiters already blocked. Over any interval T the
// bytes granted are at most rate*T plus two pieces (unused rate is saved up to one piece).
//
// Thread safety: every method of BandwidthLimiter may be called from any thread.
// BandwidthSchedule is a plain value.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/thread_annotations.h"
#include "util/status.h"

namespace filesync::ops {

struct BandwidthSchedule {
  struct Slot {
    int minute_of_day = 0;               // 0..1439, local time
    std::uint64_t bytes_per_second = 0;  // 0: no limit
    bool operator==(const Slot&) const = default;
  };
  // Sorted by minute_of_day, distinct minutes. Empty: no limit. A constant rate is one slot at
  // minute 0.
  std::vector<Slot> slots;

  // The parsed value, or kInvalidArgument whose message says what is wrong and, after "; ",
  // how to write it (without naming the key: the caller does).
  static Result<BandwidthSchedule> Parse(std::string_view text);
  // A constant rate (0: no limit).
  static BandwidthSchedule Constant(std::uint64_t bytes_per_second);

  // The rate at a minute of the local day (0: no limit).
  [[nodiscard]] std::uint64_t RateAt(int minute_of_day) const;
  [[nodiscard]] bool unlimited() const;
  // Parse(ToString()) == *this: "off", "8MiB", "08:00,1MiB 19:00,off".
  [[nodiscard]] std::string ToString() const;
  bool operator==(const BandwidthSchedule&) const = default;
};

// Formats a rate as Parse reads it: "off", "8MiB", "1.5MiB", "500KiB", "1500" (bytes).
std::string FormatRate(std::uint64_t bytes_per_second);

// The minute of the local day now, 0..1439 (localtime_r).
int LocalMinuteNow();

class BandwidthLimiter {
 public:
  using MinuteSource = std::function<int()>;  // the local minute of the day (tests inject one)

  explicit BandwidthLimiter(BandwidthSchedule schedule, MinuteSource minute = LocalMinuteNow);
  BandwidthLimiter(const BandwidthLimiter&) = delete;
  BandwidthLimiter& operator=(const BandwidthLimiter&) = delete;

  // Blocks until `bytes` may be sent; Ok, or Cancelled if *cancel is (or becomes) true first.
  // Bytes granted before a cancel stay spent.
  Status Acquire(std::uint64_t bytes, const std::atomic<bool>* cancel = nullptr) EXCLUDES(mu_);

  // Replaces the schedule; blocked callers continue under the new one.
  void SetSchedule(BandwidthSchedule schedule) EXCLUDES(mu_);

  // The rate in force now (0: no limit), for logs and the bwlimit gauge.
  [[nodiscard]] std::uint64_t CurrentRate() EXCLUDES(mu_);

 private:
  using Clock = std::chrono::steady_clock;

  // Re-reads the rate for the current minute and adds the tokens earned since the last refill.
  void Refill(Clock::time_point now) REQUIRES(mu_);

  const MinuteSource minute_;
  core::Mutex mu_;
  core::CondVar changed_;
  BandwidthSchedule schedule_ GUARDED_BY(mu_);
  std::uint64_t rate_ GUARDED_BY(mu_) = 0;  // bytes per second now; 0: no limit
  // Earned and unspent (up to one piece), negative while in debt.
  double tokens_ GUARDED_BY(mu_) = 0;
  Clock::time_point refilled_ GUARDED_BY(mu_);
};

}  // namespace filesync::ops
