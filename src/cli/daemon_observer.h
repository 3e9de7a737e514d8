// DaemonObserver: what `filesync run` shows the outside world, kept in one place:
//  - the metrics (ops::Metrics), fed from each pass's PassReport and, while a pass runs, read
//    live from its PassProgress; the backend's requests through hooks().requests;
//  - the status endpoint (ops::StatusServer) when status_listen is set: /status serves the
//    object `filesync status --json` prints (GatherStatus, refreshed after each pass), with the
//    pass in progress read from PassProgress's atomics, so it never waits for a pass, plus what
//    the status page reads (version, now, recent passes, throughput);
//  - the bandwidth limiter (bwlimit) every transfer of either backend draws from
//    (hooks().throttle); its timetable follows the clock, Reload() replaces it.
// While a pass runs, a thread of its own copies the pass's queue depth into the gauge.
//
// Usage: construct, MakeBackend(config, store, observer.hooks()), Start() (an error is a
// start-up configuration error: exit 2), PassStarting/PassFinished around each pass, Reload()
// after a SIGHUP reload succeeded (a new address that cannot be used keeps the old endpoint
// running and logs one line). `filesync sync` uses it for hooks() alone.
//
// Thread safety: Start, PassStarting, PassFinished and Reload from one thread (the daemon's);
// the endpoint and the backend's workers call in from theirs.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "cli/backend.h"
#include "config/config.h"
#include "core/thread_annotations.h"
#include "engine/pass_report.h"
#include "ops/bandwidth.h"
#include "ops/metrics.h"
#include "ops/status_page.h"
#include "ops/status_server.h"
#include "store/state_store.h"
#include "util/status.h"

namespace filesync::cli {

// The pass under way as `filesync status --json` shows it (current_pass).
nlohmann::json CurrentPassJson(const engine::PassProgress& progress, std::int64_t started_unix_ms);

class DaemonObserver {
 public:
  explicit DaemonObserver(const config::Config& config);
  ~DaemonObserver();
  DaemonObserver(const DaemonObserver&) = delete;
  DaemonObserver& operator=(const DaemonObserver&) = delete;

  // For MakeBackend: the bwlimit and the request metrics; valid for this object's life.
  [[nodiscard]] BackendHooks hooks();

  // Starts the endpoint when status_listen is set. kInvalidArgument: one line naming the key
  // and the fix (port in use, address not available, ...).
  Status Start(const config::Config& config, store::StateStore& store);

  // `progress` must stay valid until PassFinished.
  void PassStarting(const engine::PassProgress& progress, std::int64_t started_unix_ms);
  void PassFinished(const engine::PassReport& report);

  // Applies a reloaded configuration (bwlimit, status token, status_listen, the store).
  void Reload(const config::Config& config, store::StateStore& store);

  [[nodiscard]] ops::Metrics& metrics() { return *metrics_; }

 private:
  class Throttle;
  class Requests;

  [[nodiscard]] std::string StatusJson();
  void RefreshBase(const config::Config& config, store::StateStore& store);
  void CountPass(const engine::PassReport& report);
  std::unique_ptr<ops::StatusServer> MakeServer(const config::Config& config);
  [[nodiscard]] const std::string& DirLabel(const std::string& local_dir) const;

  std::unique_ptr<ops::Metrics> metrics_;
  std::vector<std::pair<std::string, std::string>> dir_labels_;  // local_dir -> label
  ops::BandwidthLimiter limiter_;
  std::unique_ptr<Throttle> throttle_;
  std::unique_ptr<Requests> requests_;
  ops::ThroughputHistory throughput_;

  const config::Config* config_ = nullptr;
  store::StateStore* store_ = nullptr;
  std::optional<ops::ListenAddress> listen_;
  std::string token_;
  std::unique_ptr<ops::StatusServer> server_;

  core::Mutex mu_;  // the endpoint's threads read what it guards
  nlohmann::json base_ GUARDED_BY(mu_);
  std::deque<nlohmann::json> recent_passes_ GUARDED_BY(mu_);
  const engine::PassProgress* progress_ GUARDED_BY(mu_) = nullptr;
  std::int64_t started_unix_ms_ GUARDED_BY(mu_) = 0;
  double sent_before_ GUARDED_BY(mu_) = 0;    // bytes sent by the passes that finished
  double hashed_before_ GUARDED_BY(mu_) = 0;  // bytes hashed by them

  // While a pass runs: copies its queue depth into the gauge twice a second.
  std::jthread sampler_;
};

}  // namespace filesync::cli
