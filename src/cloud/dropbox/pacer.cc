#include "cloud/dropbox/pacer.h"

#include <algorithm>

namespace filesync::dropbox {

namespace {
constexpr std::size_t kMaxRecent = 100000;
constexpr auto kWindow = std::chrono::seconds(1);
}  // namespace

Pacer::Pacer(PacerOptions options, core::Clock& clock)
    : options_(options),
      clock_(clock),
      rng_(options.seed != 0 ? options.seed : std::random_device{}()) {}

void Pacer::RecoverLocked(core::Clock::TimePoint now) {
  if (!rate_) return;
  const double elapsed = std::chrono::duration<double>(now - last_adjust_).count();
  if (elapsed <= 0) return;
  last_adjust_ = now;
  *rate_ += options_.recovery_per_second * elapsed;
  if (*rate_ >= ceiling_) rate_.reset();
}

void Pacer::Wait(const std::atomic<bool>* cancel) {
  core::Clock::TimePoint target;
  {
    core::MutexLock lock(&mu_);
    const core::Clock::TimePoint now = clock_.Now();
    RecoverLocked(now);
    target = std::max(now, pause_until_);
    if (rate_) {
      target = std::max(target, next_slot_);
      next_slot_ = target + std::chrono::duration_cast<core::Clock::TimePoint::duration>(
                                std::chrono::duration<double>(1.0 / *rate_));
    }
    recent_.push_back(target);
    while (!recent_.empty() &&
           (recent_.front() + kWindow < target || recent_.size() > kMaxRecent)) {
      recent_.pop_front();
    }
  }
  if (cancel == nullptr) {
    if (target > clock_.Now()) clock_.SleepUntil(target);
    return;
  }
  // In slices, so a stop ends a long pause (a Retry-After of minutes) within a tenth of a second.
  for (auto now = clock_.Now(); now < target && !cancel->load(); now = clock_.Now()) {
    clock_.SleepUntil(std::min(target, now + std::chrono::milliseconds(100)));
  }
}

void Pacer::OnRateLimited(RateReason reason, std::optional<std::chrono::milliseconds> retry_after) {
  core::MutexLock lock(&mu_);
  const core::Clock::TimePoint now = clock_.Now();
  if (reason == RateReason::kTooManyWriteOperations) write_contention_ = true;
  std::optional<std::chrono::milliseconds> pause = retry_after;
  if (!pause && reason == RateReason::kTooManyRequests) pause = options_.default_retry_after;
  if (pause) {
    // At least 1 s (reference §14), plus 0-20 % so paused workers do not all resume at once.
    const auto base = std::max(*pause, std::chrono::milliseconds(1000));
    std::uniform_real_distribution<double> extra(0.0, 0.2);
    const auto jitter = std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(base.count()) * extra(rng_)));
    pause_until_ = std::max(pause_until_, now + base + jitter);
  }
  if (reason == RateReason::kTooManyRequests) {
    while (!recent_.empty() && recent_.front() + kWindow < now) recent_.pop_front();
    const double measured = std::max(1.0, static_cast<double>(recent_.size()));
    const double current = rate_ ? std::min(*rate_, measured) : measured;
    ceiling_ = rate_ ? std::max(ceiling_, current) : current;
    rate_ = std::max(options_.min_rate, current / 2.0);
    last_adjust_ = std::max(now, pause_until_);
    next_slot_ = pause_until_;
  }
}

std::chrono::milliseconds Pacer::Jittered(std::chrono::milliseconds base,
                                          std::chrono::milliseconds cap, int attempt) {
  const int shift = std::clamp(attempt - 1, 0, 30);
  const std::int64_t ceiling = std::min<std::int64_t>(cap.count(), base.count() << shift);
  core::MutexLock lock(&mu_);
  std::uniform_int_distribution<std::int64_t> dist(0, std::max<std::int64_t>(0, ceiling));
  return std::chrono::milliseconds(dist(rng_));
}

std::chrono::milliseconds Pacer::Backoff(int attempt) {
  return Jittered(options_.backoff_base, options_.backoff_cap, attempt);
}

std::chrono::milliseconds Pacer::WriteBackoff(int attempt) {
  return Jittered(options_.write_backoff_base, options_.write_backoff_cap, attempt);
}

std::unique_lock<std::mutex> Pacer::CommitLock() {
  if (!write_contention()) return {};
  return std::unique_lock(commit_mu_);
}

bool Pacer::write_contention() const {
  core::MutexLock lock(&mu_);
  return write_contention_;
}

std::optional<double> Pacer::rate() const {
  core::MutexLock lock(&mu_);
  return rate_;
}

core::Clock::TimePoint Pacer::paused_until() const {
  core::MutexLock lock(&mu_);
  return pause_until_;
}

}  // namespace filesync::dropbox
