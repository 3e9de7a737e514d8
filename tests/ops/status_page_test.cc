// The status page (issue 15): served by the real StatusServer on a real socket and loaded in
// headless Chromium, which runs its script; the DOM must show the sync dir and the completed
// pass taken from /status, and a screenshot is kept as a test artifact
// (<build dir>/status-page.png). Plus ThroughputHistory, the chart's data.
#include "ops/status_page.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "ops/metrics.h"
#include "ops/status_server.h"

namespace filesync::ops {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using SysClock = std::chrono::system_clock;

// --- ThroughputHistory -----------------------------------------------------------------------

SysClock::time_point At(double unix_s) {
  return SysClock::time_point(
      std::chrono::duration_cast<SysClock::duration>(std::chrono::duration<double>(unix_s)));
}

double Sum(const nlohmann::json& array) {
  double sum = 0;
  for (const auto& v : array) sum += v.get<double>();
  return sum;
}

TEST(ThroughputHistory, EmptyBeforeTheFirstRecord) {
  ThroughputHistory h;
  EXPECT_TRUE(h.ToJson()["sent_bytes"].empty());
  h.Record(At(1'700'000'010), 500, 0);  // a baseline, no rate yet
  const nlohmann::json j = h.ToJson();
  ASSERT_EQ(j["sent_bytes"].size(), 120u);
  EXPECT_EQ(Sum(j["sent_bytes"]), 0);
}

TEST(ThroughputHistory, SpreadsBytesOverTheSlotsBetweenRecords) {
  ThroughputHistory h(seconds(30), 120);
  const double t0 = 1'700'000'010.0 - std::fmod(1'700'000'010.0, 30);  // a slot boundary
  h.Record(At(t0), 1000, 0);
  h.Record(At(t0 + 60), 7000, 600);  // 6000 bytes over two 30 s slots
  const nlohmann::json j = h.ToJson();
  EXPECT_EQ(j["interval_s"], 30);
  ASSERT_EQ(j["sent_bytes"].size(), 120u);
  EXPECT_EQ(j["sent_bytes"][117], 0);
  EXPECT_EQ(j["sent_bytes"][118], 3000);
  EXPECT_EQ(j["sent_bytes"][119], 3000) << "the slot just begun at t0 + 60 is not shown yet";
  EXPECT_EQ(j["hashed_bytes"][119], 300);
  EXPECT_EQ(j["end_unix_ms"].get<std::int64_t>(), static_cast<std::int64_t>((t0 + 60) * 1000));
}

TEST(ThroughputHistory, KeepsOnlyTheLastHourAndSurvivesResets) {
  ThroughputHistory h(seconds(30), 120);
  const double t0 = 1'700'000'010;  // a slot boundary
  h.Record(At(t0), 0, 0);
  h.Record(At(t0 + 7200), 7200, 0);  // 1 byte/s for two hours, recorded once
  EXPECT_NEAR(Sum(h.ToJson()["sent_bytes"]), 3600, 31) << "only the last hour";
  h.Record(At(t0 + 7230), 10, 0);  // the total went down: a reset, not negative bytes
  h.Record(At(t0 + 7260), 40, 0);
  const nlohmann::json j = h.ToJson();
  for (const auto& v : j["sent_bytes"]) EXPECT_GE(v.get<double>(), 0);
  EXPECT_NEAR(j["sent_bytes"][119].get<double>(), 30, 1);
}

// --- the page in Chromium ----------------------------------------------------------------------

// A /status a daemon would give after one completed pass of one dir (status_page.h).
std::string FakeStatus() {
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(SysClock::now().time_since_epoch())
          .count();
  nlohmann::json root = {{"local_dir", "/srv/photos-7f3a"},
                         {"cloud_path", "/filesync/photos-7f3a"},
                         {"uploaded", 12},
                         {"moved", 1},
                         {"deleted", 0},
                         {"failed", 0},
                         {"pending", 0},
                         {"bytes_uploaded", 3250585}};
  nlohmann::json pass = {{"converged", true},
                         {"interrupted", false},
                         {"started_unix_ms", now_ms - 125000},
                         {"finished_unix_ms", now_ms - 120000},
                         {"duration_ms", 5000},
                         {"uploaded", 12},
                         {"moved", 1},
                         {"deleted", 0},
                         {"failed", 0},
                         {"bytes_uploaded", 3250585}};
  ThroughputHistory history;
  const auto now = SysClock::now();
  double sent = 0;
  for (int minute = 60; minute >= 0; --minute) {  // a rate that rises and falls over the hour
    sent += 60 * 1e5 * (1.2 + std::sin(minute / 6.0));
    history.Record(now - std::chrono::minutes(minute), sent, 1.8 * sent);
  }
  nlohmann::json status = {
      {"version", "0.1.0"},
      {"now_unix_ms", now_ms},
      {"running", {{"pid", 4242}, {"command", "run"}}},
      {"daemon_running", true},
      {"converged", true},
      {"pending", 0},
      {"current_pass", nullptr},
      {"last_pass",
       {{"converged", true},
        {"interrupted", false},
        {"finished_unix_ms", now_ms - 120000},
        {"duration_ms", 5000},
        {"roots", nlohmann::json::array({root})}}},
      {"recent_passes", nlohmann::json::array({pass})},
      {"in_flight", nlohmann::json::array()},
      {"errors", nlohmann::json::array()},
      {"roots", nlohmann::json::array({{{"local_dir", "/srv/photos-7f3a"},
                                        {"cloud_path", "/filesync/photos-7f3a"},
                                        {"tracked", 1234}}})},
      {"throughput", history.ToJson()}};
  return status.dump();
}

struct ShellResult {
  int status = -1;
  std::string out;
};

ShellResult Shell(const std::string& command) {
  ShellResult r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.out.append(buffer, n);
  r.status = ::pclose(pipe);
  return r;
}

class StatusPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Shell("command -v chromium").status != 0) {
      GTEST_SKIP() << "chromium not installed (Debian package chromium; scripts/setup.sh --test)";
    }
    char pattern[] = "/tmp/filesync_status_page_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    profile_ = pattern;
    server_ = std::make_unique<StatusServer>(
        StatusServerOptions{.listen = {.host = "127.0.0.1", .port = 0, .loopback = true}},
        metrics_.registry, [] { return FakeStatus(); });
    const Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    url_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/";
  }
  void TearDown() override {
    if (server_) server_->Stop();
    std::error_code ec;
    if (!profile_.empty()) fs::remove_all(profile_, ec);
  }

  // Chromium, headless, with a fresh profile and nothing fetched but the page. The virtual time
  // budget lets the page's script fetch /status and render before the DOM is taken, and ends
  // before its next refresh (3 s) could be cut short by the end of the budget.
  ShellResult Chromium(const std::string& action) {
    return Shell(
        "timeout 120 chromium --headless --no-sandbox --disable-gpu "
        "--disable-background-networking --disable-component-update --disable-sync "
        "--no-first-run --user-data-dir=" +
        profile_.string() + " --virtual-time-budget=2500 " + action + " " + url_ + " 2>/dev/null");
  }

  Metrics metrics_{{"photos-7f3a"}, "0.1.0"};
  std::unique_ptr<StatusServer> server_;
  fs::path profile_;
  std::string url_;
};

TEST_F(StatusPageTest, ShowsTheDirAndTheCompletedPassFromStatus) {
  // Served as is, the page holds neither: they can only come from its fetch of /status.
  EXPECT_EQ(std::string(kStatusPage).find("photos-7f3a"), std::string::npos);

  const ShellResult dom = Chromium("--dump-dom");
  ASSERT_EQ(dom.status, 0) << dom.out;
  const std::string& html = dom.out;
  SCOPED_TRACE(html.substr(0, 20000));
  EXPECT_NE(html.find("<td class=\"path\">/srv/photos-7f3a</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"path\">/filesync/photos-7f3a</td>"), std::string::npos);
  EXPECT_NE(html.find("<tr class=\"dir\" data-state=\"in-sync\">"), std::string::npos)
      << "the dir is shown in sync";
  EXPECT_NE(html.find("<td class=\"result\"><span class=\"badge complete\">complete</span></td>"),
            std::string::npos)
      << "the completed pass is listed";
  EXPECT_NE(html.find("id=\"overall\" class=\"badge in-sync\">in sync<"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos) << "the throughput chart is drawn";
  EXPECT_NE(html.find("v0.1.0"), std::string::npos);
  EXPECT_NE(html.find("id=\"conn\" class=\"\">updated "), std::string::npos)
      << "the page's last fetch of /status succeeded";
}

TEST_F(StatusPageTest, KeepsAScreenshot) {
  const fs::path shot = fs::path(FILESYNC_BUILD_DIR) / "status-page.png";
  fs::remove(shot);
  const ShellResult r = Chromium("--window-size=1200,900 --screenshot=" + shot.string());
  ASSERT_EQ(r.status, 0) << r.out;
  ASSERT_TRUE(fs::exists(shot));
  std::ifstream in(shot, std::ios::binary);
  char magic[8] = {};
  in.read(magic, sizeof magic);
  EXPECT_EQ(std::string(magic, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(fs::file_size(shot), 10000u) << "a blank page would be much smaller";
  std::printf("status page screenshot: %s\n", shot.c_str());
}

}  // namespace
}  // namespace filesync::ops
