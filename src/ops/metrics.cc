// How: a family keeps its series in a map from resolved label values to a heap-allocated
// series, so a reference handed out by With() never moves. Label resolution tracks, per label,
// the values taken so far; a closed label starts with all of its values taken. Rendering
// follows https://prometheus.io/docs/instrumenting/exposition_formats/ (text format 0.0.4):
// HELP text escapes backslash and newline, label values also the double quote; histograms
// print cumulative _bucket lines with an "le" label, then _sum and _count.
#include "ops/metrics.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "util/unicode.h"

namespace filesync::ops {
namespace {

bool IsNameStart(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

bool IsValidName(std::string_view name, bool colon) {
  if (name.empty() || !IsNameStart(name[0], colon)) return false;
  return std::all_of(name.begin(), name.end(),
                     [colon](char c) { return IsNameStart(c, colon) || (c >= '0' && c <= '9'); });
}

[[noreturn]] void Misuse(const std::string& what) {
  throw std::invalid_argument("metrics: " + what);
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  constexpr double kExactInteger = 9007199254740992.0;  // 2^53
  if (v == std::floor(v) && std::fabs(v) < kExactInteger) {
    return std::to_string(static_cast<long long>(v));
  }
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, result.ptr);
}

std::string EscapeHelp(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeLabelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"') {
      out += "\\\"";
    } else {
      out += EscapeHelp(std::string_view(&c, 1));
    }
  }
  return out;
}

// Invalid UTF-8 cannot be exposed; its non-ASCII bytes become '?'.
std::string ValidLabelValue(std::string_view value) {
  std::string out(value);
  if (!unicode::IsValidUtf8(out)) {
    for (char& c : out) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
  }
  return out;
}

void AppendSample(std::string& out, const std::string& name, const std::string& labels,
                  double value) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += " " + FormatValue(value) + "\n";
}

double SystemNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Label Label::Closed(std::string name, std::vector<std::string> values) {
  const std::size_t n = values.size();
  return {std::move(name), std::move(values), n};
}

Label Label::Open(std::string name, std::size_t max_values, std::vector<std::string> initial) {
  if (initial.size() > max_values) Misuse("label " + name + ": more initial values than allowed");
  return {std::move(name), std::move(initial), max_values};
}

double AgeGauge::Age() const {
  const double touched = touched_.load(std::memory_order_relaxed);
  if (touched < 0) return -1;
  return std::max(0.0, (*now_)() - touched);
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), counts_(new std::atomic<std::uint64_t>[bounds->size() + 1]) {
  for (std::size_t i = 0; i <= bounds_->size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::BucketCounts() const {
  std::vector<std::uint64_t> out(bounds_->size() + 1);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

void RenderSample(std::string& out, const std::string& name, const std::string& labels,
                  const Counter& series) {
  AppendSample(out, name, labels, series.Value());
}

void RenderSample(std::string& out, const std::string& name, const std::string& labels,
                  const Gauge& series) {
  AppendSample(out, name, labels, series.Value());
}

void RenderSample(std::string& out, const std::string& name, const std::string& labels,
                  const AgeGauge& series) {
  const double age = series.Age();
  if (age >= 0) AppendSample(out, name, labels, std::round(age * 1000) / 1000);  // to the ms
}

void RenderSample(std::string& out, const std::string& name, const std::string& labels,
                  const Histogram& series) {
  const std::vector<std::uint64_t> counts = series.BucketCounts();
  const std::string prefix = labels.empty() ? "" : labels + ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    const std::string le = i < series.bounds().size() ? FormatValue(series.bounds()[i]) : "+Inf";
    AppendSample(out, name + "_bucket", prefix + "le=\"" + le + "\"",
                 static_cast<double>(cumulative));
  }
  AppendSample(out, name + "_sum", labels, series.Sum());
  AppendSample(out, name + "_count", labels, static_cast<double>(cumulative));
}

// --- FamilyBase -------------------------------------------------------------------------------

FamilyBase::FamilyBase(std::string name, std::string help, std::string type,
                       std::vector<Label> labels)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(std::move(type)),
      labels_(std::move(labels)) {
  if (!IsValidName(name_, true)) Misuse("invalid metric name \"" + name_ + "\"");
  std::set<std::string> names;
  for (const Label& label : labels_) {
    if (!IsValidName(label.name, false) || label.name.starts_with("__")) {
      Misuse(name_ + ": invalid label name \"" + label.name + "\"");
    }
    if (!names.insert(label.name).second) Misuse(name_ + ": label " + label.name + " twice");
    if (type_ == "histogram" && label.name == "le") Misuse(name_ + ": a histogram label \"le\"");
    std::set<std::string> values;
    for (const std::string& v : label.values) values.insert(ValidLabelValue(v));
    seen_.push_back(std::move(values));
  }
}

std::vector<std::string> FamilyBase::Resolve(const std::vector<std::string_view>& values) {
  if (values.size() != labels_.size()) {
    Misuse(name_ + ": " + std::to_string(values.size()) + " label values for " +
           std::to_string(labels_.size()) + " labels");
  }
  std::vector<std::string> out;
  out.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::string value = ValidLabelValue(values[i]);
    std::set<std::string>& seen = seen_[i];
    if (value != kOtherLabelValue && !seen.contains(value)) {
      if (seen.size() < labels_[i].max_values) {
        seen.insert(value);
      } else {
        value = std::string(kOtherLabelValue);
      }
    }
    out.push_back(std::move(value));
  }
  return out;
}

std::vector<std::vector<std::string>> FamilyBase::InitialSeries() const {
  std::vector<std::vector<std::string>> combinations = {{}};
  for (const Label& label : labels_) {
    std::vector<std::vector<std::string>> next;
    for (const auto& prefix : combinations) {
      for (const std::string& value : label.values) {
        next.push_back(prefix);
        next.back().push_back(ValidLabelValue(value));
      }
    }
    combinations = std::move(next);
  }
  return combinations;
}

std::string FamilyBase::LabelText(const std::vector<std::string>& values) const {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ",";
    out += labels_[i].name + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  return out;
}

void FamilyBase::Render(std::string& out) const {
  out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  out += "# TYPE " + name_ + " " + type_ + "\n";
  RenderSeries(out);
}

// --- Registry ---------------------------------------------------------------------------------

Registry::Registry(std::function<double()> now) : now_(now ? std::move(now) : SystemNow) {}

void Registry::Reserve(const std::string& name, std::vector<std::string> sample_names) {
  for (const std::string& n : sample_names) {
    if (names_.contains(n)) Misuse("metric name " + n + " (of " + name + ") is already in use");
  }
  names_.insert(sample_names.begin(), sample_names.end());
}

Family<Counter>& Registry::AddCounter(std::string name, std::string help,
                                      std::vector<Label> labels) {
  if (!name.ends_with("_total")) Misuse("counter " + name + " must end in _total");
  core::MutexLock lock(&mu_);
  Reserve(name, {name});
  auto family = std::make_unique<Family<Counter>>(std::move(name), std::move(help), "counter",
                                                  std::move(labels),
                                                  [] { return std::make_unique<Counter>(); });
  auto& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help, std::vector<Label> labels) {
  core::MutexLock lock(&mu_);
  Reserve(name, {name});
  auto family =
      std::make_unique<Family<Gauge>>(std::move(name), std::move(help), "gauge", std::move(labels),
                                      [] { return std::make_unique<Gauge>(); });
  auto& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

Family<AgeGauge>& Registry::AddAgeGauge(std::string name, std::string help,
                                        std::vector<Label> labels) {
  core::MutexLock lock(&mu_);
  Reserve(name, {name});
  const std::function<double()>* now = &now_;
  auto family = std::make_unique<Family<AgeGauge>>(
      std::move(name), std::move(help), "gauge", std::move(labels),
      [now] { return std::make_unique<AgeGauge>(now); });
  auto& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help,
                                          std::vector<double> bounds, std::vector<Label> labels) {
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      Misuse("histogram " + name + ": bounds must be finite and strictly increasing");
    }
  }
  core::MutexLock lock(&mu_);
  Reserve(name, {name, name + "_bucket", name + "_sum", name + "_count"});
  bounds_.push_back(std::make_unique<std::vector<double>>(std::move(bounds)));
  const std::vector<double>* kept = bounds_.back().get();
  auto family = std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), "histogram", std::move(labels),
      [kept] { return std::make_unique<Histogram>(kept); });
  auto& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

std::string Registry::Render() const {
  core::MutexLock lock(&mu_);
  std::string out;
  for (const auto& family : families_) family->Render(out);
  return out;
}

// --- the catalogue ----------------------------------------------------------------------------

namespace {

Label Dirs(const std::vector<std::string>& dirs) {
  std::vector<std::string> initial(
      dirs.begin(),
      dirs.begin() + static_cast<std::ptrdiff_t>(std::min(dirs.size(), Metrics::kMaxDirs)));
  return Label::Open("dir", Metrics::kMaxDirs, std::move(initial));
}

Label Routes() { return Label::Open("route", Metrics::kMaxRoutes); }

}  // namespace

Metrics::Metrics(const std::vector<std::string>& dirs, std::string_view version,
                 std::function<double()> now)
    : registry(std::move(now)),
      build_info(registry.AddGauge("filesync_build_info",
                                   "Always 1; the version label is filesync --version.",
                                   {Label::Closed("version", {std::string(version)})})),
      passes(registry.AddCounter(
          "filesync_passes_total",
          "Sync passes finished, by result: complete (converged), incomplete (some dir not "
          "synced or some action failed), interrupted (a stop), config_error.",
          {Label::Closed("result", {"complete", "incomplete", "interrupted", "config_error"})})),
      pass_duration(registry.AddHistogram("filesync_pass_duration_seconds",
                                          "Wall time of each sync pass.",
                                          {0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400})),
      last_complete_pass(
          registry.AddGauge("filesync_last_complete_pass_timestamp_seconds",
                            "Unix time at which the last complete (converged) pass ended; 0: none "
                            "yet since start.")),
      uploaded_files(registry.AddCounter("filesync_uploaded_files_total",
                                         "Files uploaded (created or replaced in the cloud).",
                                         {Dirs(dirs)})),
      uploaded_bytes(registry.AddCounter("filesync_uploaded_bytes_total",
                                         "Bytes of the files uploaded.", {Dirs(dirs)})),
      moved(registry.AddCounter("filesync_moved_total",
                                "Files and folders moved or renamed in the cloud.", {Dirs(dirs)})),
      deleted(registry.AddCounter("filesync_deleted_total",
                                  "Files and folders deleted from the cloud.", {Dirs(dirs)})),
      queue_depth(
          registry.AddGauge("filesync_queue_depth", "Planned actions waiting for a worker.")),
      in_flight(registry.AddGauge(
          "filesync_in_flight_operations", "Actions a worker is carrying out now, by operation.",
          {Label::Closed("op", {"upload", "move", "delete", "create_folder"})})),
      hashed_bytes(registry.AddCounter("filesync_hashed_bytes_total",
                                       "Bytes read to compute content hashes.", {Dirs(dirs)})),
      hash_cache_lookups(registry.AddCounter(
          "filesync_hash_cache_lookups_total",
          "Content hash lookups in the hash cache: hit (reused) or miss (hashed again).",
          {Dirs(dirs), Label::Closed("result", {"hit", "miss"})})),
      errors(registry.AddCounter(
          "filesync_errors_total", "Failed actions and cloud requests, by kind of error.",
          {Label::Closed("kind",
                         {"not_found", "conflict", "rate_limited", "transient", "auth",
                          "invalid_argument", "io", "changed", "cancelled", "permanent"})})),
      http_requests(registry.AddCounter(
          "filesync_http_requests_total",
          "Requests to the cloud, by route and response class (no_response: no HTTP answer).",
          {Routes(), Label::Closed("code", {"2xx", "3xx", "4xx", "5xx", "no_response"})})),
      http_rate_limited(registry.AddCounter(
          "filesync_http_rate_limited_total",
          "Requests the cloud refused for now (HTTP 429, or 503 with Retry-After), by route and "
          "reason.",
          {Routes(), Label::Closed("reason", {"too_many_requests", "too_many_write_operations",
                                              "http_503"})})),
      retry_after_wait(registry.AddCounter(
          "filesync_retry_after_wait_seconds_total",
          "Seconds spent waiting because the cloud asked for it (Retry-After), by route.",
          {Routes()})),
      batch_size(registry.AddHistogram(
          "filesync_batch_size",
          "Entries per batch: files per upload_session/finish_batch (upload_finish), outcomes "
          "per state store transaction (state_commit).",
          {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
          {Label::Closed("batch", {"upload_finish", "state_commit"})})),
      cloud_listing_lag(registry.AddAgeGauge(
          "filesync_cloud_listing_lag_seconds",
          "Seconds since the dir's view of the cloud was last brought up to date by a "
          "successful listing.",
          {Dirs(dirs)})),
      watcher_events(registry.AddCounter("filesync_watcher_events_total",
                                         "File system change events received.", {Dirs(dirs)})),
      watcher_overflows(registry.AddCounter(
          "filesync_watcher_overflows_total",
          "Times the change-event queue overflowed (the next pass rescans the dir).",
          {Dirs(dirs)})),
      bwlimit(registry.AddGauge("filesync_bwlimit_bytes_per_second",
                                "The bandwidth limit in force (bwlimit); 0: none.")),
      bwlimit_wait(registry.AddCounter(
          "filesync_bwlimit_wait_seconds_total",
          "Seconds transfers spent waiting for the bandwidth limit (summed over workers).")) {
  build_info.With({version}).Set(1);
}

std::vector<std::string> Metrics::DirLabels(const std::vector<std::filesystem::path>& dirs) {
  std::vector<std::string> out;
  for (const auto& dir : dirs) {
    std::filesystem::path p = dir.lexically_normal();
    if (!p.has_filename()) p = p.parent_path();
    out.push_back(p.filename().string());
  }
  return out;
}

namespace {

double SumOf(const Family<Counter>& family) {
  double sum = 0;
  family.ForEach([&sum](const auto&, const Counter& c) { sum += c.Value(); });
  return sum;
}

}  // namespace

double Metrics::UploadedBytesTotal() const { return SumOf(uploaded_bytes); }
double Metrics::HashedBytesTotal() const { return SumOf(hashed_bytes); }

}  // namespace filesync::ops
