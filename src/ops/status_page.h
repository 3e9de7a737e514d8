// The status page and what it needs from /status.
//
// kStatusPage is one self-contained HTML file (src/ops/status_page.html, inline CSS and
// JavaScript, no external asset), compiled into the binary. Every 3 s it fetches /status
// (same origin, so a browser's Basic credentials go along) and shows each sync dir with its
// state, the pass in progress, what is in flight with its progress, a chart of the last hour's
// throughput, the last passes, and the recent errors. It writes every value as text (never as
// HTML), so a file name cannot inject markup.
//
// The /status object the page reads. The fields of `filesync status --json`
// (cli/status_command.cc):
//   running, daemon_running, converged, pending,
//   current_pass {started_unix_ms, actions_total, actions_done, pending, bytes_total,
//                 bytes_done, bytes_hashed} or null,
//   last_pass (PassReport::ToJson) {converged, interrupted, finished_unix_ms, duration_ms,
//              roots: [{local_dir, cloud_path, uploaded, moved, deleted, failed, pending,
//                       stopped?}]} or null,
//   errors: [{root, path, message, attempts, last_seen_unix}],
//   roots: [{local_dir, cloud_path, tracked}]
// and what the daemon adds for the page (each optional; the page shows what it gets):
//   version        "0.1.0"
//   now_unix_ms    the daemon's clock, for "3 min ago"
//   recent_passes  the last passes, newest first (at most 20):
//                  [{started_unix_ms, finished_unix_ms, duration_ms, converged, interrupted,
//                    uploaded, moved, deleted, failed, bytes_uploaded}]
//   in_flight      what the workers are doing now:
//                  [{op: "upload"|"move"|"delete"|"create_folder", root: <local_dir>,
//                    path: <relative path>, bytes_done, bytes_total}]
//   throughput     ThroughputHistory::ToJson()
// A dir's state on the page: "syncing" while current_pass is set; else from its entry in
// last_pass.roots: "not synced" (stopped), "incomplete" (failed or pending > 0), "in sync";
// "waiting" before any pass.
//
// Thread safety: kStatusPage is a constant; ThroughputHistory's methods may be called from any
// thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/thread_annotations.h"

namespace filesync::ops {

extern const std::string_view kStatusPage;

// The last hour of transfer rates for the page's chart. The daemon records cumulative totals
// (Metrics::UploadedBytesTotal(), HashedBytesTotal()) whenever it builds /status and at the end
// of each pass; the bytes between two records are spread evenly over the time between them, so
// the chart is right on average however rarely it is fed.
class ThroughputHistory {
 public:
  // `slots` intervals of `interval` each: by default 120 x 30 s = one hour.
  explicit ThroughputHistory(std::chrono::seconds interval = std::chrono::seconds(30),
                             std::size_t slots = 120);

  void Record(std::chrono::system_clock::time_point now, double sent_total, double hashed_total)
      EXCLUDES(mu_);

  // {"interval_s": 30, "end_unix_ms": <end of the newest slot>, "sent_bytes": [...],
  //  "hashed_bytes": [...]}: bytes per slot, oldest first, `slots` entries (zeros where nothing
  // was recorded), ending with the last slot complete at the last record. Empty arrays before
  // the first record.
  [[nodiscard]] nlohmann::json ToJson() const EXCLUDES(mu_);

 private:
  struct Slot {
    std::int64_t index = 0;  // time / interval
    double sent = 0;
    double hashed = 0;
  };
  void Spread(double from_s, double to_s, double sent, double hashed) REQUIRES(mu_);

  const double interval_s_;
  const std::size_t slots_;
  mutable core::Mutex mu_;
  bool started_ GUARDED_BY(mu_) = false;
  double last_s_ GUARDED_BY(mu_) = 0;  // seconds since the epoch of the last record
  double last_sent_ GUARDED_BY(mu_) = 0;
  double last_hashed_ GUARDED_BY(mu_) = 0;
  std::deque<Slot> history_ GUARDED_BY(mu_);  // ascending index, at most slots_
};

}  // namespace filesync::ops
