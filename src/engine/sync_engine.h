// SyncEngine: one sync pass over every sync dir (the seed's pass, which its Client.EventMonitor
// ran). For each dir it
//   1. checks the dir is safe to mirror (present, same folder as before, not suddenly empty):
//      otherwise the dir is skipped with an error and nothing is deleted;
//   2. scans it and brings the cloud view up to date (CloudView: an incremental listing where the
//      backend has one, listed again from scratch when it deletes the dir's cloud folder or a
//      folder above it; else the state store), re-verified by a full listing every
//      cloud_verify_interval;
//   3. takes content hashes from the hash cache (HashCache: path, or inode after a rename) and
//      hashes only what must be compared, on all workers;
//   4. plans (plan/planner.h) and pushes the actions, phase by phase, through the pipeline's
//      EventProducer to its EventConsumer's workers;
//   5. records every outcome (OutcomeRecorder: in the state store after Cloud::Flush(), in
//      ordered batches) and errors for `filesync status` (failed actions, dirs not synced,
//      folders the scan could not read);
//   6. reports the pass (PassReport): converged only if every dir was synced and every planned
//      action succeeded. A stop (RequestStop) lets in-flight work finish and starts nothing more;
//      what it left undone counts as pending, so an interrupted pass never reports success. The
//      report is stored as the last pass (bounded); until it is, a marker in the store says a
//      pass is under way.
// The engine keeps each dir's state (RootState) in memory between passes (the daemon).
// Thread safety: one pass at a time, from one thread; RequestStop() may be called from any
// thread (a signal-handling one).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cloud/cloud.h"
#include "core/clock.h"
#include "engine/pass_report.h"
#include "scan/exclude.h"
#include "store/state_store.h"

namespace filesync::engine {

class OutcomeRecorder;

// What the engine needs to know, built by the CLI from the configuration.
struct EngineOptions {
  struct SyncDir {
    std::string local_dir;   // absolute
    std::string cloud_path;  // where it mirrors to, e.g. "/filesync/photos"
  };
  std::vector<SyncDir> dirs;
  std::shared_ptr<const scan::ExcludeMatcher> exclude;  // may be null: nothing excluded
  int workers = 4;
  std::chrono::seconds cloud_verify_interval{3600};
  std::uint64_t max_delete_count = 1000;
  double max_delete_percent = 50.0;
  // Names where the cloud root was set, for the one line that says the cloud refuses a dir's
  // folder, e.g. "config/instance.toml: key 'cloud_root' = \"/x\"".
  std::string cloud_root_setting;
};

struct PassOptions {
  bool dry_run = false;            // plan only: nothing changes, nothing is recorded
  bool verify = false;             // walk the cloud fully instead of trusting the state store
  bool allow_mass_delete = false;  // override max_delete and the empty/replaced-dir checks
};

class SyncEngine {
 public:
  SyncEngine(EngineOptions options, cloud::Cloud& cloud, store::StateStore& store,
             core::Clock& clock = core::SystemClock());
  ~SyncEngine();
  SyncEngine(const SyncEngine&) = delete;
  SyncEngine& operator=(const SyncEngine&) = delete;

  PassReport RunPass(const PassOptions& options, PassProgress* progress = nullptr);

  // Asks the running pass to finish in-flight work and stop early; safe from any thread.
  void RequestStop();
  [[nodiscard]] bool stop_requested() const { return stop_.load(); }

  // Test seam (leveldb's TEST_ style): the recorder, to set its commit hook.
  OutcomeRecorder& TEST_recorder();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace filesync::engine
