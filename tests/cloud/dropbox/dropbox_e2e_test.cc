// End to end with the Dropbox backend: the real filesync binary against the real emulator
// process, on real temporary directories. What a user sees (exit codes, one-line errors, what
// ends up in Dropbox) when the cloud changes under the mirror, responses get lost, a token is
// refused, or a large upload is interrupted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "cli/engine_options.h"
#include "cloud/dropbox/dropbox_cloud.h"
#include "config/config.h"
#include "emulator_process.h"
#include "engine/sync_engine.h"
#include "store/state_store.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

struct RunResult {
  int code = -1;
  std::string out;  // stdout + stderr
};

// `wrapper`: a command the binary runs under, e.g. "timeout 60 ".
RunResult RunFilesync(const std::string& args, const std::string& wrapper = "") {
  const std::string cmd = wrapper + FILESYNC_BINARY + " " + args + " 2>&1";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::size_t Lines(const std::string& text) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.empty() ? 0U : 1U;
  return n;
}

void WriteFile(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// relative path -> content ("<dir>" for folders).
std::map<std::string, std::string> LocalTree(const fs::path& root) {
  std::map<std::string, std::string> tree;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const auto rel = fs::relative(it->path(), root).string();
    tree[rel] = it->is_directory() ? "<dir>" : ReadFile(it->path());
  }
  return tree;
}

// The emulator's API, as another Dropbox client (the user's web browser, a phone) uses it.
class DropboxApi {
 public:
  DropboxApi(const std::string& url, std::string token) : client_(url), token_(std::move(token)) {
    client_.set_read_timeout(60);
  }

  // An RPC call; the parsed body, or null on any failure (status in *status).
  json Rpc(const std::string& route, const json& arg, int* status = nullptr) {
    auto r = client_.Post("/2/" + route, Auth(), arg.dump(), "application/json");
    if (status != nullptr) *status = r ? r->status : 0;
    if (!r || r->status != 200) return nullptr;
    return json::parse(r->body, nullptr, false);
  }
  bool Upload(const std::string& path, const std::string& content) {
    auto headers = Auth();
    headers.emplace("Dropbox-API-Arg",
                    json{{"path", path}, {"mode", "overwrite"}}.dump(-1, ' ', true));
    auto r = client_.Post("/2/files/upload", headers, content, "application/octet-stream");
    return r && r->status == 200;
  }
  bool Delete(const std::string& path) {
    return !Rpc("files/delete_v2", {{"path", path}}).is_null();
  }
  bool Exists(const std::string& path) {
    return !Rpc("files/get_metadata", {{"path", path}}).is_null();
  }
  // relative path under `root` -> content ("<dir>" for folders); empty if `root` is missing.
  std::map<std::string, std::string> Tree(const std::string& root) {
    std::map<std::string, std::string> tree;
    json page = Rpc("files/list_folder", {{"path", root}, {"recursive", true}});
    while (page.is_object()) {
      for (const auto& e : page["entries"]) {
        const std::string display = e["path_display"];
        if (display.size() <= root.size()) continue;  // the root itself
        const std::string rel = display.substr(root.size() + 1);
        tree[rel] = e[".tag"] == "folder" ? "<dir>" : Download(display);
      }
      if (!page.value("has_more", false)) break;
      page = Rpc("files/list_folder/continue", {{"cursor", page["cursor"]}});
    }
    return tree;
  }

 private:
  httplib::Headers Auth() const { return {{"Authorization", "Bearer " + token_}}; }
  std::string Download(const std::string& path) {
    auto headers = Auth();
    headers.emplace("Dropbox-API-Arg", json{{"path", path}}.dump(-1, ' ', true));
    auto r = client_.Post("/2/files/download", headers, "", "application/octet-stream");
    return r && r->status == 200 ? r->body : "<download failed>";
  }

  httplib::Client client_;
  std::string token_;
};

std::uint64_t Route(const json& counters, const std::string& route) {
  return counters.contains("routes") ? counters["routes"].value(route, 0ULL) : 0;
}

class DropboxE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("filesync-dbx-e2e-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    src_ = base_ / "photos";
    state_ = base_ / "state";
    config_ = base_ / "filesync.toml";
    fs::create_directories(src_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  ::testing::AssertionResult StartEmulator(const std::vector<std::string>& args = {}) {
    std::vector<std::string> all = {"--commit-lock-ms", "0"};
    all.insert(all.end(), args.begin(), args.end());
    auto started = emulator_.Start(all);
    if (started) api_ = std::make_unique<DropboxApi>(emulator_.url(), emulator_.token());
    return started;
  }
  // Stops the emulator and starts it again on the same port and data with other arguments.
  ::testing::AssertionResult RestartEmulator(const std::vector<std::string>& args) {
    emulator_.Stop();
    return StartEmulator(args);
  }

  // `credentials`: TOML lines; by default the emulator's static token.
  void WriteConfig(const std::string& extra = "", std::string credentials = "",
                   const std::string& cloud_root = "/backup") {
    if (credentials.empty()) credentials = "dbx_token = \"" + emulator_.token() + "\"\n";
    std::ofstream(config_) << "client_sync_dirs = [\"" << src_.string() << "\"]\n"
                           << "cloud_root = \"" << cloud_root << "\"\n"
                           << "state_dir = \"" << state_.string() << "\"\n"
                           << "poll_interval = 1\n"
                           << "workers = 2\n"
                           << "backend = \"dropbox\"\n"
                           << credentials << "dbx_api_url = \"" << emulator_.url() << "\"\n"
                           << "dbx_content_url = \"" << emulator_.url() << "\"\n"
                           << "dbx_notify_url = \"" << emulator_.url() << "\"\n"
                           << extra;
    fs::permissions(config_, fs::perms::owner_read | fs::perms::owner_write);  // holds a secret
  }

  RunResult Sync(const std::string& flags = "") {
    return RunFilesync("--config " + config_.string() + " sync " + flags);
  }
  RunResult Plan() { return RunFilesync("--config " + config_.string() + " plan --json"); }
  json PlanJson() {
    const RunResult r = Plan();
    EXPECT_EQ(r.code, 0) << r.out;
    const auto start = r.out.find('{');
    return json::parse(start == std::string::npos ? std::string() : r.out.substr(start), nullptr,
                       false);
  }
  std::map<std::string, std::string> Mirror() { return api_->Tree("/backup/photos"); }
  void ExpectMirrored() {
    EXPECT_EQ(Mirror(), LocalTree(src_));
    const json plan = PlanJson();
    ASSERT_TRUE(plan.is_object());
    EXPECT_TRUE(plan["actions"].empty()) << plan.dump(2);
  }
  void WriteSampleTree() {
    WriteFile(src_ / "a.txt", "alpha");
    WriteFile(src_ / "sub/b.txt", "bravo");
    WriteFile(src_ / "sub/deeper/c.txt", "charlie");
    fs::create_directories(src_ / "empty");
  }

  // Starts `filesync run` (stderr to base_/daemon.log) and waits until it says it started.
  pid_t StartDaemon() {
    const fs::path log = base_ / "daemon.log";
    const pid_t pid = fork();
    if (pid == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) dup2(fd, 2);
      execl(FILESYNC_BINARY, FILESYNC_BINARY, "--config", config_.c_str(), "run",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 1200; ++i) {
      if (ReadFile(log).find("daemon started") != std::string::npos) return pid;
      if (waitpid(pid, nullptr, WNOHANG) == pid) return -1;
      std::this_thread::sleep_for(100ms);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
  }
  static bool WaitFor(const std::function<bool()>& pred, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(100ms);
    }
    return true;
  }

  fs::path base_, src_, state_, config_;
  filesync::test_support::EmulatorProcess emulator_;
  std::unique_ptr<DropboxApi> api_;
};

// ---- issue 11 item 1: the mirror folder or an ancestor deleted in Dropbox ----------------------

TEST_F(DropboxE2E, DeletedMirrorFolderIsNoticedAndRestored) {
  ASSERT_TRUE(StartEmulator());
  WriteConfig();
  WriteSampleTree();
  ASSERT_EQ(Sync().code, 0);
  ASSERT_TRUE(api_->Delete("/backup/photos"));
  // `plan` sees it, and changes nothing in Dropbox.
  const json plan = PlanJson();
  ASSERT_TRUE(plan.is_object());
  EXPECT_FALSE(plan["actions"].empty()) << plan.dump(2);
  EXPECT_FALSE(api_->Exists("/backup/photos"));
  const RunResult r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

TEST_F(DropboxE2E, DeletedCloudRootAboveTheMirrorIsNoticedAndRestored) {
  ASSERT_TRUE(StartEmulator());
  WriteConfig();
  WriteSampleTree();
  ASSERT_EQ(Sync().code, 0);
  ASSERT_TRUE(api_->Delete("/backup"));
  const RunResult r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

TEST_F(DropboxE2E, MirrorFolderDeletedAndMadeAgainIsRestored) {
  ASSERT_TRUE(StartEmulator());
  WriteConfig();
  WriteSampleTree();
  ASSERT_EQ(Sync().code, 0);
  ASSERT_TRUE(api_->Delete("/backup/photos"));
  ASSERT_FALSE(api_->Rpc("files/create_folder_v2", {{"path", "/backup/photos"}}).is_null());
  ASSERT_TRUE(api_->Upload("/backup/photos/stray.txt", "not on the client"));
  const RunResult r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

TEST_F(DropboxE2E, MirrorFolderMovedAwayIsRestoredAndTheMovedCopyLeftAlone) {
  ASSERT_TRUE(StartEmulator());
  WriteConfig();
  WriteSampleTree();
  ASSERT_EQ(Sync().code, 0);
  ASSERT_FALSE(api_->Rpc("files/move_v2",
                         {{"from_path", "/backup/photos"}, {"to_path", "/archive/photos-2019"}})
                   .is_null());
  const RunResult r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
  EXPECT_EQ(api_->Tree("/archive/photos-2019"), LocalTree(src_));
}

TEST_F(DropboxE2E, FileWhereTheMirrorFolderWasStopsTheDirWithOneClearReason) {
  ASSERT_TRUE(StartEmulator());
  WriteConfig();
  WriteSampleTree();
  ASSERT_EQ(Sync().code, 0);
  ASSERT_TRUE(api_->Delete("/backup/photos"));
  ASSERT_TRUE(api_->Upload("/backup/photos", "a file in the way"));
  const RunResult r = Sync();
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("/backup/photos is a file in Dropbox"), std::string::npos) << r.out;
  // The user's file is left as it is.
  const json meta = api_->Rpc("files/get_metadata", {{"path", "/backup/photos"}});
  ASSERT_TRUE(meta.is_object());
  EXPECT_EQ(meta[".tag"], "file");
}

// The safety net: with a change feed that missed something (the file is removed from the
// emulator's storage without a journal entry), a full listing every cloud_verify_interval finds
// it; a no-change pass in between stays one request.
TEST_F(DropboxE2E, FullListingEveryCloudVerifyIntervalRepairsWhatTheCursorMissed) {
  if (std::system("command -v sqlite3 > /dev/null") != 0)
    GTEST_SKIP() << "needs the sqlite3 command to edit the emulator's storage";
  ASSERT_TRUE(StartEmulator());
  WriteConfig("cloud_verify_interval = 3\n");
  WriteSampleTree();
  ASSERT_EQ(Sync().code, 0);
  emulator_.ResetCounters();
  ASSERT_EQ(Sync().code, 0);
  EXPECT_EQ(emulator_.Counters()["total"], 1) << "a no-change pass within the interval";

  emulator_.Stop();
  const std::string db = emulator_.data_dir() + "/namespace.db";
  ASSERT_EQ(std::system(("sqlite3 " + db +
                         " \"DELETE FROM entries WHERE key = '/backup/photos/sub/b.txt'\"")
                            .c_str()),
            0);
  ASSERT_TRUE(StartEmulator());
  ASSERT_FALSE(api_->Exists("/backup/photos/sub/b.txt"));
  std::this_thread::sleep_for(3500ms);
  emulator_.ResetCounters();
  const RunResult r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_GE(Route(emulator_.Counters(), "files/list_folder"), 1u) << r.out;
  ExpectMirrored();
}

// ---- issue 11 item 12: a lost append_batch response -------------------------------------------

TEST_F(DropboxE2E, LostAppendBatchResponseDoesNotFailItsFiles) {
  ASSERT_TRUE(
      StartEmulator({"--faults", "drop_after=1,routes=files/upload_session/append_batch,max=1"}));
  WriteConfig();
  for (int i = 0; i < 20; ++i) WriteFile(src_ / ("f" + std::to_string(i)), std::to_string(i));
  const RunResult r = Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  // The lost response is replayed (the sessions are then closed), not failed.
  EXPECT_GE(Route(emulator_.Counters(), "files/upload_session/append_batch"), 2u);
  ExpectMirrored();
}

// ---- issue 11 item 19: a refused token
// -----------------------------------------------------------

TEST_F(DropboxE2E, WrongTokenIsOneLineNamingTheKeyAndExitTwo) {
  ASSERT_TRUE(StartEmulator());
  const std::string wrong = "not-the-token-4f9a2c";
  WriteConfig("", "dbx_token = \"" + wrong + "\"\n");
  WriteSampleTree();
  for (const char* command : {"sync", "plan"}) {
    const RunResult r = RunFilesync("--config " + config_.string() + " " + command);
    EXPECT_EQ(r.code, 2) << command << ": " << r.out;
    EXPECT_EQ(Lines(r.out), 1u) << command << ": " << r.out;
    EXPECT_NE(r.out.find("dbx_token"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("filesync auth"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find(wrong), std::string::npos) << "token printed: " << r.out;
  }
  // The daemon checks the token at start-up (users/get_current_account) and refuses to start
  // (`timeout` ends one that does not, after a minute, as a failure).
  const RunResult daemon =
      RunFilesync("--config " + config_.string() + " run", "timeout -s INT 60 ");
  EXPECT_EQ(daemon.code, 2) << daemon.out;
  EXPECT_NE(daemon.out.find("dbx_token"), std::string::npos) << daemon.out;
  EXPECT_EQ(daemon.out.find(wrong), std::string::npos) << daemon.out;
  EXPECT_GE(Route(emulator_.Counters(), "users/get_current_account"), 1u);
}

TEST_F(DropboxE2E, RevokedRefreshTokenIsOneLineNamingTheKeyAndExitTwo) {
  ASSERT_TRUE(StartEmulator({"--app-key", "test-app-key"}));
  const std::string revoked = "refresh-token-nobody-issued-77";
  WriteConfig("", "dbx_app_key = \"test-app-key\"\ndbx_refresh_token = \"" + revoked + "\"\n");
  WriteSampleTree();
  const RunResult r = Sync();
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_EQ(Lines(r.out), 1u) << r.out;
  EXPECT_NE(r.out.find("dbx_refresh_token"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("filesync auth"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(revoked), std::string::npos) << "token printed: " << r.out;
}

// A daemon whose refresh token is revoked while it runs: it says so in `status`, and asks again
// only after a back-off, not every poll_interval (1 s here).
TEST_F(DropboxE2E, DaemonBacksOffAfterItsTokenIsRevokedAndStatusSaysWhy) {
  const std::string refresh = "daemon-refresh-token-5150";
  ASSERT_TRUE(StartEmulator(
      {"--app-key", "test-app-key", "--refresh-token", refresh, "--token-lifetime", "3600"}));
  WriteConfig("", "dbx_app_key = \"test-app-key\"\ndbx_refresh_token = \"" + refresh + "\"\n");
  WriteSampleTree();
  const pid_t pid = StartDaemon();
  ASSERT_GT(pid, 0) << ReadFile(base_ / "daemon.log");
  EXPECT_TRUE(WaitFor([&] { return Mirror().size() == LocalTree(src_).size(); }, 60s));
  EXPECT_NE(ReadFile(base_ / "daemon.log").find("linked account"), std::string::npos)
      << ReadFile(base_ / "daemon.log");

  // Revoke: a sibling access token from the same refresh token revokes the whole family.
  httplib::Client client(emulator_.url());
  auto grant = client.Post(
      "/oauth2/token", "grant_type=refresh_token&client_id=test-app-key&refresh_token=" + refresh,
      "application/x-www-form-urlencoded");
  ASSERT_TRUE(grant && grant->status == 200) << (grant ? grant->body : "no answer");
  const std::string sibling = json::parse(grant->body)["access_token"];
  auto revoked = client.Post("/2/auth/token/revoke", {{"Authorization", "Bearer " + sibling}}, "",
                             "application/json");
  ASSERT_TRUE(revoked && revoked->status == 200);

  auto status_says_why = [&] {
    const RunResult status = RunFilesync("--config " + config_.string() + " status");
    return status.out.find("dbx_refresh_token") != std::string::npos;
  };
  EXPECT_TRUE(WaitFor(status_says_why, 30s)) << ReadFile(base_ / "daemon.log");
  std::this_thread::sleep_for(500ms);  // the failed pass's last requests
  const json before = emulator_.Counters();
  std::this_thread::sleep_for(5s);  // five poll intervals
  const json after = emulator_.Counters();
  EXPECT_EQ(after["total"], before["total"]) << before.dump() << "\n" << after.dump();
  const std::string log = ReadFile(base_ / "daemon.log");
  EXPECT_NE(log.find("next try in"), std::string::npos) << log;
  EXPECT_EQ(log.find(refresh), std::string::npos) << "token logged";
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
}

// ---- issue 11 item 20: a cloud_root Dropbox refuses ------------------------------------------

TEST_F(DropboxE2E, CloudRootDropboxRefusesIsAConfigErrorBeforeAnyRequest) {
  ASSERT_TRUE(StartEmulator());
  WriteConfig("", "", "/backup/desktop.ini");
  emulator_.ResetCounters();
  const RunResult r = Sync();
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_EQ(Lines(r.out), 1u) << r.out;
  EXPECT_NE(r.out.find("cloud_root"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(config_.string()), std::string::npos) << r.out;
  EXPECT_EQ(emulator_.Counters()["total"], 0);
}

// What only the server can tell (a name it refuses that filesync's own rules do not know) comes
// back at run time and still names cloud_root: the engine with a real DropboxCloud against the
// emulator, given a configuration that skipped the load-time rules.
TEST_F(DropboxE2E, CloudRootRefusedAtRunTimeNamesTheKey) {
  ASSERT_TRUE(StartEmulator());
  filesync::config::Config config;
  config.client_sync_dirs = {src_};
  config.cloud_root = "/x/thumbs.db";
  config.state_dir = state_;
  config.workers = 2;
  config.source = "test.toml";
  config.origins["cloud_root"] = "test.toml";
  WriteSampleTree();
  auto store = filesync::store::StateStore::Open(state_, nullptr);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  filesync::dropbox::DropboxOptions options;
  options.api_url = options.content_url = emulator_.url();
  options.access_token = emulator_.token();
  filesync::dropbox::DropboxCloud cloud(options);
  filesync::engine::SyncEngine engine(filesync::cli::EngineOptionsFor(config), cloud, **store);
  const auto report = engine.RunPass({});
  ASSERT_TRUE(report.config_error.has_value()) << report.ToJson();
  EXPECT_NE(report.config_error->find("test.toml: key 'cloud_root'"), std::string::npos)
      << *report.config_error;
  EXPECT_NE(report.config_error->find("disallowed_name"), std::string::npos)
      << *report.config_error;
  EXPECT_FALSE(report.converged());
}

// ---- issue 11 item 11: Ctrl-C during a large upload --------------------------------------------

// A 200 MiB file goes up in 4 MiB chunks, each request held 1 s by the emulator. SIGINT in the
// middle: filesync exits within a few seconds (in-flight chunks are abandoned), nothing is
// committed, and the next run sends only the chunks the first one did not.
TEST_F(DropboxE2E, SigintAbandonsALargeUploadPromptlyAndTheNextRunResumes) {
  ASSERT_TRUE(StartEmulator({"--faults", "latency=1:1000"}));
  WriteConfig("dbx_chunk_size = \"4MiB\"\n");
  constexpr std::uint64_t kSize = 200 * kMiB;
  {
    std::string block(kMiB, '\0');
    std::ofstream out(src_ / "big.bin", std::ios::binary);
    for (std::uint64_t i = 0; i < kSize / kMiB; ++i) {
      std::fill(block.begin(), block.end(), static_cast<char>('a' + i % 26));
      out.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
  }
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(FILESYNC_BINARY, FILESYNC_BINARY, "--config", config_.c_str(), "sync",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Some chunks are in the session and more are on the way.
  const bool chunks_sent = WaitFor(
      [&] { return Route(emulator_.Counters(), "files/upload_session/append_v2") >= 8; }, 120s);
  const auto chunks_before = Route(emulator_.Counters(), "files/upload_session/append_v2");
  const auto signalled = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  int status = 0;
  bool exited = false;
  while (std::chrono::steady_clock::now() - signalled < 60s) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - signalled);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  ASSERT_TRUE(chunks_sent);
  EXPECT_TRUE(exited);
  std::cout << "[ measure  ] exit " << took.count() << " ms after SIGINT\n";
  EXPECT_LT(took, 4s) << "SIGINT took " << took.count() << " ms to stop the upload";
  EXPECT_NE(WEXITSTATUS(status), 127);
  // Nothing half-committed: the file is not in Dropbox at all.
  EXPECT_FALSE(api_->Exists("/backup/photos/big.bin"));
  EXPECT_LT(Route(emulator_.Counters(), "files/upload_session/append_v2"), 50u)
      << "every chunk was sent anyway";

  // The next run (no latency now) sends only what is missing and commits the whole file.
  ASSERT_TRUE(RestartEmulator({}));
  emulator_.ResetCounters();
  const RunResult r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  const json counters = emulator_.Counters();
  const std::uint64_t resent = counters["bytes_received"].get<std::uint64_t>();
  // At least the chunks counted before the signal, minus those whose answer the stop cut off.
  EXPECT_LE(resent, kSize - (chunks_before - 4) * 4 * kMiB) << counters.dump();
  const json meta = api_->Rpc("files/get_metadata", {{"path", "/backup/photos/big.bin"}});
  ASSERT_TRUE(meta.is_object());
  EXPECT_EQ(meta["size"], kSize);
  const RunResult hash = RunFilesync("hash " + (src_ / "big.bin").string());
  EXPECT_EQ(meta["content_hash"].get<std::string>() + "\n", hash.out);
}

}  // namespace
