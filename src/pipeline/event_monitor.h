// EventMonitor: one sync pass, the seed's Client.EventMonitor. For each client sync dir it
//   1. checks the dir is safe to mirror (present, same device+inode as before, not suddenly
//      empty) — otherwise that dir is skipped with an error and nothing is deleted;
//   2. scans it, loads the cloud state (incremental listing where the backend has one, listed
//      again from scratch when it deletes the dir's cloud folder or a folder above it; else the
//      state store), re-verified by a full listing every cloud_verify_interval,
//   3. takes content hashes from the cache (path, or inode after a rename) and hashes only what
//      must be compared, on all workers,
//   4. plans (plan/planner.h) and pushes the actions, phase by phase, through the bounded
//      EventProducer to the EventConsumer's workers,
//   5. records every outcome in the state store (after Cloud::Flush(), in batches), and errors
//      for `filesync status` (failed actions, dirs not synced, folders the scan could not read),
//   6. reports the pass: it has converged only if every dir was synced and every planned action
//      succeeded. A stop (RequestStop) lets in-flight work finish and starts nothing more; what
//      it left undone counts as pending, so an interrupted pass never reports success. The
//      report is stored as the last pass (bounded, see ToJson); until it is, a marker in the
//      store says a pass is under way.
// The monitor keeps each dir's state in memory between passes (the daemon), so a pass costs a
// scan plus the cloud's change listing. Not thread-safe: one pass at a time; RequestStop() may be
// called from a signal-handling thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/cloud.h"
#include "config/config.h"
#include "plan/planner.h"
#include "store/state_store.h"

namespace filesync::pipeline {

struct PassOptions {
  bool dry_run = false;            // plan only: nothing changes, nothing is recorded
  bool verify = false;             // walk the cloud fully instead of trusting the state store
  bool allow_mass_delete = false;  // override max_delete and the empty/replaced-dir checks
};

// Live counters for a progress line; written by workers, read by any thread.
struct PassProgress {
  std::atomic<std::uint64_t> files_total{0};  // actions planned so far (all dirs)
  std::atomic<std::uint64_t> files_done{0};   // actions with an outcome
  std::atomic<std::uint64_t> bytes_total{0};
  std::atomic<std::uint64_t> bytes_done{0};
  std::atomic<std::uint64_t> bytes_hashed{0};
  std::atomic<std::uint64_t> queued{0};  // actions waiting for a worker, as of the last change

  // The path (relative to its sync dir) of the action that finished last.
  void SetCurrent(std::string_view path) {
    std::lock_guard lock(mu_);
    current_.assign(path);
  }
  [[nodiscard]] std::string Current() const {
    std::lock_guard lock(mu_);
    return current_;
  }

 private:
  mutable std::mutex mu_;
  std::string current_;
};

struct RootReport {
  std::string local_dir;
  std::string cloud_path;
  std::vector<plan::Action> actions;    // planned
  std::vector<plan::NameIssue> issues;  // names skipped at plan time, scan problems
  std::optional<std::string> stopped;   // why this dir was not synced (safety, errors)
  // A stop (SIGINT/SIGTERM) came before this dir was fully synced: `pending` actions did not
  // run (all of them, and none planned, if it came before the plan).
  bool interrupted = false;
  std::uint64_t local_entries = 0;
  std::uint64_t uploaded = 0, moved = 0, deleted = 0, created = 0, failed = 0, deferred = 0;
  std::uint64_t pending = 0;      // planned actions without an outcome (a dry run: all of them)
  std::vector<bool> action_done;  // executed passes: which of `actions` got an outcome
  std::uint64_t unreadable = 0;   // folders the scan could not read: their content is unknown
  std::uint64_t bytes_uploaded = 0;
};

struct PassReport {
  std::vector<RootReport> roots;
  std::uint64_t bytes_hashed = 0;  // read to hash, before or while uploading
  std::uint64_t files_hashed = 0;
  std::int64_t started_unix_ms = 0;
  std::int64_t finished_unix_ms = 0;
  int state_errors = 0;      // commits to the state store (or cloud flushes) that failed
  bool interrupted = false;  // a stop was requested during the pass
  std::map<std::string, std::uint64_t> errors_by_kind;  // failed (not deferred), by KindName
  // Set when the pass stopped on something only the configuration can fix (the cloud refused
  // the credentials, or cloud_root): one line naming the key and the fix. No further dir is
  // tried; `filesync sync` prints it and exits 2.
  std::optional<std::string> config_error;
  // True when every dir was synced and every planned action succeeded: the cloud matches the
  // client. A dry run with actions to do has not converged.
  [[nodiscard]] bool converged() const;
  // For `plan --json` (every action and issue) and, with `max_items`, for what is stored as the
  // last pass: at most that many actions in all and issues per dir, with counts of the rest
  // ("actions_omitted", "issues_omitted"), so it stays small whatever the pass did. A dir whose
  // execution was cut short also lists (as many of) the actions that did not run
  // ("pending_actions").
  [[nodiscard]] std::string ToJson(std::size_t max_items = SIZE_MAX) const;
};

// How many actions (in all) and issues (per dir) the stored last pass keeps.
inline constexpr std::size_t kStoredReportItems = 100;

class EventMonitor {
 public:
  EventMonitor(const config::Config& config, cloud::Cloud& cloud, store::StateStore& store);
  ~EventMonitor();
  EventMonitor(const EventMonitor&) = delete;
  EventMonitor& operator=(const EventMonitor&) = delete;

  PassReport RunPass(const PassOptions& options, PassProgress* progress = nullptr);

  // Asks the running pass to finish in-flight work and stop early; safe from any thread.
  void RequestStop();
  [[nodiscard]] bool stop_requested() const { return stop_.load(); }

  // Test seam: called on the committing thread each time a batch of outcomes has been taken
  // (numbered from 0 in the order taken, over the monitor's life) and the monitor's lock
  // released, before the batch is applied. Batches are applied in that order. Set before a pass.
  void SetCommitHookForTesting(std::function<void(std::uint64_t batch)> hook);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace filesync::pipeline
