// Metrics: counters, gauges and histograms rendered in the Prometheus text exposition format
// (version 0.0.4), and Metrics, the catalogue of filesync's own families (`filesync_` prefix).
//
// Bounded labels. A family declares its labels when it is made: each Label has the values known
// then (their series exist, at 0, from the start) and the most distinct values it may ever
// take. A value outside a closed label, or beyond an open label's limit, is counted under
// "other". So no file name or server message can grow the series count: its bound is fixed
// when the family is made, whatever is passed later.
//
// Cheap on hot paths. `With(values)` finds (or makes) a series under the family's lock and
// returns a reference valid for the registry's life; take it once, keep it, and each Inc/Set/
// Observe is then one relaxed atomic operation:
//
//   ops::Counter& uploaded = metrics.uploaded_bytes.With({dir});   // once per dir
//   uploaded.Inc(bytes);                                            // per file
//
// Programming errors (a bad metric or label name, a counter not ending in _total, a duplicate
// name, the wrong number of label values) throw std::invalid_argument.
//
// Thread safety: every method may be called from any thread. Render() reads each value
// atomically, not all values at one instant; a histogram's _count is the sum of its buckets, so
// _count always equals the +Inf bucket.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/thread_annotations.h"

namespace filesync::ops {

// The value a series gets when its label value is not allowed.
inline constexpr std::string_view kOtherLabelValue = "other";

struct Label {
  std::string name;
  std::vector<std::string> values;  // known up front; rendered from the start
  std::size_t max_values = 0;       // distinct values ever allowed; values.size() when closed

  // Exactly these values (anything else counts as "other").
  static Label Closed(std::string name, std::vector<std::string> values);
  // Up to `max_values` distinct values, `initial` among them; later ones count as "other".
  static Label Open(std::string name, std::size_t max_values,
                    std::vector<std::string> initial = {});
};

class Counter {
 public:
  void Inc(double n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  [[nodiscard]] double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A gauge whose value is the age of an event: Touch() records "now"; it renders as the seconds
// since the last Touch(), computed when scraped; before the first Touch() it has no sample.
class AgeGauge {
 public:
  explicit AgeGauge(const std::function<double()>* now) : now_(now) {}
  void Touch() { touched_.store((*now_)(), std::memory_order_relaxed); }
  // Seconds since the last Touch(), or a negative number if never touched.
  [[nodiscard]] double Age() const;

 private:
  const std::function<double()>* now_;
  std::atomic<double> touched_{-1};
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, strictly increasing and finite (+Inf is implicit).
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double v);
  // Per bucket (not cumulative), the last one being +Inf.
  [[nodiscard]] std::vector<std::uint64_t> BucketCounts() const;
  [[nodiscard]] double Sum() const { return sum_.load(std::memory_order_relaxed); }
  [[nodiscard]] const std::vector<double>& bounds() const { return *bounds_; }

 private:
  const std::vector<double>* bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Appends one series' sample lines; `labels` is the rendered label set ("" or `a="x",b="y"`).
void RenderSample(std::string& out, const std::string& name, const std::string& labels,
                  const Counter& series);
void RenderSample(std::string& out, const std::string& name, const std::string& labels,
                  const Gauge& series);
void RenderSample(std::string& out, const std::string& name, const std::string& labels,
                  const AgeGauge& series);
void RenderSample(std::string& out, const std::string& name, const std::string& labels,
                  const Histogram& series);

// One metric family: its name, help, type, labels and series. Made by the Registry.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  [[nodiscard]] const std::string& name() const { return name_; }
  // Appends the HELP and TYPE lines and every series.
  void Render(std::string& out) const EXCLUDES(mu_);

 protected:
  FamilyBase(std::string name, std::string help, std::string type, std::vector<Label> labels);
  // The allowed label values for `values` (unknown or over the limit -> "other").
  std::vector<std::string> Resolve(const std::vector<std::string_view>& values) REQUIRES(mu_);
  // Every combination of the declared values, when each label has some (else none).
  [[nodiscard]] std::vector<std::vector<std::string>> InitialSeries() const;
  // `a="x",b="y"` for these values, escaped.
  [[nodiscard]] std::string LabelText(const std::vector<std::string>& values) const;
  // Appends every series' samples.
  virtual void RenderSeries(std::string& out) const EXCLUDES(mu_) = 0;

  mutable core::Mutex mu_;

 private:
  const std::string name_;
  const std::string help_;
  const std::string type_;
  const std::vector<Label> labels_;
  std::vector<std::set<std::string>> seen_ GUARDED_BY(mu_);  // per label: the values taken so far
};

template <typename Series>
class Family : public FamilyBase {
 public:
  using Make = std::function<std::unique_ptr<Series>()>;
  Family(std::string name, std::string help, std::string type, std::vector<Label> labels, Make make)
      : FamilyBase(std::move(name), std::move(help), std::move(type), std::move(labels)),
        make_(std::move(make)) {
    core::MutexLock lock(&mu_);
    for (auto& values : InitialSeries()) series_.emplace(std::move(values), make_());
  }

  // The series for these label values, one per declared label, in order.
  Series& With(std::initializer_list<std::string_view> values) {
    return With(std::vector<std::string_view>(values));
  }
  Series& With(const std::vector<std::string_view>& values) EXCLUDES(mu_) {
    core::MutexLock lock(&mu_);
    auto key = Resolve(values);
    auto it = series_.find(key);
    if (it == series_.end()) it = series_.emplace(std::move(key), make_()).first;
    return *it->second;
  }
  // Calls `f(label values, series)` for every series, in label order.
  template <typename F>
  void ForEach(F&& f) const EXCLUDES(mu_) {
    core::MutexLock lock(&mu_);
    for (const auto& [values, series] : series_) f(values, *series);
  }

 private:
  void RenderSeries(std::string& out) const EXCLUDES(mu_) override {
    core::MutexLock lock(&mu_);
    for (const auto& [values, series] : series_) {
      RenderSample(out, name(), LabelText(values), *series);
    }
  }

  Make make_;
  std::map<std::vector<std::string>, std::unique_ptr<Series>> series_ GUARDED_BY(mu_);
};

class Registry {
 public:
  // `now`: seconds since the epoch, for AgeGauge (tests inject a fake).
  explicit Registry(std::function<double()> now = nullptr);
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The name must end in "_total".
  Family<Counter>& AddCounter(std::string name, std::string help, std::vector<Label> labels = {})
      EXCLUDES(mu_);
  Family<Gauge>& AddGauge(std::string name, std::string help, std::vector<Label> labels = {})
      EXCLUDES(mu_);
  Family<AgeGauge>& AddAgeGauge(std::string name, std::string help, std::vector<Label> labels = {})
      EXCLUDES(mu_);
  // No label may be called "le".
  Family<Histogram>& AddHistogram(std::string name, std::string help, std::vector<double> bounds,
                                  std::vector<Label> labels = {}) EXCLUDES(mu_);

  // Every family in the order added, in the text exposition format.
  [[nodiscard]] std::string Render() const EXCLUDES(mu_);
  // The Content-Type of Render()'s output.
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void Reserve(const std::string& name, std::vector<std::string> sample_names) REQUIRES(mu_);

  const std::function<double()> now_;
  mutable core::Mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<std::vector<double>>> bounds_ GUARDED_BY(mu_);
  std::set<std::string> names_ GUARDED_BY(mu_);  // every sample name in use (histograms use three)
};

// --- the catalogue ----------------------------------------------------------------------------

// filesync's metric families, all made by the constructor. Label values the engine uses:
//   dir     a sync dir's label: its configured basename (DirLabels), distinct by configuration;
//           at most kMaxDirs distinct values over the process's life (reloads included)
//   result  passes: "complete", "incomplete", "interrupted", "config_error";
//           hash cache lookups: "hit", "miss"
//   kind    Status::KindName() of a failed action: "not_found", "conflict", "rate_limited",
//           "transient", "auth", "invalid_argument", "io", "changed", "cancelled", "permanent"
//   op      in-flight operations: "upload", "move", "delete", "create_folder"
//   route   the cloud request: a Dropbox API route ("files/list_folder", "files/upload", ...) or
//           "local/<operation>" for the local backend; at most kMaxRoutes distinct
//   code    an HTTP response's class: "2xx", "3xx", "4xx", "5xx", or "no_response"
//   reason  why a request was rate limited: Dropbox's too_many_requests or
//           too_many_write_operations, "http_503" for a 503 with Retry-After
//   batch   "upload_finish" (files per upload_session/finish_batch), "state_commit" (outcomes per
//           state store transaction)
struct Metrics {
  static constexpr std::size_t kMaxDirs = 64;
  static constexpr std::size_t kMaxRoutes = 48;

  // `dirs`: the configured sync dirs' labels (DirLabels(config.client_sync_dirs)).
  // `version`: filesync --version, for filesync_build_info.
  Metrics(const std::vector<std::string>& dirs, std::string_view version,
          std::function<double()> now = nullptr);

  // The label of each sync dir: its basename ("/home/me/Documents/" -> "Documents").
  static std::vector<std::string> DirLabels(const std::vector<std::filesystem::path>& dirs);

  Registry registry;

  Family<Gauge>& build_info;            // filesync_build_info{version} = 1
  Family<Counter>& passes;              // filesync_passes_total{result}
  Family<Histogram>& pass_duration;     // filesync_pass_duration_seconds
  Family<Gauge>& last_complete_pass;    // filesync_last_complete_pass_timestamp_seconds
  Family<Counter>& uploaded_files;      // filesync_uploaded_files_total{dir}
  Family<Counter>& uploaded_bytes;      // filesync_uploaded_bytes_total{dir}
  Family<Counter>& moved;               // filesync_moved_total{dir}
  Family<Counter>& deleted;             // filesync_deleted_total{dir}
  Family<Gauge>& queue_depth;           // filesync_queue_depth
  Family<Gauge>& in_flight;             // filesync_in_flight_operations{op}
  Family<Counter>& hashed_bytes;        // filesync_hashed_bytes_total{dir}
  Family<Counter>& hash_cache_lookups;  // filesync_hash_cache_lookups_total{dir,result}
  Family<Counter>& errors;              // filesync_errors_total{kind}
  Family<Counter>& http_requests;       // filesync_http_requests_total{route,code}
  Family<Counter>& http_rate_limited;   // filesync_http_rate_limited_total{route,reason}
  Family<Counter>& retry_after_wait;    // filesync_retry_after_wait_seconds_total{route}
  Family<Histogram>& batch_size;        // filesync_batch_size{batch}
  Family<AgeGauge>& cloud_listing_lag;  // filesync_cloud_listing_lag_seconds{dir}
  Family<Counter>& watcher_events;      // filesync_watcher_events_total{dir}
  Family<Counter>& watcher_overflows;   // filesync_watcher_overflows_total{dir}
  Family<Gauge>& bwlimit;               // filesync_bwlimit_bytes_per_second
  Family<Counter>& bwlimit_wait;        // filesync_bwlimit_wait_seconds_total

  // Sums over every dir, for the status page's throughput history.
  [[nodiscard]] double UploadedBytesTotal() const;
  [[nodiscard]] double HashedBytesTotal() const;
};

}  // namespace filesync::ops
