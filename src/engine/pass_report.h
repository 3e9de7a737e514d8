// What a pass did, for the CLI's summary, `plan --json`, systemd and `filesync status`:
// PassReport (one RootReport per sync dir) and PassProgress (live counters while it runs).
// ToJson writes the report (bounded, for the store's "last pass"); FromJson reads it back, so a
// reader of the stored report uses these fields, not keys spelt by hand.
// Thread safety: PassProgress may be written and read by any thread; PassReport and RootReport
// are plain values (the engine writes them under its recorder's lock during a pass).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/thread_annotations.h"
#include "plan/planner.h"
#include "util/status.h"

namespace filesync::engine {

// Live counters for a progress line; written by workers, read by any thread.
struct PassProgress {
  std::atomic<std::uint64_t> files_total{0};  // actions planned so far (all dirs)
  std::atomic<std::uint64_t> files_done{0};   // actions with an outcome
  std::atomic<std::uint64_t> bytes_total{0};
  std::atomic<std::uint64_t> bytes_done{0};
  std::atomic<std::uint64_t> bytes_hashed{0};
  std::atomic<std::uint64_t> queued{0};  // actions waiting for a worker (EventProducer's depth)

  // The path (relative to its sync dir) of the action that finished last.
  void SetCurrent(std::string_view path) EXCLUDES(mu_) {
    core::MutexLock lock(&mu_);
    current_.assign(path);
  }
  [[nodiscard]] std::string Current() const EXCLUDES(mu_) {
    core::MutexLock lock(&mu_);
    return current_;
  }

 private:
  mutable core::Mutex mu_;
  std::string current_ GUARDED_BY(mu_);
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
  // A report read back by FromJson from its bounded form: the planned actions and issues it left
  // out, and (as many of) the actions that did not run, since action_done is not stored.
  std::uint64_t actions_omitted = 0;
  std::uint64_t issues_omitted = 0;
  std::vector<plan::Action> pending_actions;

  [[nodiscard]] std::uint64_t planned() const { return actions.size() + actions_omitted; }
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
  // The dirs' counters added up.
  struct Totals {
    std::uint64_t uploaded = 0, bytes_uploaded = 0, moved = 0, deleted = 0, failed = 0;
  };
  [[nodiscard]] Totals totals() const;
  // For `plan --json` (every action and issue) and, with `max_items`, for what is stored as the
  // last pass: at most that many actions in all and issues per dir, with counts of the rest
  // ("actions_omitted", "issues_omitted"), so it stays small whatever the pass did. A dir whose
  // execution was cut short also lists (as many of) the actions that did not run
  // ("pending_actions").
  [[nodiscard]] std::string ToJson(std::size_t max_items = SIZE_MAX) const;
  // Reads what ToJson wrote (kInvalidArgument if it is not that). Counts, errors and the listed
  // actions, issues and pending actions come back; what the bounded form left out is counted in
  // each root's actions_omitted / issues_omitted. A file's identity and digest are not stored.
  static Result<PassReport> FromJson(std::string_view json);
};

// How many actions (in all) and issues (per dir) the stored last pass keeps.
inline constexpr std::size_t kStoredReportItems = 100;

}  // namespace filesync::engine
