// OutcomeRecorder: records each action's outcome as the workers report it (the pipeline's
// ActionSink): the dir's counters in the PassReport, the progress, errors for `filesync status`,
// and the records (cloud view and hash cache) the action changed, gathered in a pending batch.
//
// Ordered commits: a batch is taken under the lock, then the cloud's writes are made durable
// (Cloud::Flush) and the batch committed to the state store without it, so workers keep
// recording meanwhile. Batches land in the order they were taken: a later batch applied before
// an earlier one could have its records undone by the earlier one's deletes or ClearRemote. A
// failed flush or commit counts in commit_failures(): the pass is then incomplete.
//
// Thread safety: OnDone is called on worker threads; every other method on the engine's thread.
// mu_ guards the pending batch, the report and progress pointers and, during a pass, the
// RootStates' records (`files`, `remote`, `failed_paths`, `outcomes`, `verify_next`): the engine
// touches those only through Update()/CommitWith() or before workers start.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "cloud/cloud.h"
#include "core/clock.h"
#include "core/thread_annotations.h"
#include "engine/pass_report.h"
#include "engine/root_state.h"
#include "pipeline/event_processor.h"
#include "store/state_store.h"
#include "util/log.h"

namespace filesync::engine {

class OutcomeRecorder final : public pipeline::ActionSink {
 public:
  OutcomeRecorder(std::vector<RootState>& roots, cloud::Cloud& cloud, store::StateStore& store,
                  bool case_insensitive, core::Clock& clock);

  // Outcomes from now on go to `report` (and `progress`, if any) until EndPass().
  void BeginPass(PassReport* report, PassProgress* progress) EXCLUDES(mu_);
  void EndPass() EXCLUDES(mu_);

  void OnDone(const pipeline::Event& event, const pipeline::ActionOutcome& outcome) override
      EXCLUDES(mu_);

  // Runs `change` on the pending batch with the lock held (records to write with the next
  // commit).
  void Update(const std::function<void(store::StateStore::Batch&)>& change) EXCLUDES(mu_);
  // Runs `change` (if any) on the pending batch, then commits it for `root`, in order.
  void CommitWith(RootState& root,
                  const std::function<void(store::StateStore::Batch&)>& change = nullptr)
      EXCLUDES(mu_);

  // This pass's failed flushes and commits.
  [[nodiscard]] int commit_failures() const { return commit_failures_.load(); }
  // This pass: an action met a refused credential (every other action would be refused too).
  [[nodiscard]] bool config_failed() const { return config_failed_.load(); }

  // Test seam (leveldb's TEST_ style, on the implementation only): called on the committing
  // thread each time a batch has been taken (numbered from 0 in the order taken, over the
  // recorder's life) and the lock released, before the batch is applied. Set before a pass.
  void TEST_SetCommitHook(std::function<void(std::uint64_t batch)> hook) {
    commit_hook_ = std::move(hook);
  }

 private:
  // Makes the cloud's writes durable, then records them. Releases mu_ while syncing and
  // committing so workers keep recording outcomes meanwhile.
  void CommitLocked(RootState& root) REQUIRES(mu_);
  // Records a failed outcome; the dir's counters and errors.
  void RecordFailure(RootState& root, RootReport& rr, const plan::Action& a,
                     const pipeline::ActionOutcome& outcome) REQUIRES(mu_);
  // Records what a successful action changed in the cloud and the hash cache.
  void RecordSuccess(RootState& root, RootReport& rr, const plan::Action& a,
                     const pipeline::ActionOutcome& outcome) REQUIRES(mu_);

  std::vector<RootState>& roots_;
  cloud::Cloud& cloud_;
  store::StateStore& store_;
  const bool case_insensitive_;
  core::Clock& clock_;
  std::shared_ptr<spdlog::logger> logger_;

  core::Mutex mu_;
  PassReport* report_ GUARDED_BY(mu_) = nullptr;
  PassProgress* progress_ GUARDED_BY(mu_) = nullptr;
  store::StateStore::Batch pending_batch_ GUARDED_BY(mu_);
  std::size_t batch_ops_ GUARDED_BY(mu_) = 0;
  core::Clock::TimePoint last_commit_ GUARDED_BY(mu_);
  std::uint64_t batches_taken_ GUARDED_BY(mu_) = 0;  // the next batch's place in commit order

  core::Mutex commit_mu_;      // serialises Flush()+Commit() pairs; taken without mu_ held
  core::CondVar commit_turn_;  // a batch waits for its predecessors
  std::uint64_t batches_applied_ GUARDED_BY(commit_mu_) = 0;

  std::atomic<int> commit_failures_{0};
  std::atomic<bool> config_failed_{false};
  std::function<void(std::uint64_t)> commit_hook_;  // set before a pass, read by committers
};

}  // namespace filesync::engine
