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

// Batches of up to 10 small files, held back for at most `linger` while a fill is on.
BatchLimits FillLimits(std::chrono::milliseconds linger) {
  return {.max_files = 10,
          .max_bytes = 0,
          .small_file_limit = 100,
          .case_insensitive = true,
          .fill_linger = linger};
}

// A worker that wakes while a burst is still being pushed gets the whole batch, not the first
// few events of it.
TEST(EventProducer, DuringAFillAPartialBatchWaitsForTheRest) {
  EventProducer q(100);
  const BatchLimits limits = FillLimits(std::chrono::minutes(10));
  q.BeginFill();
  for (int i = 0; i < 9; ++i) q.Push(Ev("f" + std::to_string(i)));
  std::vector<Event> got;
  std::thread worker([&] { got = q.Pop(limits); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the worker reach the wait
  q.Push(Ev("f9"));
  q.Push(Ev("f10"));
  worker.join();
  EXPECT_EQ(got.size(), 10u);
  q.Done(got);
  q.EndFill();
  EXPECT_EQ(q.Pop(limits).size(), 1u);
}

TEST(EventProducer, EndingAFillReleasesAPartialBatch) {
  EventProducer q(100);
  const BatchLimits limits = FillLimits(std::chrono::minutes(10));
  q.BeginFill();
  for (int i = 0; i < 3; ++i) q.Push(Ev("f" + std::to_string(i)));
  std::vector<Event> got;
  std::thread worker([&] { got = q.Pop(limits); });
  q.EndFill();
  worker.join();
  EXPECT_EQ(got.size(), 3u);
  q.Done(got);
  // WaitIdle ends a fill as well: the pusher waits for what it pushed.
  q.BeginFill();
  q.Push(Ev("g"));
  std::thread waiter([&] { q.WaitIdle(); });
  auto last = q.Pop(limits);
  EXPECT_EQ(last.size(), 1u);
  q.Done(last);
  waiter.join();
}

TEST(EventProducer, AFillThatNeverEndsHoldsABatchOnlyForTheLinger) {
  EventProducer q(100);
  const BatchLimits limits = FillLimits(std::chrono::milliseconds(20));
  q.BeginFill();
  q.Push(Ev("a"));
  q.Push(Ev("big", plan::ActionKind::kUpload, 1000));
  EXPECT_EQ(q.Pop(limits).size(), 1u);  // returns after the linger, from this very thread
  // A head that is never batched is not held at all.
  const BatchLimits never = FillLimits(std::chrono::minutes(10));
  auto big = q.Pop(never);
  ASSERT_EQ(big.size(), 1u);
  EXPECT_EQ(big[0].action.path, "big");
}

// A queue smaller than a batch cannot fill one: the head goes when the queue is full.
TEST(EventProducer, AFullQueueReleasesTheBatchDuringAFill) {
  EventProducer q(4);
  const BatchLimits limits = FillLimits(std::chrono::minutes(10));
  q.BeginFill();
  for (int i = 0; i < 4; ++i) q.Push(Ev("f" + std::to_string(i)));
  EXPECT_EQ(q.Pop(limits).size(), 4u);
}

Event FileMove(std::string from, std::string to, std::uint64_t size = 10) {
  Event e = Ev(std::move(to), plan::ActionKind::kMove, size);
  e.action.from = std::move(from);
  e.action.phase = plan::kPhaseFileMoves;
  e.action.entry_kind = core::EntryKind::kFile;
  return e;
}

std::vector<std::string> Targets(const std::vector<Event>& batch) {
  std::vector<std::string> out;
  for (const Event& e : batch) out.push_back(e.action.path);
  return out;
}

// Two moves share a batch only if neither's source or target equals, contains or lies inside
// the other's source or target; the others wait for a later batch, in order.
TEST(EventProducer, FileMovesAreBatchedOnlyWhenIndependent) {
  EventProducer q(100);
  q.Push(FileMove("a", "b"));
  q.Push(FileMove("c", "d"));
  q.Push(FileMove("b", "e"));       // from == first move's target
  q.Push(FileMove("x/y", "c/z"));   // target under second move's source
  q.Push(FileMove("D", "q"));       // from is "d" in another case
  q.Push(FileMove("dir/f", "g1"));  // independent so far
  q.Push(FileMove("h", "dir"));     // target is an ancestor of the previous move's source
  q.Push(FileMove("p/1", "p/2"));   // independent
  const BatchLimits limits{.max_files = 100, .max_bytes = 0, .small_file_limit = 100};
  auto first = q.Pop(limits);
  EXPECT_EQ(Targets(first), (std::vector<std::string>{"b", "d", "g1", "p/2"}));
  q.Done(first);
  auto second = q.Pop(limits);
  EXPECT_EQ(Targets(second), (std::vector<std::string>{"e", "c/z", "q", "dir"}));
  q.Done(second);
  EXPECT_EQ(q.queued(), 0u);
}

TEST(EventProducer, MoveIndependenceFollowsTheBackendsCaseRule) {
  EventProducer q(100);
  q.Push(FileMove("a", "B"));
  q.Push(FileMove("b", "c"));
  const BatchLimits sensitive{
      .max_files = 100, .max_bytes = 0, .small_file_limit = 100, .case_insensitive = false};
  EXPECT_EQ(q.Pop(sensitive).size(), 2u);
  EventProducer ci(100);
  ci.Push(FileMove("a", "B"));
  ci.Push(FileMove("b", "c"));
  const BatchLimits insensitive{.max_files = 100, .max_bytes = 0, .small_file_limit = 100};
  EXPECT_EQ(ci.Pop(insensitive).size(), 1u);
}

// Moves transfer no bytes, so max_bytes does not cut a batch of big files' renames; folder
// moves and file moves of the replace phase are never batched; moves and deletes never mix.
TEST(EventProducer, OnlyFileMovePhaseMovesAreBatchedAndBytesDoNotCount) {
  EventProducer q(100);
  for (int i = 0; i < 5; ++i) {
    q.Push(FileMove("s" + std::to_string(i), "t" + std::to_string(i), 1u << 30));
  }
  q.Push(Ev("gone", plan::ActionKind::kDelete, 0));
  Event folder = FileMove("fa", "fb");
  folder.action.entry_kind = core::EntryKind::kFolder;
  q.Push(folder);
  q.Push(FileMove("fc", "fd"));
  Event replace_phase = FileMove("ra", "rb");
  replace_phase.action.phase = plan::kPhaseReplace;
  q.Push(replace_phase);
  const BatchLimits limits{.max_files = 4, .max_bytes = 35, .small_file_limit = 100};
  auto batch = q.Pop(limits);
  EXPECT_EQ(batch.size(), 4u);  // max_files, not max_bytes
  q.Done(batch);
  batch = q.Pop(limits);
  EXPECT_EQ(Targets(batch), (std::vector<std::string>{"t4", "fd"}));
  q.Done(batch);
  batch = q.Pop(limits);
  EXPECT_EQ(Targets(batch), (std::vector<std::string>{"gone"}));
  q.Done(batch);
  batch = q.Pop(limits);
  EXPECT_EQ(Targets(batch), (std::vector<std::string>{"fb"}));
  q.Done(batch);
  batch = q.Pop(limits);
  EXPECT_EQ(Targets(batch), (std::vector<std::string>{"rb"}));
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
