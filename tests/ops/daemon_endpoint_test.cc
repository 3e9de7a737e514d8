// The daemon's status endpoint, bandwidth limit and metrics, from the outside: the real filesync
// binary (`run`, `status`) on real temporary directories, the local backend and the real Dropbox
// emulator answering some requests 429. Contract: issue 15 (status_listen, /status = `filesync
// status --json`, live pass, /metrics, bwlimit, bad input exits 2 naming the key, SIGHUP keeps
// the old configuration on error) and docs/operations.md.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "emulator_process.h"

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

void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

void WriteRandom(const fs::path& p, std::size_t bytes) {
  std::mt19937_64 rng(bytes);
  std::string data(bytes, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  WriteFile(p, data);
}

// A port nothing listens on now (bound, then closed).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// Runs the binary with `args`, stdout and stderr into `out` and `err`; returns its pid.
pid_t Spawn(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv;
    std::string binary = FILESYNC_BINARY;
    argv.push_back(binary.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `timeout` for the process to end: its exit code, or -1 if still running.
int WaitExit(pid_t pid, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

bool Eventually(const std::function<bool()>& check, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return check();
}

// GET path from 127.0.0.1:port: the body on 200, "" otherwise.
std::string Get(int port, const std::string& path, const std::string& token = "") {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(seconds(2));
  client.set_read_timeout(seconds(5));
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto res = client.Get(path, headers);
  return res && res->status == 200 ? res->body : std::string();
}

// The value of one sample ("name{labels}") in a Prometheus text body, or -1.
double Sample(const std::string& body, const std::string& series) {
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

class DaemonEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("filesync-endpoint-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "src");
    fs::create_directories(root_ / "state");
  }
  void TearDown() override {
    if (daemon_ > 0) {
      kill(daemon_, SIGKILL);
      WaitExit(daemon_, seconds(10));
    }
    fs::remove_all(root_);
  }

  // A local-backend config (cloud in root_/cloud) with `extra` keys.
  void WriteConfig(const std::string& extra) {
    WriteFile(root_ / "c.toml", "backend = \"local\"\nclient_sync_dirs = [\"" +
                                    (root_ / "src").string() + "\"]\nlocal_cloud_dir = \"" +
                                    (root_ / "cloud").string() + "\"\nstate_dir = \"" +
                                    (root_ / "state").string() + "\"\npoll_interval = 1\n" + extra);
  }
  void StartDaemon() {
    daemon_ = Spawn({"run", "--config", (root_ / "c.toml").string()}, root_ / "run.out",
                    root_ / "run.err");
  }
  // Runs a command to its end: {exit code, stdout, stderr}.
  std::tuple<int, std::string, std::string> Command(const std::vector<std::string>& args) {
    const pid_t pid = Spawn(args, root_ / "cmd.out", root_ / "cmd.err");
    const int code = WaitExit(pid, seconds(60));
    return {code, ReadFile(root_ / "cmd.out"), ReadFile(root_ / "cmd.err")};
  }
  std::string Log() { return ReadFile(root_ / "run.err") + ReadFile(root_ / "run.out"); }

  fs::path root_;
  pid_t daemon_ = -1;
};

// /status shows the pass under way while it runs (bytes moving, slowed by bwlimit), `filesync
// status` shows the same live object, and /metrics counts the pass once it is done.
TEST_F(DaemonEndpointTest, StatusIsLiveDuringAPassAndMetricsCountIt) {
  constexpr std::size_t kSize = 6 * 1024 * 1024;
  WriteRandom(root_ / "src" / "big.bin", kSize);
  const int port = FreePort();
  WriteConfig("status_listen = \"127.0.0.1:" + std::to_string(port) + "\"\nbwlimit = \"1MiB\"\n");
  StartDaemon();

  nlohmann::json live;
  ASSERT_TRUE(Eventually(
      [&] {
        const std::string body = Get(port, "/status");
        if (body.empty()) return false;
        live = nlohmann::json::parse(body, nullptr, false);
        return live.is_object() && live["current_pass"].is_object() &&
               live["current_pass"].value("bytes_done", 0ULL) > 0;
      },
      seconds(20)))
      << Log();
  EXPECT_LT(live["current_pass"].value("bytes_done", 0ULL), kSize) << live.dump();
  EXPECT_EQ(live["current_pass"].value("bytes_total", 0ULL), kSize) << live.dump();
  EXPECT_TRUE(live["daemon_running"].get<bool>());

  // The CLI asks the daemon: the pass in progress, not just "under way".
  const auto [code, out, err] =
      Command({"status", "--json", "--config", (root_ / "c.toml").string()});
  ASSERT_EQ(code, 0) << err;
  const auto status = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(status.is_object()) << out;
  ASSERT_TRUE(status["current_pass"].is_object()) << out;
  EXPECT_TRUE(status["current_pass"].contains("bytes_done")) << out;
  EXPECT_TRUE(status.contains("now_unix_ms")) << "not the daemon's answer: " << out;

  nlohmann::json done;
  ASSERT_TRUE(Eventually(
      [&] {
        done = nlohmann::json::parse(Get(port, "/status"), nullptr, false);
        return done.is_object() && done["last_pass"].is_object() &&
               done["last_pass"].value("converged", false);
      },
      seconds(60)))
      << Log();
  // 6 MiB under 1 MiB/s cannot take much less than 6 s (a tenth of a second of burst).
  EXPECT_GE(done["last_pass"].value("duration_ms", 0LL), 5000) << done["last_pass"].dump();
  EXPECT_EQ(ReadFile(root_ / "cloud" / "filesync" / "src" / "big.bin").size(), kSize);

  const std::string metrics = Get(port, "/metrics");
  EXPECT_GE(Sample(metrics, "filesync_passes_total{result=\"complete\"}"), 1) << metrics;
  EXPECT_EQ(Sample(metrics, "filesync_uploaded_files_total{dir=\"src\"}"), 1) << metrics;
  EXPECT_EQ(Sample(metrics, "filesync_uploaded_bytes_total{dir=\"src\"}"), kSize) << metrics;
  EXPECT_EQ(Sample(metrics, "filesync_bwlimit_bytes_per_second"), 1024 * 1024) << metrics;
  EXPECT_GT(Sample(metrics, "filesync_bwlimit_wait_seconds_total"), 3) << metrics;
  EXPECT_GE(Sample(metrics, "filesync_pass_duration_seconds_count"), 1) << metrics;

  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    WriteFile(root_ / "scrape.txt", metrics);
    const std::string check = "promtool check metrics < " + (root_ / "scrape.txt").string();
    EXPECT_EQ(std::system(check.c_str()), 0) << metrics;
  }
  kill(daemon_, SIGTERM);
  EXPECT_EQ(WaitExit(daemon_, seconds(30)), 0) << Log();
  daemon_ = -1;
  // With the daemon gone, status falls back to the state store.
  const auto [code2, out2, err2] = Command({"status", "--config", (root_ / "c.toml").string()});
  EXPECT_EQ(code2, 0) << err2;
  EXPECT_NE(out2.find("running: no"), std::string::npos) << out2;
  EXPECT_NE(out2.find("in sync: yes"), std::string::npos) << out2;
}

// During a pass of many files slowed by bwlimit, /metrics shows actions waiting in the queue;
// after it, none. More files than the two workers' batches (64 small files each on the local
// backend) can hold, so some truly wait in the queue while the first batches are throttled.
TEST_F(DaemonEndpointTest, QueueDepthIsLiveDuringAPass) {
  constexpr int kFiles = 400;
  for (int i = 0; i < kFiles; ++i)
    WriteRandom(root_ / "src" / ("f" + std::to_string(i)), 8 * 1024 + static_cast<std::size_t>(i));
  const int port = FreePort();
  WriteConfig("status_listen = \"127.0.0.1:" + std::to_string(port) +
              "\"\nbwlimit = \"512KiB\"\nworkers = 2\n");
  StartDaemon();
  std::string metrics;
  EXPECT_TRUE(Eventually(
      [&] {
        metrics = Get(port, "/metrics");
        return Sample(metrics, "filesync_queue_depth") > 0;
      },
      seconds(30)))
      << metrics << Log();
  ASSERT_TRUE(Eventually(
      [&] {
        metrics = Get(port, "/metrics");
        return Sample(metrics, "filesync_passes_total{result=\"complete\"}") >= 1;
      },
      seconds(60)))
      << metrics << Log();
  EXPECT_EQ(Sample(metrics, "filesync_queue_depth"), 0) << metrics;
  EXPECT_EQ(Sample(metrics, "filesync_uploaded_files_total{dir=\"src\"}"), kFiles) << metrics;
}

// The status page served by the running daemon, loaded in headless Chromium: the page's script
// fetches the daemon's /status and shows the sync dir and the completed pass. A screenshot is
// kept as a test artifact (<build dir>/status-page-daemon.png).
TEST_F(DaemonEndpointTest, StatusPageOfTheRunningDaemonShowsTheDirAndACompletedPassInChromium) {
  if (std::system("command -v chromium >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "chromium not installed (Debian package chromium; scripts/setup.sh --test)";
  WriteRandom(root_ / "src" / "a.bin", 4096);
  const int port = FreePort();
  WriteConfig("status_listen = \"127.0.0.1:" + std::to_string(port) + "\"\n");
  StartDaemon();
  std::string metrics;
  ASSERT_TRUE(Eventually(
      [&] {
        metrics = Get(port, "/metrics");
        return Sample(metrics, "filesync_passes_total{result=\"complete\"}") >= 1;
      },
      seconds(60)))
      << metrics << Log();
  const fs::path profile = root_ / "chromium-profile";
  const auto chromium = [&](const std::string& action) {
    // A fresh profile, nothing fetched but the page; the virtual time budget lets the page's
    // script fetch /status and render before the DOM is taken.
    const std::string command =
        "timeout 120 chromium --headless --no-sandbox --disable-gpu "
        "--disable-background-networking --disable-component-update --disable-sync "
        "--no-first-run --user-data-dir=" +
        profile.string() + " --virtual-time-budget=2500 " + action +
        " http://127.0.0.1:" + std::to_string(port) + "/ 2>/dev/null > " +
        (root_ / "chromium.out").string();
    return std::system(command.c_str());
  };
  ASSERT_EQ(chromium("--dump-dom"), 0);
  const std::string html = ReadFile(root_ / "chromium.out");
  SCOPED_TRACE(html.substr(0, 20000));
  EXPECT_NE(html.find("<td class=\"path\">" + (root_ / "src").string() + "</td>"),
            std::string::npos)
      << "the sync dir is shown";
  EXPECT_NE(html.find("<span class=\"badge complete\">complete</span>"), std::string::npos)
      << "the completed pass is listed";
  EXPECT_NE(html.find("id=\"conn\" class=\"\">updated "), std::string::npos)
      << "the page's fetch of the daemon's /status succeeded";
  const fs::path shot = fs::path(FILESYNC_BUILD_DIR) / "status-page-daemon.png";
  fs::remove(shot);
  ASSERT_EQ(chromium("--window-size=1200,900 --screenshot=" + shot.string()), 0);
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_GT(fs::file_size(shot), 10000u) << "a blank page would be much smaller";
  std::printf("status page screenshot: %s\n", shot.c_str());
}

// Bad status_listen, port in use, missing token file, bad bwlimit: exit 2 at start with one line
// naming the key.
TEST_F(DaemonEndpointTest, BadEndpointOrBwlimitStopsTheStartWithExit2) {
  httplib::Server holder;
  const int busy = holder.bind_to_any_port("127.0.0.1");
  ASSERT_GT(busy, 0);
  const struct {
    std::string extra;
    std::string key;
  } cases[] = {
      {"status_listen = \"127.0.0.1:" + std::to_string(busy) + "\"\n", "status_listen"},
      {"status_listen = \"localhost-9184\"\n", "status_listen"},
      {"status_listen = \"0.0.0.0:" + std::to_string(FreePort()) + "\"\nstatus_token_file = \"" +
           (root_ / "missing-token").string() + "\"\n",
       "status_token_file"},
      {"bwlimit = \"fast\"\n", "bwlimit"},
  };
  for (const auto& c : cases) {
    WriteConfig(c.extra);
    const auto [code, out, err] = Command({"run", "--config", (root_ / "c.toml").string()});
    EXPECT_EQ(code, 2) << c.extra << err;
    EXPECT_NE(err.find(c.key), std::string::npos) << c.extra << err;
    EXPECT_LE(std::count(err.begin(), err.end(), '\n'), 1) << c.extra << err;
  }
}

// SIGHUP: a new address moves the endpoint, a new bwlimit is in force; an address in use or a
// bad bwlimit keeps the old configuration serving.
TEST_F(DaemonEndpointTest, ReloadMovesTheEndpointAndKeepsItOnError) {
  WriteFile(root_ / "src" / "a.txt", "a");
  const int first = FreePort();
  WriteConfig("status_listen = \"127.0.0.1:" + std::to_string(first) + "\"\n");
  StartDaemon();
  ASSERT_TRUE(Eventually([&] { return !Get(first, "/status").empty(); }, seconds(20))) << Log();

  const int second = FreePort();
  WriteConfig("status_listen = \"127.0.0.1:" + std::to_string(second) + "\"\n");
  kill(daemon_, SIGHUP);
  ASSERT_TRUE(Eventually([&] { return !Get(second, "/status").empty(); }, seconds(20))) << Log();
  EXPECT_TRUE(Eventually([&] { return Get(first, "/status").empty(); }, seconds(10)));

  httplib::Server holder;
  const int busy = holder.bind_to_any_port("127.0.0.1");
  WriteConfig("status_listen = \"127.0.0.1:" + std::to_string(busy) + "\"\n");
  kill(daemon_, SIGHUP);
  EXPECT_TRUE(Eventually([&] { return Log().find("stays on") != std::string::npos; }, seconds(20)))
      << Log();
  EXPECT_FALSE(Get(second, "/status").empty()) << Log();

  // A new bwlimit is in force after the reload (the limiter's gauge says which).
  WriteConfig("status_listen = \"127.0.0.1:" + std::to_string(second) + "\"\nbwlimit = \"4MiB\"\n");
  kill(daemon_, SIGHUP);
  EXPECT_TRUE(Eventually(
      [&] {
        return Sample(Get(second, "/metrics"), "filesync_bwlimit_bytes_per_second") == 4 << 20;
      },
      seconds(20)))
      << Log();

  WriteConfig("status_listen = \"127.0.0.1:" + std::to_string(second) + "\"\nbwlimit = \"x\"\n");
  kill(daemon_, SIGHUP);
  EXPECT_TRUE(
      Eventually([&] { return Log().find("reload failed") != std::string::npos; }, seconds(20)))
      << Log();
  EXPECT_FALSE(Get(second, "/status").empty()) << Log();
  EXPECT_EQ(Sample(Get(second, "/metrics"), "filesync_bwlimit_bytes_per_second"), 4 << 20);
  EXPECT_EQ(WaitExit(daemon_, milliseconds(200)), -1) << "the daemon died: " << Log();
}

// Against the Dropbox emulator answering some requests 429: the HTTP metrics count requests by
// route and the rate-limited ones with their reason and Retry-After, upload bodies wait for
// bwlimit, and the scrape is valid.
TEST_F(DaemonEndpointTest, DropboxRequestsAndRateLimitsAreCounted) {
  filesync::test_support::EmulatorProcess emulator;
  ASSERT_TRUE(emulator.Start({"--faults", "429=0.5,max=4,seed=3"}));
  for (int i = 0; i < 6; ++i) WriteFile(root_ / "src" / ("f" + std::to_string(i)), "x");
  WriteRandom(root_ / "src" / "big.bin", 3 * 1024 * 1024);  // upload bodies go through bwlimit
  const int port = FreePort();
  WriteFile(root_ / "c.toml",
            "backend = \"dropbox\"\ndbx_token = \"" + emulator.token() + "\"\ndbx_api_url = \"" +
                emulator.url() + "\"\ndbx_content_url = \"" + emulator.url() +
                "\"\ndbx_notify_url = \"" + emulator.url() + "\"\nclient_sync_dirs = [\"" +
                (root_ / "src").string() + "\"]\nstate_dir = \"" + (root_ / "state").string() +
                "\"\npoll_interval = 1\nbwlimit = \"1MiB\"\nstatus_listen = \"127.0.0.1:" +
                std::to_string(port) + "\"\n");
  StartDaemon();
  std::string metrics;
  ASSERT_TRUE(Eventually(
      [&] {
        metrics = Get(port, "/metrics");
        return Sample(metrics, "filesync_passes_total{result=\"complete\"}") >= 1;
      },
      seconds(90)))
      << metrics << Log();
  std::smatch m;
  const std::regex ok(
      R"re(filesync_http_requests_total\{route="([^"]+)",code="2xx"\} ([0-9.e+]+))re");
  double ok_total = 0;
  for (auto it = std::sregex_iterator(metrics.begin(), metrics.end(), ok);
       it != std::sregex_iterator(); ++it)
    ok_total += std::stod((*it)[2]);
  EXPECT_GE(ok_total, 2) << metrics;
  const std::regex limited(
      R"re(filesync_http_rate_limited_total\{route="[^"]+",reason="too_many_requests"\} ([0-9.e+]+))re");
  double limited_total = 0;
  for (auto it = std::sregex_iterator(metrics.begin(), metrics.end(), limited);
       it != std::sregex_iterator(); ++it)
    limited_total += std::stod((*it)[1]);
  EXPECT_GE(limited_total, 1) << metrics;
  EXPECT_NE(metrics.find("code=\"4xx\""), std::string::npos) << metrics;
  const std::regex waited(
      R"re(filesync_retry_after_wait_seconds_total\{route="[^"]+"\} ([1-9][0-9.e+]*))re");
  EXPECT_TRUE(std::regex_search(metrics, m, waited)) << metrics;
  // 3 MiB of upload body under 1 MiB/s: about 2 s waiting for the limit, at least.
  EXPECT_GT(Sample(metrics, "filesync_bwlimit_wait_seconds_total"), 1.5) << metrics;
  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    WriteFile(root_ / "scrape.txt", metrics);
    const std::string check = "promtool check metrics < " + (root_ / "scrape.txt").string();
    EXPECT_EQ(std::system(check.c_str()), 0) << metrics;
  } else {
    std::fprintf(stderr, "promtool not installed: the scrape's format is not checked\n");
  }
}

}  // namespace
