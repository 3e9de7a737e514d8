// End-to-end tests: the real filesync binary on real temporary directories, local backend.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>

namespace fs = std::filesystem;

namespace {

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
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
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

class E2E : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("filesync-e2e-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    src_ = base_ / "photos";
    cloud_ = base_ / "cloud";
    state_ = base_ / "state";
    fs::create_directories(src_);
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
                           << "workers = 2\n"
                           << extra;
  }

  RunResult Sync(const std::string& flags = "") { return RunFilesync("--config " + config_.string() + " sync " + flags); }
  nlohmann::json PlanJson() {
    auto r = RunFilesync("--config " + config_.string() + " plan --json");
    EXPECT_EQ(r.code, 0) << r.out;
    auto start = r.out.find('{');
    return nlohmann::json::parse(r.out.substr(start == std::string::npos ? 0 : start), nullptr, false);
  }
  nlohmann::json StatusJson() {
    auto r = RunFilesync("--config " + config_.string() + " status --json");
    EXPECT_EQ(r.code, 0) << r.out;
    auto start = r.out.find('{');
    return nlohmann::json::parse(r.out.substr(start == std::string::npos ? 0 : start), nullptr, false);
  }
  fs::path Mirror() const { return cloud_ / "backup" / "photos"; }
  void ExpectMirrored() {
    EXPECT_EQ(Tree(Mirror()), Tree(src_));
    auto plan = PlanJson();
    ASSERT_TRUE(plan.is_object());
    EXPECT_TRUE(plan["actions"].empty()) << plan.dump(2);
  }
  static std::uint64_t Inode(const fs::path& p) {
    struct stat st {};
    return lstat(p.c_str(), &st) == 0 ? st.st_ino : 0;
  }

  fs::path base_, src_, cloud_, state_, config_;
};

TEST_F(E2E, InitialSyncMirrorsTheTree) {
  WriteFile(src_ / "a.txt", "alpha");
  WriteFile(src_ / "sub/b.txt", std::string(5 << 20, 'b'));
  WriteFile(src_ / "sub/deeper/c.bin", "c");
  fs::create_directories(src_ / "empty/nested");
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
  EXPECT_FALSE(fs::exists(cloud_ / ".filesync-staging") && !fs::is_empty(cloud_ / ".filesync-staging"));
}

TEST_F(E2E, ModifyAddDelete) {
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

TEST_F(E2E, SameSizeEditIsDetectedByContent) {
  WriteFile(src_ / "f.txt", "aaaa");
  ASSERT_EQ(Sync().code, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteFile(src_ / "f.txt", "bbbb");
  ASSERT_EQ(Sync().code, 0);
  EXPECT_EQ(ReadFile(Mirror() / "f.txt"), "bbbb");
}

TEST_F(E2E, FileRenameIsAMoveNotACopy) {
  WriteFile(src_ / "dir/old-name.txt", "content that must not be copied again");
  ASSERT_EQ(Sync().code, 0);
  const auto cloud_inode = Inode(Mirror() / "dir/old-name.txt");
  fs::rename(src_ / "dir/old-name.txt", src_ / "dir/new-name.txt");
  auto plan = PlanJson();
  ASSERT_EQ(plan["actions"].size(), 1u) << plan.dump(2);
  EXPECT_EQ(plan["actions"][0]["action"], "move");
  ASSERT_EQ(Sync().code, 0);
  EXPECT_EQ(Inode(Mirror() / "dir/new-name.txt"), cloud_inode);
  ExpectMirrored();
}

TEST_F(E2E, FolderRenameIsOneMove) {
  for (int i = 0; i < 50; ++i) WriteFile(src_ / "2019" / ("f" + std::to_string(i)), std::to_string(i));
  ASSERT_EQ(Sync().code, 0);
  const auto cloud_inode = Inode(Mirror() / "2019/f7");
  fs::rename(src_ / "2019", src_ / "2019-old");
  auto plan = PlanJson();
  ASSERT_EQ(plan["actions"].size(), 1u) << plan.dump(2);
  EXPECT_EQ(plan["actions"][0]["action"], "move");
  ASSERT_EQ(Sync().code, 0);
  EXPECT_EQ(Inode(Mirror() / "2019-old/f7"), cloud_inode);
  ExpectMirrored();
}

TEST_F(E2E, EmptyFoldersAndTypeChanges) {
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

TEST_F(E2E, ExcludesAreNotSyncedAndNotDeleted) {
  WriteConfig("exclude = [\"*.tmp\", \"cache/\"]\n");
  WriteFile(src_ / "keep.txt", "k");
  WriteFile(src_ / "skip.tmp", "t");
  WriteFile(src_ / "cache/big", "c");
  ASSERT_EQ(Sync().code, 0);
  EXPECT_TRUE(fs::exists(Mirror() / "keep.txt"));
  EXPECT_FALSE(fs::exists(Mirror() / "skip.tmp"));
  EXPECT_FALSE(fs::exists(Mirror() / "cache"));
}

TEST_F(E2E, SymlinksAndNonUtf8NamesAreSkippedWithAWarning) {
  WriteFile(src_ / "real.txt", "r");
  fs::create_symlink("/etc/passwd", src_ / "link");
  WriteFile(src_ / std::string("bad\xff.txt"), "x");
  auto r = Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("link"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(Mirror() / "real.txt"));
  EXPECT_FALSE(fs::exists(Mirror() / "link"));
  EXPECT_EQ(Tree(Mirror()).size(), 1u);
}

TEST_F(E2E, MissingSyncDirNeverDeletes) {
  WriteFile(src_ / "a", "a");
  WriteFile(src_ / "b", "b");
  ASSERT_EQ(Sync().code, 0);
  fs::rename(src_, base_ / "moved-away");
  auto r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("missing"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(Mirror() / "a"));
  fs::create_directories(src_);  // a new, empty dir in its place: replaced, not synced either
  r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(fs::exists(Mirror() / "b"));
}

TEST_F(E2E, SuddenlyEmptyDirNeverDeletes) {
  WriteFile(src_ / "a", "a");
  ASSERT_EQ(Sync().code, 0);
  fs::remove(src_ / "a");
  auto r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("empty"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(Mirror() / "a"));
  EXPECT_EQ(Sync("--allow-mass-delete").code, 0);
  EXPECT_FALSE(fs::exists(Mirror() / "a"));
}

TEST_F(E2E, MaxDeleteStopsAMassDelete) {
  WriteConfig("max_delete = \"5\"\n");
  for (int i = 0; i < 10; ++i) WriteFile(src_ / ("f" + std::to_string(i)), "x");
  WriteFile(src_ / "stay", "s");
  ASSERT_EQ(Sync().code, 0);
  for (int i = 0; i < 10; ++i) fs::remove(src_ / ("f" + std::to_string(i)));
  auto r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("max_delete"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(Mirror() / "f3"));
  ASSERT_EQ(Sync("--allow-mass-delete").code, 0);
  ExpectMirrored();
}

TEST_F(E2E, RestartDoesNotRehash) {
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

TEST_F(E2E, KillDuringAPassThenRerunConvergesWithoutPartialFiles) {
  for (int i = 0; i < 40; ++i) WriteFile(src_ / ("big" + std::to_string(i)), std::string(2 << 20, static_cast<char>('a' + i % 26)));
  const pid_t pid = fork();
  if (pid == 0) {
    execl(FILESYNC_BINARY, FILESYNC_BINARY, "--config", config_.c_str(), "sync", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  // Whatever landed is complete: every file in the mirror has its full content.
  for (const auto& [path, content] : Tree(Mirror())) {
    if (content != "<dir>") {
      EXPECT_EQ(content, ReadFile(src_ / path)) << path;
    }
  }
  auto r = Sync();
  ASSERT_EQ(r.code, 0) << r.out;
  ExpectMirrored();
  EXPECT_TRUE(!fs::exists(cloud_ / ".filesync-staging") || fs::is_empty(cloud_ / ".filesync-staging"));
}

TEST_F(E2E, SigtermFinishesInFlightWorkAndExitsZero) {
  for (int i = 0; i < 30; ++i) WriteFile(src_ / ("f" + std::to_string(i)), std::string(1 << 20, 'z'));
  const pid_t pid = fork();
  if (pid == 0) {
    execl(FILESYNC_BINARY, FILESYNC_BINARY, "--config", config_.c_str(), "run", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ExpectMirrored();
}

TEST_F(E2E, HashMatchesTheReferenceVectors) {
  WriteFile(base_ / "hello", "hello");
  auto r = RunFilesync("hash " + (base_ / "hello").string());
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50\n");
  r = RunFilesync("hash /nonexistent/file");
  EXPECT_EQ(r.code, 1);
}

TEST_F(E2E, ConfigErrorsExitTwoWithOneLine) {
  std::ofstream(config_) << "client_sync_dirs = [\"relative/path\"]\n";
  auto r = Sync();
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find("client_sync_dirs"), std::string::npos) << r.out;
  std::ofstream(config_) << "pol_interval = 3\nclient_sync_dirs = [\"/tmp\"]\n";
  r = Sync();
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("poll_interval"), std::string::npos) << r.out;
  std::ofstream(config_) << "client_sync_dirs = [\"" << src_.string() << "\"]\nexclude = [\"[unclosed\"]\n";
  r = Sync();
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("exclude"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  r = RunFilesync("--config /nonexistent/filesync.toml sync");
  EXPECT_EQ(r.code, 2);
  r = RunFilesync("no-such-command");
  EXPECT_EQ(r.code, 2);
}

TEST_F(E2E, SecondInstanceOnTheSameStateIsRefused) {
  WriteFile(src_ / "a", "a");
  const pid_t pid = fork();
  if (pid == 0) {
    execl(FILESYNC_BINARY, FILESYNC_BINARY, "--config", config_.c_str(), "run", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto r = Sync();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("in use"), std::string::npos) << r.out;
  auto status = RunFilesync("--config " + config_.string() + " status --json");
  EXPECT_EQ(status.code, 0) << status.out;
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
}

}  // namespace
