// The metrics registry against the Prometheus text exposition format (0.0.4,
// prometheus.io/docs/instrumenting/exposition_formats) and issue 15's metric list: exact
// rendering, escaping, histogram buckets, bounded labels, concurrent increments, the catalogue,
// and `promtool check metrics` on a populated catalogue.
#include "ops/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace filesync::ops {
namespace {

namespace fs = std::filesystem;

std::size_t CountLines(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.starts_with(prefix) ? 1u : 0u;
  return n;
}

TEST(MetricsFormat, RendersHelpTypeAndSamplesExactly) {
  Registry r;
  auto& requests = r.AddCounter("app_requests_total", "Requests served.",
                                {Label::Closed("code", {"2xx", "5xx"})});
  auto& depth = r.AddGauge("app_queue_depth", "Items waiting.");
  requests.With({"2xx"}).Inc(3);
  depth.With({}).Set(-2.5);
  EXPECT_EQ(r.Render(),
            "# HELP app_requests_total Requests served.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{code=\"2xx\"} 3\n"
            "app_requests_total{code=\"5xx\"} 0\n"
            "# HELP app_queue_depth Items waiting.\n"
            "# TYPE app_queue_depth gauge\n"
            "app_queue_depth -2.5\n");
}

TEST(MetricsFormat, EscapesHelpAndLabelValues) {
  Registry r;
  auto& c = r.AddCounter("esc_total", "back\\slash and\nnewline \"quoted\"", {Label::Open("v", 4)});
  c.With({"a\"b\\c\nd"}).Inc();
  const std::string text = r.Render();
  // HELP escapes backslash and newline only; label values also the double quote.
  EXPECT_NE(text.find("# HELP esc_total back\\\\slash and\\nnewline \"quoted\"\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << "a raw newline leaked:\n" << text;
}

TEST(MetricsFormat, NumbersAreExactIntegersOrShortestFloats) {
  Registry r;
  auto& g = r.AddGauge("num", "n", {Label::Open("k", 8)});
  g.With({"big"}).Set(123456789012345.0);
  g.With({"frac"}).Set(0.25);
  g.With({"inf"}).Set(std::numeric_limits<double>::infinity());
  g.With({"nan"}).Set(std::numeric_limits<double>::quiet_NaN());
  const std::string text = r.Render();
  EXPECT_NE(text.find("num{k=\"big\"} 123456789012345\n"), std::string::npos) << text;
  EXPECT_NE(text.find("num{k=\"frac\"} 0.25\n"), std::string::npos) << text;
  EXPECT_NE(text.find("num{k=\"inf\"} +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("num{k=\"nan\"} NaN\n"), std::string::npos) << text;
}

TEST(MetricsFormat, HistogramHasCumulativeBucketsInfSumAndCount) {
  Registry r;
  auto& h = r.AddHistogram("lat_seconds", "Latency.", {0.5, 1, 5}, {Label::Closed("route", {"a"})});
  Histogram& a = h.With({"a"});
  for (double v : {0.1, 0.5, 0.7, 1.0, 3.0, 10.0}) a.Observe(v);
  const std::string text = r.Render();
  // le is "less than or equal": 0.5 falls in the 0.5 bucket, 1.0 in the 1 bucket.
  EXPECT_NE(text.find("# TYPE lat_seconds histogram\n"
                      "lat_seconds_bucket{route=\"a\",le=\"0.5\"} 2\n"
                      "lat_seconds_bucket{route=\"a\",le=\"1\"} 4\n"
                      "lat_seconds_bucket{route=\"a\",le=\"5\"} 5\n"
                      "lat_seconds_bucket{route=\"a\",le=\"+Inf\"} 6\n"
                      "lat_seconds_sum{route=\"a\"} 15.3\n"
                      "lat_seconds_count{route=\"a\"} 6\n"),
            std::string::npos)
      << text;
}

TEST(MetricsFormat, UnlabelledFamiliesHaveTheirSampleFromTheStart) {
  Registry r;
  r.AddCounter("starts_total", "s");
  r.AddHistogram("empty_seconds", "e", {1});
  const std::string text = r.Render();
  EXPECT_NE(text.find("\nstarts_total 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("empty_seconds_bucket{le=\"+Inf\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("empty_seconds_count 0\n"), std::string::npos) << text;
}

TEST(MetricsLabels, ClosedLabelCountsUnknownValuesAsOther) {
  Registry r;
  auto& c = r.AddCounter("kinds_total", "k", {Label::Closed("kind", {"io", "auth"})});
  c.With({"io"}).Inc();
  c.With({"/home/alice/secret-plans.txt"}).Inc();
  c.With({"something else"}).Inc();
  const std::string text = r.Render();
  EXPECT_NE(text.find("kinds_total{kind=\"other\"} 2\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("secret-plans"), std::string::npos) << text;
  EXPECT_EQ(CountLines(text, "kinds_total{"), 3u) << text;
}

TEST(MetricsLabels, OpenLabelIsBoundedWhateverIsPassed) {
  Registry r;
  auto& c = r.AddCounter("files_total", "f",
                         {Label::Open("dir", 3, {"Documents"}), Label::Closed("r", {"x"})});
  for (int i = 0; i < 10000; ++i) c.With({"file-" + std::to_string(i) + ".txt", "x"}).Inc();
  c.With({"Documents", "x"}).Inc();
  const std::string text = r.Render();
  // Documents (declared) + the first two new values, then everything else is "other".
  EXPECT_EQ(CountLines(text, "files_total{"), 4u) << text;
  EXPECT_NE(text.find("files_total{dir=\"Documents\",r=\"x\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("files_total{dir=\"file-0.txt\",r=\"x\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("files_total{dir=\"other\",r=\"x\"} 9998\n"), std::string::npos) << text;
}

TEST(MetricsLabels, HandlesAreStableAndShared) {
  Registry r;
  auto& c = r.AddCounter("h_total", "h", {Label::Open("k", 100)});
  Counter& first = c.With({"a"});
  for (int i = 0; i < 50; ++i) c.With({"k" + std::to_string(i)});  // grow the map
  EXPECT_EQ(&first, &c.With({"a"}));
  first.Inc(2);
  EXPECT_EQ(c.With({"a"}).Value(), 2);
}

TEST(MetricsLabels, InvalidUtf8ValueIsMadeValid) {
  Registry r;
  auto& c = r.AddCounter("u_total", "u", {Label::Open("dir", 2)});
  c.With({std::string("caf\xe9")}).Inc();
  EXPECT_NE(r.Render().find("u_total{dir=\"caf?\"} 1\n"), std::string::npos) << r.Render();
}

TEST(MetricsMisuse, BadDeclarationsAndCallsThrow) {
  Registry r;
  EXPECT_THROW(r.AddCounter("no_suffix", "x"), std::invalid_argument);
  EXPECT_THROW(r.AddGauge("9starts_with_digit", "x"), std::invalid_argument);
  EXPECT_THROW(r.AddGauge("has-dash", "x"), std::invalid_argument);
  EXPECT_THROW(r.AddGauge("ok_name", "x", {Label::Closed("bad-label", {"a"})}),
               std::invalid_argument);
  EXPECT_THROW(r.AddGauge("ok_name2", "x", {Label::Closed("__reserved", {"a"})}),
               std::invalid_argument);
  EXPECT_THROW(r.AddHistogram("h", "x", {1}, {Label::Closed("le", {"a"})}), std::invalid_argument);
  EXPECT_THROW(r.AddHistogram("h2", "x", {2, 1}), std::invalid_argument);
  r.AddHistogram("lat", "x", {1});
  EXPECT_THROW(r.AddGauge("lat_count", "x"), std::invalid_argument);  // a histogram's sample
  EXPECT_THROW(r.AddHistogram("lat", "x", {1}), std::invalid_argument);
  auto& g = r.AddGauge("two_labels", "x", {Label::Open("a", 2), Label::Open("b", 2)});
  EXPECT_THROW(g.With({"only one"}), std::invalid_argument);
}

TEST(MetricsAge, RendersSecondsSinceTouchAndNothingBefore) {
  double now = 1000;
  Registry r([&now] { return now; });
  auto& lag = r.AddAgeGauge("lag_seconds", "l", {Label::Closed("dir", {"a", "b"})});
  lag.With({"a"}).Touch();
  now = 1012.5;
  const std::string text = r.Render();
  EXPECT_NE(text.find("lag_seconds{dir=\"a\"} 12.5\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("dir=\"b\""), std::string::npos) << "never touched: no sample\n" << text;
}

TEST(MetricsConcurrency, IncrementsFromManyThreadsAreAllCounted) {
  Registry r;
  auto& c = r.AddCounter("c_total", "c", {Label::Open("t", 16)});
  auto& h = r.AddHistogram("h_seconds", "h", {0.5});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::atomic<bool> rendering{true};
  std::thread renderer([&] {
    while (rendering) EXPECT_FALSE(r.Render().empty());
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& shared = c.With({"shared"});
      Counter& own = c.With({"t" + std::to_string(t)});
      Histogram& hist = h.With({});
      for (int i = 0; i < kPerThread; ++i) {
        shared.Inc();
        own.Inc(2);
        hist.Observe(i % 2 == 0 ? 0.25 : 1);
      }
    });
  }
  for (auto& t : threads) t.join();
  rendering = false;
  renderer.join();
  EXPECT_EQ(c.With({"shared"}).Value(), kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(c.With({"t" + std::to_string(t)}).Value(), 2 * kPerThread);
  const std::string text = r.Render();
  EXPECT_NE(text.find("h_seconds_bucket{le=\"0.5\"} 400000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_count 800000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_sum 500000\n"), std::string::npos) << text;
}

// --- the catalogue --------------------------------------------------------------------------

// Every family issue 15 lists, fed as the engine would.
std::unique_ptr<Metrics> Populated() {
  auto metrics = std::make_unique<Metrics>(std::vector<std::string>{"Documents", "Photos"}, "0.1.0",
                                           [] { return 1700000000.0; });
  Metrics& m = *metrics;
  m.passes.With({"complete"}).Inc(3);
  m.passes.With({"interrupted"}).Inc();
  m.pass_duration.With({}).Observe(1.25);
  m.last_complete_pass.With({}).Set(1699999990);
  m.uploaded_files.With({"Documents"}).Inc(12);
  m.uploaded_bytes.With({"Documents"}).Inc(3250585);
  m.moved.With({"Photos"}).Inc();
  m.deleted.With({"Documents"}).Inc(2);
  m.queue_depth.With({}).Set(5);
  m.in_flight.With({"upload"}).Set(4);
  m.hashed_bytes.With({"Photos"}).Inc(1 << 20);
  m.hash_cache_lookups.With({"Photos", "hit"}).Inc(900);
  m.hash_cache_lookups.With({"Photos", "miss"}).Inc(12);
  m.errors.With({"io"}).Inc();
  m.http_requests.With({"files/upload", "2xx"}).Inc(40);
  m.http_requests.With({"files/upload", "4xx"}).Inc(2);
  m.http_rate_limited.With({"files/upload", "too_many_write_operations"}).Inc(2);
  m.retry_after_wait.With({"files/upload"}).Inc(1.5);
  m.batch_size.With({"upload_finish"}).Observe(37);
  m.cloud_listing_lag.With({"Documents"}).Touch();
  m.watcher_events.With({"Documents"}).Inc(100);
  m.watcher_overflows.With({"Documents"}).Inc();
  m.bwlimit.With({}).Set(8 << 20);
  m.bwlimit_wait.With({}).Inc(0.75);
  return metrics;
}

TEST(MetricsCatalogue, HasEveryFamilyOfTheIssueWithThePrefix) {
  const auto metrics = Populated();
  const Metrics& m = *metrics;
  const std::string text = m.registry.Render();
  for (const char* family :
       {"filesync_passes_total", "filesync_pass_duration_seconds", "filesync_uploaded_files_total",
        "filesync_uploaded_bytes_total", "filesync_moved_total", "filesync_deleted_total",
        "filesync_queue_depth", "filesync_in_flight_operations", "filesync_hashed_bytes_total",
        "filesync_hash_cache_lookups_total", "filesync_errors_total",
        "filesync_http_requests_total", "filesync_http_rate_limited_total",
        "filesync_retry_after_wait_seconds_total", "filesync_batch_size",
        "filesync_cloud_listing_lag_seconds", "filesync_watcher_events_total",
        "filesync_watcher_overflows_total"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("#")) {
      EXPECT_TRUE(line.starts_with("filesync_")) << line;
    }
  }
  EXPECT_NE(text.find("filesync_uploaded_bytes_total{dir=\"Documents\"} 3250585\n"),
            std::string::npos);
  EXPECT_NE(text.find("filesync_uploaded_bytes_total{dir=\"Photos\"} 0\n"), std::string::npos)
      << "configured dirs exist from the start";
  EXPECT_NE(text.find("filesync_hash_cache_lookups_total{dir=\"Photos\",result=\"hit\"} 900\n"),
            std::string::npos);
  EXPECT_NE(text.find("filesync_build_info{version=\"0.1.0\"} 1\n"), std::string::npos);
  EXPECT_EQ(m.UploadedBytesTotal(), 3250585);
  EXPECT_EQ(m.HashedBytesTotal(), 1 << 20);
}

TEST(MetricsCatalogue, DirLabelsAreBasenames) {
  EXPECT_EQ(Metrics::DirLabels({"/home/me/Documents", "/srv/photos/", "/a/./b"}),
            (std::vector<std::string>{"Documents", "photos", "b"}));
}

TEST(MetricsCatalogue, PromtoolAcceptsThePopulatedCatalogue) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/setup.sh --test)";
  }
  const auto m = Populated();
  const fs::path file =
      fs::temp_directory_path() / ("filesync-metrics-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(file) << m->registry.Render();
  const std::string command = "promtool check metrics < " + file.string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  fs::remove(file);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "");
}

// promtool is the referee above; this checks it can fail on what it is meant to catch.
TEST(MetricsCatalogue, PromtoolRejectsACounterWithoutTotal) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/setup.sh --test)";
  }
  const int status = std::system(
      "printf '# HELP x a\\n# TYPE x counter\\nx 1\\n' | promtool check metrics >/dev/null 2>&1");
  EXPECT_NE(status, 0);
}

}  // namespace
}  // namespace filesync::ops
