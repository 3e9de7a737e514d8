// The daemon under systemd, from the outside: the real filesync binary, a real AF_UNIX datagram
// socket as NOTIFY_SOCKET (what systemd gives a Type=notify service), and a real file as stderr
// whose device and inode are in JOURNAL_STREAM (what systemd does when stderr is the journal).
// Contract: issue 15 and filesync(1), SYSTEMD and ENVIRONMENT.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned long long MonotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
         static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
}

// The listening end of NOTIFY_SOCKET: every datagram received, in order.
class NotifySocket {
 public:
  explicit NotifySocket(const fs::path& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    bound_ = fd_ >= 0 && bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  [[nodiscard]] bool bound() const { return bound_; }
  [[nodiscard]] const fs::path& path() const { return path_; }

  // Receives until a datagram satisfies `match` (returned) or `timeout` passes (nullopt).
  std::optional<std::string> WaitFor(const std::function<bool(const std::string&)>& match,
                                     milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      received_.emplace_back(buf, static_cast<std::size_t>(n));
      if (match(received_.back())) return received_.back();
    }
  }
  std::optional<std::string> WaitForLine(const std::string& line, milliseconds timeout) {
    return WaitFor([&](const std::string& m) { return HasLine(m, line); }, timeout);
  }
  // Drains what has arrived so far without waiting.
  void Drain() {
    WaitFor([](const std::string&) { return false; }, milliseconds(1));
  }

  [[nodiscard]] const std::vector<std::string>& received() const { return received_; }
  [[nodiscard]] std::string Transcript() const {
    std::string all;
    for (const auto& m : received_) all += "[" + m + "] ";
    return all;
  }

  static bool HasLine(const std::string& message, const std::string& line) {
    std::istringstream in(message);
    for (std::string l; std::getline(in, l);) {
      if (l == line) return true;
    }
    return false;
  }
  // The value of "KEY=value" in a message, if present.
  static std::optional<std::string> Value(const std::string& message, const std::string& key) {
    std::istringstream in(message);
    for (std::string l; std::getline(in, l);) {
      if (l.rfind(key + "=", 0) == 0) return l.substr(key.size() + 1);
    }
    return std::nullopt;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> received_;
};

class Systemd : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/filesync-systemd-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    src_ = base_ / "data";
    fs::create_directories(src_);
    WriteConfig("");
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  void WriteConfig(const std::string& extra) {
    config_ = base_ / "filesync.toml";
    std::ofstream(config_) << "client_sync_dirs = [\"" << src_.string() << "\"]\n"
                           << "local_cloud_dir = \"" << (base_ / "cloud").string() << "\"\n"
                           << "state_dir = \"" << (base_ / "state").string() << "\"\n"
                           << "poll_interval = 1\n"
                           << "workers = 2\n"
                           << extra;
  }

  // Starts filesync with `args`, stderr to base_/stderr.log, and `env` set ("" unsets).
  // With journal_stream, JOURNAL_STREAM is set to the device and inode of that stderr file.
  pid_t Start(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
              bool journal_stream = false) {
    const fs::path log = base_ / "stderr.log";
    const pid_t pid = fork();
    if (pid == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) dup2(fd, STDERR_FILENO);
      for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"})
        unsetenv(name);
      for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
      if (journal_stream) {
        struct stat st {};
        fstat(STDERR_FILENO, &st);
        const std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
        setenv("JOURNAL_STREAM", stream.c_str(), 1);
      }
      std::vector<char*> argv{const_cast<char*>(FILESYNC_BINARY)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(FILESYNC_BINARY, argv.data());
      _exit(127);
    }
    pid_ = pid;
    return pid;
  }
  pid_t StartDaemon(const std::map<std::string, std::string>& env) {
    return Start({"--config", config_.string(), "run"}, env);
  }
  // Waits for the child to exit (SIGKILL after `timeout`); returns its exit code, or -1.
  int Wait(seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string Stderr() const { return ReadFile(base_ / "stderr.log"); }

  fs::path base_, src_, config_;
  pid_t pid_ = -1;
};

// Generous: sanitizer builds on a loaded 2-core box.
constexpr milliseconds kLong{60000};

TEST_F(Systemd, ReadyWhenTheFirstPassStartsNotWhenItEnds) {
  // A first pass long enough (a second here) that "ready when it ends" would be seen.
  constexpr int kFiles = 2000;
  for (int d = 0; d < 20; ++d) {
    fs::create_directories(src_ / std::to_string(d));
    for (int i = 0; i < kFiles / 20; ++i)
      std::ofstream(src_ / std::to_string(d) / std::to_string(i)) << i;
  }
  NotifySocket notify(base_ / "notify.sock");
  ASSERT_TRUE(notify.bound()) << std::strerror(errno);
  StartDaemon({{"NOTIFY_SOCKET", notify.path().string()}});

  const auto ready = notify.WaitForLine("READY=1", kLong);
  ASSERT_TRUE(ready) << notify.Transcript() << Stderr();
  EXPECT_EQ(notify.received().size(), 1U) << "something before READY=1: " << notify.Transcript();

  const auto status = notify.WaitFor(
      [](const std::string& m) {
        return NotifySocket::Value(m, "STATUS").value_or("").rfind("last pass", 0) == 0;
      },
      kLong);
  ASSERT_TRUE(status) << notify.Transcript() << Stderr();
  // READY=1 came in its own message, before the first pass's summary (a daemon that said ready
  // only once the pass had ended would send both together, or READY=1 after).
  const auto received = notify.received();
  ASSERT_GE(received.size(), 2U) << notify.Transcript();
  EXPECT_EQ(received.front(), *ready) << notify.Transcript();
  EXPECT_EQ(NotifySocket::Value(received.front(), "STATUS"), "pass running") << notify.Transcript();
  const std::string summary = *NotifySocket::Value(*status, "STATUS");
  EXPECT_NE(summary.find("last pass complete"), std::string::npos) << summary;
  EXPECT_NE(summary.find(std::to_string(kFiles) + " uploaded"), std::string::npos) << summary;
  EXPECT_NE(summary.find("0 failed"), std::string::npos) << summary;
  EXPECT_TRUE(fs::exists(base_ / "state" / "status.json"));
  // Only once: later passes send STATUS=, not READY=1 again.
  ASSERT_TRUE(notify.WaitFor(
      [](const std::string& m) {
        return NotifySocket::Value(m, "STATUS").value_or("").find(", 0 uploaded") !=
               std::string::npos;
      },
      kLong))
      << notify.Transcript();
  int readies = 0;
  for (const auto& m : notify.received()) readies += NotifySocket::HasLine(m, "READY=1") ? 1 : 0;
  EXPECT_EQ(readies, 1) << notify.Transcript();
  kill(pid_, SIGTERM);
  EXPECT_EQ(Wait(seconds(60)), 0) << Stderr();
}

TEST_F(Systemd, ReloadIsBracketedByReloadingAndReadyAndStopSaysStopping) {
  std::ofstream(src_ / "a.txt") << "alpha";
  NotifySocket notify(base_ / "notify.sock");
  ASSERT_TRUE(notify.bound());
  StartDaemon({{"NOTIFY_SOCKET", notify.path().string()}});
  ASSERT_TRUE(notify.WaitForLine("READY=1", kLong)) << Stderr();
  ASSERT_TRUE(notify.WaitFor(
      [](const std::string& m) { return NotifySocket::Value(m, "STATUS").has_value(); }, kLong));

  WriteConfig("log_level = \"debug\"\n");
  const unsigned long long before = MonotonicUsec();
  kill(pid_, SIGHUP);
  const auto reloading = notify.WaitForLine("RELOADING=1", kLong);
  const unsigned long long after = MonotonicUsec();
  ASSERT_TRUE(reloading) << notify.Transcript() << Stderr();
  const auto usec = NotifySocket::Value(*reloading, "MONOTONIC_USEC");
  ASSERT_TRUE(usec) << "RELOADING=1 without MONOTONIC_USEC: " << *reloading;
  EXPECT_GE(std::stoull(*usec), before);
  EXPECT_LE(std::stoull(*usec), after);
  ASSERT_TRUE(notify.WaitForLine("READY=1", kLong)) << notify.Transcript();
  EXPECT_NE(Stderr().find("configuration reloaded"), std::string::npos) << Stderr();

  // A reload whose configuration does not load keeps the old one, and is still closed by
  // READY=1 (systemd would otherwise show the unit as reloading forever).
  std::ofstream(config_) << "workers = 0\n";
  kill(pid_, SIGHUP);
  ASSERT_TRUE(notify.WaitForLine("RELOADING=1", kLong)) << notify.Transcript();
  ASSERT_TRUE(notify.WaitForLine("READY=1", kLong)) << notify.Transcript();

  kill(pid_, SIGTERM);
  ASSERT_TRUE(notify.WaitForLine("STOPPING=1", kLong)) << notify.Transcript() << Stderr();
  EXPECT_EQ(Wait(seconds(60)), 0) << Stderr();
  notify.Drain();
  int stopping = 0;
  for (const auto& m : notify.received()) {
    EXPECT_FALSE(NotifySocket::HasLine(m, "WATCHDOG=1")) << "watchdog pings without WATCHDOG_USEC";
    stopping += NotifySocket::HasLine(m, "STOPPING=1") ? 1 : 0;
  }
  EXPECT_EQ(stopping, 1) << notify.Transcript();
  EXPECT_NE(Stderr().find("reload failed"), std::string::npos) << Stderr();
}

TEST_F(Systemd, WatchdogPingsAtLeastTwicePerPeriod) {
  NotifySocket notify(base_ / "notify.sock");
  ASSERT_TRUE(notify.bound());
  // 0.4 s: pings every 0.2 s. The bound below leaves a wide margin for a loaded box.
  StartDaemon({{"NOTIFY_SOCKET", notify.path().string()}, {"WATCHDOG_USEC", "400000"}});
  ASSERT_TRUE(notify.WaitForLine("READY=1", kLong)) << Stderr();
  const auto start = std::chrono::steady_clock::now();
  int pings = 0;
  while (pings < 10 && notify.WaitForLine("WATCHDOG=1", seconds(10))) ++pings;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(pings, 10) << notify.Transcript();
  // 10 pings at 0.2 s take ~2 s; 10 s would mean the period was not honoured.
  EXPECT_LT(elapsed, 10.0);
  kill(pid_, SIGTERM);
  EXPECT_EQ(Wait(seconds(60)), 0) << Stderr();
}

TEST_F(Systemd, WatchdogMeantForAnotherProcessIsIgnored) {
  NotifySocket notify(base_ / "notify.sock");
  ASSERT_TRUE(notify.bound());
  // systemd sets WATCHDOG_PID to the main process; a child that inherits it must not ping.
  StartDaemon({{"NOTIFY_SOCKET", notify.path().string()},
               {"WATCHDOG_USEC", "200000"},
               {"WATCHDOG_PID", std::to_string(getpid())}});
  ASSERT_TRUE(notify.WaitForLine("READY=1", kLong)) << Stderr();
  EXPECT_FALSE(notify.WaitForLine("WATCHDOG=1", seconds(2))) << notify.Transcript();
  kill(pid_, SIGTERM);
  EXPECT_EQ(Wait(seconds(60)), 0) << Stderr();
}

TEST_F(Systemd, BadConfigurationNeverReportsReady) {
  WriteConfig("workers = 0\n");
  NotifySocket notify(base_ / "notify.sock");
  ASSERT_TRUE(notify.bound());
  StartDaemon({{"NOTIFY_SOCKET", notify.path().string()}});
  EXPECT_EQ(Wait(seconds(60)), 2) << Stderr();
  notify.Drain();
  for (const auto& m : notify.received()) EXPECT_FALSE(NotifySocket::HasLine(m, "READY=1")) << m;
  EXPECT_NE(Stderr().find("workers"), std::string::npos) << Stderr();
}

// Log lines of the "filesync.*" loggers, the only lines the logger writes.
std::vector<std::string> LogLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.find("[filesync.") != std::string::npos) lines.push_back(l);
  }
  return lines;
}

const std::regex kTimestamp(R"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)");

// A configuration that makes the logger speak at three levels: a secret in a file others can
// read (a warning at start-up) and a sync dir that does not exist (an error every pass).
void WriteNoisyConfig(const fs::path& config, const fs::path& base, const fs::path& src) {
  std::ofstream(config) << "client_sync_dirs = [\"" << src.string() << "\", \""
                        << (base / "missing").string() << "\"]\n"
                        << "local_cloud_dir = \"" << (base / "cloud").string() << "\"\n"
                        << "state_dir = \"" << (base / "state").string() << "\"\n"
                        << "poll_interval = 1\n"
                        << "dbx_token = \"not-used-by-the-local-backend\"\n";
  fs::permissions(config, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                              fs::perms::others_read);
}

TEST_F(Systemd, UnderJournaldLinesCarryPrioritiesAndNoTimestamp) {
  WriteNoisyConfig(config_, base_, src_);
  std::ofstream(src_ / "a.txt") << "alpha";
  Start({"--config", config_.string(), "run"}, {}, /*journal_stream=*/true);
  const auto deadline = std::chrono::steady_clock::now() + kLong;
  while (Stderr().find("pass INCOMPLETE") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(50));
  kill(pid_, SIGTERM);
  ASSERT_EQ(Wait(seconds(60)), 0) << Stderr();

  std::map<std::string, int> by_priority;
  const std::regex journal_line(R"(^<([0-7])>\[filesync\.[a-z_]+\] .*)");
  const auto lines = LogLines(Stderr());
  for (const auto& line : lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, journal_line)) << "not a journal line: " << line;
    EXPECT_FALSE(std::regex_search(line, kTimestamp)) << "timestamp in: " << line;
    ++by_priority[m[1]];
  }
  EXPECT_GT(by_priority["6"], 0) << "no <6> (info) line: " << Stderr();
  EXPECT_GT(by_priority["4"], 0) << "no <4> (warning) line: " << Stderr();
  EXPECT_GT(by_priority["3"], 0) << "no <3> (error) line: " << Stderr();
  EXPECT_NE(Stderr().find("<6>[filesync.cli] filesync daemon started"), std::string::npos);
  EXPECT_NE(Stderr().find("<4>[filesync.config] "), std::string::npos);
}

TEST_F(Systemd, AStderrThatIsNotTheJournalKeepsTimestamps) {
  WriteNoisyConfig(config_, base_, src_);
  // JOURNAL_STREAM inherited from a service, but stderr was redirected elsewhere.
  Start({"--config", config_.string(), "sync"}, {{"JOURNAL_STREAM", "1:1"}});
  ASSERT_EQ(Wait(seconds(120)), 1) << Stderr();
  const auto lines = LogLines(Stderr());
  ASSERT_GE(lines.size(), 2U) << Stderr();
  for (const auto& line : lines) {
    EXPECT_TRUE(std::regex_search(line, kTimestamp)) << line;
    EXPECT_NE(line.front(), '<') << line;
  }
}

TEST_F(Systemd, JsonRequestedUnderJournaldStaysJson) {
  WriteNoisyConfig(config_, base_, src_);
  Start({"--config", config_.string(), "--log-format", "json", "sync"}, {},
        /*journal_stream=*/true);
  ASSERT_EQ(Wait(seconds(120)), 1) << Stderr();
  int json_lines = 0;
  std::istringstream in(Stderr());
  for (std::string l; std::getline(in, l);) {
    if (l.find("\"logger\":\"filesync.") == std::string::npos) continue;
    EXPECT_EQ(l.front(), '{') << l;
    ++json_lines;
  }
  EXPECT_GE(json_lines, 2) << Stderr();
}

}  // namespace
