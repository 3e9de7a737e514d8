// DropboxCloud against a scripted transport: request counts, retry rules and result mapping,
// without a network.
#include "cloud/dropbox/dropbox_cloud.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "cloud/dropbox/pacer.h"
#include "core/rel_path.h"
#include "fakes.h"

namespace filesync::dropbox {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeClock;
using testing::FakeTransport;
using testing::JsonResponse;
using testing::TextResponse;

json NotFound409() {
  return {{"error_summary", "path/not_found/."},
          {"error", {{".tag", "path"}, {"path", {{".tag", "not_found"}}}}}};
}

class DropboxCloudTest : public ::testing::Test {
 protected:
  std::unique_ptr<DropboxCloud> Make(FakeTransport::Handler handler, DropboxOptions o = {}) {
    transport_ = std::make_shared<FakeTransport>(std::move(handler));
    o.api_url = "http://api.test";
    o.content_url = "http://content.test";
    if (!o.tokens && o.refresh_token.empty()) o.access_token = "tok";
    o.transport = transport_;
    o.clock = &clock_;
    o.pacer.seed = 7;
    return std::make_unique<DropboxCloud>(std::move(o));
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  static core::FileIdentity Identity(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0);
    return core::FileIdentity{static_cast<std::uint64_t>(st.st_size),
                              st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec,
                              st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec,
                              static_cast<std::uint64_t>(st.st_ino),
                              static_cast<std::uint64_t>(st.st_dev)};
  }

  cloud::UploadItem Item(const std::string& name, const std::string& content,
                         const std::string& cloud_path) {
    cloud::UploadItem item;
    item.local_path = WriteFile(name, content);
    item.cloud_path = cloud_path;
    item.expected = Identity(item.local_path);
    item.mtime_ns = item.expected.mtime_ns;
    return item;
  }

  void SetUp() override {
    dir_ = ::testing::TempDir() + "/dbx_cloud_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  FakeClock clock_;
  std::shared_ptr<FakeTransport> transport_;
  std::string dir_;
};

json FileEntry(const std::string& path, std::uint64_t size, const std::string& content) {
  std::string lower = path;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return {{".tag", "file"},      {"name", std::string(core::BaseName(path))},
          {"path_lower", lower}, {"path_display", path},
          {"id", "id:x"},        {"rev", "015f00000001"},
          {"size", size},        {"content_hash", hash::ToHex(hash::HashBytes(content))}};
}

TEST_F(DropboxCloudTest, FullListingFollowsHasMoreAndSkipsRoot) {
  auto cloud = Make([](const HttpRequest& r) -> Result<HttpResponse> {
    const json arg = json::parse(r.body);
    if (FakeTransport::Route(r) == "files/list_folder") {
      EXPECT_EQ(arg["path"], "/Backups");
      EXPECT_EQ(arg["recursive"], true);
      EXPECT_EQ(arg["include_deleted"], false);
      EXPECT_EQ(arg["limit"], 2000);
      return JsonResponse(200, {{"entries",
                                 {{{".tag", "folder"},
                                   {"name", "Backups"},
                                   {"path_lower", "/backups"},
                                   {"path_display", "/Backups"}},
                                  FileEntry("/Backups/a.txt", 5, "hello")}},
                                {"cursor", "c1"},
                                {"has_more", true}});
    }
    EXPECT_EQ(arg["cursor"], "c1");
    return JsonResponse(200, {{"entries",
                               {{{".tag", "folder"},
                                 {"name", "d"},
                                 {"path_lower", "/backups/d"},
                                 {"path_display", "/Backups/d"}}}},
                              {"cursor", "c2"},
                              {"has_more", false}});
  });
  auto listed = cloud->List("/Backups", "");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_TRUE(listed->complete);
  EXPECT_EQ(listed->cursor, "c2");
  ASSERT_EQ(listed->changes.size(), 2u);
  EXPECT_EQ(listed->changes[0].entry.path, "/Backups/a.txt");
  EXPECT_EQ(listed->changes[0].entry.size, 5u);
  EXPECT_EQ(listed->changes[0].entry.content_hash, hash::HashBytes("hello"));
  EXPECT_EQ(listed->changes[1].entry.kind, core::EntryKind::kFolder);
  EXPECT_EQ(transport_->routes(),
            (std::vector<std::string>{"files/list_folder", "files/list_folder/continue"}));
}

TEST_F(DropboxCloudTest, ContinueWithoutChangesCostsOneRequest) {
  auto cloud = Make([](const HttpRequest&) -> Result<HttpResponse> {
    return JsonResponse(200, {{"entries", json::array()}, {"cursor", "c9"}, {"has_more", false}});
  });
  auto listed = cloud->List("", "c8");
  ASSERT_TRUE(listed.ok());
  EXPECT_FALSE(listed->complete);
  EXPECT_TRUE(listed->changes.empty());
  EXPECT_EQ(listed->cursor, "c9");
  EXPECT_EQ(transport_->requests().size(), 1u);
}

TEST_F(DropboxCloudTest, ContinueReportsDeletesAndResetRelists) {
  int continues = 0;
  auto cloud = Make([&](const HttpRequest& r) -> Result<HttpResponse> {
    if (FakeTransport::Route(r) == "files/list_folder/continue") {
      if (++continues == 1) {
        return JsonResponse(
            200,
            {{"entries",
              {{{".tag", "deleted"}, {"name", "x"}, {"path_lower", "/x"}, {"path_display", "/X"}}}},
             {"cursor", "c2"},
             {"has_more", false}});
      }
      return JsonResponse(409, {{"error_summary", "reset/.."}, {"error", {{".tag", "reset"}}}});
    }
    EXPECT_EQ(json::parse(r.body)["path"], "");
    return JsonResponse(
        200, {{"entries", {FileEntry("/y", 1, "y")}}, {"cursor", "fresh"}, {"has_more", false}});
  });
  auto first = cloud->List("", "c1");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->changes.size(), 1u);
  EXPECT_EQ(first->changes[0].type, cloud::ListChange::Type::kDelete);
  EXPECT_EQ(first->changes[0].entry.path, "/X");
  auto second = cloud->List("", "c2");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(second->complete);
  EXPECT_EQ(second->cursor, "fresh");
  ASSERT_EQ(second->changes.size(), 1u);
}

TEST_F(DropboxCloudTest, MissingRootIsEmptyCompleteListing) {
  auto cloud = Make(
      [](const HttpRequest&) -> Result<HttpResponse> { return JsonResponse(409, NotFound409()); });
  auto listed = cloud->List("/nope", "");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->complete);
  EXPECT_TRUE(listed->changes.empty());
}

TEST_F(DropboxCloudTest, CreateFolderExistingFolderIsSuccessFileIsConflict) {
  bool file_in_way = false;
  auto cloud = Make([&](const HttpRequest& r) -> Result<HttpResponse> {
    EXPECT_EQ(json::parse(r.body)["autorename"], false);
    return JsonResponse(
        409,
        {{"error",
          {{".tag", "path"},
           {"path",
            {{".tag", "conflict"}, {"conflict", {{".tag", file_in_way ? "file" : "folder"}}}}}}}});
  });
  EXPECT_TRUE(cloud->CreateFolder("/a").ok());
  file_in_way = true;
  EXPECT_EQ(cloud->CreateFolder("/a").kind(), Status::Kind::kConflict);
}

TEST_F(DropboxCloudTest, ExpiredTokenRefreshesAndRetriesOnce) {
  int refreshes = 0;
  int calls = 0;
  auto cloud_handler = [&](const HttpRequest& r) -> Result<HttpResponse> {
    if (r.url.ends_with("/oauth2/token")) {
      ++refreshes;
      return JsonResponse(
          200, {{"access_token", "T" + std::to_string(refreshes)}, {"expires_in", 14400}});
    }
    ++calls;
    if (r.headers.Get("Authorization") == "Bearer T1") {
      return JsonResponse(401, {{"error_summary", "expired_access_token/"},
                                {"error", {{".tag", "expired_access_token"}}}});
    }
    EXPECT_EQ(r.headers.Get("Authorization"), "Bearer T2");
    return JsonResponse(200, {{"metadata", {{"name", "a"}, {"path_display", "/a"}}}});
  };
  DropboxOptions o;
  o.refresh_token = "R";
  o.app_key = "K";
  auto cloud = Make(cloud_handler, o);
  EXPECT_TRUE(cloud->CreateFolder("/a").ok());
  EXPECT_EQ(refreshes, 2);
  EXPECT_EQ(calls, 2);
}

TEST_F(DropboxCloudTest, PersistentExpiryAfterRefreshIsAuthError) {
  auto cloud = Make(
      [](const HttpRequest& r) -> Result<HttpResponse> {
        if (r.url.ends_with("/oauth2/token"))
          return JsonResponse(200, {{"access_token", "T"}, {"expires_in", 14400}});
        return JsonResponse(401, {{"error", {{".tag", "expired_access_token"}}}});
      },
      DropboxOptions{.refresh_token = "R", .app_key = "K"});
  EXPECT_EQ(cloud->CreateFolder("/a").kind(), Status::Kind::kAuth);
}

TEST_F(DropboxCloudTest, ServerErrorsBackOffThenGiveUp) {
  auto cloud =
      Make([](const HttpRequest&) -> Result<HttpResponse> { return TextResponse(500, "boom"); });
  const Status s = cloud->CreateFolder("/a");
  EXPECT_EQ(s.kind(), Status::Kind::kTransient);
  EXPECT_EQ(transport_->requests().size(), 5u);
  EXPECT_EQ(clock_.sleeps().size() <= 4u, true);
}

TEST_F(DropboxCloudTest, NetworkErrorThenSuccessRetries) {
  int n = 0;
  auto cloud = Make([&](const HttpRequest&) -> Result<HttpResponse> {
    if (++n < 3) return Status::Transient("connection reset");
    return JsonResponse(200, {{"metadata", {{"name", "a"}, {"path_display", "/a"}}}});
  });
  EXPECT_TRUE(cloud->CreateFolder("/a").ok());
  EXPECT_EQ(n, 3);
}

TEST_F(DropboxCloudTest, RateLimitWaitsAtLeastRetryAfter) {
  int n = 0;
  core::Clock::TimePoint first{};
  core::Clock::TimePoint second{};
  auto cloud = Make([&](const HttpRequest&) -> Result<HttpResponse> {
    if (++n == 1) {
      first = clock_.Now();
      HttpResponse r = JsonResponse(
          429, {{"error", {{"reason", {{".tag", "too_many_requests"}}}, {"retry_after", 2}}}});
      r.headers.Add("Retry-After", "2");
      return r;
    }
    second = clock_.Now();
    return JsonResponse(200, {{"metadata", {{"name", "a"}, {"path_display", "/a"}}}});
  });
  EXPECT_TRUE(cloud->CreateFolder("/a").ok());
  EXPECT_GE(second - first, 2s);
  EXPECT_TRUE(cloud->TEST_pacer().rate().has_value());
}

TEST_F(DropboxCloudTest, AmbiguousMoveChecksStateInsteadOfRetryingBlindly) {
  auto cloud = Make([](const HttpRequest& r) -> Result<HttpResponse> {
    const std::string route = FakeTransport::Route(r);
    if (route == "files/move_v2") return TextResponse(503, "upstream timeout");
    const json arg = json::parse(r.body);
    if (arg["path"] == "/old") return JsonResponse(409, NotFound409());
    return JsonResponse(200, FileEntry("/new", 5, "hello"));
  });
  auto moved = cloud->Move("/old", "/new");
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->path, "/new");
  EXPECT_EQ(transport_->routes(), (std::vector<std::string>{"files/move_v2", "files/get_metadata",
                                                            "files/get_metadata"}));
}

TEST_F(DropboxCloudTest, MoveConflictAndCaseOnlyRename) {
  std::vector<std::pair<std::string, std::string>> moves;
  auto cloud = Make([&](const HttpRequest& r) -> Result<HttpResponse> {
    const json arg = json::parse(r.body);
    moves.emplace_back(arg["from_path"], arg["to_path"]);
    EXPECT_EQ(arg["autorename"], false);
    if (arg["to_path"] == "/taken") {
      return JsonResponse(
          409,
          {{"error",
            {{".tag", "to"}, {"to", {{".tag", "conflict"}, {"conflict", {{".tag", "file"}}}}}}}});
    }
    return JsonResponse(200, {{"metadata", FileEntry(arg["to_path"], 1, "x")}});
  });
  EXPECT_EQ(cloud->Move("/a", "/taken").status().kind(), Status::Kind::kConflict);
  moves.clear();
  auto renamed = cloud->Move("/Dir/readme.TXT", "/Dir/README.txt");
  ASSERT_TRUE(renamed.ok());
  EXPECT_EQ(renamed->path, "/Dir/README.txt");
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[0].first, "/Dir/readme.TXT");
  EXPECT_TRUE(moves[0].second.starts_with("/Dir/README.txt.filesync-tmp-")) << moves[0].second;
  EXPECT_EQ(moves[1].first, moves[0].second);
  EXPECT_EQ(moves[1].second, "/Dir/README.txt");
}

TEST_F(DropboxCloudTest, MoveSendsNfcPaths) {
  auto cloud = Make([](const HttpRequest& r) -> Result<HttpResponse> {
    const json arg = json::parse(r.body);
    EXPECT_EQ(arg["from_path"], "/caf\xC3\xA9");  // NFC é
    EXPECT_EQ(arg["to_path"], "/caf\xC3\xA9-2");
    return JsonResponse(200, {{"metadata", FileEntry(arg["to_path"], 1, "x")}});
  });
  EXPECT_TRUE(cloud->Move("/cafe\xCC\x81", "/cafe\xCC\x81-2").ok());  // NFD input
}

TEST_F(DropboxCloudTest, DeleteBatchPollsAndTreatsNotFoundAsSuccess) {
  int checks = 0;
  auto cloud = Make([&](const HttpRequest& r) -> Result<HttpResponse> {
    const std::string route = FakeTransport::Route(r);
    if (route == "files/delete_batch") {
      EXPECT_EQ(json::parse(r.body)["entries"].size(), 3u);
      return JsonResponse(200, {{".tag", "async_job_id"}, {"async_job_id", "dbjid:1"}});
    }
    EXPECT_EQ(route, "files/delete_batch/check");
    if (++checks < 3) return JsonResponse(200, {{".tag", "in_progress"}});
    return JsonResponse(
        200, {{".tag", "complete"},
              {"entries",
               {{{".tag", "success"}, {"metadata", FileEntry("/a", 1, "a")}},
                {{".tag", "failure"},
                 {"failure", {{".tag", "path_lookup"}, {"path_lookup", {{".tag", "not_found"}}}}}},
                {{".tag", "failure"},
                 {"failure",
                  {{".tag", "path_write"}, {"path_write", {{".tag", "no_write_permission"}}}}}}}}});
  });
  const std::vector<std::string> paths = {"/a", "/b", "/c"};
  const auto results = cloud->Delete(paths);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_TRUE(results[1].ok());
  EXPECT_EQ(results[2].kind(), Status::Kind::kPermanent);
  EXPECT_EQ(checks, 3);
  // Polling starts at ~50 ms and grows.
  const auto sleeps = clock_.sleeps();
  ASSERT_GE(sleeps.size(), 3u);
  EXPECT_EQ(sleeps[0], 50ms);
  EXPECT_GT(sleeps[1], sleeps[0]);
}

json MoveSuccess(const std::string& to) {
  return {{".tag", "success"}, {"success", FileEntry(to, 1, "x")}};
}

json MoveFailure(const json& relocation_error) {
  return {{".tag", "failure"},
          {"failure", {{".tag", "relocation_error"}, {"relocation_error", relocation_error}}}};
}

// A launch may complete at once (RelocationBatchV2Launch.complete): no check_v2 then. Failed
// entries get Move()'s kinds; a too_many_write_operations entry alone is sent again.
TEST_F(DropboxCloudTest, MoveBatchCompleteAtLaunchRetriesOnlyContendedEntries) {
  std::vector<json> launches;
  auto cloud = Make([&](const HttpRequest& r) -> Result<HttpResponse> {
    const std::string route = FakeTransport::Route(r);
    const json arg = json::parse(r.body);
    if (route == "files/get_metadata") {
      if (arg["path"] == "/d2") return JsonResponse(200, FileEntry("/d2", 1, "x"));
      return JsonResponse(409, NotFound409());
    }
    EXPECT_EQ(route, "files/move_batch_v2");
    launches.push_back(arg);
    if (launches.size() == 2) {
      return JsonResponse(200, {{".tag", "complete"}, {"entries", {MoveSuccess("/b2")}}});
    }
    return JsonResponse(
        200,
        {{".tag", "complete"},
         {"entries",
          {MoveSuccess("/a2"),
           {{".tag", "failure"}, {"failure", {{".tag", "too_many_write_operations"}}}},
           MoveFailure(
               {{".tag", "to"}, {"to", {{".tag", "conflict"}, {"conflict", {{".tag", "file"}}}}}}),
           MoveFailure({{".tag", "from_lookup"}, {"from_lookup", {{".tag", "not_found"}}}}),
           MoveFailure({{".tag", "from_lookup"}, {"from_lookup", {{".tag", "not_found"}}}})}}});
  });
  const std::vector<cloud::MovePair> moves = {
      {"/a", "/a2"}, {"/b", "/b2"}, {"/c", "/taken"}, {"/d", "/d2"}, {"/e", "/e2"}};
  const auto results = cloud->MoveBatch(moves);
  ASSERT_EQ(results.size(), 5u);
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ(results[0]->path, "/a2");
  ASSERT_TRUE(results[1].ok()) << results[1].status().ToString();
  EXPECT_EQ(results[1]->path, "/b2");
  EXPECT_EQ(results[2].status().kind(), Status::Kind::kConflict);
  ASSERT_TRUE(results[3].ok()) << "source gone, target present: done before";
  EXPECT_EQ(results[3]->path, "/d2");
  EXPECT_EQ(results[4].status().kind(), Status::Kind::kNotFound);
  ASSERT_EQ(launches.size(), 2u);
  const json& first = launches[0];
  EXPECT_EQ(first["autorename"], false);
  EXPECT_EQ(first["allow_ownership_transfer"], false);
  ASSERT_EQ(first["entries"].size(), 5u);
  EXPECT_EQ(first["entries"][2], (json{{"from_path", "/c"}, {"to_path", "/taken"}}));
  EXPECT_EQ(launches[1]["entries"], (json::array({{{"from_path", "/b"}, {"to_path", "/b2"}}})));
  for (const auto& route : transport_->routes()) EXPECT_NE(route, "files/move_batch/check_v2");
}

TEST_F(DropboxCloudTest, MoveBatchPollsCheckV2AndSendsCaseOnlyRenamesAlone) {
  int checks = 0;
  std::vector<std::string> routes;
  auto cloud = Make([&](const HttpRequest& r) -> Result<HttpResponse> {
    const std::string route = FakeTransport::Route(r);
    const json arg = json::parse(r.body);
    if (route == "files/move_v2") {
      return JsonResponse(200, {{"metadata", FileEntry(arg["to_path"], 1, "x")}});
    }
    if (route == "files/move_batch_v2") {
      EXPECT_EQ(arg["entries"].size(), 2u) << "the case-only rename is not in the batch";
      EXPECT_EQ(arg["entries"][0]["from_path"], "/caf\xC3\xA9");  // NFC
      return JsonResponse(200, {{".tag", "async_job_id"}, {"async_job_id", "dbjid:7"}});
    }
    EXPECT_EQ(route, "files/move_batch/check_v2");
    EXPECT_EQ(arg["async_job_id"], "dbjid:7");
    if (++checks < 3) return JsonResponse(200, {{".tag", "in_progress"}});
    return JsonResponse(
        200, {{".tag", "complete"}, {"entries", {MoveSuccess("/x2"), MoveSuccess("/y2")}}});
  });
  const std::vector<cloud::MovePair> moves = {
      {"/cafe\xCC\x81", "/x2"}, {"/Dir/a.txt", "/Dir/A.txt"}, {"/y", "/y2"}};
  const auto results = cloud->MoveBatch(moves);
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(results[0]->path, "/x2");
  EXPECT_EQ(results[1]->path, "/Dir/A.txt");
  EXPECT_EQ(results[2]->path, "/y2");
  EXPECT_EQ(checks, 3);
  int move_v2 = 0;
  for (const auto& route : transport_->routes()) move_v2 += route == "files/move_v2" ? 1 : 0;
  EXPECT_EQ(move_v2, 2) << "case-only rename: through a temporary name";
}

// A launch whose response is lost may have moved everything: each move is then replayed through
// move_v2, which recognises the moves already done instead of failing them.
TEST_F(DropboxCloudTest, AmbiguousMoveBatchIsReplayedMoveByMove) {
  auto cloud = Make([&](const HttpRequest& r) -> Result<HttpResponse> {
    const std::string route = FakeTransport::Route(r);
    const json arg = json::parse(r.body);
    if (route == "files/move_batch_v2") return TextResponse(503, "upstream timeout");
    if (route == "files/move_v2") {
      return JsonResponse(
          409, {{"error_summary", "from_lookup/not_found/."},
                {"error", {{".tag", "from_lookup"}, {"from_lookup", {{".tag", "not_found"}}}}}});
    }
    EXPECT_EQ(route, "files/get_metadata");
    if (arg["path"] == "/a" || arg["path"] == "/b") return JsonResponse(409, NotFound409());
    return JsonResponse(200, FileEntry(arg["path"], 1, "x"));
  });
  const std::vector<cloud::MovePair> moves = {{"/a", "/a2"}, {"/b", "/b2"}};
  const auto results = cloud->MoveBatch(moves);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.status().ToString();
  const auto routes = transport_->routes();
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "files/move_batch_v2"), 1);
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "files/move_v2"), 2);
}

TEST_F(DropboxCloudTest, SingleDeleteUsesDeleteV2AndNotFoundIsSuccess) {
  auto cloud = Make([](const HttpRequest& r) -> Result<HttpResponse> {
    EXPECT_EQ(FakeTransport::Route(r), "files/delete_v2");
    return JsonResponse(
        409, {{"error", {{".tag", "path_lookup"}, {"path_lookup", {{".tag", "not_found"}}}}}});
  });
  const std::vector<std::string> paths = {"/gone"};
  EXPECT_TRUE(cloud->Delete(paths)[0].ok());
  const std::vector<std::string> root = {""};
  EXPECT_EQ(cloud->Delete(root)[0].kind(), Status::Kind::kInvalidArgument);
}

// A minimal upload-session server: start_batch, append_batch, finish_batch_v2.
struct FakeUploads {
  std::map<std::string, std::string> sessions;
  int next = 0;
  int write_contention_once = -1;  // entry index that fails once with too_many_write_operations
  bool corrupt_hash = false;
  bool lose_append_response_once = false;  // append_batch runs, then its response is lost
  int lose_session_once = -1;              // entry index whose session answers not_found, once
  std::set<std::string> closed;
  std::vector<std::string> finish_paths;
  std::function<void()> on_append;  // called as each append_batch arrives

  Result<HttpResponse> operator()(const HttpRequest& r) {
    const std::string route = FakeTransport::Route(r);
    if (route == "files/upload_session/start_batch") {
      json ids = json::array();
      for (int i = 0; i < json::parse(r.body)["num_sessions"].get<int>(); ++i) {
        const std::string id = "s" + std::to_string(next++);
        sessions[id];
        ids.push_back(id);
      }
      return JsonResponse(200, {{"session_ids", ids}});
    }
    if (route == "files/upload_session/append_batch") {
      const std::string header(*r.headers.Get("Dropbox-API-Arg"));
      for (const char c : header) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
      const json arg = json::parse(header);
      EXPECT_EQ(arg["content_hash"], hash::ToHex(hash::HashBytes(r.body)));
      if (on_append) on_append();
      std::size_t off = 0;
      json entries = json::array();
      for (const auto& e : arg["entries"]) {
        const auto len = e["length"].get<std::size_t>();
        const std::string id = e["cursor"]["session_id"];
        if (lose_session_once == static_cast<int>(entries.size())) {
          lose_session_once = -1;
          entries.push_back({{".tag", "failure"}, {"failure", {{".tag", "not_found"}}}});
        } else if (closed.contains(id)) {
          entries.push_back({{".tag", "failure"}, {"failure", {{".tag", "closed"}}}});
        } else {
          sessions[id] = r.body.substr(off, len);
          closed.insert(id);
          entries.push_back({{".tag", "success"}});
        }
        off += len;
        EXPECT_EQ(e["close"], true);
      }
      EXPECT_EQ(off, r.body.size());
      if (lose_append_response_once) {
        lose_append_response_once = false;
        return Status::Transient("connection closed before the response");
      }
      return JsonResponse(200, {{"entries", entries}});
    }
    if (route == "files/upload_session/finish_batch_v2") {
      json entries = json::array();
      int i = 0;
      const json arg = json::parse(r.body);
      for (const auto& e : arg["entries"]) {
        EXPECT_EQ(e["commit"]["mode"], "overwrite");
        EXPECT_EQ(e["commit"]["mute"], true);
        EXPECT_EQ(e["commit"]["autorename"], false);
        EXPECT_TRUE(e["commit"].contains("client_modified"));
        const std::string path = e["commit"]["path"];
        finish_paths.push_back(path);
        if (i++ == write_contention_once) {
          write_contention_once = -1;
          entries.push_back(
              {{".tag", "failure"}, {"failure", {{".tag", "too_many_write_operations"}}}});
          continue;
        }
        const std::string& data = sessions.at(e["cursor"]["session_id"]);
        EXPECT_EQ(e["cursor"]["offset"], data.size());
        json m = FileEntry(path, data.size(), corrupt_hash ? data + "!" : data);
        m[".tag"] = "success";
        entries.push_back(m);
      }
      return JsonResponse(200, {{"entries", entries}});
    }
    ADD_FAILURE() << "unexpected route " << route;
    return TextResponse(404, "no");
  }
};

TEST_F(DropboxCloudTest, SmallFilesTakeThreeRequestsPerBatch) {
  auto uploads = std::make_shared<FakeUploads>();
  auto cloud = Make([uploads](const HttpRequest& r) { return (*uploads)(r); });
  std::vector<cloud::UploadItem> items = {Item("a", "hello", "/d/a.txt"), Item("b", "", "/d/b.txt"),
                                          Item("c", "seven!!", "/d/R\xC3\xA9port.txt")};
  std::uint64_t progressed = 0;
  const auto results =
      cloud->Upload(items, {.progress = [&](std::uint64_t n) { progressed += n; }});
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(results[0]->digest, hash::HashBytes("hello"));
  EXPECT_EQ(results[0]->bytes_transferred, 5u);
  EXPECT_EQ(results[0]->identity, items[0].expected);
  EXPECT_EQ(results[1]->entry.size, 0u);
  EXPECT_EQ(progressed, 12u);
  EXPECT_EQ(transport_->routes(),
            (std::vector<std::string>{"files/upload_session/start_batch",
                                      "files/upload_session/append_batch",
                                      "files/upload_session/finish_batch_v2"}));
}

TEST_F(DropboxCloudTest, ChangedFileIsNotUploadedOthersAre) {
  auto uploads = std::make_shared<FakeUploads>();
  auto cloud = Make([uploads](const HttpRequest& r) { return (*uploads)(r); });
  std::vector<cloud::UploadItem> items = {Item("a", "hello", "/a"), Item("b", "bbb", "/b")};
  items[1].expected.size = 2;  // the scan saw another version
  const auto results = cloud->Upload(items, {});
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].status().kind(), Status::Kind::kChanged);
  EXPECT_EQ(uploads->finish_paths, std::vector<std::string>{"/a"});
}

TEST_F(DropboxCloudTest, CommittedHashMismatchIsChanged) {
  auto uploads = std::make_shared<FakeUploads>();
  uploads->corrupt_hash = true;
  auto cloud = Make([uploads](const HttpRequest& r) { return (*uploads)(r); });
  std::vector<cloud::UploadItem> items = {Item("a", "hello", "/a")};
  EXPECT_EQ(cloud->Upload(items, {})[0].status().kind(), Status::Kind::kChanged);
}

TEST_F(DropboxCloudTest, OnlyContendedCommitEntriesAreRetried) {
  auto uploads = std::make_shared<FakeUploads>();
  uploads->write_contention_once = 1;
  auto cloud = Make([uploads](const HttpRequest& r) { return (*uploads)(r); });
  std::vector<cloud::UploadItem> items = {Item("a", "1", "/a"), Item("b", "2", "/b"),
                                          Item("c", "3", "/c")};
  const auto results = cloud->Upload(items, {});
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(uploads->finish_paths, (std::vector<std::string>{"/a", "/b", "/c", "/b"}));
  EXPECT_TRUE(cloud->TEST_pacer().write_contention());
}

// A session that lost a file's bytes is fixed by sending the file again in a new session: the
// backend does that itself (it owns its retries: Capabilities::retries_transient), once.
TEST_F(DropboxCloudTest, AFileWhoseSessionWasLostIsSentAgainInANewSession) {
  auto uploads = std::make_shared<FakeUploads>();
  uploads->lose_session_once = 1;
  auto cloud = Make([uploads](const HttpRequest& r) { return (*uploads)(r); });
  ASSERT_TRUE(cloud->capabilities().retries_transient);
  std::vector<cloud::UploadItem> items = {Item("a", "1", "/a"), Item("b", "22", "/b"),
                                          Item("c", "333", "/c")};
  const auto results = cloud->Upload(items, {});
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(uploads->finish_paths, (std::vector<std::string>{"/a", "/c", "/b"}));
  EXPECT_EQ(transport_->routes(),
            (std::vector<std::string>{
                "files/upload_session/start_batch", "files/upload_session/append_batch",
                "files/upload_session/finish_batch_v2", "files/upload_session/start_batch",
                "files/upload_session/append_batch", "files/upload_session/finish_batch_v2"}));
}

// The first append_batch committed but its response was lost; the replay finds every session
// closed (by that first send), which means the bytes are there: commit them, fail nothing.
TEST_F(DropboxCloudTest, LostAppendBatchResponseIsReplayedAndItsFilesCommitted) {
  auto uploads = std::make_shared<FakeUploads>();
  uploads->lose_append_response_once = true;
  auto cloud = Make([uploads](const HttpRequest& r) { return (*uploads)(r); });
  std::vector<cloud::UploadItem> items = {Item("a", "1", "/a"), Item("b", "22", "/b")};
  const auto results = cloud->Upload(items, {});
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(transport_->routes(),
            (std::vector<std::string>{
                "files/upload_session/start_batch", "files/upload_session/append_batch",
                "files/upload_session/append_batch", "files/upload_session/finish_batch_v2"}));
}

// A stop while the bytes travel: nothing is committed, every file is kCancelled (not failed).
TEST_F(DropboxCloudTest, StopDuringAnUploadCommitsNothing) {
  std::atomic<bool> stop{false};
  auto uploads = std::make_shared<FakeUploads>();
  uploads->on_append = [&] { stop = true; };
  auto cloud = Make([uploads](const HttpRequest& r) { return (*uploads)(r); });
  std::vector<cloud::UploadItem> items = {Item("a", "1", "/a"), Item("b", "22", "/b")};
  const auto results = cloud->Upload(items, {.cancel = &stop});
  for (const auto& r : results) EXPECT_EQ(r.status().kind(), Status::Kind::kCancelled);
  EXPECT_TRUE(uploads->finish_paths.empty());
  const auto again = cloud->Upload(items, {.cancel = &stop});
  for (const auto& r : again) EXPECT_EQ(r.status().kind(), Status::Kind::kCancelled);
  EXPECT_EQ(transport_->requests().size(), 2u) << "no request once stopped";
}

TEST_F(DropboxCloudTest, RefusedTokenNamesTheConfigurationKeyNeverTheToken) {
  auto refuse = [](const HttpRequest& r) -> Result<HttpResponse> {
    if (r.url.ends_with("/oauth2/token"))
      return JsonResponse(400, {{"error", "invalid_grant"}, {"error_description", "revoked"}});
    return JsonResponse(401, {{"error_summary", "invalid_access_token/"},
                              {"error", {{".tag", "invalid_access_token"}}}});
  };
  const Status fixed =
      Make(refuse, DropboxOptions{.access_token = "secret-static"})->CreateFolder("/a");
  EXPECT_EQ(fixed.kind(), Status::Kind::kAuth);
  EXPECT_NE(fixed.message().find("dbx_token"), std::string::npos) << fixed.message();
  EXPECT_NE(fixed.message().find("filesync auth"), std::string::npos) << fixed.message();
  EXPECT_EQ(fixed.message().find("secret-static"), std::string::npos) << fixed.message();
  const Status refreshed =
      Make(refuse, DropboxOptions{.refresh_token = "secret-refresh", .app_key = "K"})
          ->CreateFolder("/a");
  EXPECT_EQ(refreshed.kind(), Status::Kind::kAuth);
  EXPECT_NE(refreshed.message().find("dbx_refresh_token"), std::string::npos)
      << refreshed.message();
  EXPECT_NE(refreshed.message().find("filesync auth"), std::string::npos) << refreshed.message();
  EXPECT_EQ(refreshed.message().find("secret-refresh"), std::string::npos) << refreshed.message();
}

TEST_F(DropboxCloudTest, FallbackStartsOneSessionPerFile) {
  std::vector<std::string> start_args;
  auto uploads = std::make_shared<FakeUploads>();
  std::mutex mu;
  auto cloud = Make(
      [&, uploads](const HttpRequest& r) -> Result<HttpResponse> {
        if (FakeTransport::Route(r) == "files/upload_session/start") {
          std::lock_guard lock(mu);
          const json arg = json::parse(std::string(*r.headers.Get("Dropbox-API-Arg")));
          EXPECT_EQ(arg["close"], true);
          EXPECT_EQ(arg["content_hash"], hash::ToHex(hash::HashBytes(r.body)));
          const std::string id = "f" + std::to_string(uploads->next++);
          uploads->sessions[id] = r.body;
          return JsonResponse(200, {{"session_id", id}});
        }
        return (*uploads)(r);
      },
      DropboxOptions{.append_batch = false});
  std::vector<cloud::UploadItem> items = {Item("a", "x", "/a"), Item("b", "yy", "/b"),
                                          Item("c", "zzz", "/c")};
  const auto results = cloud->Upload(items, {});
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.status().ToString();
  const auto routes = transport_->routes();
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "files/upload_session/start"), 3);
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "files/upload_session/finish_batch_v2"), 1);
  EXPECT_EQ(routes.size(), 4u);
}

TEST_F(DropboxCloudTest, CapabilitiesAdvertiseBatching) {
  auto cloud =
      Make([](const HttpRequest&) -> Result<HttpResponse> { return TextResponse(500, ""); });
  const auto caps = cloud->capabilities();
  EXPECT_TRUE(caps.incremental_listing);
  EXPECT_TRUE(caps.case_insensitive);
  EXPECT_EQ(caps.max_batch_files, 1000u);
  EXPECT_GT(caps.small_file_limit, 0u);
  EXPECT_GT(caps.max_batch_bytes, caps.small_file_limit);
  EXPECT_TRUE(cloud->Flush().ok());
}

TEST(DropboxOptionsTest, RejectsBadChunkSizeAndMissingCredentials) {
  DropboxOptions o;
  o.transport = std::make_shared<FakeTransport>(
      [](const HttpRequest&) -> Result<HttpResponse> { return TextResponse(500, ""); });
  EXPECT_THROW(DropboxCloud{o}, std::invalid_argument);
  o.access_token = "t";
  o.chunk_size = 5 * 1024 * 1024;
  EXPECT_THROW(DropboxCloud{o}, std::invalid_argument);
}

}  // namespace
}  // namespace filesync::dropbox

namespace filesync::dropbox {
namespace {

// Concurrent upload sessions as the reference describes them (§10.3), for large-file tests.
struct FakeConcurrentSessions {
  std::mutex mu;
  std::map<std::string, std::map<std::uint64_t, std::string>> chunks;  // session -> offset -> bytes
  std::set<std::string> closed;
  std::set<std::string> forgotten;  // sessions that answer not_found (expired)
  int next = 0;
  std::uint64_t appended_bytes = 0;

  Result<HttpResponse> operator()(const HttpRequest& r) {
    std::lock_guard lock(mu);
    const std::string route = FakeTransport::Route(r);
    if (route == "files/upload_session/start") {
      const json arg = json::parse(std::string(*r.headers.Get("Dropbox-API-Arg")));
      EXPECT_EQ(arg["session_type"], "concurrent");
      EXPECT_TRUE(r.body.empty());
      const std::string id = "c" + std::to_string(next++);
      chunks[id];
      return JsonResponse(200, {{"session_id", id}});
    }
    if (route == "files/upload_session/append_v2") {
      const json arg = json::parse(std::string(*r.headers.Get("Dropbox-API-Arg")));
      const std::string id = arg["cursor"]["session_id"];
      const auto offset = arg["cursor"]["offset"].get<std::uint64_t>();
      if (forgotten.contains(id)) return JsonResponse(409, {{"error", {{".tag", "not_found"}}}});
      EXPECT_EQ(offset % hash::kBlockSize, 0u);
      EXPECT_FALSE(closed.contains(id)) << "append after close";
      if (!arg["close"].get<bool>()) {
        EXPECT_EQ(r.body.size() % hash::kBlockSize, 0u);
      }
      EXPECT_EQ(arg["content_hash"], hash::ToHex(hash::HashBytes(r.body)));
      chunks[id][offset] = r.body;
      appended_bytes += r.body.size();
      if (arg["close"].get<bool>()) closed.insert(id);
      return JsonResponse(200, nullptr);
    }
    if (route == "files/upload_session/finish_batch_v2") {
      const json arg = json::parse(r.body);
      json entries = json::array();
      for (const auto& e : arg["entries"]) {
        const std::string id = e["cursor"]["session_id"];
        EXPECT_TRUE(closed.contains(id));
        std::string data;
        for (const auto& [off, bytes] : chunks[id]) {
          EXPECT_EQ(off, data.size()) << "missing data";
          data += bytes;
        }
        EXPECT_EQ(e["cursor"]["offset"], data.size());
        json m = FileEntry(e["commit"]["path"], data.size(), data);
        m[".tag"] = "success";
        entries.push_back(m);
      }
      return JsonResponse(200, {{"entries", entries}});
    }
    ADD_FAILURE() << "unexpected route " << route;
    return TextResponse(404, "no");
  }
};

std::string Pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 7919) >> 11);
  return s;
}

TEST_F(DropboxCloudTest, LargeFileGoesThroughConcurrentSessionChunks) {
  auto server = std::make_shared<FakeConcurrentSessions>();
  testing::MemorySessionStore store;
  DropboxOptions o;
  o.chunk_size = 4 * 1024 * 1024;
  o.small_file_limit = 1024 * 1024;
  o.sessions = &store;
  auto cloud = Make([server](const HttpRequest& r) { return (*server)(r); }, o);
  const std::string content = Pattern(9 * 1024 * 1024 + 123);
  std::vector<cloud::UploadItem> items = {Item("big", content, "/big.bin")};
  std::uint64_t progressed = 0;
  auto r = cloud->Upload(items, {.progress = [&](std::uint64_t n) { progressed += n; }});
  ASSERT_TRUE(r[0].ok()) << r[0].status().ToString();
  EXPECT_EQ(r[0]->digest, hash::HashBytes(content));
  EXPECT_EQ(r[0]->bytes_transferred, content.size());
  EXPECT_EQ(progressed, content.size());
  const auto routes = transport_->routes();
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "files/upload_session/append_v2"), 3);
  EXPECT_EQ(routes.back(), "files/upload_session/finish_batch_v2");
  EXPECT_EQ(store.size(), 0u);
}

TEST_F(DropboxCloudTest, InterruptedLargeUploadResumesOnlyMissingChunks) {
  auto server = std::make_shared<FakeConcurrentSessions>();
  testing::MemorySessionStore store;
  DropboxOptions o;
  o.chunk_size = 4 * 1024 * 1024;
  o.small_file_limit = 1024 * 1024;
  o.max_parallel_chunks = 1;
  o.sessions = &store;
  const std::string content = Pattern(5 * 4 * 1024 * 1024 + 77);
  std::vector<cloud::UploadItem> items = {Item("big", content, "/big.bin")};
  {
    auto first = Make([server](const HttpRequest& r) { return (*server)(r); }, o);
    first->TEST_StopAfterChunks(2);
    EXPECT_EQ(first->Upload(items, {})[0].status().kind(), Status::Kind::kCancelled);
  }
  EXPECT_EQ(server->appended_bytes, 2u * 4 * 1024 * 1024);
  auto second = Make([server](const HttpRequest& r) { return (*server)(r); }, o);
  auto r = second->Upload(items, {});
  ASSERT_TRUE(r[0].ok()) << r[0].status().ToString();
  EXPECT_EQ(r[0]->bytes_transferred, content.size() - 2u * 4 * 1024 * 1024);
  EXPECT_EQ(r[0]->digest, hash::HashBytes(content));
  EXPECT_EQ(server->next, 1) << "the stored session was reused";
}

// A stop in the middle of a large file: the chunk in flight is abandoned, no further chunk
// starts, nothing is committed, and the stored session lets a later Upload resume.
TEST_F(DropboxCloudTest, StopDuringLargeUploadKeepsTheSessionForTheNextRun) {
  auto server = std::make_shared<FakeConcurrentSessions>();
  testing::MemorySessionStore store;
  std::atomic<bool> stop{false};
  DropboxOptions o;
  o.chunk_size = 4 * 1024 * 1024;
  o.small_file_limit = 1024 * 1024;
  o.max_parallel_chunks = 1;
  o.sessions = &store;
  int appends = 0;
  auto handler = [&, server](const HttpRequest& r) -> Result<HttpResponse> {
    if (FakeTransport::Route(r) == "files/upload_session/append_v2" && ++appends == 3) {
      stop = true;  // the stop arrives while the third chunk travels: curl abandons it
      return Status::Cancelled("aborted by the progress callback");
    }
    return (*server)(r);
  };
  const std::string content = Pattern(5 * 4 * 1024 * 1024 + 9);
  std::vector<cloud::UploadItem> items = {Item("big", content, "/big.bin")};
  auto first = Make(handler, o);
  EXPECT_EQ(first->Upload(items, {.cancel = &stop})[0].status().kind(), Status::Kind::kCancelled);
  EXPECT_EQ(appends, 3) << "no chunk started after the stop";
  EXPECT_EQ(server->appended_bytes, 2u * 4 * 1024 * 1024);
  EXPECT_EQ(store.size(), 1u);
  stop = false;
  auto second = Make([server](const HttpRequest& r) { return (*server)(r); }, o);
  auto r = second->Upload(items, {.cancel = &stop});
  ASSERT_TRUE(r[0].ok()) << r[0].status().ToString();
  EXPECT_EQ(r[0]->bytes_transferred, content.size() - 2u * 4 * 1024 * 1024);
  EXPECT_EQ(r[0]->digest, hash::HashBytes(content));
}

TEST_F(DropboxCloudTest, ExpiredStoredSessionStartsOver) {
  auto server = std::make_shared<FakeConcurrentSessions>();
  testing::MemorySessionStore store;
  DropboxOptions o;
  o.chunk_size = 4 * 1024 * 1024;
  o.small_file_limit = 1024 * 1024;
  o.max_parallel_chunks = 1;
  o.sessions = &store;
  const std::string content = Pattern(3 * 4 * 1024 * 1024);
  std::vector<cloud::UploadItem> items = {Item("big", content, "/big.bin")};
  {
    auto first = Make([server](const HttpRequest& r) { return (*server)(r); }, o);
    first->TEST_StopAfterChunks(1);
    EXPECT_EQ(first->Upload(items, {})[0].status().kind(), Status::Kind::kCancelled);
  }
  server->forgotten.insert("c0");  // Dropbox dropped the session meanwhile
  auto second = Make([server](const HttpRequest& r) { return (*server)(r); }, o);
  auto r = second->Upload(items, {});
  ASSERT_TRUE(r[0].ok()) << r[0].status().ToString();
  EXPECT_EQ(server->next, 2) << "a new session was started";
  EXPECT_EQ(r[0]->bytes_transferred, content.size());
  EXPECT_EQ(r[0]->digest, hash::HashBytes(content));
}

}  // namespace
}  // namespace filesync::dropbox

namespace filesync::dropbox {
namespace {

// A server (or proxy) that refuses header lines over 8 KiB, either with a 400 or by dropping the
// connection: the client must learn to split append_batch, and every file must still arrive.
class HeaderLimitTest : public DropboxCloudTest, public ::testing::WithParamInterface<bool> {};

TEST_P(HeaderLimitTest, AppendBatchSplitsAfterARefusedLongHeader) {
  const bool drop_connection = GetParam();
  auto uploads = std::make_shared<FakeUploads>();
  int refused = 0;
  auto cloud = Make([&, uploads](const HttpRequest& r) -> Result<HttpResponse> {
    if (auto arg = r.headers.Get("Dropbox-API-Arg"); arg && arg->size() > 8192) {
      ++refused;
      if (drop_connection) return Status::Transient("Send failure: Connection reset by peer");
      return TextResponse(400, "");
    }
    return (*uploads)(r);
  });
  std::vector<cloud::UploadItem> items;
  for (int i = 0; i < 200; ++i)
    items.push_back(Item("f" + std::to_string(i), std::to_string(i), "/f" + std::to_string(i)));
  for (int round = 0; round < 2; ++round) {  // the second batch uses the learned limit at once
    const auto results = cloud->Upload(items, {});
    for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  EXPECT_EQ(refused, 1) << "only the first long header is tried, and only once";
  int long_headers = 0;
  for (const auto& r : transport_->requests()) {
    const auto arg = r.headers.Get("Dropbox-API-Arg");
    const bool long_header = arg && arg->size() > 8000;
    if (long_header) ++long_headers;
    // A server that refuses a header before reading the body may leave that body on the
    // connection; the next request on it would read it as its own request line.
    EXPECT_EQ(r.close_connection_after, long_header) << r.url;
  }
  EXPECT_EQ(long_headers, 1);
}

INSTANTIATE_TEST_SUITE_P(RefusalKinds, HeaderLimitTest, ::testing::Values(false, true));

}  // namespace
}  // namespace filesync::dropbox

namespace filesync::dropbox {
namespace {

TEST_F(DropboxCloudTest, AmbiguousSingleDeleteLooksBeforeDeletingAgain) {
  bool deleted = false;
  auto cloud = Make([&](const HttpRequest& r) -> Result<HttpResponse> {
    const std::string route = FakeTransport::Route(r);
    if (route == "files/delete_v2") {
      deleted = true;  // applied, but the response is lost
      return Status::Transient("connection reset");
    }
    EXPECT_EQ(route, "files/get_metadata");
    if (deleted) return JsonResponse(409, NotFound409());
    return JsonResponse(200, FileEntry("/x", 1, "x"));
  });
  const std::vector<std::string> paths = {"/x"};
  EXPECT_TRUE(cloud->Delete(paths)[0].ok());
  EXPECT_EQ(transport_->routes(),
            (std::vector<std::string>{"files/delete_v2", "files/get_metadata"}));
}

}  // namespace
}  // namespace filesync::dropbox
