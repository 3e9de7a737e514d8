#include "pipeline/event_processor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace filesync::pipeline {
namespace {

// A Cloud whose results are scripted per call: a unit-test double for the processor alone.
class ScriptedCloud : public cloud::Cloud {
 public:
  std::vector<Status> delete_script;  // consumed one per Delete() call (applied to every path)
  std::vector<Status> upload_script;  // consumed one per Upload() call
  std::vector<Status> folder_script;  // consumed one per CreateFolder() call
  bool retries_transient = false;     // what capabilities() says
  // MoveBatch: a move whose source is listed here fails once with a rate limit.
  std::set<std::string> moves_limited_once;
  std::vector<std::vector<std::string>> move_batches;  // sources of each MoveBatch() call
  int delete_calls = 0, upload_calls = 0, move_calls = 0, folder_calls = 0;

  std::string_view name() const override { return "scripted"; }
  cloud::Capabilities capabilities() const override {
    return {.retries_transient = retries_transient};
  }
  Result<cloud::ListResult> List(const std::string&, const std::string&) override {
    return cloud::ListResult{};
  }
  Status CreateFolder(const std::string&) override { return Next(folder_script, folder_calls++); }
  std::vector<Result<cloud::UploadedFile>> Upload(std::span<const cloud::UploadItem> items,
                                                  const cloud::Transfer&) override {
    const Status s = Next(upload_script, upload_calls++);
    std::vector<Result<cloud::UploadedFile>> out;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (s.ok()) {
        out.emplace_back(cloud::UploadedFile{});
      } else {
        out.emplace_back(s);
      }
    }
    return out;
  }
  std::vector<Status> Delete(std::span<const std::string> paths) override {
    const Status s = Next(delete_script, delete_calls++);
    return std::vector<Status>(paths.size(), s);
  }
  Result<cloud::RemoteEntry> Move(const std::string&, const std::string&) override {
    ++move_calls;
    return Status::Conflict("destination exists");
  }
  std::vector<Result<cloud::RemoteEntry>> MoveBatch(
      std::span<const cloud::MovePair> moves) override {
    move_batches.emplace_back();
    std::vector<Result<cloud::RemoteEntry>> out;
    for (const auto& m : moves) {
      move_batches.back().push_back(m.from);
      if (moves_limited_once.erase(m.from) > 0) {
        out.emplace_back(
            Status::RateLimited("too_many_write_operations", std::chrono::milliseconds(1)));
      } else {
        out.emplace_back(cloud::RemoteEntry{.path = m.to});
      }
    }
    return out;
  }
  Status Flush() override { return Status::Ok(); }

 private:
  static Status Next(const std::vector<Status>& script, int call) {
    return static_cast<std::size_t>(call) < script.size() ? script[static_cast<std::size_t>(call)]
                                                          : Status::Ok();
  }
};

class RecordingSink : public ActionSink {
 public:
  void OnDone(const Event& event, const ActionOutcome& outcome) override {
    std::lock_guard lock(mu);
    done.emplace_back(event.action.path, outcome);
  }
  std::mutex mu;
  std::vector<std::pair<std::string, ActionOutcome>> done;
};

Event Ev(plan::ActionKind kind, std::string path) {
  Event e;
  e.action.kind = kind;
  e.action.path = std::move(path);
  return e;
}

const RetryPolicy kFast{.max_attempts = 4,
                        .base_delay = std::chrono::milliseconds(1),
                        .max_delay = std::chrono::milliseconds(5)};

TEST(EventProcessor, TransientFailuresAreRetriedUntilTheySucceed) {
  ScriptedCloud cloud;
  cloud.delete_script = {Status::Transient("503"),
                         Status::RateLimited("429", std::chrono::milliseconds(20))};
  RecordingSink sink;
  std::atomic<bool> stop{false};
  EventProcessor p(cloud, {{"/local", -1, "/cloud"}}, kFast, sink, stop, nullptr);
  const auto start = std::chrono::steady_clock::now();
  p.Process({Ev(plan::ActionKind::kDelete, "a"), Ev(plan::ActionKind::kDelete, "b")});
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(20));  // Retry-After honoured
  EXPECT_EQ(cloud.delete_calls, 3);
  ASSERT_EQ(sink.done.size(), 2u);
  for (const auto& [path, outcome] : sink.done) {
    EXPECT_TRUE(outcome.status.ok()) << path;
    EXPECT_EQ(outcome.attempts, 3);
  }
}

TEST(EventProcessor, RetriesAreBoundedThenTheErrorIsReported) {
  ScriptedCloud cloud;
  cloud.upload_script = std::vector<Status>(10, Status::Transient("network down"));
  RecordingSink sink;
  std::atomic<bool> stop{false};
  EventProcessor p(cloud, {{"/local", -1, "/cloud"}}, kFast, sink, stop, nullptr);
  p.Process({Ev(plan::ActionKind::kUpload, "f")});
  EXPECT_EQ(cloud.upload_calls, kFast.max_attempts);
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_EQ(sink.done[0].second.status.kind(), Status::Kind::kTransient);
}

TEST(EventProcessor, PermanentFailuresAreNotRetried) {
  ScriptedCloud cloud;
  RecordingSink sink;
  std::atomic<bool> stop{false};
  EventProcessor p(cloud, {{"/local", -1, "/cloud"}}, kFast, sink, stop, nullptr);
  Event move = Ev(plan::ActionKind::kMove, "to");
  move.action.from = "from";
  p.Process({move});
  EXPECT_EQ(cloud.move_calls, 1);
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_EQ(sink.done[0].second.status.kind(), Status::Kind::kConflict);
}

Event FileMove(std::string from, std::string to) {
  Event e = Ev(plan::ActionKind::kMove, std::move(to));
  e.action.from = std::move(from);
  e.action.phase = plan::kPhaseFileMoves;
  e.action.entry_kind = core::EntryKind::kFile;
  return e;
}

TEST(EventProcessor, FileMovesGoInOneMoveBatchAndOnlyFailedOnesAreRetried) {
  ScriptedCloud cloud;
  cloud.moves_limited_once = {"/cloud/b"};
  RecordingSink sink;
  std::atomic<bool> stop{false};
  EventProcessor p(cloud, {{"/local", -1, "/cloud"}}, kFast, sink, stop, nullptr);
  p.Process({FileMove("a", "a2"), FileMove("b", "b2"), FileMove("c", "c2")});
  ASSERT_EQ(cloud.move_batches.size(), 2u);
  EXPECT_EQ(cloud.move_batches[0], (std::vector<std::string>{"/cloud/a", "/cloud/b", "/cloud/c"}));
  EXPECT_EQ(cloud.move_batches[1], (std::vector<std::string>{"/cloud/b"}));
  EXPECT_EQ(cloud.move_calls, 0);
  ASSERT_EQ(sink.done.size(), 3u);
  std::map<std::string, ActionOutcome> by_path(sink.done.begin(), sink.done.end());
  for (const std::string t : {"a2", "b2", "c2"}) {
    ASSERT_TRUE(by_path.contains(t)) << t;
    EXPECT_TRUE(by_path[t].status.ok()) << t;
    ASSERT_TRUE(by_path[t].moved.has_value()) << t;
    EXPECT_EQ(by_path[t].moved->path, "/cloud/" + t);
  }
  EXPECT_EQ(by_path["a2"].attempts, 1);
  EXPECT_EQ(by_path["b2"].attempts, 2);
}

TEST(EventProcessor, FolderMovesStaySingle) {
  ScriptedCloud cloud;
  RecordingSink sink;
  std::atomic<bool> stop{false};
  EventProcessor p(cloud, {{"/local", -1, "/cloud"}}, kFast, sink, stop, nullptr);
  Event folder = FileMove("dir", "dir2");
  folder.action.entry_kind = core::EntryKind::kFolder;
  folder.action.phase = plan::kPhaseReplace;
  p.Process({folder});
  EXPECT_EQ(cloud.move_calls, 1);
  EXPECT_TRUE(cloud.move_batches.empty());
  ASSERT_EQ(sink.done.size(), 1u);
}

// A stop while waiting to retry ends the action as kCancelled (deferred to the next run), never
// as the failure that caused the wait, whichever path the action takes.
void ExpectStopDuringBackoffCancels(ScriptedCloud& cloud, const Event& event) {
  RecordingSink sink;
  std::atomic<bool> stop{false};
  EventProcessor p(cloud, {{"/local", -1, "/cloud"}}, kFast, sink, stop, nullptr);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop = true;
  });
  const auto start = std::chrono::steady_clock::now();
  p.Process({event});
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_EQ(sink.done[0].second.status.kind(), Status::Kind::kCancelled)
      << sink.done[0].second.status.ToString();
  EXPECT_EQ(sink.done[0].second.attempts, 1);
}

TEST(EventProcessor, StopDuringBackoffCancelsABatchedAction) {
  ScriptedCloud cloud;
  cloud.delete_script = {Status::RateLimited("429", std::chrono::seconds(30))};
  ExpectStopDuringBackoffCancels(cloud, Ev(plan::ActionKind::kDelete, "x"));
  EXPECT_EQ(cloud.delete_calls, 1);
}

TEST(EventProcessor, StopDuringBackoffCancelsASingleAction) {
  ScriptedCloud cloud;
  cloud.folder_script = {Status::RateLimited("429", std::chrono::seconds(30))};
  ExpectStopDuringBackoffCancels(cloud, Ev(plan::ActionKind::kCreateFolder, "dir"));
  EXPECT_EQ(cloud.folder_calls, 1);
}

TEST(EventProcessor, SingleActionsAreRetriedLikeBatches) {
  ScriptedCloud cloud;
  cloud.folder_script = {Status::Transient("503"), Status::Transient("503")};
  RecordingSink sink;
  std::atomic<bool> stop{false};
  EventProcessor p(cloud, {{"/local", -1, "/cloud"}}, kFast, sink, stop, nullptr);
  p.Process({Ev(plan::ActionKind::kCreateFolder, "dir")});
  EXPECT_EQ(cloud.folder_calls, 3);
  ASSERT_EQ(sink.done.size(), 1u);
  EXPECT_TRUE(sink.done[0].second.status.ok());
  EXPECT_EQ(sink.done[0].second.attempts, 3);
}

// A backend that retries transient failures itself (Dropbox's pacer) has already spent its
// attempts: the processor reports its failure at once instead of multiplying the attempts.
TEST(EventProcessor, ABackendThatRetriesItselfIsNotRetriedAgain) {
  for (const auto kind :
       {plan::ActionKind::kUpload, plan::ActionKind::kDelete, plan::ActionKind::kCreateFolder}) {
    ScriptedCloud cloud;
    cloud.retries_transient = true;
    cloud.upload_script = {Status::Transient("503 after 5 tries")};
    cloud.delete_script = {Status::RateLimited("429 after 20 tries", std::chrono::seconds(1))};
    cloud.folder_script = {Status::Transient("503 after 5 tries")};
    RecordingSink sink;
    std::atomic<bool> stop{false};
    EventProcessor p(cloud, {{"/local", -1, "/cloud"}}, kFast, sink, stop, nullptr);
    p.Process({Ev(kind, "x")});
    EXPECT_EQ(cloud.upload_calls + cloud.delete_calls + cloud.folder_calls, 1);
    ASSERT_EQ(sink.done.size(), 1u);
    EXPECT_TRUE(sink.done[0].second.status.IsRetryable());
    EXPECT_EQ(sink.done[0].second.attempts, 1);
  }
}

}  // namespace
}  // namespace filesync::pipeline
