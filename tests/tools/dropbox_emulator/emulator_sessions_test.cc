// Upload sessions (reference §10.3): sequential and concurrent rules, offsets, batches.
#include "emulator_fixture.h"
#include "hash/content_hash.h"

namespace filesync::emulator_test {
namespace {

using SessionsTest = EmulatorTest;

nlohmann::json Cursor(const std::string& id, std::uint64_t offset) {
  return {{"session_id", id}, {"offset", offset}};
}

std::string Hex(const std::string& data) { return hash::ToHex(hash::HashBytes(data)); }

TEST_F(SessionsTest, SequentialStartAppendFinish) {
  auto start = Upload("files/upload_session/start", nlohmann::json::object(), "abc");
  ASSERT_EQ(start.status, 200) << start.body;
  const std::string id = start.json()["session_id"];
  auto append = Upload("files/upload_session/append_v2",
                       {{"cursor", Cursor(id, 3)}, {"content_hash", Hex("def")}}, "def");
  ASSERT_EQ(append.status, 200) << append.body;
  EXPECT_EQ(append.body, "null");
  auto finish = Upload(
      "files/upload_session/finish",
      {{"cursor", Cursor(id, 6)}, {"commit", {{"path", "/s/seq.txt"}, {"mode", "overwrite"}}}},
      "gh");
  ASSERT_EQ(finish.status, 200) << finish.body;
  EXPECT_EQ(finish.json()["size"], 8);
  EXPECT_EQ(finish.json()["content_hash"], Hex("abcdefgh"));
  EXPECT_EQ(Download("/s/seq.txt").body, "abcdefgh");
  // A committed session is gone.
  auto again = Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 8)}}, "x");
  EXPECT_EQ(Expect409(again), "not_found");
}

TEST_F(SessionsTest, IncorrectOffsetCarriesCorrectOffset) {
  const std::string id =
      Upload("files/upload_session/start", nlohmann::json::object(), "12345").json()["session_id"];
  auto wrong = Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 2)}}, "678");
  EXPECT_EQ(Expect409(wrong), "incorrect_offset");
  EXPECT_EQ(wrong.json()["error"]["correct_offset"], 5);
  auto finish = Upload("files/upload_session/finish",
                       {{"cursor", Cursor(id, 9)}, {"commit", {{"path", "/o.txt"}}}}, "");
  EXPECT_EQ(Expect409(finish), "lookup_failed/incorrect_offset");
  EXPECT_EQ(finish.json()["error"]["lookup_failed"]["correct_offset"], 5);
  auto mismatch = Upload("files/upload_session/append_v2",
                         {{"cursor", Cursor(id, 5)}, {"content_hash", Hex("nope")}}, "678");
  EXPECT_EQ(Expect409(mismatch), "content_hash_mismatch");
  // The refused bytes were not taken.
  auto ok =
      Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 5)}, {"close", true}}, "678");
  EXPECT_EQ(ok.status, 200) << ok.body;
  auto closed = Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 8)}}, "9");
  EXPECT_EQ(Expect409(closed), "closed");
  auto unknown = Upload("files/upload_session/append_v2",
                        {{"cursor", Cursor("pid_upload_session:0123abcd", 0)}}, "9");
  EXPECT_EQ(Expect409(unknown), "not_found");
}

TEST_F(SessionsTest, ConcurrentSessionRules) {
  auto with_data = Upload("files/upload_session/start", {{"session_type", "concurrent"}}, "x");
  EXPECT_EQ(Expect409(with_data), "concurrent_session_data_not_allowed");
  auto with_close = Upload("files/upload_session/start",
                           {{"session_type", {{".tag", "concurrent"}}}, {"close", true}}, "");
  EXPECT_EQ(Expect409(with_close), "concurrent_session_close_not_allowed");

  auto start = Upload("files/upload_session/start", {{"session_type", "concurrent"}}, "");
  ASSERT_EQ(start.status, 200) << start.body;
  const std::string id = start.json()["session_id"];
  const std::string chunk0(4 * kMiB, 'a');
  const std::string chunk1(4 * kMiB, 'b');
  const std::string tail = "tail";

  auto bad_offset = Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 100)}}, chunk0);
  EXPECT_EQ(Expect409(bad_offset), "concurrent_session_invalid_offset");
  auto bad_size = Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 0)}}, "short");
  EXPECT_EQ(Expect409(bad_size), "concurrent_session_invalid_data_size");

  // Not closed yet: finish refuses.
  const nlohmann::json commit = {{"path", "/big.bin"}};
  ASSERT_EQ(
      Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 4 * kMiB)}}, chunk1).status,
      200);
  auto not_closed = Upload("files/upload_session/finish",
                           {{"cursor", Cursor(id, 8 * kMiB)}, {"commit", commit}}, "");
  EXPECT_EQ(Expect409(not_closed), "concurrent_session_not_closed");
  // The closing chunk may complete before an earlier one; chunk 0 is then missing.
  ASSERT_EQ(Upload("files/upload_session/append_v2",
                   {{"cursor", Cursor(id, 8 * kMiB)}, {"close", true}}, tail)
                .status,
            200);
  auto missing = Upload("files/upload_session/finish",
                        {{"cursor", Cursor(id, 8 * kMiB + 4)}, {"commit", commit}}, "");
  EXPECT_EQ(Expect409(missing), "concurrent_session_missing_data");
  ASSERT_EQ(Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 0)}}, chunk0).status,
            200);
  auto beyond =
      Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 12 * kMiB)}}, chunk0);
  EXPECT_EQ(Expect409(beyond), "closed");
  auto with_body = Upload("files/upload_session/finish",
                          {{"cursor", Cursor(id, 8 * kMiB + 4)}, {"commit", commit}}, "x");
  EXPECT_EQ(Expect409(with_body), "concurrent_session_data_not_allowed");
  auto done = Upload("files/upload_session/finish",
                     {{"cursor", Cursor(id, 8 * kMiB + 4)}, {"commit", commit}}, "");
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.json()["size"], 8 * kMiB + 4);
  EXPECT_EQ(done.json()["content_hash"], Hex(chunk0 + chunk1 + tail));
}

TEST_F(SessionsTest, FinishBatchV2PerEntryResults) {
  const std::string ok = ClosedSession("hello");
  const std::string open =
      Upload("files/upload_session/start", nlohmann::json::object(), "x").json()["session_id"];
  const std::string blocked = ClosedSession("y");
  ASSERT_EQ(Rpc("files/create_folder_v2", {{"path", "/batch/folder"}}).status, 200);
  auto r = Rpc("files/upload_session/finish_batch_v2",
               {{"entries",
                 {{{"cursor", Cursor(ok, 5)},
                   {"commit", {{"path", "/Batch/a.txt"}, {"mode", "overwrite"}, {"mute", true}}}},
                  {{"cursor", Cursor(open, 1)}, {"commit", {{"path", "/batch/b.txt"}}}},
                  {{"cursor", Cursor(blocked, 1)}, {"commit", {{"path", "/batch/folder"}}}},
                  {{"cursor", Cursor("pid_upload_session:00ff", 0)},
                   {"commit", {{"path", "/batch/c.txt"}}}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  const nlohmann::json body = r.json();
  const auto& e = body["entries"];
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0][".tag"], "success");
  EXPECT_EQ(e[0]["path_display"], "/batch/a.txt");
  EXPECT_EQ(e[0]["size"], 5);
  EXPECT_EQ(e[0]["content_hash"], Hex("hello"));
  EXPECT_TRUE(e[0].contains("rev"));
  EXPECT_EQ(e[1][".tag"], "failure");
  EXPECT_EQ(e[1]["failure"][".tag"], "lookup_failed");
  EXPECT_EQ(e[1]["failure"]["lookup_failed"][".tag"], "not_closed");
  EXPECT_EQ(e[2]["failure"][".tag"], "path");
  EXPECT_EQ(e[2]["failure"]["path"][".tag"], "conflict");
  EXPECT_EQ(e[2]["failure"]["path"]["conflict"][".tag"], "folder");
  EXPECT_EQ(e[3]["failure"]["lookup_failed"][".tag"], "not_found");
  // The conflicting session is still usable under another path.
  auto retry = Rpc(
      "files/upload_session/finish_batch_v2",
      {{"entries", {{{"cursor", Cursor(blocked, 1)}, {"commit", {{"path", "/batch/y.txt"}}}}}}});
  ASSERT_EQ(retry.status, 200);
  EXPECT_EQ(retry.json()["entries"][0][".tag"], "success");

  nlohmann::json too_many = nlohmann::json::array();
  for (int i = 0; i < 1001; ++i)
    too_many.push_back({{"cursor", Cursor(ok, 5)}, {"commit", {{"path", "/x"}}}});
  EXPECT_EQ(Rpc("files/upload_session/finish_batch_v2", {{"entries", too_many}}).status, 400);
}

TEST_F(SessionsTest, FinishBatchV1AndCheck) {
  const std::string id = ClosedSession("v1");
  auto launch =
      Rpc("files/upload_session/finish_batch",
          {{"entries", {{{"cursor", Cursor(id, 2)}, {"commit", {{"path", "/v1.txt"}}}}}}});
  ASSERT_EQ(launch.status, 200) << launch.body;
  ASSERT_EQ(launch.json()[".tag"], "async_job_id");
  auto check = Rpc("files/upload_session/finish_batch/check",
                   {{"async_job_id", launch.json()["async_job_id"]}});
  ASSERT_EQ(check.status, 200);
  EXPECT_EQ(check.json()[".tag"], "complete");
  EXPECT_EQ(check.json()["entries"][0][".tag"], "success");
  EXPECT_EQ(check.json()["entries"][0]["path_lower"], "/v1.txt");
  EXPECT_EQ(Expect409(Rpc("files/upload_session/finish_batch/check", {{"async_job_id", "nope"}})),
            "invalid_async_job_id");
}

TEST_F(SessionsTest, StartBatchAndAppendBatch) {
  auto ids = Rpc("files/upload_session/start_batch", {{"num_sessions", 2}});
  ASSERT_EQ(ids.status, 200) << ids.body;
  const std::string a = ids.json()["session_ids"][0];
  const std::string b = ids.json()["session_ids"][1];
  auto mismatch = Upload("files/upload_session/append_batch",
                         {{"entries", {{{"cursor", Cursor(a, 0)}, {"length", 3}}}}}, "toolong");
  EXPECT_EQ(Expect409(mismatch), "length_mismatch");
  auto r = Upload("files/upload_session/append_batch",
                  {{"entries",
                    {{{"cursor", Cursor(a, 0)}, {"length", 3}, {"close", true}},
                     {{"cursor", Cursor(b, 7)}, {"length", 4}}}}},
                  "AAABBBB");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["entries"][0][".tag"], "success");
  EXPECT_EQ(r.json()["entries"][1][".tag"], "failure");
  EXPECT_EQ(r.json()["entries"][1]["failure"][".tag"], "incorrect_offset");
  EXPECT_EQ(r.json()["entries"][1]["failure"]["correct_offset"], 0);
  auto fin = Rpc("files/upload_session/finish_batch_v2",
                 {{"entries", {{{"cursor", Cursor(a, 3)}, {"commit", {{"path", "/ab.txt"}}}}}}});
  ASSERT_EQ(fin.status, 200);
  EXPECT_EQ(fin.json()["entries"][0][".tag"], "success");
  EXPECT_EQ(Download("/ab.txt").body, "AAA");
}

TEST_F(SessionsTest, SessionsSurviveRestart) {
  const std::string id =
      Upload("files/upload_session/start", nlohmann::json::object(), "before").json()["session_id"];
  ASSERT_TRUE(emu_.Restart());
  ASSERT_EQ(Upload("files/upload_session/append_v2", {{"cursor", Cursor(id, 6)}}, "-after").status,
            200);
  auto fin = Upload("files/upload_session/finish",
                    {{"cursor", Cursor(id, 12)}, {"commit", {{"path", "/restart.txt"}}}}, "");
  ASSERT_EQ(fin.status, 200) << fin.body;
  EXPECT_EQ(Download("/restart.txt").body, "before-after");
}

}  // namespace
}  // namespace filesync::emulator_test
