// End-to-end tests: the real filesync binary on real temporary directories, local backend.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "emulator_process.h"

namespace fs = std::filesystem;

namespace {

// The local backend's staging folder in its cloud dir.
fs::path LocalCloudStaging() { return ".filesync-staging"; }

// What is left in the local backend's staging folder besides the cloud dir's marker.
std::vector<std::string> StagingLeftovers(const fs::path& cloud) {
  std::vector<std::string> left;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cloud / LocalCloudStaging(), ec)) {
    if (e.path().filename() != "cloud-id") left.push_back(e.path().filename());
  }
  return left;
}

struct RunResult {
  int code = -1;
  std::string out;  // stdout + stderr
};

RunResult RunFilesync(const std::string& args) {
  const std::string cmd = std::string(FILESYNC_BINARY) + " " + args + " 2>&1";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
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

// relative path -> content ("<dir>" for folders); symlinks and specials are not listed.
std::map<std::string, std::string> Tree(const fs::path& root) {
  std::map<std::string, std::string> tree;
  if (!fs::exists(root)) return tree;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const auto rel = fs::relative(it->path(), root).string();
    if (it->is_symlink()) continue;
    if (it->is_directory()) {
      tree[rel] = "<dir>";
    } else if (it->is_regular_file()) {
      tree[rel] = ReadFile(it->path());
    }
  }
  return tree;
}

// What the cloud holds, read back through the backend's own storage: the local cloud folder, or
// the Dropbox emulator's API (list_folder + download).
class CloudView {
 public:
  virtual ~CloudView() = default;
  // relative path under the mirror -> content ("<dir>" for folders)
  virtual std::map<std::string, std::string> Tree() = 0;
  // A stable identity of the entry at `path`: a move keeps it, a re-upload does not.
  virtual std::string Identity(const std::string& path) = 0;
};

class LocalView : public CloudView {
 public:
  explicit LocalView(fs::path mirror) : mirror_(std::move(mirror)) {}
  std::map<std::string, std::string> Tree() override { return ::Tree(mirror_); }
  std::string Identity(const std::string& path) override {
    struct stat st {};
    return lstat((mirror_ / path).c_str(), &st) == 0 ? std::to_string(st.st_ino) : "";
  }

 private:
  fs::path mirror_;
};

class DropboxView : public CloudView {
 public:
  DropboxView(const std::string& url, std::string token, std::string root)
      : client_(url), token_(std::move(token)), root_(std::move(root)) {}

  std::map<std::string, std::string> Tree() override {
    std::map<std::string, std::string> tree;
    for (const auto& entry : List()) {
      const std::string display = entry["path_display"];
      const std::string rel = display.substr(root_.size() + 1);
      tree[rel] = entry[".tag"] == "folder" ? "<dir>" : Download(display);
    }
    return tree;
  }
  // Edits made "by someone else" directly in Dropbox.
  bool Upload(const std::string& path, const std::string& content) {
    auto headers = Auth();
    headers.emplace(
        "Dropbox-API-Arg",
        nlohmann::json{{"path", root_ + "/" + path}, {"mode", "overwrite"}}.dump(-1, ' ', true));
    auto r = client_.Post("/2/files/upload", headers, content, "application/octet-stream");
    return r && r->status == 200;
  }
  bool Delete(const std::string& path) {
    auto r = client_.Post("/2/files/delete_v2", Auth(),
                          nlohmann::json{{"path", root_ + "/" + path}}.dump(), "application/json");
    return r && r->status == 200;
  }
  // Display names of the entries in the mirror (to check case and Unicode form).
  std::vector<std::string> Names() {
    std::vector<std::string> names;
    for (const auto& e : List()) names.push_back(e["name"]);
    std::sort(names.begin(), names.end());
    return names;
  }
  std::string Identity(const std::string& path) override {
    auto r = client_.Post("/2/files/get_metadata", Auth(),
                          nlohmann::json{{"path", root_ + "/" + path}}.dump(), "application/json");
    if (!r || r->status != 200) return "";
    return nlohmann::json::parse(r->body).value("id", "");
  }

 private:
  httplib::Headers Auth() const { return {{"Authorization", "Bearer " + token_}}; }
  std::vector<nlohmann::json> List() {
    std::vector<nlohmann::json> entries;
    auto r = client_.Post("/2/files/list_folder", Auth(),
                          nlohmann::json{{"path", root_}, {"recursive", true}}.dump(),
                          "application/json");
    while (r && r->status == 200) {
      auto page = nlohmann::json::parse(r->body);
      for (auto& e : page["entries"]) {
        if (e["path_lower"] != nlohmann::json(root_lower())) entries.push_back(e);
      }
      if (!page.value("has_more", false)) break;
      r = client_.Post("/2/files/list_folder/continue", Auth(),
                       nlohmann::json{{"cursor", page["cursor"]}}.dump(), "application/json");
    }
    return entries;
  }
  std::string root_lower() const {
    std::string lower = root_;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower;
  }
  std::string Download(const std::string& path) {
    auto headers = Auth();
    headers.emplace("Dropbox-API-Arg", nlohmann::json{{"path", path}}.dump(-1, ' ', true));
    auto r = client_.Post("/2/files/download", headers, "", "application/octet-stream");
    return r && r->status == 200 ? r->body : "<download failed>";
  }

  httplib::Client client_;
  std::string token_;
  std::string root_;
};

class E2E : public ::testing::TestWithParam<std::string> {
 protected:
  // Starts `filesync run` with its log in base_/daemon.log and returns once the daemon says it
  // started (it then holds the state dir and handles signals), however slow the build (a
  // sanitizer build under load can take seconds). Returns -1 if it never did.
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
      std::ifstream in(log);
      const std::string text((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
      if (text.find("daemon started") != std::string::npos) return pid;
      if (waitpid(pid, nullptr, WNOHANG) == pid) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
  }

  bool dropbox() const { return GetParam() == "dropbox"; }

  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("filesync-e2e-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    src_ = base_ / "photos";
    cloud_ = base_ / "cloud";
    state_ = base_ / "state";
    fs::create_directories(src_);
    if (dropbox()) {
      ASSERT_TRUE(emulator_.Start({"--commit-lock-ms", "0"}));
      view_ = std::make_unique<DropboxView>(emulator_.url(), emulator_.token(), "/backup/photos");
    } else {
      view_ = std::make_unique<LocalView>(cloud_ / "backup" / "photos");
    }
    WriteConfig();
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(base_, fs::perms::all, ec);
    fs::remove_all(base_, ec);
  }

  void WriteConfig(const std::string& extra = "") {
    config_ = base_ / "filesync.toml";
    std::ofstream(config_) << "client_sync_dirs = [\"" << src_.string() << "\"]\n"
                           << "cloud_root = \"/backup\"\n"
                           << "local_cloud_dir = \"" << cloud_.string() << "\"\n"
                           << "state_dir = \"" << state_.string() << "\"\n"
                           << "poll_interval = 1\n"
                           << "workers = 2\n";
    if (dropbox()) {
      std::ofstream(config_, std::ios::app) << "backend = \"dropbox\"\n"
                                            << "dbx_token = \"" << emulator_.token() << "\"\n"
                                            << "dbx_api_url = \"" << emulator_.url() << "\"\n"
                                            << "dbx_content_url = \"" << emulator_.url() << "\"\n"
                                            << "dbx_notify_url = \"" << emulator_.url() << "\"\n";
    }
    std::ofstream(config_, std::ios::app) << extra;
  }

  RunResult Sync(const std::string& flags = "") {
    return RunFilesync("--config " + config_.string() + " sync " + flags);
  }
  nlohmann::json PlanJson() {
    auto r = RunFilesync("--config " + config_.string() + " plan --json");
    EXPECT_EQ(r.code, 0) << r.out;
    auto start = r.out.find('{');
    return nlohmann::json::parse(r.out.substr(start == std::string::npos ? 0 : start), nullptr,
                                 false);
  }
  nlohmann::json StatusJson() {
    auto r = RunFilesync("--config " + config_.string() + " status --json");
    EXPECT_EQ(r.code, 0) << r.out;
    auto start = r.out.find('{');
    return nlohmann::json::parse(r.out.substr(start == std::string::npos ? 0 : start), nullptr,
                                 false);
  }
  std::map<std::string, std::string> CloudTree() { return view_->Tree(); }
  void ExpectMirrored() {
    EXPECT_EQ(CloudTree(), Tree(src_));
    auto plan = PlanJson();
    ASSERT_TRUE(plan.is_object());
    EXPECT_TRUE(plan["actions"].empty()) << plan.dump(2);
  }

  fs::path base_, src_, cloud_, state_, config_;
  filesync::test_support::EmulatorProcess emulator_;
  std::unique_ptr<CloudView> view_;
};

INSTANTIATE_TEST_SUITE_P(Backends, E2E, ::testing::Values("local", "dropbox"),
                         [](const auto& param_info) { return param_info.param; });

TEST_P(E2E, InitialSyncMirrorsTheTree) {
  WriteFile(src_ / "a.txt", "alpha");
  WriteFile(src_ / "sub/b.txt", std::string(5 << 20, 'b'));
  WriteFile(src_ / "sub/deeper/c.bin", "c");
  fs::create_directories(src_ / "empty/nested");
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
  EXPECT_TRUE(StagingLeftovers(cloud_).empty());
}

TEST_P(E2E, ModifyAddDelete) {
  WriteFile(src_ / "keep.txt", "same");
  WriteFile(src_ / "edit.txt", "before");
  WriteFile(src_ / "gone.txt", "bye");
  ASSERT_EQ(Sync().code, 0);
  WriteFile(src_ / "edit.txt", "after, longer");
  WriteFile(src_ / "new/added.txt", "new");
  fs::remove(src_ / "gone.txt");
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

TEST_P(E2E, SameSizeEditIsDetectedByContent) {
  WriteFile(src_ / "f.txt", "aaaa");
  ASSERT_EQ(Sync().code, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteFile(src_ / "f.txt", "bbbb");
  ASSERT_EQ(Sync().code, 0);
  EXPECT_EQ(CloudTree()["f.txt"], "bbbb");
}

TEST_P(E2E, SameSizeEditWithMtimePutBackIsStillSynced) {
  WriteFile(src_ / "f.txt", "aaaa");
  const auto old_time = fs::last_write_time(src_ / "f.txt") - std::chrono::hours(24);
  fs::last_write_time(src_ / "f.txt", old_time);
  ASSERT_EQ(Sync().code, 0);
  WriteFile(src_ / "f.txt", "bbbb");  // same size, same inode; only ctime tells
  fs::last_write_time(src_ / "f.txt", old_time);
  ASSERT_EQ(Sync().code, 0);
  EXPECT_EQ(CloudTree()["f.txt"], "bbbb");
}

TEST_P(E2E, FileRenameIsAMoveNotACopy) {
  WriteFile(src_ / "dir/old-name.txt", "content that must not be copied again");
  ASSERT_EQ(Sync().code, 0);
  const auto cloud_id = view_->Identity("dir/old-name.txt");
  ASSERT_FALSE(cloud_id.empty());
  fs::rename(src_ / "dir/old-name.txt", src_ / "dir/new-name.txt");
  auto plan = PlanJson();
  ASSERT_EQ(plan["actions"].size(), 1u) << plan.dump(2);
  EXPECT_EQ(plan["actions"][0]["action"], "move");
  ASSERT_EQ(Sync().code, 0);
  EXPECT_EQ(view_->Identity("dir/new-name.txt"), cloud_id);
  ExpectMirrored();
}

TEST_P(E2E, FolderRenameIsOneMove) {
  for (int i = 0; i < 50; ++i)
    WriteFile(src_ / "2019" / ("f" + std::to_string(i)), std::to_string(i));
  ASSERT_EQ(Sync().code, 0);
  const auto cloud_id = view_->Identity("2019/f7");
  ASSERT_FALSE(cloud_id.empty());
  fs::rename(src_ / "2019", src_ / "2019-old");
  auto plan = PlanJson();
  ASSERT_EQ(plan["actions"].size(), 1u) << plan.dump(2);
  EXPECT_EQ(plan["actions"][0]["action"], "move");
  ASSERT_EQ(Sync().code, 0);
  EXPECT_EQ(view_->Identity("2019-old/f7"), cloud_id);
  ExpectMirrored();
}

TEST_P(E2E, EmptyFoldersAndTypeChanges) {
  WriteFile(src_ / "x", "was a file");
  fs::create_directories(src_ / "y/inner");
  ASSERT_EQ(Sync().code, 0);
  fs::remove(src_ / "x");
  WriteFile(src_ / "x/now-inside", "folder now");
  fs::remove_all(src_ / "y");
  WriteFile(src_ / "y", "file now");
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

TEST_P(E2E, ExcludesAreNotSyncedAndNotDeleted) {
  WriteConfig("exclude = [\"*.tmp\", \"cache/\"]\n");
  WriteFile(src_ / "keep.txt", "k");
  WriteFile(src_ / "skip.tmp", "t");
  WriteFile(src_ / "cache/big", "c");
  ASSERT_EQ(Sync().code, 0);
  EXPECT_TRUE(CloudTree().contains("keep.txt"));
  EXPECT_FALSE(CloudTree().contains("skip.tmp"));
  EXPECT_FALSE(CloudTree().contains("cache"));
}

TEST_P(E2E, SymlinksAndNonUtf8NamesAreSkippedWithAWarning) {
  WriteFile(src_ / "real.txt", "r");
  fs::create_symlink("/etc/passwd", src_ / "link");
  WriteFile(src_ / std::string("bad\xff.txt"), "x");
  auto r = Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("link"), std::string::npos) << r.out;
  EXPECT_TRUE(CloudTree().contains("real.txt"));
  EXPECT_FALSE(CloudTree().contains("link"));
  EXPECT_EQ(CloudTree().size(), 1u);
}

TEST_P(E2E, MissingSyncDirNeverDeletes) {
  WriteFile(src_ / "a", "a");
  WriteFile(src_ / "b", "b");
  ASSERT_EQ(Sync().code, 0);
  fs::rename(src_, base_ / "moved-away");
  auto r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("missing"), std::string::npos) << r.out;
  EXPECT_TRUE(CloudTree().contains("a"));
  fs::create_directories(src_);  // a new, empty dir in its place: replaced, not synced either
  r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(CloudTree().contains("b"));
}

TEST_P(E2E, SuddenlyEmptyDirNeverDeletes) {
  WriteFile(src_ / "a", "a");
  ASSERT_EQ(Sync().code, 0);
  fs::remove(src_ / "a");
  auto r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("empty"), std::string::npos) << r.out;
  EXPECT_TRUE(CloudTree().contains("a"));
  EXPECT_EQ(Sync("--allow-mass-delete").code, 0);
  EXPECT_FALSE(CloudTree().contains("a"));
}

TEST_P(E2E, MaxDeleteStopsAMassDelete) {
  WriteConfig("max_delete = \"5\"\n");
  for (int i = 0; i < 10; ++i) WriteFile(src_ / ("f" + std::to_string(i)), "x");
  WriteFile(src_ / "stay", "s");
  ASSERT_EQ(Sync().code, 0);
  for (int i = 0; i < 10; ++i) fs::remove(src_ / ("f" + std::to_string(i)));
  auto r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("max_delete"), std::string::npos) << r.out;
  EXPECT_TRUE(CloudTree().contains("f3"));
  ASSERT_EQ(Sync("--allow-mass-delete").code, 0);
  ExpectMirrored();
}

TEST_P(E2E, RestartDoesNotRehash) {
  for (int i = 0; i < 20; ++i) WriteFile(src_ / ("f" + std::to_string(i)), std::string(1000, 'x'));
  // Back-date the files so none is "racily clean" (too fresh to trust the cache).
  for (int i = 0; i < 20; ++i) {
    const auto p = src_ / ("f" + std::to_string(i));
    fs::last_write_time(p, fs::last_write_time(p) - std::chrono::hours(1));
  }
  ASSERT_EQ(Sync().code, 0);
  ASSERT_EQ(Sync().code, 0);  // a new process: state from disk
  auto status = StatusJson();
  ASSERT_TRUE(status["last_pass"].is_object()) << status.dump(2);
  EXPECT_EQ(status["last_pass"]["bytes_hashed"], 0) << status.dump(2);
  EXPECT_EQ(status["last_pass"]["roots"][0]["uploaded"], 0);
}

TEST_P(E2E, KillDuringAPassThenRerunConvergesWithoutPartialFiles) {
  for (int i = 0; i < 40; ++i)
    WriteFile(src_ / ("big" + std::to_string(i)),
              std::string(2 << 20, static_cast<char>('a' + i % 26)));
  const pid_t pid = fork();
  if (pid == 0) {
    execl(FILESYNC_BINARY, FILESYNC_BINARY, "--config", config_.c_str(), "sync",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  // Whatever landed is complete: every file in the mirror has its full content.
  for (const auto& [path, content] : CloudTree()) {
    if (content != "<dir>") {
      EXPECT_EQ(content, ReadFile(src_ / path)) << path;
    }
  }
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
  EXPECT_TRUE(StagingLeftovers(cloud_).empty());
}

// A stop abandons transfers in flight (issue 11 item 11): whatever reached the cloud is whole,
// and the next run finishes the job.
TEST_P(E2E, SigtermStopsCleanlyAndExitsZero) {
  for (int i = 0; i < 30; ++i)
    WriteFile(src_ / ("f" + std::to_string(i)), std::string(1 << 20, 'z'));
  const pid_t pid = StartDaemon();
  ASSERT_GT(pid, 0) << "the daemon did not start";
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (const auto& [path, content] : CloudTree()) EXPECT_EQ(content, ReadFile(src_ / path)) << path;
  const auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

TEST_P(E2E, HashMatchesTheReferenceVectors) {
  WriteFile(base_ / "hello", "hello");
  auto r = RunFilesync("hash " + (base_ / "hello").string());
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50\n");
  r = RunFilesync("hash /nonexistent/file");
  EXPECT_EQ(r.code, 1);
}

TEST_P(E2E, ConfigErrorsExitTwoWithOneLine) {
  std::ofstream(config_) << "client_sync_dirs = [\"relative/path\"]\n";
  auto r = Sync();
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find("client_sync_dirs"), std::string::npos) << r.out;
  std::ofstream(config_) << "pol_interval = 3\nclient_sync_dirs = [\"/tmp\"]\n";
  r = Sync();
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("poll_interval"), std::string::npos) << r.out;
  std::ofstream(config_) << "client_sync_dirs = [\"" << src_.string()
                         << "\"]\nexclude = [\"[unclosed\"]\n";
  r = Sync();
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("exclude"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  r = RunFilesync("--config /nonexistent/filesync.toml sync");
  EXPECT_EQ(r.code, 2);
  r = RunFilesync("no-such-command");
  EXPECT_EQ(r.code, 2);
}

TEST_P(E2E, SecondInstanceOnTheSameStateIsRefused) {
  WriteFile(src_ / "a", "a");
  const pid_t pid = StartDaemon();
  ASSERT_GT(pid, 0) << "the daemon did not start";
  auto r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("in use"), std::string::npos) << r.out;
  auto status = RunFilesync("--config " + config_.string() + " status --json");
  EXPECT_EQ(status.code, 0) << status.out;
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
}

TEST_P(E2E, SighupReloadsTheConfiguration) {
  WriteFile(src_ / "a.txt", "a");
  WriteFile(src_ / "b.skip", "b");
  const pid_t pid = StartDaemon();
  ASSERT_GT(pid, 0) << "the daemon did not start";
  auto wait_for = [&](auto pred) {
    for (int i = 0; i < 100 && !pred(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return pred();
  };
  EXPECT_TRUE(wait_for([&] { return CloudTree().contains("b.skip"); }));
  WriteConfig("exclude = [\"*.skip\"]\n");
  kill(pid, SIGHUP);
  WriteFile(src_ / "c.skip", "c");
  WriteFile(src_ / "d.txt", "d");
  EXPECT_TRUE(wait_for([&] { return CloudTree().contains("d.txt"); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(CloudTree().contains("c.skip"));  // the reloaded exclude applies
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_P(E2E, JsonLogFormatPrintsOneObjectPerLine) {
  fs::create_symlink("/etc/hostname", src_ / "link");  // produces a warning
  auto r = RunFilesync("--log-format json --config " + config_.string() + " sync");
  ASSERT_EQ(r.code, 0) << r.out;
  int objects = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_TRUE(j.contains("level") && j.contains("msg")) << line;
    ++objects;
  }
  EXPECT_GE(objects, 1) << r.out;
}

TEST_P(E2E, AnUnreadableFileIsReportedAndTheRestIsSynced) {
  // Root reads everything, so run filesync as an unprivileged user on a tree it owns.
  const bool root = geteuid() == 0;
  if (root && std::system("command -v setpriv > /dev/null") != 0)
    GTEST_SKIP() << "needs setpriv to drop root";
  WriteFile(src_ / "ok.txt", "fine");
  WriteFile(src_ / "secret.txt", "unreadable");
  fs::create_directories(state_);
  fs::create_directories(cloud_);
  if (root) {
    ASSERT_EQ(std::system(("chown -R 65534:65534 " + base_.string()).c_str()), 0);
    fs::permissions(base_, fs::perms::owner_all | fs::perms::others_exec | fs::perms::others_read);
  }
  fs::permissions(src_ / "secret.txt", fs::perms::none);
  const std::string prefix = root ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  const std::string cmd = prefix + FILESYNC_BINARY + " --config " + config_.string() + " sync 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;  // the pass did not complete...
  EXPECT_NE(out.find("secret.txt"), std::string::npos) << out;
  EXPECT_TRUE(CloudTree().contains("ok.txt")) << out;  // ...but everything else was synced
  EXPECT_FALSE(CloudTree().contains("secret.txt"));
  fs::permissions(src_ / "secret.txt", fs::perms::owner_read | fs::perms::owner_write);
}

TEST_P(E2E, VerifyRepairsEditsMadeDirectlyInTheCloud) {
  if (dropbox()) GTEST_SKIP() << "Dropbox reports such edits through its cursor (see DropboxE2E)";
  WriteFile(src_ / "a.txt", "original");
  WriteFile(src_ / "b.txt", "keep");
  ASSERT_EQ(Sync().code, 0);
  const fs::path mirror = cloud_ / "backup" / "photos";
  WriteFile(mirror / "a.txt", "tampered");
  fs::remove(mirror / "b.txt");
  WriteFile(mirror / "extra.txt", "stray");
  auto r = Sync("--verify");
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

class DropboxE2E : public E2E {
 protected:
  DropboxView& dbx() { return static_cast<DropboxView&>(*view_); }
  int Requests(const nlohmann::json& counters, const std::string& route) {
    return counters["routes"].value(route, 0);
  }
};

INSTANTIATE_TEST_SUITE_P(Emulator, DropboxE2E, ::testing::Values("dropbox"),
                         [](const auto& param_info) { return param_info.param; });

TEST_P(DropboxE2E, NoChangePassCostsOneRequest) {
  for (int i = 0; i < 30; ++i)
    WriteFile(src_ / ("d" + std::to_string(i % 3)) / ("f" + std::to_string(i)), "x");
  ASSERT_EQ(Sync().code, 0);
  emulator_.ResetCounters();
  ASSERT_EQ(Sync().code, 0);
  const auto counters = emulator_.Counters();
  EXPECT_EQ(counters["total"], 1) << counters.dump(2);
  EXPECT_EQ(Requests(counters, "files/list_folder/continue"), 1) << counters.dump(2);
}

TEST_P(DropboxE2E, SmallFilesAreUploadedInBatchesNotOneByOne) {
  for (int i = 0; i < 300; ++i)
    WriteFile(src_ / ("d" + std::to_string(i % 7)) / ("f" + std::to_string(i)), std::to_string(i));
  emulator_.ResetCounters();
  const auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  const auto counters = emulator_.Counters();
  EXPECT_EQ(Requests(counters, "files/upload"), 0) << counters.dump(2);
  EXPECT_EQ(Requests(counters, "files/upload_session/finish"), 0) << counters.dump(2);
  EXPECT_LE(counters["total"].get<int>(), 20) << counters.dump(2) << r.out;
  ExpectMirrored();
}

TEST_P(DropboxE2E, ExternalEditsAndDeletesAreRepairedOnTheNextPass) {
  WriteFile(src_ / "a.txt", "client version");
  WriteFile(src_ / "b.txt", "keep me");
  ASSERT_EQ(Sync().code, 0);
  ASSERT_TRUE(dbx().Upload("a.txt", "someone else's edit"));
  ASSERT_TRUE(dbx().Delete("b.txt"));
  ASSERT_TRUE(dbx().Upload("stray.txt", "not on the client"));
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

TEST_P(DropboxE2E, FolderRenameIsOneMoveRequest) {
  for (int i = 0; i < 100; ++i)
    WriteFile(src_ / "album" / ("p" + std::to_string(i)), std::to_string(i));
  ASSERT_EQ(Sync().code, 0);
  fs::rename(src_ / "album", src_ / "album-2019");
  emulator_.ResetCounters();
  ASSERT_EQ(Sync().code, 0);
  const auto counters = emulator_.Counters();
  EXPECT_EQ(Requests(counters, "files/move_v2"), 1) << counters.dump(2);
  // The listing's continue call plus the move: no upload, no delete.
  EXPECT_EQ(counters["total"], 2) << counters.dump(2);
  ExpectMirrored();
}

TEST_P(DropboxE2E, CaseOnlyRenameUnicodeAndCaseCollisions) {
  WriteFile(src_ / "readme.md", "r");
  WriteFile(src_ / "cafe\xCC\x81.txt", "nfd name");  // e + combining acute: Dropbox stores NFC
  ASSERT_EQ(Sync().code, 0);
  fs::rename(src_ / "readme.md", src_ / "README.md");
  WriteFile(src_ / "Notes.txt", "upper");
  WriteFile(src_ / "notes.txt", "lower");
  auto r = Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("collides"), std::string::npos) << r.out;
  const auto names = dbx().Names();
  EXPECT_NE(std::find(names.begin(), names.end(), "README.md"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "caf\xC3\xA9.txt"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "Notes.txt"),
            names.end());  // byte-wise smallest wins
  EXPECT_EQ(std::count_if(names.begin(), names.end(),
                          [](const std::string& n) { return n == "notes.txt"; }),
            0);
  // No flip-flop: the next pass has nothing to do.
  auto plan = PlanJson();
  EXPECT_TRUE(plan["actions"].empty()) << plan.dump(2);
}

// A folder whose name changes spelling only (NFD to NFC: one cloud path) and then moves must
// leave no record of its old spelling behind: a fresh process (state from disk) has nothing to
// do, and the cloud holds exactly the moved folder.
TEST_P(DropboxE2E, RespelledFolderThenMovedLeavesNothingBehind) {
  WriteFile(src_ / "anchor", "a");
  const fs::path nfd = src_ / "cafe\xCC\x81";
  fs::create_directories(nfd);
  ASSERT_EQ(Sync().code, 0);
  fs::rename(nfd, src_ / "caf\xC3\xA9");
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  fs::rename(src_ / "caf\xC3\xA9", src_ / "moved");
  r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  auto plan = PlanJson();
  EXPECT_TRUE(plan["actions"].empty()) << plan.dump(2);
  r = Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  const auto names = dbx().Names();
  EXPECT_NE(std::find(names.begin(), names.end(), "moved"), names.end());
  EXPECT_EQ(std::count_if(names.begin(), names.end(),
                          [](const std::string& n) { return n.starts_with("caf"); }),
            0);
}

// `filesync auth`: the PKCE code flow against the emulator's authorize and token endpoints,
// then a sync that authenticates with the stored refresh token (never a static token).
TEST_P(DropboxE2E, AuthStoresARefreshTokenThatSyncsCanUse) {
  emulator_.Stop();
  ASSERT_TRUE(emulator_.Start({"--app-key", "test-app-key", "--token-lifetime", "3600"}));
  const fs::path token_file = base_ / "secrets" / "refresh-token";
  fs::create_directories(token_file.parent_path());
  int to_child[2], from_child[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(from_child), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    dup2(from_child[1], 2);
    close(to_child[1]);
    close(from_child[0]);
    execl(FILESYNC_BINARY, FILESYNC_BINARY, "auth", "--app-key", "test-app-key", "--api-url",
          emulator_.url().c_str(), "--out", token_file.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  std::string out;
  char buf[1024];
  while (out.find("code_challenge=") == std::string::npos ||
         out.find("Paste") == std::string::npos) {
    const ssize_t n = read(from_child[0], buf, sizeof buf);
    ASSERT_GT(n, 0) << out;
    out.append(buf, static_cast<std::size_t>(n));
  }
  // The user opens the printed URL; the emulator's authorize page shows the code.
  const auto start = out.find("code_challenge=") + std::string("code_challenge=").size();
  const std::string challenge = out.substr(start, out.find_first_of("&\n ", start) - start);
  httplib::Client client(emulator_.url());
  auto page = client.Get(
      "/oauth2/authorize?client_id=test-app-key&response_type=code&token_access_type=offline"
      "&code_challenge_method=S256&code_challenge=" +
      challenge);
  ASSERT_TRUE(page && page->status == 200) << (page ? page->body : "no answer");
  std::string code = page->body;
  code.erase(code.find_last_not_of(" \r\n") + 1);
  code += "\n";
  ASSERT_EQ(write(to_child[1], code.data(), code.size()), static_cast<ssize_t>(code.size()));
  close(to_child[1]);
  for (ssize_t n; (n = read(from_child[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  close(from_child[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  struct stat st {};
  ASSERT_EQ(stat(token_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string refresh_token = ReadFile(token_file);
  ASSERT_FALSE(refresh_token.empty());
  EXPECT_EQ(out.find(refresh_token.substr(0, refresh_token.find('\n'))), std::string::npos)
      << "token printed";

  std::ofstream(config_) << "client_sync_dirs = [\"" << src_.string()
                         << "\"]\ncloud_root = \"/backup\"\n"
                         << "state_dir = \"" << state_.string() << "\"\nbackend = \"dropbox\"\n"
                         << "dbx_app_key = \"test-app-key\"\n"
                         << "dbx_refresh_token_file = \"" << token_file.string() << "\"\n"
                         << "dbx_api_url = \"" << emulator_.url() << "\"\n"
                         << "dbx_content_url = \"" << emulator_.url() << "\"\n";
  WriteFile(src_ / "a.txt", "authenticated by refresh token");
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find(refresh_token.substr(0, refresh_token.find('\n'))), std::string::npos)
      << "token logged";
  // One code exchange by `auth`, one refresh for the whole sync (not one per request).
  EXPECT_EQ(emulator_.Counters()["routes"].value("oauth2/token", 0), 2);
}

TEST_P(DropboxE2E, NamesDropboxRefusesAreSkippedWithOneWarning) {
  WriteFile(src_ / "desktop.ini", "x");
  WriteFile(src_ / ".DS_Store", "x");
  WriteFile(src_ / "ok.txt", "fine");
  auto r = Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("desktop.ini"), std::string::npos) << r.out;
  EXPECT_EQ(CloudTree().size(), 1u);
  std::size_t mentions = 0;
  for (auto pos = r.out.find("desktop.ini"); pos != std::string::npos;
       pos = r.out.find("desktop.ini", pos + 1))
    ++mentions;
  EXPECT_EQ(mentions, 1u) << "one warning per name: " << r.out;
}

}  // namespace

// The local backend only (issue 11): its cloud folder checked like a sync dir, bytes already in
// it never copied again, instances sharing it, sparse files, modes, a stop during a copy.
class LocalE2E : public E2E {
 protected:
  void TearDown() override {
    for (auto m = mounts_.rbegin(); m != mounts_.rend(); ++m) umount2(m->c_str(), MNT_DETACH);
    E2E::TearDown();
  }
  // A tmpfs (`what` empty) or a bind mount of `what` at `where`; false where not allowed.
  bool Mount(const std::string& what, const fs::path& where) {
    const int r = what.empty() ? mount("tmpfs", where.c_str(), "tmpfs", 0, "size=256m")
                               : mount(what.c_str(), where.c_str(), nullptr, MS_BIND, nullptr);
    if (r == 0) mounts_.push_back(where);
    return r == 0;
  }
  void Unmount(const fs::path& where) {
    ASSERT_EQ(umount2(where.c_str(), 0), 0) << where << ": " << std::strerror(errno);
    std::erase(mounts_, where);
  }
  // `filesync --config <config> <command>` in the background, its output in base_/<log>.
  pid_t Spawn(const fs::path& config, const std::string& command, const std::string& log) {
    const fs::path out = base_ / log;
    const pid_t pid = fork();
    if (pid == 0) {
      const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl(FILESYNC_BINARY, FILESYNC_BINARY, "--config", config.c_str(), command.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }
  static int ExitCode(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // A file of `mib` MiB of real (non-zero, non-repeating per MiB) data.
  static void WriteBig(const fs::path& p, std::size_t mib, unsigned seed) {
    std::mt19937_64 gen(seed);
    std::string block(1 << 20, '\0');
    for (std::size_t i = 0; i < block.size(); i += 8) {
      const std::uint64_t v = gen();
      std::memcpy(&block[i], &v, 8);
    }
    std::ofstream out(p, std::ios::binary);
    for (std::size_t i = 0; i < mib; ++i) {
      std::memcpy(&block[0], &i, sizeof i);
      out.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
  }
  // Staged copies under the cloud dir (".part" files), wherever the backend stages them.
  std::vector<fs::path> Parts() const {
    std::vector<fs::path> parts;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(cloud_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().extension() == ".part") parts.push_back(it->path());
    }
    return parts;
  }
  // Waits (up to a minute) until a staged copy appears; false (and `pid` is gone) if it exited
  // first or never copied.
  bool WaitForACopyInFlight(pid_t pid) {
    for (int i = 0; i < 60000; ++i) {
      if (!Parts().empty()) return true;
      if (waitpid(pid, nullptr, WNOHANG) == pid) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return false;
  }
  nlohmann::json LastPass() {
    auto status = StatusJson();
    return status["last_pass"]["roots"][0];
  }
  ino_t Inode(const fs::path& p) {
    struct stat st {};
    return lstat(p.c_str(), &st) == 0 ? st.st_ino : 0;
  }
  fs::path Mirror() const { return cloud_ / "backup" / "photos"; }

  std::vector<fs::path> mounts_;
};

INSTANTIATE_TEST_SUITE_P(Local, LocalE2E, ::testing::Values("local"),
                         [](const auto& param_info) { return param_info.param; });

// "The NAS is not mounted": the cloud dir is a mount point; unmounted, it is a bare, empty local
// folder. No pass may write into it, nor say it is in sync; once the NAS is back, it converges.
TEST_P(LocalE2E, AnUnmountedNasIsRefusedAndItsMountPointStaysEmpty) {
  const fs::path store = base_ / "nas-store";
  fs::create_directories(store);
  fs::create_directories(cloud_);
  if (!Mount("", store)) GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << strerror(errno);
  ASSERT_TRUE(Mount(store.string(), cloud_));
  WriteFile(src_ / "a.txt", "alpha");
  ASSERT_EQ(Sync().code, 0);
  Unmount(cloud_);
  ASSERT_TRUE(fs::is_empty(cloud_));
  WriteFile(src_ / "b.txt", "beta");
  auto r = Sync();
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("local_cloud_dir " + cloud_.string() + " is not the folder synced before"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(fs::is_empty(cloud_)) << "written into the bare mount point";
  r = RunFilesync("--config " + config_.string() + " plan");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("NOT SYNCED"), std::string::npos) << r.out;
  ASSERT_TRUE(Mount(store.string(), cloud_));  // the NAS is back
  r = Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
  Unmount(cloud_);
}

TEST_P(LocalE2E, ADeletedCloudDirIsNotMadeAgainNorAFolderInItsPlace) {
  WriteFile(src_ / "a.txt", "alpha");
  ASSERT_EQ(Sync().code, 0);
  fs::remove_all(cloud_);
  for (const std::string command : {"sync", "plan"}) {
    const auto r = RunFilesync("--config " + config_.string() + " " + command);
    EXPECT_EQ(r.code, 1) << command << ": " << r.out;
    EXPECT_NE(r.out.find("local_cloud_dir " + cloud_.string() + " is missing"), std::string::npos)
        << r.out;
    EXPECT_FALSE(fs::exists(cloud_)) << command << " made the cloud dir again";
  }
  fs::create_directories(cloud_);  // another folder in its place
  auto r = Sync();
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("not the folder synced before"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::is_empty(cloud_));
  r = Sync("--allow-mass-delete");  // replaced on purpose
  EXPECT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
}

// A mirror folder (or cloud_root) deleted or made again inside an intact cloud dir is noticed
// by the next pass, without --verify, and restored.
TEST_P(LocalE2E, AMirrorFolderDeletedInTheCloudIsRestoredByTheNextPass) {
  WriteFile(src_ / "a.txt", "alpha");
  WriteFile(src_ / "sub" / "b.txt", "beta");
  ASSERT_EQ(Sync().code, 0);
  for (const fs::path& gone : {Mirror(), cloud_ / "backup"}) {
    SCOPED_TRACE(gone.string());
    fs::remove_all(gone);
    auto plan = PlanJson();
    EXPECT_EQ(plan["actions"].size(), 2u) << plan.dump(2);  // two uploads (parents come along)
    const auto r = Sync();
    EXPECT_EQ(r.code, 0) << r.out;
    ExpectMirrored();
  }
  fs::remove_all(Mirror());
  fs::create_directories(Mirror());  // made again, empty
  ASSERT_EQ(Sync().code, 0);
  ExpectMirrored();
}

// A lost or corrupt state store: the next pass compares with what the cloud holds and copies
// nothing that is already there (the destination is not even rewritten).
TEST_P(LocalE2E, ALostOrCorruptStateStoreCopiesNothingAgain) {
  WriteBig(src_ / "big.bin", 40, 1);
  for (int i = 0; i < 5; ++i) WriteFile(src_ / "small" / std::to_string(i), std::to_string(i));
  ASSERT_EQ(Sync().code, 0);
  EXPECT_GE(LastPass()["bytes_uploaded"].get<std::uint64_t>(), 40u << 20);
  const ino_t inode = Inode(Mirror() / "big.bin");
  for (const bool corrupt : {false, true}) {
    SCOPED_TRACE(corrupt ? "corrupt state.db" : "state dir removed");
    if (corrupt) {
      std::ofstream(state_ / "state.db", std::ios::binary | std::ios::trunc)
          << std::string(8192, 'x');
    } else {
      fs::remove_all(state_);
    }
    const auto r = Sync();
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(LastPass()["bytes_uploaded"], 0) << StatusJson().dump(2);
    EXPECT_EQ(Inode(Mirror() / "big.bin"), inode) << "copied again";
    ExpectMirrored();
  }
}

// kill -9 during an initial sync: the rerun copies only what had not landed in the cloud.
TEST_P(LocalE2E, ARerunAfterKillCopiesOnlyWhatIsMissing) {
  constexpr int kFiles = 12;
  for (int i = 0; i < kFiles; ++i)
    WriteBig(src_ / ("f" + std::to_string(i)), 8, static_cast<unsigned>(i) + 10);
  const pid_t pid = Spawn(config_, "sync", "killed.log");
  std::map<std::string, ino_t> landed;
  bool exited = false;
  for (int i = 0; i < 30000 && landed.size() < 3 && !exited; ++i) {
    landed.clear();
    for (int f = 0; f < kFiles; ++f) {
      const fs::path p = Mirror() / ("f" + std::to_string(f));
      if (fs::exists(p)) landed[p.filename()] = Inode(p);
    }
    exited = waitpid(pid, nullptr, WNOHANG) == pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  landed.clear();  // read again after the kill: everything that landed
  for (int f = 0; f < kFiles; ++f) {
    const fs::path p = Mirror() / ("f" + std::to_string(f));
    if (fs::exists(p)) landed[p.filename()] = Inode(p);
  }
  if (landed.empty() || landed.size() == kFiles)
    GTEST_SKIP() << "the kill came before or after every copy (" << landed.size() << " landed)";
  const auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_LE(LastPass()["bytes_uploaded"].get<std::uint64_t>(),
            (kFiles - landed.size()) * (8u << 20))
      << landed.size() << " files had landed";
  for (const auto& [name, inode] : landed) EXPECT_EQ(Inode(Mirror() / name), inode) << name;
  ExpectMirrored();
}

TEST_P(LocalE2E, SparseFilesKeepTheirHolesInTheCloud) {
  constexpr off_t kSize = off_t{1} << 30;
  const fs::path file = src_ / "disk.img";
  {
    const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kSize), 0);
    const std::string data(1 << 20, 'd');
    for (const off_t at : {off_t{0}, kSize / 2, kSize - (1 << 20)})
      ASSERT_EQ(pwrite(fd, data.data(), data.size(), at), static_cast<ssize_t>(data.size()));
    close(fd);
  }
  struct stat source {};
  ASSERT_EQ(stat(file.c_str(), &source), 0);
  if (source.st_blocks * 512 > kSize / 2) GTEST_SKIP() << "this filesystem stores no holes";
  const auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  struct stat stored {};
  ASSERT_EQ(stat((Mirror() / "disk.img").c_str(), &stored), 0);
  EXPECT_EQ(stored.st_size, kSize);
  EXPECT_LE(stored.st_blocks, source.st_blocks + 2048)
      << "the cloud copy takes " << stored.st_blocks / 2048 << " MiB";
  const auto src_hash = RunFilesync("hash " + file.string());
  const auto dst_hash = RunFilesync("hash " + (Mirror() / "disk.img").string());
  EXPECT_EQ(src_hash.out, dst_hash.out);
  EXPECT_TRUE(PlanJson()["actions"].empty());
}

TEST_P(LocalE2E, FolderAndFileModesAreKept) {
  WriteFile(src_ / "private" / "secret.txt", "s");
  WriteFile(src_ / "tools" / "run.sh", "#!/bin/sh\n");
  fs::create_directories(src_ / "group-only");
  chmod(src_.c_str(), 0750);
  chmod((src_ / "private").c_str(), 0700);
  chmod((src_ / "private" / "secret.txt").c_str(), 0600);
  chmod((src_ / "tools" / "run.sh").c_str(), 0755);
  chmod((src_ / "group-only").c_str(), 0770);
  const auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  const auto mode = [&](const fs::path& p) {
    struct stat st {};
    return stat(p.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
  };
  EXPECT_EQ(mode(Mirror()), 0750u);
  EXPECT_EQ(mode(Mirror() / "private"), 0700u);
  EXPECT_EQ(mode(Mirror() / "private" / "secret.txt"), 0600u);
  EXPECT_EQ(mode(Mirror() / "tools" / "run.sh"), 0755u);
  EXPECT_EQ(mode(Mirror() / "group-only"), 0770u);
}

// Ctrl-C during a large copy stops it within moments: exit 1 (the pass is incomplete), nothing
// at the destination, no staged copy left behind.
TEST_P(LocalE2E, SigintStopsALargeCopyPromptly) {
  WriteBig(src_ / "huge.bin", 1024, 7);
  const pid_t pid = Spawn(config_, "sync", "sigint.log");
  ASSERT_TRUE(WaitForACopyInFlight(pid)) << ReadFile(base_ / "sigint.log");
  // Freeze it mid-copy, so the signal is surely handled during the copy however fast it is.
  kill(pid, SIGSTOP);
  kill(pid, SIGINT);
  const auto start = std::chrono::steady_clock::now();
  kill(pid, SIGCONT);
  const int code = ExitCode(pid);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(code, 1) << ReadFile(base_ / "sigint.log");
  EXPECT_LT(took, std::chrono::seconds(5)) << ReadFile(base_ / "sigint.log");
  EXPECT_FALSE(fs::exists(Mirror() / "huge.bin")) << "the copy went on to the end";
  EXPECT_TRUE(Parts().empty());
  EXPECT_TRUE(StagingLeftovers(cloud_).empty());
}

// Two instances (two machines, or two configs) share one cloud dir: neither a `plan` nor a
// `sync` of the other may touch a copy in flight.
TEST_P(LocalE2E, AnotherInstanceOnTheSameCloudDirLeavesACopyInFlightAlone) {
  const fs::path other_src = base_ / "music";
  WriteFile(other_src / "song.txt", "la");
  const fs::path other_config = base_ / "other.toml";
  std::ofstream(other_config) << "client_sync_dirs = [\"" << other_src.string() << "\"]\n"
                              << "cloud_root = \"/backup\"\n"
                              << "local_cloud_dir = \"" << cloud_.string() << "\"\n"
                              << "state_dir = \"" << (base_ / "other-state").string() << "\"\n";
  WriteFile(src_ / "small.txt", "s");
  ASSERT_EQ(Sync().code, 0);
  WriteBig(src_ / "big.bin", 512, 3);
  const pid_t pid = Spawn(config_, "sync", "first.log");
  ASSERT_TRUE(WaitForACopyInFlight(pid)) << ReadFile(base_ / "first.log");
  kill(pid, SIGSTOP);
  const auto parts = Parts();
  const auto before = Tree(cloud_ / LocalCloudStaging());
  auto r = RunFilesync("--config " + other_config.string() + " plan");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(Tree(cloud_ / LocalCloudStaging()), before) << "plan touched the staging folder";
  EXPECT_FALSE(fs::exists(cloud_ / "backup" / "music")) << "plan wrote to the cloud";
  r = RunFilesync("--config " + other_config.string() + " sync");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(Parts(), parts) << "the other instance removed a copy in flight";
  kill(pid, SIGCONT);
  EXPECT_EQ(ExitCode(pid), 0) << ReadFile(base_ / "first.log");
  const auto src_hash = RunFilesync("hash " + (src_ / "big.bin").string());
  const auto dst_hash = RunFilesync("hash " + (Mirror() / "big.bin").string());
  EXPECT_EQ(src_hash.out, dst_hash.out);
  EXPECT_EQ(ReadFile(cloud_ / "backup" / "music" / "song.txt"), "la");
}

// A dry run creates nothing in the cloud dir (not even the dir) and cleans nothing there.
TEST_P(LocalE2E, PlanChangesNothingInTheCloudDir) {
  WriteFile(src_ / "a.txt", "alpha");
  auto r = RunFilesync("--config " + config_.string() + " plan");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("a.txt"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(cloud_)) << "plan made the cloud dir";
  ASSERT_EQ(Sync().code, 0);
  // A dead instance's leftovers: only a real pass removes them.
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  std::getline(boot, boot_id);
  const fs::path dead = cloud_ / LocalCloudStaging() / (boot_id + ".1.00000000.gone");
  WriteFile(dead / "owner", "");
  WriteFile(dead / "0.part", "partial");
  WriteFile(src_ / "b.txt", "beta");
  const auto before = Tree(cloud_);
  r = RunFilesync("--config " + config_.string() + " plan");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(Tree(cloud_), before) << "plan changed the cloud dir";
  ASSERT_EQ(Sync().code, 0);
  EXPECT_FALSE(fs::exists(dead));
  ExpectMirrored();
}

// The sibling of a stop during a copy: a stop while a pass hashes a large file (touched, so its
// content must be compared) ends the hashing within a block instead of reading the whole file.
TEST_P(LocalE2E, SigintStopsHashingALargeFilePromptly) {
  constexpr off_t kSize = off_t{4} << 30;  // sparse: cheap to make and to copy, slow to hash
  const fs::path file = src_ / "disk.img";
  {
    const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kSize), 0);
    ASSERT_EQ(pwrite(fd, "end", 3, kSize - 3), 3);
    close(fd);
  }
  ASSERT_EQ(Sync().code, 0);
  fs::last_write_time(file, fs::last_write_time(file) - std::chrono::hours(1));
  const pid_t pid = Spawn(config_, "sync", "hashing.log");
  const auto read_so_far = [pid]() -> std::uint64_t {
    std::ifstream io("/proc/" + std::to_string(pid) + "/io");
    for (std::string key; io >> key;) {
      std::uint64_t value = 0;
      io >> value;
      if (key == "rchar:") return value;
    }
    return 0;
  };
  std::uint64_t read = 0;
  for (int i = 0; i < 60000 && read < (256u << 20); ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) FAIL() << "the pass ended before it hashed much";
    read = read_so_far();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(pid, SIGSTOP);
  kill(pid, SIGINT);
  kill(pid, SIGCONT);
  std::uint64_t last = read;
  for (int i = 0; i < 60000 && waitpid(pid, nullptr, WNOHANG) != pid; ++i) {
    last = std::max(last, read_so_far());
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_LT(last, static_cast<std::uint64_t>(kSize) / 2)
      << "the pass read " << last / (1 << 20) << " MiB of a " << (kSize >> 20)
      << " MiB file after the stop:\n"
      << ReadFile(base_ / "hashing.log");
}
