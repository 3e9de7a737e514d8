#include "core/clock.h"

#include <gtest/gtest.h>

#include <chrono>

namespace filesync::core {
namespace {

using std::chrono::milliseconds;

TEST(SystemClock, SleepsUntilTheDeadline) {
  Clock& clock = SystemClock();
  const Clock::TimePoint start = clock.Now();
  clock.SleepFor(milliseconds(20));
  EXPECT_GE(clock.Now() - start, milliseconds(20));
  const Clock::TimePoint past = clock.Now() - milliseconds(100);
  clock.SleepUntil(past);  // at once
  EXPECT_LT(clock.Now() - start, std::chrono::seconds(20));
}

TEST(SystemClock, WallTimeIsTheSystemClock) {
  const auto before = std::chrono::system_clock::now();
  const auto wall = SystemClock().WallNow();
  const auto after = std::chrono::system_clock::now();
  EXPECT_LE(before, wall);
  EXPECT_LE(wall, after);
}

}  // namespace
}  // namespace filesync::core
