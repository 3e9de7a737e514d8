#include "core/parallel_for.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace filesync::core {
namespace {

TEST(ParallelFor, CallsEveryIndexExactlyOnce) {
  std::vector<std::atomic<int>> calls(1000);
  ParallelFor(calls.size(), 4, [&](std::size_t i) { ++calls[i]; });
  for (std::size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].load(), 1) << i;
}

TEST(ParallelFor, NothingToDoCallsNothing) {
  int calls = 0;
  ParallelFor(0, 4, [&](std::size_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

// The threads that ran the items, for `n` items of about 1 ms each on up to `threads` threads.
std::set<std::thread::id> ThreadsUsed(std::size_t n, int threads) {
  std::mutex mu;
  std::set<std::thread::id> ids;
  ParallelFor(n, threads, [&](std::size_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  return ids;
}

TEST(ParallelFor, UsesNoMoreThreadsThanAskedOrItems) {
  EXPECT_LE(ThreadsUsed(50, 3).size(), 3U);
  EXPECT_LE(ThreadsUsed(2, 8).size(), 2U);
}

TEST(ParallelFor, NoThreadsMeansTheCallersOwn) {
  for (const int threads : {0, -1, 1}) {
    const auto ids = ThreadsUsed(5, threads);
    ASSERT_EQ(ids.size(), 1U);
    EXPECT_EQ(*ids.begin(), std::this_thread::get_id());
  }
}

TEST(ParallelFor, RunsItemsAtTheSameTime) {
  // Each item waits for the other: only a run on two threads at once lets both finish early.
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  std::atomic<int> met{0};
  ParallelFor(2, 2, [&](std::size_t) {
    std::unique_lock lock(mu);
    ++arrived;
    cv.notify_all();
    if (cv.wait_for(lock, std::chrono::seconds(30), [&] { return arrived == 2; })) ++met;
  });
  EXPECT_EQ(met.load(), 2);
}

}  // namespace
}  // namespace filesync::core
