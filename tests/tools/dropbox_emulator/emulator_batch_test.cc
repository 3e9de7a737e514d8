// files/move_batch_v2, files/copy_batch_v2 and their check_v2 routes (reference §9.2, files.stone
// RelocationBatchArgBase, MoveBatchArg, RelocationBatchV2Launch, RelocationBatchV2JobStatus,
// RelocationBatchResultEntry, RelocationBatchErrorEntry; async.stone PollError).
#include <chrono>
#include <thread>

#include "emulator_fixture.h"

namespace filesync::emulator_test {
namespace {

class RelocationBatchTest : public EmulatorTest {
 protected:
  // Launches a batch and polls its check route until it completes; returns the complete
  // value (RelocationBatchV2Result with ".tag":"complete"). Counts the in_progress answers.
  nlohmann::json RunBatch(const std::string& route, const nlohmann::json& arg,
                          int* in_progress = nullptr) {
    auto launch = Rpc(route, arg);
    EXPECT_EQ(launch.status, 200) << launch.body;
    nlohmann::json j = launch.json();
    const std::string tag = j.value(".tag", "");
    if (tag == "complete") return j;
    EXPECT_EQ(tag, "async_job_id") << launch.body;
    const std::string check =
        route == "files/move_batch_v2" ? "files/move_batch/check_v2" : "files/copy_batch/check_v2";
    for (int i = 0; i < 50; ++i) {
      auto r = Rpc(check, {{"async_job_id", j.value("async_job_id", "")}});
      EXPECT_EQ(r.status, 200) << r.body;
      nlohmann::json s = r.json();
      if (s.value(".tag", "") != "in_progress") return s;
      if (in_progress != nullptr) ++*in_progress;
    }
    ADD_FAILURE() << "job never completed";
    return nullptr;
  }

  static nlohmann::json Entries(const std::vector<std::pair<std::string, std::string>>& moves) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [from, to] : moves) out.push_back({{"from_path", from}, {"to_path", to}});
    return out;
  }
};

TEST_F(RelocationBatchTest, MovesEveryEntryAndReportsMetadataInOrder) {
  PutFile("/a.txt", "aaa");
  PutFile("/b.txt", "bb");
  ASSERT_EQ(Rpc("files/create_folder_v2", {{"path", "/dir"}}).status, 200);
  int in_progress = 0;
  auto done = RunBatch(
      "files/move_batch_v2",
      {{"entries", Entries({{"/a.txt", "/x/A2.txt"}, {"/dir", "/Dir2"}, {"/b.txt", "/b2.txt"}})},
       {"autorename", false},
       {"allow_ownership_transfer", false}},
      &in_progress);
  EXPECT_GE(in_progress, 1) << "an async job answers in_progress at least once";
  ASSERT_EQ(done.value(".tag", ""), "complete");
  const auto& e = done["entries"];
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0][".tag"], "success");
  EXPECT_EQ(e[0]["success"][".tag"], "file");
  EXPECT_EQ(e[0]["success"]["path_display"], "/x/A2.txt");
  EXPECT_EQ(e[0]["success"]["size"], 3);
  EXPECT_EQ(e[1]["success"][".tag"], "folder");
  EXPECT_EQ(e[1]["success"]["path_display"], "/Dir2");
  EXPECT_EQ(e[2]["success"]["path_display"], "/b2.txt");
  EXPECT_EQ(Rpc("files/get_metadata", {{"path", "/a.txt"}}).status, 409);
  EXPECT_EQ(Rpc("files/get_metadata", {{"path", "/x/a2.txt"}}).status, 200);
  EXPECT_EQ(Download("/b2.txt").body, "bb");
}

TEST_F(RelocationBatchTest, PerEntryFailuresAreRelocationErrors) {
  PutFile("/src.txt", "s");
  PutFile("/taken.txt", "t");
  PutFile("/ok.txt", "o");
  PutFile("/Case.txt", "c");
  auto done = RunBatch("files/move_batch_v2", {{"entries", Entries({{"/missing.txt", "/m2.txt"},
                                                                    {"/src.txt", "/taken.txt"},
                                                                    {"/ok.txt", "/ok2.txt"},
                                                                    {"/Case.txt", "/case.txt"}})}});
  ASSERT_EQ(done.value(".tag", ""), "complete");
  const auto& e = done["entries"];
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0][".tag"], "failure");
  EXPECT_EQ(TagPath(e[0]["failure"]), "relocation_error/from_lookup/not_found") << e[0];
  EXPECT_EQ(TagPath(e[1]["failure"]), "relocation_error/to/conflict/file") << e[1];
  EXPECT_EQ(e[2][".tag"], "success");
  // A case-only rename is not supported by move_batch_v2 (reference §9.1).
  EXPECT_EQ(e[3][".tag"], "failure") << e[3];
  EXPECT_EQ(Download("/src.txt").body, "s");
  EXPECT_EQ(Download("/taken.txt").body, "t");
}

TEST_F(RelocationBatchTest, OverlappingEntriesAreRefusedNotOrdered) {
  PutFile("/p/one.txt", "1");
  PutFile("/q.txt", "q");
  auto done = RunBatch(
      "files/move_batch_v2",
      {{"entries", Entries({{"/p", "/p2"}, {"/p/one.txt", "/one.txt"}, {"/q.txt", "/q2.txt"}})}});
  const auto& e = done["entries"];
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(TagPath(e[0]["failure"]), "relocation_error/duplicated_or_nested_paths") << e[0];
  EXPECT_EQ(TagPath(e[1]["failure"]), "relocation_error/duplicated_or_nested_paths") << e[1];
  EXPECT_EQ(e[2][".tag"], "success");
  EXPECT_EQ(Download("/p/one.txt").body, "1");
}

TEST_F(RelocationBatchTest, CopyBatchKeepsSources) {
  PutFile("/c.txt", "copy me");
  auto done = RunBatch("files/copy_batch_v2", {{"entries", Entries({{"/c.txt", "/c2.txt"}})}});
  ASSERT_EQ(done["entries"].size(), 1u);
  EXPECT_EQ(done["entries"][0]["success"]["path_display"], "/c2.txt");
  EXPECT_EQ(Download("/c.txt").body, "copy me");
  EXPECT_EQ(Download("/c2.txt").body, "copy me");
}

TEST_F(RelocationBatchTest, BadArgumentsAre400) {
  nlohmann::json many = nlohmann::json::array();
  for (int i = 0; i < 1001; ++i) {
    many.push_back(
        {{"from_path", "/f" + std::to_string(i)}, {"to_path", "/g" + std::to_string(i)}});
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"files/move_batch_v2", R"({})"},
      {"files/move_batch_v2", R"({"entries":[]})"},
      {"files/move_batch_v2", R"({"entries":{"from_path":"/a","to_path":"/b"}})"},
      {"files/move_batch_v2", R"({"entries":[{"from_path":"/a"}]})"},
      {"files/move_batch_v2", R"({"entries":[{"from_path":"/a","to_path":"/b","x":1}]})"},
      {"files/move_batch_v2", R"({"entries":[{"from_path":"a","to_path":"/b"}]})"},
      {"files/move_batch_v2", R"({"entries":[{"from_path":"/a","to_path":5}]})"},
      {"files/move_batch_v2", R"({"entries":[{"from_path":"/a","to_path":"/b"}],"bogus":1})"},
      {"files/move_batch_v2",
       R"({"entries":[{"from_path":"/a","to_path":"/b"}],"autorename":"no"})"},
      // allow_ownership_transfer is a MoveBatchArg field; CopyBatchArg does not have it.
      {"files/copy_batch_v2",
       R"({"entries":[{"from_path":"/a","to_path":"/b"}],"allow_ownership_transfer":false})"},
      {"files/move_batch_v2", nlohmann::json{{"entries", many}}.dump()},
      {"files/move_batch/check_v2", R"({})"},
      {"files/move_batch/check_v2", R"({"async_job_id":1})"},
      {"files/move_batch/check_v2", R"({"async_job_id":"x","more":true})"},
  };
  for (const auto& [route, body] : cases) {
    auto r = RpcRaw(route, body);
    EXPECT_EQ(r.status, 400) << route << " " << body.substr(0, 200) << " -> " << r.body;
    EXPECT_EQ(r.content_type().rfind("text/plain", 0), 0u) << route;
  }
}

TEST_F(RelocationBatchTest, UnknownOrForeignJobIdIsPollError) {
  EXPECT_EQ(Expect409(Rpc("files/move_batch/check_v2", {{"async_job_id", "dbjid:nope"}})),
            "invalid_async_job_id");
  PutFile("/d.txt", "d");
  auto del = Rpc("files/delete_batch", {{"entries", {{{"path", "/d.txt"}}}}});
  ASSERT_EQ(del.status, 200) << del.body;
  const std::string delete_job = del.json().value("async_job_id", "");
  EXPECT_EQ(Expect409(Rpc("files/move_batch/check_v2", {{"async_job_id", delete_job}})),
            "invalid_async_job_id");
  PutFile("/m.txt", "m");
  auto mv = Rpc("files/move_batch_v2",
                {{"entries", {{{"from_path", "/m.txt"}, {"to_path", "/m2.txt"}}}}});
  ASSERT_EQ(mv.status, 200) << mv.body;
  EXPECT_EQ(Expect409(Rpc("files/copy_batch/check_v2",
                          {{"async_job_id", mv.json().value("async_job_id", "")}})),
            "invalid_async_job_id");
}

TEST_F(RelocationBatchTest, RoutesAreCounted) {
  PutFile("/k.txt", "k");
  emu_.ResetCounters();
  RunBatch("files/move_batch_v2", {{"entries", Entries({{"/k.txt", "/k2.txt"}})}});
  const auto j = emu_.Counters();
  EXPECT_EQ(j["routes"]["files/move_batch_v2"], 1);
  EXPECT_GE(j["routes"]["files/move_batch/check_v2"].get<int>(), 2);
}

class RelocationBatchLockTest : public RelocationBatchTest {
 protected:
  std::vector<std::string> ExtraArgs() override { return {"--commit-lock-ms", "300"}; }
};

// A batch waits for the namespace write lock and holds it once: concurrent batches all
// succeed, and 20 moves cost one hold (not 20).
TEST_F(RelocationBatchLockTest, BatchesWaitForTheLockAndHoldItOnce) {
  // Create the 60 files with one finish_batch_v2 (one lock hold).
  nlohmann::json commits = nlohmann::json::array();
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 20; ++i) {
      commits.push_back(
          {{"cursor", {{"session_id", ClosedSession("z")}, {"offset", 1}}},
           {"commit", {{"path", "/t" + std::to_string(t) + "/" + std::to_string(i)}}}});
    }
  }
  auto made = Rpc("files/upload_session/finish_batch_v2", {{"entries", commits}});
  ASSERT_EQ(made.status, 200) << made.body;
  std::vector<nlohmann::json> results(3);
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::pair<std::string, std::string>> moves;
      for (int i = 0; i < 20; ++i) {
        const std::string base = "/t" + std::to_string(t) + "/";
        moves.emplace_back(base + std::to_string(i), base + "moved" + std::to_string(i));
      }
      results[static_cast<std::size_t>(t)] =
          RunBatch("files/move_batch_v2", {{"entries", Entries(moves)}});
    });
  }
  for (auto& th : threads) th.join();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  for (const auto& r : results) {
    ASSERT_EQ(r["entries"].size(), 20u) << r;
    for (const auto& e : r["entries"]) EXPECT_EQ(e[".tag"], "success") << e;
  }
  // 3 holds take 0.9 s and 60 would take 18 s: room for a sanitizer build on a loaded machine.
  EXPECT_LT(elapsed, std::chrono::seconds(9)) << "3 batches should cost about 3 lock holds";
}

}  // namespace
}  // namespace filesync::emulator_test
