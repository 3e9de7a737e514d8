#include "pipeline/event_producer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace filesync::pipeline {
namespace {

Event Ev(std::string path, plan::ActionKind kind = plan::ActionKind::kUpload,
         std::uint64_t size = 10) {
  Event e;
  e.action.kind = kind;
  e.action.path = std::move(path);
  e.action.identity.size = size;
  return e;
}

const BatchLimits kSingle{.max_files = 1, .max_bytes = 0, .small_file_limit = 100};

TEST(EventProducer, NewerEventForAQueuedPathSupersedesTheOlder) {
  EventProducer q(10);
  auto first = Ev("a");
  first.action.reason = "old";
  auto second = Ev("a");
  second.action.reason = "new";
  ASSERT_TRUE(q.Push(first));
  ASSERT_TRUE(q.Push(second));
  EXPECT_EQ(q.queued(), 1u);
  auto got = q.Pop(kSingle);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].action.reason, "new");
}

TEST(EventProducer, PushBlocksWhenFullUntilAPop) {
  EventProducer q(2);
  q.Push(Ev("a"));
  q.Push(Ev("b"));
  std::atomic<bool> pushed{false};
  std::thread t([&] {
    q.Push(Ev("c"));
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(pushed.load());
  auto got = q.Pop(kSingle);
  q.Done(got);
  t.join();
  EXPECT_TRUE(pushed.load());
}

TEST(EventProducer, NeverHandsOutAPathBelowOneInFlight) {
  EventProducer q(10);
  q.Push(Ev("dir", plan::ActionKind::kMove));
  q.Push(Ev("dir/child"));
  q.Push(Ev("other"));
  auto first = q.Pop(kSingle);
  ASSERT_EQ(first[0].action.path, "dir");
  auto second = q.Pop(kSingle);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].action.path, "other");  // dir/child waits for dir
  q.Done(first);
  auto third = q.Pop(kSingle);
  EXPECT_EQ(third[0].action.path, "dir/child");
}

TEST(EventProducer, NeverHandsOutAnAncestorOfAPathInFlight) {
  EventProducer q(10);
  q.Push(Ev("d/x"));
  q.Push(Ev("d", plan::ActionKind::kDelete));
  auto first = q.Pop(kSingle);
  ASSERT_EQ(first[0].action.path, "d/x");
  q.Close();
  std::atomic<bool> got_second{false};
  std::thread t([&] {
    auto second = q.Pop(kSingle);
    got_second = !second.empty() && second[0].action.path == "d";
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(got_second.load());
  q.Done(first);
  t.join();
  EXPECT_TRUE(got_second.load());
}

TEST(EventProducer, SmallUploadsAreBatchedWithinLimits) {
  EventProducer q(100);
  for (int i = 0; i < 10; ++i) q.Push(Ev("f" + std::to_string(i), plan::ActionKind::kUpload, 10));
  q.Push(Ev("big", plan::ActionKind::kUpload, 1000));
  const BatchLimits limits{.max_files = 4, .max_bytes = 35, .small_file_limit = 100};
  auto batch = q.Pop(limits);
  EXPECT_EQ(batch.size(), 3u);  // 35 bytes fit three files of 10
  q.Done(batch);
  const BatchLimits roomy{.max_files = 100, .max_bytes = 0, .small_file_limit = 100};
  batch = q.Pop(roomy);
  EXPECT_EQ(batch.size(), 7u);  // the big file is never batched
  q.Done(batch);
  batch = q.Pop(roomy);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].action.path, "big");
}

TEST(EventProducer, CloseDrainsThenReturnsEmptyAndCancelDropsQueued) {
  EventProducer q(10);
  q.Push(Ev("a"));
  q.Close();
  EXPECT_FALSE(q.Push(Ev("b")));
  auto got = q.Pop(kSingle);
  EXPECT_EQ(got.size(), 1u);
  q.Done(got);
  EXPECT_TRUE(q.Pop(kSingle).empty());
  q.Reset();
  q.Push(Ev("c"));
  q.Cancel();
  EXPECT_TRUE(q.Pop(kSingle).empty());
  q.WaitIdle();
}

}  // namespace
}  // namespace filesync::pipeline
