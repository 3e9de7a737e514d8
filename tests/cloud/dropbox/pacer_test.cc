#include "cloud/dropbox/pacer.h"

#include <gtest/gtest.h>

#include <atomic>

#include "fakes.h"

namespace filesync::dropbox {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

PacerOptions Options() {
  PacerOptions o;
  o.seed = 42;
  return o;
}

TEST(Pacer, NoLimitMeansNoWaiting) {
  FakeClock clock;
  Pacer pacer(Options(), clock);
  for (int i = 0; i < 100; ++i) pacer.Wait();
  EXPECT_TRUE(clock.sleeps().empty());
  EXPECT_FALSE(pacer.rate().has_value());
}

TEST(Pacer, RetryAfterPausesEveryCallerAtLeastThatLong) {
  FakeClock clock;
  Pacer pacer(Options(), clock);
  const auto start = clock.Now();
  pacer.OnRateLimited(RateReason::kTooManyRequests, 3s);
  pacer.Wait();  // "worker 1"
  EXPECT_GE(clock.Now() - start, 3s);
  EXPECT_LE(clock.Now() - start, 3600ms);  // at most +20 % jitter
  const auto resumed = clock.Now();
  pacer.Wait();  // "worker 2" after the pause: not paused again, only rate-spaced
  EXPECT_LE(clock.Now() - resumed, 1s);
}

// A stop ends a caller's wait for a long Retry-After at once; other callers still wait it out.
TEST(Pacer, AStopEndsTheWaitForAPause) {
  FakeClock clock;
  Pacer pacer(Options(), clock);
  const auto start = clock.Now();
  pacer.OnRateLimited(RateReason::kTooManyRequests, 300s);
  std::atomic<bool> stop{true};
  pacer.Wait(&stop);
  EXPECT_LT(clock.Now() - start, 1s);
  stop = false;
  pacer.Wait(&stop);
  EXPECT_GE(clock.Now() - start, 300s);
}

TEST(Pacer, WritePauseWithRetryAfterAlsoPausesEveryone) {
  FakeClock clock;
  Pacer pacer(Options(), clock);
  const auto start = clock.Now();
  pacer.OnRateLimited(RateReason::kTooManyWriteOperations, 2s);
  pacer.Wait();
  EXPECT_GE(clock.Now() - start, 2s);
  EXPECT_FALSE(pacer.rate().has_value()) << "write contention does not lower the request rate";
}

TEST(Pacer, TooManyRequestsWithoutHintWaitsDefault) {
  FakeClock clock;
  Pacer pacer(Options(), clock);
  const auto start = clock.Now();
  pacer.OnRateLimited(RateReason::kTooManyRequests, std::nullopt);
  pacer.Wait();
  EXPECT_GE(clock.Now() - start, 5s);
}

TEST(Pacer, TooManyRequestsHalvesMeasuredRateThenRecovers) {
  FakeClock clock;
  PacerOptions o = Options();
  o.recovery_per_second = 2.0;
  Pacer pacer(o, clock);
  for (int i = 0; i < 20; ++i) pacer.Wait();  // 20 requests within one second
  pacer.OnRateLimited(RateReason::kTooManyRequests, 1s);
  ASSERT_TRUE(pacer.rate().has_value());
  EXPECT_DOUBLE_EQ(*pacer.rate(), 10.0);
  pacer.Wait();  // waits out the pause
  const auto t0 = clock.Now();
  for (int i = 0; i < 10; ++i) pacer.Wait();
  // 10 requests at about 10/s (rate slowly growing) take close to a second.
  EXPECT_GE(clock.Now() - t0, 800ms);
  // Another limit halves again (multiplicative decrease).
  pacer.OnRateLimited(RateReason::kTooManyRequests, 1s);
  EXPECT_LT(*pacer.rate(), 10.0);
  // Slow recovery: after enough quiet time the limit goes away.
  clock.Advance(60s);
  pacer.Wait();
  EXPECT_FALSE(pacer.rate().has_value());
}

TEST(Pacer, BackoffIsFullJitterWithinExponentialCap) {
  FakeClock clock;
  PacerOptions o = Options();
  o.backoff_base = 100ms;
  o.backoff_cap = 1600ms;
  Pacer pacer(o, clock);
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const auto cap = std::min<std::chrono::milliseconds>(1600ms, 100ms * (1 << (attempt - 1)));
    std::chrono::milliseconds max_seen{0};
    for (int i = 0; i < 200; ++i) {
      const auto d = pacer.Backoff(attempt);
      EXPECT_GE(d, 0ms);
      EXPECT_LE(d, cap);
      max_seen = std::max(max_seen, d);
    }
    EXPECT_GT(max_seen, cap / 2) << "jitter should spread over the whole range";
  }
}

TEST(Pacer, WriteContentionMakesCommitsSerial) {
  FakeClock clock;
  Pacer pacer(Options(), clock);
  {
    auto lock = pacer.CommitLock();
    EXPECT_FALSE(lock.owns_lock());
  }
  EXPECT_FALSE(pacer.write_contention());
  pacer.OnRateLimited(RateReason::kTooManyWriteOperations, std::nullopt);
  EXPECT_TRUE(pacer.write_contention());
  auto lock = pacer.CommitLock();
  EXPECT_TRUE(lock.owns_lock());
}

}  // namespace
}  // namespace filesync::dropbox
