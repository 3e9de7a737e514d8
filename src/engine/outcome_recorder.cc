#include "engine/outcome_recorder.h"

#include "engine/cloud_view.h"
#include "engine/hash_cache.h"

namespace filesync::engine {
namespace {

using core::EntryKind;

// A syncfs per commit: batch them by count and time, not per file.
constexpr std::size_t kCommitEvery = 10000;
constexpr std::chrono::seconds kCommitInterval{2};

std::int64_t UnixNs(core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.WallNow().time_since_epoch())
      .count();
}

}  // namespace

OutcomeRecorder::OutcomeRecorder(std::vector<RootState>& roots, cloud::Cloud& cloud,
                                 store::StateStore& store, bool case_insensitive,
                                 core::Clock& clock)
    : roots_(roots),
      cloud_(cloud),
      store_(store),
      case_insensitive_(case_insensitive),
      clock_(clock),
      logger_(log::Get("monitor")) {
  core::MutexLock lock(&mu_);
  last_commit_ = clock_.Now();
}

void OutcomeRecorder::BeginPass(PassReport* report, PassProgress* progress) {
  core::MutexLock lock(&mu_);
  report_ = report;
  progress_ = progress;
  commit_failures_ = 0;
  config_failed_ = false;
}

void OutcomeRecorder::EndPass() {
  core::MutexLock lock(&mu_);
  report_ = nullptr;
  progress_ = nullptr;
}

void OutcomeRecorder::Update(const std::function<void(store::StateStore::Batch&)>& change) {
  core::MutexLock lock(&mu_);
  change(pending_batch_);
}

void OutcomeRecorder::CommitWith(RootState& root,
                                 const std::function<void(store::StateStore::Batch&)>& change) {
  core::MutexLock lock(&mu_);
  if (change) change(pending_batch_);
  CommitLocked(root);
}

void OutcomeRecorder::OnDone(const pipeline::Event& event, const pipeline::ActionOutcome& outcome) {
  core::MutexLock lock(&mu_);
  RootState& root = roots_[static_cast<std::size_t>(event.root)];
  RootReport& rr = report_->roots[static_cast<std::size_t>(event.root)];
  const plan::Action& a = event.action;
  ++root.outcomes;
  if (event.index < rr.action_done.size()) rr.action_done[event.index] = true;
  if (progress_) {
    ++progress_->files_done;
    progress_->SetCurrent(a.path);
  }
  if (!outcome.status.ok()) {
    RecordFailure(root, rr, a, outcome);
    return;
  }
  RecordSuccess(root, rr, a, outcome);
  if (++batch_ops_ >= kCommitEvery || clock_.Now() - last_commit_ > kCommitInterval)
    CommitLocked(root);
}

void OutcomeRecorder::RecordFailure(RootState& root, RootReport& rr, const plan::Action& a,
                                    const pipeline::ActionOutcome& outcome) {
  const auto kind = outcome.status.kind();
  if (kind == Status::Kind::kAuth) {
    // Every other action would be refused too: the pass stops, and the CLI says what to fix.
    ++rr.failed;
    if (!report_->config_error) report_->config_error = outcome.status.message();
    if (!rr.stopped) rr.stopped = outcome.status.message();
    config_failed_ = true;
    return;
  }
  if (kind == Status::Kind::kChanged || kind == Status::Kind::kCancelled) {
    ++rr.deferred;
    // A stop cancels every transfer in flight at once: the pass summary counts them.
    logger_->log(kind == Status::Kind::kCancelled ? spdlog::level::debug : spdlog::level::info,
                 "{} {}: {}; it goes again next pass", plan::ActionKindName(a.kind), a.path,
                 outcome.status.message());
    return;
  }
  ++rr.failed;
  ++report_->errors_by_kind[Status::KindName(kind)];
  logger_->warn("{} {} failed after {} attempt(s): {}", plan::ActionKindName(a.kind), a.path,
                outcome.attempts, outcome.status.ToString());
  (void)store_.RecordError(root.id, a.path, outcome.status.ToString());
  root.failed_paths.insert(a.path);
  if (kind == Status::Kind::kNotFound || kind == Status::Kind::kConflict) root.verify_next = true;
}

void OutcomeRecorder::RecordSuccess(RootState& root, RootReport& rr, const plan::Action& a,
                                    const pipeline::ActionOutcome& outcome) {
  CloudView view(root.remote, pending_batch_, case_insensitive_);
  HashCache cache(root.files, pending_batch_, UnixNs(clock_));
  switch (a.kind) {
    case plan::ActionKind::kUpload: {
      const cloud::UploadedFile& up = *outcome.uploaded;
      ++rr.uploaded;
      rr.bytes_uploaded += up.bytes_transferred;
      // The upload hashed what it read, on the way.
      report_->bytes_hashed += up.identity.size;
      ++report_->files_hashed;
      if (progress_) progress_->bytes_hashed += up.identity.size;
      store::RemoteRecord r;
      r.path = a.path;
      r.kind = EntryKind::kFile;
      r.size = up.entry.size;
      r.digest = up.digest;
      r.rev = up.entry.rev;
      view.PutAncestorsAsFolders(a.path);
      view.Put(std::move(r));
      cache.Record(a.path, up.identity, up.digest);
      break;
    }
    case plan::ActionKind::kCreateFolder: {
      ++rr.created;
      view.PutAncestorsAsFolders(a.path);
      store::RemoteRecord r;
      r.path = a.path;
      r.kind = EntryKind::kFolder;
      view.Put(std::move(r));
      break;
    }
    case plan::ActionKind::kDelete:
      ++rr.deleted;
      view.EraseUnder(view.Key(a.path));
      pending_batch_.DeleteRemoteUnder(a.path);
      break;
    case plan::ActionKind::kMove:
      ++rr.moved;
      view.Move(a.from, a.path, outcome.moved ? outcome.moved->rev : std::string());
      if (a.entry_kind == EntryKind::kFile && a.digest_known)
        cache.Record(a.path, a.identity, a.digest);
      break;
  }
}

void OutcomeRecorder::CommitLocked(RootState& root) {
  if (pending_batch_.empty()) return;
  store::StateStore::Batch batch = std::move(pending_batch_);
  pending_batch_ = store::StateStore::Batch();
  batch_ops_ = 0;
  last_commit_ = clock_.Now();
  const std::uint64_t ticket = batches_taken_++;
  mu_.Unlock();
  if (commit_hook_) commit_hook_(ticket);
  {
    // Another thread may take the next batch and reach commit_mu_ first: wait for our turn.
    core::MutexLock commit_lock(&commit_mu_);
    while (batches_applied_ != ticket) commit_turn_.Wait(&commit_mu_);
    if (Status s = cloud_.Flush(); !s.ok()) {
      logger_->error("cannot make cloud writes durable, not recording them: {}", s.ToString());
      ++commit_failures_;
    } else if (Status c = store_.Commit(root.id, batch); !c.ok()) {
      logger_->error("cannot record progress in the state store: {}", c.ToString());
      ++commit_failures_;
    }
    ++batches_applied_;
  }
  commit_turn_.SignalAll();
  mu_.Lock();
}

}  // namespace filesync::engine
