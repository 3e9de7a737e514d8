// The bwlimit schedule (issue 15: "8MiB", "08:00,1MiB 19:00,off" as in rclone) and the shared
// limiter: achieved rate within ±10% of the limit with several threads on the real clock, no
// starvation of large requests, cancel interrupts a wait, the timetable switches, SetSchedule
// applies to waiters. Timing bounds are wide: CI runs under sanitizers on a loaded box.
#include "ops/bandwidth.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace filesync::ops {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * 1024;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

BandwidthSchedule Parsed(std::string_view text) {
  auto s = BandwidthSchedule::Parse(text);
  EXPECT_TRUE(s.ok()) << text << ": " << s.status().message();
  return s.ok() ? *s : BandwidthSchedule{};
}

std::string ParseError(std::string_view text) {
  auto s = BandwidthSchedule::Parse(text);
  EXPECT_FALSE(s.ok()) << text << " was accepted as " << (s.ok() ? s->ToString() : "");
  return s.ok() ? "" : s.status().message();
}

TEST(BandwidthSchedule, ParsesRatesWithBinaryUnits) {
  EXPECT_TRUE(Parsed("off").unlimited());
  EXPECT_TRUE(Parsed("OFF").slots.empty());
  EXPECT_EQ(Parsed("8MiB").RateAt(0), 8 * kMiB);
  EXPECT_EQ(Parsed("8M").RateAt(700), 8 * kMiB);
  EXPECT_EQ(Parsed("8MiB/s").RateAt(0), 8 * kMiB);
  EXPECT_EQ(Parsed("500k").RateAt(0), 500 * kKiB);
  EXPECT_EQ(Parsed("500KiB").RateAt(0), 500 * kKiB);
  EXPECT_EQ(Parsed("1.5M").RateAt(0), 1536 * kKiB);
  EXPECT_EQ(Parsed("1g").RateAt(0), 1024 * kMiB);
  EXPECT_EQ(Parsed("1048576").RateAt(0), kMiB);
  EXPECT_EQ(Parsed("2048B").RateAt(0), 2048u);
  EXPECT_EQ(Parsed("  4MiB ").RateAt(0), 4 * kMiB);
}

TEST(BandwidthSchedule, TimetableAppliesEachRateFromItsTimeAndWrapsAtMidnight) {
  const BandwidthSchedule s = Parsed("08:00,1MiB 19:00,off");
  ASSERT_EQ(s.slots.size(), 2u);
  EXPECT_EQ(s.RateAt(0), 0u) << "before 08:00 the last entry (19:00,off) still applies";
  EXPECT_EQ(s.RateAt(7 * 60 + 59), 0u);
  EXPECT_EQ(s.RateAt(8 * 60), kMiB);
  EXPECT_EQ(s.RateAt(18 * 60 + 59), kMiB);
  EXPECT_EQ(s.RateAt(19 * 60), 0u);
  EXPECT_EQ(s.RateAt(23 * 60 + 59), 0u);
  EXPECT_FALSE(s.unlimited());

  const BandwidthSchedule three = Parsed("12:00,10M 08:00,512k 18:30,30M");
  EXPECT_EQ(three, Parsed("08:00,512k 12:00,10M 18:30,30M")) << "entries are sorted";
  EXPECT_EQ(three.RateAt(3 * 60), 30 * kMiB);
  EXPECT_EQ(three.RateAt(9 * 60), 512 * kKiB);
  EXPECT_EQ(three.RateAt(12 * 60), 10 * kMiB);
  EXPECT_EQ(Parsed("8:05,2M").RateAt(8 * 60 + 5), 2 * kMiB) << "H:MM is accepted";
}

TEST(BandwidthSchedule, ToStringRoundTrips) {
  for (const char* text : {"off", "8MiB", "500KiB", "1536KiB", "1500", "1GiB",
                           "08:00,1MiB 19:00,off", "00:30,off", "06:00,512KiB 22:15,4MiB"}) {
    const BandwidthSchedule s = Parsed(text);
    EXPECT_EQ(s.ToString(), text);
    EXPECT_EQ(Parsed(s.ToString()), s);
  }
  EXPECT_EQ(Parsed("8M").ToString(), "8MiB");
  EXPECT_EQ(Parsed("19:00,off 8:00,1M").ToString(), "08:00,1MiB 19:00,off");
  EXPECT_EQ(FormatRate(0), "off");
  EXPECT_EQ(FormatRate(3 * kMiB / 2), "1536KiB");
}

TEST(BandwidthSchedule, RejectsBadValuesWithAProblemAndAFix) {
  const auto has_fix = [](const std::string& message) {
    EXPECT_NE(message.find("; "), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  };
  for (const char* text :
       {"", "fast", "8 MiB", "-1M", "1e3", "08:00", "08:00,", "25:00,1M", "08:60,1M", "0800,1M",
        "08:00,1M 08:00,2M", "08:00,1M,2M", "08:00,fast", "2000G", "1.2.3M"}) {
    SCOPED_TRACE(text);
    has_fix(ParseError(text));
  }
  const std::string small = ParseError("500");
  EXPECT_NE(small.find("below 1 KiB/s"), std::string::npos) << small;
  EXPECT_NE(small.find("\"500k\""), std::string::npos) << small;
  const std::string ambiguous = ParseError("1MB");
  EXPECT_NE(ambiguous.find("1MiB"), std::string::npos) << ambiguous;
  EXPECT_NE(ParseError("08:00,1M 08:00,2M").find("twice"), std::string::npos);
  EXPECT_NE(ParseError("25:00,1M").find("00:00 to 23:59"), std::string::npos);
}

TEST(BandwidthLimiter, OffGrantsAtOnce) {
  BandwidthLimiter limiter(BandwidthSchedule::Constant(0));
  const auto start = Clock::now();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Acquire(1024 * kMiB).ok());
  EXPECT_LT(Seconds(Clock::now() - start), 0.5);
  EXPECT_EQ(limiter.CurrentRate(), 0u);
}

// The achieved rate over 3 s with 4 threads sending 32 KiB pieces, as a transfer loop does.
TEST(BandwidthLimiter, SeveralThreadsTogetherGetTheLimitWithinTenPercent) {
  constexpr std::uint64_t kRate = 2 * kMiB;
  constexpr std::uint64_t kPiece = 32 * kKiB;
  constexpr double kRun = 3.0;
  BandwidthLimiter limiter(BandwidthSchedule::Constant(kRate));
  std::atomic<std::uint64_t> granted{0};
  const auto start = Clock::now();
  std::atomic<std::int64_t> last_grant_ns{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (Seconds(Clock::now() - start) < kRun) {
        ASSERT_TRUE(limiter.Acquire(kPiece).ok());
        granted += kPiece;
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
        std::int64_t prev = last_grant_ns.load();
        while (prev < ns.count() && !last_grant_ns.compare_exchange_weak(prev, ns.count())) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = static_cast<double>(last_grant_ns.load()) / 1e9;
  const double achieved = static_cast<double>(granted.load()) / elapsed;
  std::printf("bwlimit accuracy: limit %.0f B/s, achieved %.0f B/s over %.2f s (%+.1f%%)\n",
              static_cast<double>(kRate), achieved, elapsed,
              100.0 * (achieved / static_cast<double>(kRate) - 1));
  EXPECT_GT(achieved, 0.9 * static_cast<double>(kRate));
  EXPECT_LT(achieved, 1.1 * static_cast<double>(kRate));
}

TEST(BandwidthLimiter, ALargeRequestIsNotStarvedBySmallOnes) {
  constexpr std::uint64_t kRate = kMiB;
  BandwidthLimiter limiter(BandwidthSchedule::Constant(kRate));
  std::atomic<bool> stop{false};
  std::vector<std::thread> small;
  for (int t = 0; t < 3; ++t) {
    small.emplace_back([&] {
      while (!stop) ASSERT_TRUE(limiter.Acquire(4 * kKiB).ok());
    });
  }
  std::this_thread::sleep_for(milliseconds(200));
  const auto start = Clock::now();
  ASSERT_TRUE(limiter.Acquire(512 * kKiB).ok());
  const double took = Seconds(Clock::now() - start);
  stop = true;
  for (auto& t : small) t.join();
  // Fair share: a quarter of 1 MiB/s -> about 2 s for 512 KiB; starvation would be unbounded.
  EXPECT_LT(took, 6.0);
  EXPECT_GT(took, 0.3) << "it cannot have had the whole rate";
}

TEST(BandwidthLimiter, ALargeRequestTakesItsTime) {
  BandwidthLimiter limiter(BandwidthSchedule::Constant(4 * kMiB));
  ASSERT_TRUE(limiter.Acquire(kMiB).ok());  // drains the initial burst, and then some
  const auto start = Clock::now();
  ASSERT_TRUE(limiter.Acquire(2 * kMiB).ok());
  const double took = Seconds(Clock::now() - start);
  EXPECT_GT(took, 0.4);  // 2 MiB at 4 MiB/s = 0.5 s, less at most one 0.1 s piece of credit
  EXPECT_LT(took, 2.0);
}

TEST(BandwidthLimiter, CancelInterruptsAWait) {
  BandwidthLimiter limiter(BandwidthSchedule::Constant(kKiB));
  std::atomic<bool> cancel{false};
  Status result;
  Clock::time_point returned;
  std::thread waiter([&] {
    result = limiter.Acquire(kMiB, &cancel);  // ~17 minutes at 1 KiB/s
    returned = Clock::now();
  });
  std::this_thread::sleep_for(milliseconds(300));
  const auto cancelled = Clock::now();
  cancel = true;
  waiter.join();
  EXPECT_EQ(result.kind(), Status::Kind::kCancelled) << result.ToString();
  EXPECT_LT(Seconds(returned - cancelled), 1.0);

  std::atomic<bool> already{true};
  EXPECT_EQ(limiter.Acquire(1, &already).kind(), Status::Kind::kCancelled);
}

TEST(BandwidthLimiter, TimetableSwitchesWithTheLocalTime) {
  std::atomic<int> minute{7 * 60 + 59};
  BandwidthLimiter limiter(Parsed("08:00,4KiB 19:00,off"), [&minute] { return minute.load(); });
  EXPECT_EQ(limiter.CurrentRate(), 0u);
  const auto start = Clock::now();
  ASSERT_TRUE(limiter.Acquire(100 * kMiB).ok()) << "07:59 is still under 19:00,off";
  EXPECT_LT(Seconds(Clock::now() - start), 0.5);

  minute = 8 * 60;
  EXPECT_EQ(limiter.CurrentRate(), 4 * kKiB);
  std::atomic<bool> done{false};
  Clock::time_point released;
  std::thread waiter([&] {
    EXPECT_TRUE(limiter.Acquire(kMiB).ok());  // ~4 minutes at 4 KiB/s
    released = Clock::now();
    done = true;
  });
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_FALSE(done) << "1 MiB at 4 KiB/s cannot be granted in 0.4 s";
  const auto switched = Clock::now();
  minute = 19 * 60;
  waiter.join();
  EXPECT_LT(Seconds(released - switched), 1.0) << "19:00,off releases the waiter";
  EXPECT_EQ(limiter.CurrentRate(), 0u);
}

TEST(BandwidthLimiter, SetScheduleAppliesToWaiters) {
  BandwidthLimiter limiter(BandwidthSchedule::Constant(kKiB));
  std::atomic<bool> done{false};
  Clock::time_point released;
  std::thread waiter([&] {
    EXPECT_TRUE(limiter.Acquire(kMiB).ok());
    released = Clock::now();
    done = true;
  });
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(done);
  const auto changed = Clock::now();
  limiter.SetSchedule(Parsed("64MiB"));  // what a SIGHUP with a new bwlimit does
  waiter.join();
  EXPECT_LT(Seconds(released - changed), 1.0);
  EXPECT_EQ(limiter.CurrentRate(), 64 * kMiB);
}

}  // namespace
}  // namespace filesync::ops
