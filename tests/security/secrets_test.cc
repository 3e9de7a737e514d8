// Token secrecy (issue 5, Security): a distinctive token, refresh token and app secret are used by
// real `filesync` processes against the real emulator — one-shot syncs, the daemon over several
// passes (text and JSON logs at debug level), status, plan, config errors, rejected credentials
// and injected faults — and afterwards no byte of any output, log, status snapshot, state
// database (with its WAL) or other file in the sandbox holds the secret, nor does the daemon's
// argv or environment. The only files that may hold it are the 0600 secrets files the test wrote.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <set>
#include <thread>

#include "emulator_process.h"
#include "security_support.h"

namespace filesync::security_test {
namespace {

using test_support::EmulatorProcess;

std::string DropboxKeys(const std::string& url) {
  return "backend = \"dropbox\"\ndbx_api_url = \"" + url + "\"\ndbx_content_url = \"" + url +
         "\"\ndbx_notify_url = \"" + url + "\"\n";
}

// Reads a /proc file of a running process (NUL separators kept).
std::string ProcFile(pid_t pid, const char* name) {
  return ReadFile(fs::path("/proc") / std::to_string(pid) / name);
}

// True if `text` holds what looks like an access token the emulator issued: "sl." and then 60
// characters of its alphabet.
bool HoldsIssuedToken(const std::string& text) {
  constexpr std::size_t kLength = 60;
  for (auto at = text.find("sl."); at != std::string::npos; at = text.find("sl.", at + 1)) {
    std::size_t n = 0;
    while (n < kLength && at + 3 + n < text.size()) {
      const unsigned char ch = static_cast<unsigned char>(text[at + 3 + n]);
      if (!std::isalnum(ch) && ch != '-' && ch != '_') break;
      ++n;
    }
    if (n == kLength) return true;
  }
  return false;
}

class Secrets : public ::testing::Test {
 protected:
  Secrets() : box_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}

  void SetUp() override {
    src_ = box_.base() / "data" / "docs";
    state_ = box_.base() / "state";
    secrets_ = box_.base() / "secrets";
    fs::create_directories(src_);
    fs::create_directories(secrets_);
    fs::permissions(secrets_, fs::perms::owner_all);
    WriteFile(src_ / "a.txt", "alpha");
    WriteFile(src_ / "sub" / "b.txt", std::string(100000, 'b'));
  }

  // A 0600 config file in the secrets dir: the sync dir, state dir and `extra`.
  fs::path WriteConfig(const std::string& name, const std::string& extra) {
    const fs::path path = secrets_ / name;
    WriteFile(path,
              "client_sync_dirs = [\"" + src_.string() + "\"]\ncloud_root = \"/backup\"\n" +
                  "state_dir = \"" + state_.string() + "\"\npoll_interval = 1\nworkers = 2\n" +
                  extra,
              fs::perms::owner_read | fs::perms::owner_write);
    return path;
  }

  // Runs and remembers the result for the final leak check.
  RunResult Run(const std::vector<std::string>& args, const ChildOptions& options = {}) {
    RunResult r = box_.Run(args, options);
    outputs_.push_back(r.all());
    return r;
  }

  // Runs the daemon for about `seconds`, editing files meanwhile; checks its argv and
  // environment while it runs and what `status` says about it.
  void RunDaemon(const fs::path& config, const std::vector<std::string>& flags, int seconds,
                 const std::vector<std::string>& secrets) {
    static int n = 0;
    const fs::path log = box_.base() / "captures" / ("daemon-" + std::to_string(++n) + ".log");
    std::vector<std::string> args = flags;
    args.insert(args.end(), {"--config", config.string(), "run"});
    const pid_t pid = box_.Spawn(args, log);
    ASSERT_GT(pid, 0);
    for (int i = 0; i < seconds * 2; ++i) {
      WriteFile(src_ / "live" / ("f" + std::to_string(i % 5)), "pass " + std::to_string(i));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      if (i == seconds) {
        const std::string cmdline = ProcFile(pid, "cmdline");
        const std::string environ_text = ProcFile(pid, "environ");
        ASSERT_FALSE(cmdline.empty()) << "daemon exited early:\n" << ReadFile(log);
        EXPECT_NE(cmdline.find("run"), std::string::npos);  // the check reads the right file
        for (const auto& secret : secrets) {
          EXPECT_FALSE(Leaks(cmdline, secret)) << "daemon argv holds a secret";
          EXPECT_FALSE(Leaks(environ_text, secret)) << "daemon environment holds a secret";
        }
        const RunResult status = Run({"--config", config.string(), "status"});
        EXPECT_EQ(status.code, 0) << status.all();
        const RunResult status_json = Run({"--config", config.string(), "status", "--json"});
        EXPECT_EQ(status_json.code, 0) << status_json.all();
      }
    }
    EXPECT_EQ(Sandbox::Stop(pid), 0) << ReadFile(log);
    outputs_.push_back(ReadFile(log));
  }

  // The final check: no output holds a secret, and the only files that do are the secrets files
  // (at least `must_hold`, which proves the search finds what it looks for).
  void ExpectNoLeak(const std::string& secret, const std::string& what,
                    const std::vector<fs::path>& must_hold) {
    for (const auto& out : outputs_) {
      EXPECT_FALSE(Leaks(out, secret)) << what << " in the output of a command:\n" << out;
    }
    std::set<fs::path> holding;
    for (const auto& file : FilesLeaking(box_.base(), secret)) {
      holding.insert(file);
      EXPECT_EQ(file.parent_path(), secrets_) << what << " found in " << file;
    }
    for (const auto& file : must_hold) {
      EXPECT_TRUE(holding.contains(file)) << "the search did not find " << what << " in " << file;
      EXPECT_EQ(ModeOf(file), 0600) << file;
    }
  }

  // The state dir was really written (so searching it proves something).
  void ExpectStateWritten() {
    EXPECT_TRUE(fs::exists(state_ / "state.db"));
    EXPECT_TRUE(fs::exists(state_ / "status.json"));
    EXPECT_GT(fs::file_size(state_ / "state.db"), 0u);
  }

  Sandbox box_;
  fs::path src_, state_, secrets_;
  std::vector<std::string> outputs_;
};

TEST_F(Secrets, SearchFindsACanaryWhereverItIs) {
  // The leak check itself must be able to fail: a whole, truncated or embedded canary is found.
  const std::string canary = Canary("sl.SECRET-canary-");
  EXPECT_TRUE(Leaks("x" + canary + "y", canary));
  EXPECT_TRUE(Leaks("token=" + canary.substr(0, canary.size() - 6) + "...", canary));
  EXPECT_TRUE(Leaks("..." + canary.substr(canary.size() - 14), canary));
  EXPECT_FALSE(Leaks("sl.SECRET-canary-<redacted>", canary));
  WriteFile(box_.base() / "state" / "blob", std::string(5000, '\0') + canary + "\n");
  EXPECT_EQ(FilesLeaking(box_.base(), canary).size(), 1u);
}

// A static access token through every command and error path.
TEST_F(Secrets, AccessTokenAppearsOnlyInTheSecretsFile) {
  const std::string token = Canary("sl.SECRET-canary-");
  EmulatorProcess emulator;
  emulator.set_token(token);
  ASSERT_TRUE(emulator.Start({"--commit-lock-ms", "0"}));
  const fs::path config =
      WriteConfig("filesync.toml", DropboxKeys(emulator.url()) + "dbx_token = \"" + token + "\"\n");
  const std::vector<std::string> cfg = {"--config", config.string()};
  auto with = [&](std::vector<std::string> pre, std::vector<std::string> post) {
    pre.insert(pre.end(), cfg.begin(), cfg.end());
    pre.insert(pre.end(), post.begin(), post.end());
    return pre;
  };

  RunResult r = Run(with({"--log-level", "debug"}, {"sync"}));
  ASSERT_EQ(r.code, 0) << r.all();
  EXPECT_EQ(DropboxNamespace(emulator.url(), token)["/backup/docs/a.txt"], "alpha");
  WriteFile(src_ / "c.txt", "gamma");
  r = Run(with({"--log-level", "debug", "--log-format", "json"}, {"sync", "--verify"}));
  EXPECT_EQ(r.code, 0) << r.all();
  EXPECT_EQ(Run(with({"--log-level", "trace"}, {"plan", "--json"})).code, 0);
  EXPECT_EQ(Run(with({}, {"status"})).code, 0);
  EXPECT_EQ(Run(with({}, {"status", "--json"})).code, 0);
  RunDaemon(config, {"--log-level", "debug"}, 4, {token});
  RunDaemon(config, {"--log-level", "debug", "--log-format", "json"}, 3, {token});

  // Error paths: injected 429/5xx/dropped connections, then a token the server rejects.
  emulator.Stop();
  ASSERT_TRUE(emulator.Start(
      {"--commit-lock-ms", "0", "--faults", "429=0.2,500=0.15,503=0.1,drop=0.05,seed=11"}));
  WriteConfig("filesync.toml", DropboxKeys(emulator.url()) + "dbx_token = \"" + token + "\"\n");
  for (int i = 0; i < 20; ++i) WriteFile(src_ / "faults" / std::to_string(i), std::to_string(i));
  Run(with({"--log-level", "trace"}, {"sync"}));
  RunDaemon(config, {"--log-level", "debug", "--log-format", "json"}, 3, {token});
  emulator.Stop();
  emulator.set_token("a-different-token");
  ASSERT_TRUE(emulator.Start({"--commit-lock-ms", "0"}));
  WriteConfig("filesync.toml", DropboxKeys(emulator.url()) + "dbx_token = \"" + token + "\"\n");
  WriteFile(src_ / "after-revoke.txt", "x");
  r = Run(with({"--log-level", "trace"}, {"sync"}));
  EXPECT_NE(r.code, 0) << "a rejected token must fail the pass:\n" << r.all();
  r = Run(with({"--log-level", "trace"}, {"plan", "--json"}));
  EXPECT_NE(r.code, 0) << r.all();
  r = Run(with({}, {"status", "--json"}));
  EXPECT_EQ(r.code, 0) << r.all();

  // Config errors on the lines that hold the token: a misspelt key, broken TOML, a wrong type,
  // and a valid token next to an invalid key (also through the environment).
  const std::vector<std::string> bad = {
      "dbx_tokn = \"" + token + "\"\n",
      "dbx_token = \"" + token + "\n",
      "dbx_token = [\"" + token + "\"]\n",
      "dbx_token = " + token + "\n",
      "dbx_token = \"" + token + "\"\nworkers = 0\n",
      "dbx_token = \"" + token + "\"\ncloud_root = \"/a/../b\"\n",
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const fs::path file =
        WriteConfig("bad-" + std::to_string(i) + ".toml", DropboxKeys(emulator.url()) + bad[i]);
    r = Run({"--config", file.string(), "sync"});
    EXPECT_EQ(r.code, 2) << bad[i] << r.all();
    EXPECT_FALSE(r.err.empty()) << "a config error says why";
  }
  r = Run({"--config", WriteConfig("env.toml", DropboxKeys(emulator.url())).string(), "sync"},
          {.env = {{"FILESYNC_DBX_TOKEN", token}, {"FILESYNC_WORKERS", "many"}}});
  EXPECT_EQ(r.code, 2) << r.all();

  ExpectStateWritten();
  ExpectNoLeak(token, "the access token", {config});
}

// A refresh token (from the file `filesync auth` writes) and an app secret, with access tokens
// expiring every 2 s so the daemon refreshes several times; then credentials the server rejects.
TEST_F(Secrets, RefreshTokenAppSecretAndIssuedTokensStaySecret) {
  const std::string refresh = Canary("rt.SECRET-canary-");
  const std::string app_secret = Canary("as.SECRET-canary-");
  EmulatorProcess emulator;
  ASSERT_TRUE(emulator.Start({"--commit-lock-ms", "0", "--app-key", "security-app", "--app-secret",
                              app_secret, "--refresh-token", refresh, "--token-lifetime", "2"}));
  const fs::path token_file = secrets_ / "refresh-token";
  WriteFile(token_file, refresh + "\n", fs::perms::owner_read | fs::perms::owner_write);
  const fs::path config = WriteConfig(
      "filesync.toml", DropboxKeys(emulator.url()) +
                           "dbx_app_key = \"security-app\"\ndbx_app_secret = \"" + app_secret +
                           "\"\ndbx_refresh_token_file = \"" + token_file.string() + "\"\n");
  RunResult r = Run({"--log-level", "trace", "--config", config.string(), "sync"});
  ASSERT_EQ(r.code, 0) << r.all();
  RunDaemon(config, {"--log-level", "debug"}, 6, {refresh, app_secret});
  const int refreshes = emulator.Counters()["routes"].value("oauth2/token", 0);
  EXPECT_GE(refreshes, 3) << "the daemon should have refreshed its 2 s tokens";
  EXPECT_EQ(Run({"--config", config.string(), "status", "--json"}).code, 0);

  // Rejected credentials: an unknown refresh token, then a wrong app secret.
  const std::string bad_refresh = Canary("rt.SECRET-canary-");
  const fs::path bad_token_file = secrets_ / "bad-refresh-token";
  WriteFile(bad_token_file, bad_refresh + "\n", fs::perms::owner_read | fs::perms::owner_write);
  const fs::path bad_refresh_config = WriteConfig(
      "bad-refresh.toml", DropboxKeys(emulator.url()) +
                              "dbx_app_key = \"security-app\"\ndbx_app_secret = \"" + app_secret +
                              "\"\ndbx_refresh_token_file = \"" + bad_token_file.string() + "\"\n");
  WriteFile(src_ / "new.txt", "n");
  r = Run({"--log-level", "trace", "--config", bad_refresh_config.string(), "sync"});
  EXPECT_NE(r.code, 0) << r.all();
  const std::string bad_secret = Canary("as.SECRET-canary-");
  const fs::path bad_secret_config = WriteConfig(
      "bad-secret.toml", DropboxKeys(emulator.url()) +
                             "dbx_app_key = \"security-app\"\ndbx_app_secret = \"" + bad_secret +
                             "\"\ndbx_refresh_token = \"" + refresh + "\"\n");
  r = Run({"--log-level", "trace", "--config", bad_secret_config.string(), "sync"});
  EXPECT_NE(r.code, 0) << r.all();

  ExpectStateWritten();
  ExpectNoLeak(refresh, "the refresh token", {token_file, bad_secret_config});
  ExpectNoLeak(app_secret, "the app secret", {config, bad_refresh_config});
  ExpectNoLeak(bad_refresh, "the rejected refresh token", {bad_token_file});
  ExpectNoLeak(bad_secret, "the rejected app secret", {bad_secret_config});
  // Access tokens the emulator issued ("sl." + 60 characters) are secrets too.
  EXPECT_TRUE(HoldsIssuedToken("Bearer sl." + std::string(60, 'x')));  // the check can fail
  for (const auto& out : outputs_)
    EXPECT_FALSE(HoldsIssuedToken(out)) << "an issued access token was printed:\n" << out;
  for (auto it = fs::recursive_directory_iterator(box_.base());
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_regular_file() && !it->is_symlink()) {
      EXPECT_FALSE(HoldsIssuedToken(ReadFile(it->path())))
          << "an issued access token was stored in " << it->path();
    }
  }
}

}  // namespace
}  // namespace filesync::security_test
