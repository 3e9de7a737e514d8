// Pacer: the one rate-limit governor shared by every worker and sync dir of a Dropbox account
// (limits are per access token, reference §14).
//
//  - Wait() is called before every request. It blocks while the account is paused and, once
//    Dropbox has said too_many_requests, spaces requests to the allowed rate.
//  - OnRateLimited(): a 429 with Retry-After (or JSON retry_after) pauses EVERY caller until then
//    (+0-20 % jitter). too_many_requests also halves the allowed rate (multiplicative decrease,
//    starting from the rate measured over the last second); the rate then grows back by
//    recovery_per_second each second and becomes unlimited again once it reaches the rate that
//    was limited. too_many_write_operations switches commits to serial (CommitLock()) and sets
//    write_contention(), which tells the uploader to commit retried entries together.
//  - Backoff(n) / WriteBackoff(n): full-jitter exponential delays, uniform in
//    [0, min(cap, base * 2^(n-1))], for 5xx/network errors and for write contention.
// Thread-safe. Time comes from a core::Clock so tests can use a fake one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>

#include "cloud/dropbox/errors.h"
#include "cloud/dropbox/pacer_options.h"
#include "core/clock.h"
#include "core/thread_annotations.h"

namespace filesync::dropbox {

class Pacer {
 public:
  Pacer(PacerOptions options, core::Clock& clock);

  // Blocks until a request may be sent, or until `cancel` (if given) is set.
  void Wait(const std::atomic<bool>* cancel = nullptr);

  // Records a rate-limit answer. `retry_after` is the server's hint, if any.
  void OnRateLimited(RateReason reason, std::optional<std::chrono::milliseconds> retry_after);

  [[nodiscard]] std::chrono::milliseconds Backoff(int attempt);
  [[nodiscard]] std::chrono::milliseconds WriteBackoff(int attempt);
  void Sleep(std::chrono::milliseconds d) { clock_.SleepFor(d); }

  // Held around a commit (finish_batch_v2, delete_batch, move): empty (not owning) until write
  // contention has been seen, then a lock on the account-wide commit mutex.
  [[nodiscard]] std::unique_lock<std::mutex> CommitLock();

  [[nodiscard]] bool write_contention() const;
  // Allowed requests per second, nullopt when unlimited.
  [[nodiscard]] std::optional<double> rate() const;
  [[nodiscard]] core::Clock::TimePoint paused_until() const;
  [[nodiscard]] const PacerOptions& options() const { return options_; }
  [[nodiscard]] core::Clock& clock() { return clock_; }

 private:
  std::chrono::milliseconds Jittered(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                     int attempt) EXCLUDES(mu_);
  void RecoverLocked(core::Clock::TimePoint now) REQUIRES(mu_);

  const PacerOptions options_;
  core::Clock& clock_;
  mutable core::Mutex mu_;
  core::Clock::TimePoint pause_until_ GUARDED_BY(mu_){};
  std::optional<double> rate_ GUARDED_BY(mu_);
  double ceiling_ GUARDED_BY(mu_) = 0;  // the rate at which we were limited
  core::Clock::TimePoint last_adjust_ GUARDED_BY(mu_){};
  core::Clock::TimePoint next_slot_ GUARDED_BY(mu_){};
  std::deque<core::Clock::TimePoint> recent_ GUARDED_BY(mu_);  // request times, last second
  bool write_contention_ GUARDED_BY(mu_) = false;
  std::mt19937_64 rng_ GUARDED_BY(mu_);
  // A plain std::mutex, not a core::Mutex: it guards no member (CommitLock's callers hold it
  // around a commit), and CommitLock takes it only once write contention has been seen, a
  // conditional hold the analysis cannot express.
  std::mutex commit_mu_;
};

}  // namespace filesync::dropbox
