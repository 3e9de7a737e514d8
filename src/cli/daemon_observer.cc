// The endpoint's /status is built from base_ (GatherStatus after each pass: the state store is
// read on the daemon's thread only, between passes) and, under mu_, the live pass. The bwlimit
// gauge and wait counter are kept by the throttle adapter; pass metrics come from PassReport.
#include "cli/daemon_observer.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>

#include "cli/common.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

constexpr std::size_t kRecentPasses = 20;
constexpr std::chrono::milliseconds kSampleEvery{500};

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* PassResult(const engine::PassReport& report) {
  if (report.config_error) return "config_error";
  if (report.converged()) return "complete";
  return report.interrupted ? "interrupted" : "incomplete";
}

nlohmann::json RecentPass(const engine::PassReport& report) {
  const engine::PassReport::Totals t = report.totals();
  return {{"started_unix_ms", report.started_unix_ms},
          {"finished_unix_ms", report.finished_unix_ms},
          {"duration_ms", report.finished_unix_ms - report.started_unix_ms},
          {"converged", report.converged()},
          {"interrupted", report.interrupted},
          {"uploaded", t.uploaded},
          {"moved", t.moved},
          {"deleted", t.deleted},
          {"failed", t.failed},
          {"bytes_uploaded", t.bytes_uploaded}};
}

}  // namespace

nlohmann::json CurrentPassJson(const engine::PassProgress& p, std::int64_t started_unix_ms) {
  const std::uint64_t total = p.files_total.load();
  const std::uint64_t done = p.files_done.load();
  return {{"started_unix_ms", started_unix_ms},
          {"actions_total", total},
          {"actions_done", done},
          {"pending", total > done ? total - done : 0},
          {"bytes_total", p.bytes_total.load()},
          {"bytes_done", p.bytes_done.load()},
          {"bytes_hashed", p.bytes_hashed.load()},
          {"current", p.Current()}};
}

// The bwlimit for the backends, counting the seconds transfers waited for it.
class DaemonObserver::Throttle : public cloud::Throttle {
 public:
  Throttle(ops::BandwidthLimiter& limiter, ops::Metrics& metrics)
      : limiter_(limiter),
        rate_(metrics.bwlimit.With({})),
        waited_(metrics.bwlimit_wait.With({})) {}
  Status Acquire(std::uint64_t bytes, const std::atomic<bool>* cancel) override {
    const auto start = std::chrono::steady_clock::now();
    Status s = limiter_.Acquire(bytes, cancel);
    waited_.Inc(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    rate_.Set(static_cast<double>(limiter_.CurrentRate()));
    return s;
  }

 private:
  ops::BandwidthLimiter& limiter_;
  ops::Gauge& rate_;
  ops::Counter& waited_;
};

// The backend's requests, counted by route, answer class and rate-limit reason.
class DaemonObserver::Requests : public cloud::RequestObserver {
 public:
  explicit Requests(ops::Metrics& metrics) : metrics_(metrics) {}
  void Answered(std::string_view route, long http_status) override {
    static constexpr const char* kClasses[] = {"no_response", "1xx", "2xx", "3xx", "4xx", "5xx"};
    const long hundreds = http_status / 100;
    const char* code = hundreds >= 1 && hundreds <= 5 ? kClasses[hundreds] : kClasses[0];
    metrics_.http_requests.With({route, code}).Inc();
  }
  void RateLimited(std::string_view route, std::string_view reason,
                   double retry_after_seconds) override {
    metrics_.http_rate_limited.With({route, reason}).Inc();
    metrics_.retry_after_wait.With({route}).Inc(retry_after_seconds);
  }

 private:
  ops::Metrics& metrics_;
};

DaemonObserver::DaemonObserver(const config::Config& config)
    : metrics_(std::make_unique<ops::Metrics>(ops::Metrics::DirLabels(config.client_sync_dirs),
                                              FILESYNC_VERSION)),
      limiter_(config.bwlimit),
      throttle_(std::make_unique<Throttle>(limiter_, *metrics_)),
      requests_(std::make_unique<Requests>(*metrics_)) {
  const auto labels = ops::Metrics::DirLabels(config.client_sync_dirs);
  for (std::size_t i = 0; i < labels.size(); ++i)
    dir_labels_.emplace_back(config.client_sync_dirs[i].string(), labels[i]);
  metrics_->bwlimit.With({}).Set(static_cast<double>(limiter_.CurrentRate()));
}

DaemonObserver::~DaemonObserver() {
  if (server_) server_->Stop();
}

BackendHooks DaemonObserver::hooks() {
  return {.throttle = throttle_.get(), .requests = requests_.get()};
}

std::unique_ptr<ops::StatusServer> DaemonObserver::MakeServer(const config::Config& config) {
  return std::make_unique<ops::StatusServer>(
      ops::StatusServerOptions{
          .listen = *config.status_listen,
          .token = config.status_token,
          .secrets = {config.dbx_token, config.dbx_refresh_token, config.dbx_app_secret}},
      metrics_->registry, [this] { return StatusJson(); });
}

Status DaemonObserver::Start(const config::Config& config, store::StateStore& store) {
  config_ = &config;
  store_ = &store;
  RefreshBase(config, store);
  if (!config.status_listen) return Status::Ok();
  auto server = MakeServer(config);
  if (Status s = server->Start(); !s.ok()) return s;
  server_ = std::move(server);
  listen_ = config.status_listen;
  token_ = config.status_token;
  log::Get("cli")->info("status endpoint on http://{}/ (/metrics, /status)", listen_->ToString());
  return Status::Ok();
}

void DaemonObserver::RefreshBase(const config::Config& config, store::StateStore& store) {
  nlohmann::json base = GatherStatus(config, store, store::Owner{getpid(), "run"});
  core::MutexLock lock(&mu_);
  base_ = std::move(base);
}

std::string DaemonObserver::StatusJson() {
  nlohmann::json out;
  double sent = 0, hashed = 0;
  {
    core::MutexLock lock(&mu_);
    out = base_;
    sent = sent_before_;
    hashed = hashed_before_;
    if (progress_ != nullptr) {
      out["current_pass"] = CurrentPassJson(*progress_, started_unix_ms_);
      sent += static_cast<double>(progress_->bytes_done.load());
      hashed += static_cast<double>(progress_->bytes_hashed.load());
    } else {
      out["current_pass"] = nullptr;
    }
    out["recent_passes"] = nlohmann::json(recent_passes_);
  }
  throughput_.Record(std::chrono::system_clock::now(), sent, hashed);
  out["version"] = FILESYNC_VERSION;
  out["now_unix_ms"] = NowMs();
  out["throughput"] = throughput_.ToJson();
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void DaemonObserver::PassStarting(const engine::PassProgress& progress,
                                  std::int64_t started_unix_ms) {
  metrics_->bwlimit.With({}).Set(static_cast<double>(limiter_.CurrentRate()));
  {
    core::MutexLock lock(&mu_);
    progress_ = &progress;
    started_unix_ms_ = started_unix_ms;
  }
  sampler_ = std::jthread(
      [&progress, &depth = metrics_->queue_depth.With({})](const std::stop_token& stop) {
        std::mutex mu;
        std::condition_variable_any wake;
        std::unique_lock lock(mu);
        while (!stop.stop_requested()) {
          depth.Set(static_cast<double>(progress.queued.load()));
          wake.wait_for(lock, stop, kSampleEvery, [] { return false; });
        }
      });
}

void DaemonObserver::PassFinished(const engine::PassReport& report) {
  sampler_ = std::jthread();  // stops and joins the sampler
  CountPass(report);
  double sent = 0, hashed = 0;
  {
    core::MutexLock lock(&mu_);
    if (progress_ != nullptr) {
      sent_before_ += static_cast<double>(progress_->bytes_done.load());
      hashed_before_ += static_cast<double>(progress_->bytes_hashed.load());
    }
    progress_ = nullptr;
    recent_passes_.push_front(RecentPass(report));
    if (recent_passes_.size() > kRecentPasses) recent_passes_.pop_back();
    sent = sent_before_;
    hashed = hashed_before_;
  }
  throughput_.Record(std::chrono::system_clock::now(), sent, hashed);
  if (config_ != nullptr && store_ != nullptr) RefreshBase(*config_, *store_);
}

const std::string& DaemonObserver::DirLabel(const std::string& local_dir) const {
  for (const auto& [dir, label] : dir_labels_) {
    if (dir == local_dir) return label;
  }
  static const std::string kOther(ops::kOtherLabelValue);
  return kOther;
}

void DaemonObserver::CountPass(const engine::PassReport& report) {
  ops::Metrics& m = *metrics_;
  m.passes.With({PassResult(report)}).Inc();
  m.pass_duration.With({}).Observe(
      static_cast<double>(report.finished_unix_ms - report.started_unix_ms) / 1000.0);
  if (report.converged())
    m.last_complete_pass.With({}).Set(static_cast<double>(report.finished_unix_ms) / 1000.0);
  for (const auto& r : report.roots) {
    const std::string& dir = DirLabel(r.local_dir);
    m.uploaded_files.With({dir}).Inc(static_cast<double>(r.uploaded));
    m.uploaded_bytes.With({dir}).Inc(static_cast<double>(r.bytes_uploaded));
    m.moved.With({dir}).Inc(static_cast<double>(r.moved));
    m.deleted.With({dir}).Inc(static_cast<double>(r.deleted));
    // Each synced dir's pass read the cloud's state: its listing is this recent.
    if (!r.stopped && !r.interrupted) m.cloud_listing_lag.With({dir}).Touch();
  }
  for (const auto& [kind, count] : report.errors_by_kind)
    m.errors.With({kind}).Inc(static_cast<double>(count));
  m.queue_depth.With({}).Set(0);
}

void DaemonObserver::Reload(const config::Config& config, store::StateStore& store) {
  config_ = &config;
  store_ = &store;
  limiter_.SetSchedule(config.bwlimit);
  metrics_->bwlimit.With({}).Set(static_cast<double>(limiter_.CurrentRate()));
  RefreshBase(config, store);
  auto logger = log::Get("cli");
  if (config.status_listen == listen_) {
    if (server_ && config.status_token != token_) {
      if (config.status_token.empty()) {
        logger->error(
            "status_token_file was removed; the endpoint keeps the old token until "
            "filesync restarts");
        return;
      }
      server_->SetToken(config.status_token);
      token_ = config.status_token;
    }
    return;
  }
  if (!config.status_listen) {
    server_.reset();
    listen_.reset();
    logger->info("status endpoint stopped (status_listen unset)");
    return;
  }
  // The new endpoint first: if it cannot start, the old one keeps serving.
  auto server = MakeServer(config);
  if (Status s = server->Start(); !s.ok()) {
    logger->error("{}; the status endpoint stays on {}", s.message(),
                  listen_ ? listen_->ToString() : std::string("nothing"));
    return;
  }
  server_ = std::move(server);
  listen_ = config.status_listen;
  token_ = config.status_token;
  logger->info("status endpoint moved to http://{}/", listen_->ToString());
}

}  // namespace filesync::cli
