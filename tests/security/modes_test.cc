// File modes and permission warnings (issue 5, Security): under a permissive umask (0000, set in
// the child) the state dir is created 0700 and every file filesync writes into it — state.db and
// its -wal/-shm, the lock, status.json — is 0600, as is the refresh-token file `filesync auth`
// writes; a config file that holds a secret and is readable by group or others gets one warning
// line naming the file and "chmod 600", and an owner-only one gets none.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "emulator_process.h"
#include "security_support.h"

namespace filesync::security_test {
namespace {

using test_support::EmulatorProcess;

constexpr fs::perms kOwnerRw = fs::perms::owner_read | fs::perms::owner_write;

std::string TestName() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

// The lines of `text` that contain `needle`.
std::vector<std::string> LinesWith(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

// Every entry directly in the state dir except the local cloud folder must be owner-only.
void ExpectOwnerOnly(const fs::path& state) {
  EXPECT_EQ(ModeOf(state), 0700) << state;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(state)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    EXPECT_EQ(ModeOf(entry.path()) & 077, 0)
        << entry.path() << " mode " << std::oct << ModeOf(entry.path());
  }
  EXPECT_GE(files, 3) << "state.db, lock and status.json at least";
  EXPECT_EQ(ModeOf(state / "state.db"), 0600);
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    const fs::path side = state.string() + "/state.db" + suffix;
    if (fs::exists(side)) {
      EXPECT_EQ(ModeOf(side), 0600) << side;
    }
  }
}

TEST(FileModes, StateDirAndFilesAreOwnerOnlyUnderUmask000) {
  Sandbox box(TestName());
  const fs::path src = box.base() / "data" / "docs";
  const fs::path state = box.base() / "st" / "nested" / "state";
  WriteFile(src / "a.txt", "a");
  const fs::path config = box.base() / "filesync.toml";
  WriteFile(config,
            "client_sync_dirs = [\"" + src.string() + "\"]\nstate_dir = \"" + state.string() +
                "\"\nlocal_cloud_dir = \"" + (box.base() / "cloud").string() +
                "\"\npoll_interval = 1\n",
            kOwnerRw);
  const ChildOptions umask0{.umask = 0};
  const fs::path log = box.base() / "captures" / "daemon.log";
  const pid_t pid = box.Spawn({"--config", config.string(), "run"}, log, umask0);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(WaitFor([&] { return fs::exists(state / "status.json"); }, 20000)) << ReadFile(log);
  WriteFile(src / "b.txt", "b");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // The umask reached the child: the parents it created are world-writable.
  EXPECT_EQ(ModeOf(box.base() / "st" / "nested"), 0777) << "the child's umask is not 0000";
  EXPECT_TRUE(fs::exists(state.string() + "/state.db-wal")) << "checked while the daemon runs";
  ExpectOwnerOnly(state);
  EXPECT_EQ(Sandbox::Stop(pid), 0) << ReadFile(log);

  const RunResult r = box.Run({"--config", config.string(), "sync"}, umask0);
  EXPECT_EQ(r.code, 0) << r.all();
  ExpectOwnerOnly(state);
}

TEST(FileModes, AuthWritesTheRefreshTokenOwnerOnlyUnderUmask000) {
  Sandbox box(TestName());
  EmulatorProcess emulator;
  ASSERT_TRUE(emulator.Start({"--app-key", "test-app-key"}));
  const fs::path token_file = box.base() / "secrets" / "refresh-token";
  fs::create_directories(token_file.parent_path());
  RunResult r = box.Authorize(emulator.url(), {"auth", "--app-key", "test-app-key", "--api-url",
                                               emulator.url(), "--out", token_file.string()});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ModeOf(token_file), 0600);
  EXPECT_FALSE(ReadFile(token_file).empty());

  // An existing, world-readable file is tightened, not just overwritten.
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write |
                                  fs::perms::group_read | fs::perms::others_read);
  ASSERT_EQ(ModeOf(token_file), 0644);
  r = box.Authorize(emulator.url(), {"auth", "--app-key", "test-app-key", "--api-url",
                                     emulator.url(), "--out", token_file.string()});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ModeOf(token_file), 0600);
}

// Without --out the token goes to <state_dir>/dropbox-refresh-token, also on a first run when
// the state dir does not exist yet: the dir is then created 0700 like the daemon creates it.
TEST(FileModes, AuthDefaultTokenFileInAFreshStateDir) {
  Sandbox box(TestName());
  EmulatorProcess emulator;
  ASSERT_TRUE(emulator.Start({"--app-key", "test-app-key"}));
  const fs::path state = box.base() / "state";
  const fs::path config = box.base() / "filesync.toml";
  WriteFile(config,
            "client_sync_dirs = [\"" + (box.base() / "docs").string() + "\"]\nstate_dir = \"" +
                state.string() + "\"\ndbx_app_key = \"test-app-key\"\ndbx_api_url = \"" +
                emulator.url() + "\"\n",
            kOwnerRw);
  const RunResult r = box.Authorize(emulator.url(), {"--config", config.string(), "auth"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ModeOf(state / "dropbox-refresh-token"), 0600);
  EXPECT_EQ(ModeOf(state) & 077, 0) << "a state dir created for the token is owner-only";
}

// The first `filesync auth` runs with the config the user will sync with: the dropbox backend,
// and dbx_refresh_token_file naming the file auth is about to write. Neither the missing
// credentials nor the missing file may stop it.
TEST(FileModes, AuthWithADropboxConfigThatHasNoTokenYet) {
  Sandbox box(TestName());
  EmulatorProcess emulator;
  ASSERT_TRUE(emulator.Start({"--app-key", "test-app-key"}));
  const fs::path state = box.base() / "state";
  const fs::path token_file = state / "dropbox-refresh-token";
  const fs::path config = box.base() / "filesync.toml";
  WriteFile(config,
            "client_sync_dirs = [\"" + (box.base() / "docs").string() +
                "\"]\nbackend = \"dropbox\"\nstate_dir = \"" + state.string() +
                "\"\ndbx_app_key = \"test-app-key\"\ndbx_api_url = \"" + emulator.url() +
                "\"\ndbx_refresh_token_file = \"" + token_file.string() + "\"\n",
            kOwnerRw);
  const RunResult r = box.Authorize(emulator.url(), {"--config", config.string(), "auth"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ModeOf(token_file), 0600);
  EXPECT_FALSE(ReadFile(token_file).empty());
}

class ConfigPermissions : public ::testing::Test {
 protected:
  ConfigPermissions() : box_(TestName()) {}
  void SetUp() override {
    src_ = box_.base() / "data" / "docs";
    WriteFile(src_ / "a.txt", "a");
  }
  // Keys every config needs (local backend, so no server is involved).
  std::string Base() const {
    return "client_sync_dirs = [\"" + src_.string() + "\"]\nstate_dir = \"" +
           (box_.base() / "state").string() + "\"\nlocal_cloud_dir = \"" +
           (box_.base() / "cloud").string() + "\"\npoll_interval = 1\n";
  }
  // The warning lines of a `sync` with `config`.
  std::vector<std::string> Warnings(const fs::path& config) {
    const RunResult r = box_.Run({"--config", config.string(), "sync"});
    EXPECT_EQ(r.code, 0) << r.all();
    return LinesWith(r.all(), "chmod 600");
  }

  Sandbox box_;
  fs::path src_;
};

TEST_F(ConfigPermissions, WorldOrGroupReadableConfigHoldingATokenWarns) {
  const fs::path config = box_.base() / "conf" / "filesync.toml";
  WriteFile(config, Base() + "dbx_token = \"" + Canary("sl.SECRET-canary-") + "\"\n");
  for (const auto mode : {fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                              fs::perms::others_read,
                          fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                          fs::perms::owner_read | fs::perms::others_read}) {
    fs::permissions(config, mode);
    SCOPED_TRACE(ModeOf(config));
    const auto lines = Warnings(config);
    ASSERT_EQ(lines.size(), 1u) << "one warning line";
    EXPECT_NE(lines[0].find(config.string()), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("chmod 600 " + config.string()), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("dbx_token"), std::string::npos) << lines[0];
  }
  fs::permissions(config, kOwnerRw);
  EXPECT_TRUE(Warnings(config).empty());
}

TEST_F(ConfigPermissions, TheDaemonWarnsAtStartUp) {
  const fs::path config = box_.base() / "filesync.toml";
  WriteFile(config, Base() + "dbx_app_secret = \"" + Canary("as.SECRET-canary-") + "\"\n",
            kOwnerRw | fs::perms::others_read);
  const fs::path log = box_.base() / "captures" / "daemon.log";
  const pid_t pid = box_.Spawn({"--config", config.string(), "run"}, log);
  EXPECT_TRUE(WaitFor([&] { return !LinesWith(ReadFile(log), "chmod 600").empty(); }, 15000))
      << ReadFile(log);
  EXPECT_EQ(Sandbox::Stop(pid), 0);
  const auto lines = LinesWith(ReadFile(log), "chmod 600");
  ASSERT_EQ(lines.size(), 1u) << ReadFile(log);
  EXPECT_NE(lines[0].find(config.string()), std::string::npos) << lines[0];
}

TEST_F(ConfigPermissions, NoWarningWithoutASecret) {
  const fs::path config = box_.base() / "filesync.toml";
  WriteFile(config, Base() + "dbx_app_key = \"not-a-secret\"\n",
            kOwnerRw | fs::perms::group_read | fs::perms::others_read);
  EXPECT_TRUE(Warnings(config).empty());
  // A secret given only through the environment: no file holds it, so no file warning.
  const RunResult r = box_.Run({"--config", config.string(), "sync"},
                               {.env = {{"FILESYNC_DBX_TOKEN", Canary("sl.SECRET-canary-")}}});
  EXPECT_EQ(r.code, 0) << r.all();
  EXPECT_TRUE(LinesWith(r.all(), "chmod 600").empty()) << r.all();
}

TEST_F(ConfigPermissions, WarningNamesTheInstanceFileThatHoldsTheSecret) {
  const fs::path dir = box_.base() / "config";
  WriteFile(dir / "dev.toml", Base(), kOwnerRw | fs::perms::group_read | fs::perms::others_read);
  WriteFile(dir / "instance.toml", "dbx_token = \"" + Canary("sl.SECRET-canary-") + "\"\n",
            kOwnerRw | fs::perms::group_read | fs::perms::others_read);
  const RunResult r = box_.Run({"--config-dir", dir.string(), "--env", "dev", "sync"});
  EXPECT_EQ(r.code, 0) << r.all();
  const auto lines = LinesWith(r.all(), "chmod 600");
  ASSERT_EQ(lines.size(), 1u) << r.all();
  EXPECT_NE(lines[0].find((dir / "instance.toml").string()), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("dev.toml"), std::string::npos) << lines[0];
}

// The refresh-token file is a secrets file as much as a config file holding dbx_token is.
TEST_F(ConfigPermissions, WorldReadableRefreshTokenFileWarns) {
  const fs::path token_file = box_.base() / "secrets" / "refresh-token";
  WriteFile(token_file, Canary("rt.SECRET-canary-") + "\n",
            kOwnerRw | fs::perms::group_read | fs::perms::others_read);
  const fs::path config = box_.base() / "filesync.toml";
  WriteFile(
      config,
      Base() + "dbx_app_key = \"k\"\ndbx_refresh_token_file = \"" + token_file.string() + "\"\n",
      kOwnerRw);
  const auto lines = Warnings(config);
  ASSERT_EQ(lines.size(), 1u) << "no warning for a world-readable " << token_file;
  EXPECT_NE(lines[0].find("chmod 600 " + token_file.string()), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("refresh token"), std::string::npos) << lines[0];
  fs::permissions(token_file, kOwnerRw);
  EXPECT_TRUE(Warnings(config).empty());
}

}  // namespace
}  // namespace filesync::security_test
