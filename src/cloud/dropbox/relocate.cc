// Deletes and moves (reference §9): delete_v2 for one path, else delete_batch (<= 1000) +
// delete_batch/check polling; move_v2 for one move (a case-only rename through a temporary
// name), else move_batch_v2 + move_batch/check_v2. Batches run under the account's commit lock;
// only their contended entries are sent again. A move or delete that may have happened before
// its answer was lost is checked with get_metadata before it is sent again.
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

#include "cloud/dropbox/dropbox_impl.h"
#include "core/rel_path.h"
#include "util/unicode.h"

namespace filesync::dropbox {
namespace {

using cloud::RemoteEntry;
using MoveResults = std::vector<std::optional<Result<RemoteEntry>>>;

std::string RandomHex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

// A RelocationError (tag chain, with or without the batch entry's relocation_error wrapper)
// saying the source is missing.
bool FromMissing(const std::vector<std::string>& tags) {
  std::size_t i = !tags.empty() && tags.front() == "relocation_error" ? 1 : 0;
  return tags.size() > i + 1 && tags[i] == "from_lookup" &&
         std::find(tags.begin() + static_cast<std::ptrdiff_t>(i), tags.end(), "not_found") !=
             tags.end();
}

// Did an earlier attempt (or a lost response) already move `from` to `to` (reference §9.1)?
// The target's metadata when the source is gone and the target exists, else nullopt.
std::optional<RemoteEntry> AlreadyMoved(DropboxCloud::Impl& d, const std::string& from,
                                        const std::string& to) {
  auto source = d.GetMetadata(from);
  auto target = d.GetMetadata(to);
  if (source.ok() && !source->has_value() && target.ok() && target->has_value()) {
    return ToRemoteEntry(**target);
  }
  return std::nullopt;
}

// delete_batch for the paths at `pending`, polled to its end under the commit lock.
Result<JobStatus> DeleteJob(DropboxCloud::Impl& d, const std::vector<std::string>& paths,
                            const std::vector<std::size_t>& pending) {
  ojson entries = ojson::array();
  for (const std::size_t i : pending) entries.push_back({{"path", paths[i]}});
  auto guard = d.pacer.CommitLock();
  // Replaying a delete is harmless: entries already gone come back not_found = success.
  Reply r = d.Rpc("files/delete_batch", ojson{{"entries", std::move(entries)}});
  Result<JobStatus> job =
      r.ok() ? ParseJobStatus(r.result, SuccessShape::kUnderMetadata, "delete_batch")
             : Result<JobStatus>(r.status);
  if (job.ok() && job->state == JobStatus::State::kAsyncJobId)
    job = d.PollJob("files/delete_batch/check", job->async_job_id, SuccessShape::kUnderMetadata);
  return job;
}

// Records a delete job's outcome for `pending`; returns the contended entries to send again.
std::vector<std::size_t> SettleDeletes(const Result<JobStatus>& job,
                                       const std::vector<std::size_t>& pending,
                                       std::vector<Status>& results) {
  if (!job.ok() ||
      (job->state == JobStatus::State::kComplete && job->entries.size() != pending.size())) {
    const Status s =
        job.ok() ? Status::Permanent("delete_batch: wrong number of entries") : job.status();
    for (const std::size_t i : pending) results[i] = s;
    return {};
  }
  if (job->state == JobStatus::State::kFailed) {
    if (job->failed.kind() == Status::Kind::kRateLimited) return pending;
    for (const std::size_t i : pending) results[i] = job->failed;
    return {};
  }
  std::vector<std::size_t> retry;
  for (std::size_t k = 0; k < pending.size(); ++k) {
    const BatchEntry& e = job->entries[k];
    if (e.success || e.status.kind() == Status::Kind::kNotFound) {
      results[pending[k]] = Status::Ok();
    } else if (e.status.kind() == Status::Kind::kRateLimited) {
      retry.push_back(pending[k]);
    } else {
      results[pending[k]] = e.status;
    }
  }
  return retry;
}

// A move_batch_v2 launched and polled. `replay`: its outcome is unknown (an ambiguous failure,
// or the server does not know the route), so each move goes through MoveOnce instead.
struct MoveJob {
  Result<JobStatus> job = Status::Transient("unset");
  bool replay = false;
};

MoveJob LaunchMoves(DropboxCloud::Impl& d, std::span<const cloud::MovePair> moves,
                    const std::vector<std::size_t>& pending) {
  ojson entries = ojson::array();
  for (const std::size_t i : pending) {
    entries.push_back({{"from_path", moves[i].from}, {"to_path", moves[i].to}});
  }
  auto guard = d.pacer.CommitLock();
  Reply r = d.Rpc("files/move_batch_v2",
                  ojson{{"entries", std::move(entries)},
                        {"autorename", false},
                        {"allow_ownership_transfer", false}},
                  /*idempotent=*/false);
  MoveJob out;
  const bool unknown = d.move_batch_route.Unknown(r, d.clock, "one move_v2 per move");
  out.replay = r.ambiguous || unknown;
  out.job = r.ok() ? ParseJobStatus(r.result, SuccessShape::kUnderSuccess, "move_batch_v2")
                   : Result<JobStatus>(r.status);
  if (out.job.ok() && out.job->state == JobStatus::State::kAsyncJobId) {
    out.job =
        d.PollJob("files/move_batch/check_v2", out.job->async_job_id, SuccessShape::kUnderSuccess);
    // The batch was accepted; if its outcome is unknown, any entry may have moved.
    out.replay = out.replay || !out.job.ok();
  }
  return out;
}

// Records the entries of a settled move job; returns the moves to send again (contended, or an
// internal error with attempts left).
std::vector<std::size_t> SettleMoveEntries(DropboxCloud::Impl& d,
                                           std::span<const cloud::MovePair> moves,
                                           const JobStatus& job,
                                           const std::vector<std::size_t>& pending, int attempt,
                                           MoveResults& results) {
  std::vector<std::size_t> retry;
  for (std::size_t k = 0; k < pending.size(); ++k) {
    const std::size_t i = pending[k];
    const BatchEntry& e = job.entries[k];
    if (e.success && e.metadata) {
      results[i] = ToRemoteEntry(*e.metadata);
      continue;
    }
    const std::vector<std::string> tags = UnionTags(e.failure);
    const bool unsure = std::find(tags.begin(), tags.end(), "internal_error") != tags.end();
    if (FromMissing(tags) || unsure) {
      if (auto done = AlreadyMoved(d, moves[i].from, moves[i].to)) {
        results[i] = *done;
        continue;
      }
    }
    if (e.status.kind() == Status::Kind::kRateLimited ||
        (unsure && attempt < d.pacer.options().max_attempts)) {
      retry.push_back(i);
    } else {
      results[i] = e.status;
    }
  }
  return retry;
}

// Records a move job's outcome for `pending`; returns the moves to send again.
std::vector<std::size_t> SettleMoves(DropboxCloud::Impl& d, std::span<const cloud::MovePair> moves,
                                     const Result<JobStatus>& job,
                                     const std::vector<std::size_t>& pending, int attempt,
                                     MoveResults& results) {
  const bool settled = job.ok() && (job->state == JobStatus::State::kComplete ||
                                    job->state == JobStatus::State::kFailed);
  if (!settled ||
      (job->state == JobStatus::State::kComplete && job->entries.size() != pending.size())) {
    const Status s =
        job.ok() ? Status::Permanent("move_batch_v2: unexpected job status") : job.status();
    for (const std::size_t i : pending) results[i] = s;
    return {};
  }
  if (job->state == JobStatus::State::kComplete)
    return SettleMoveEntries(d, moves, *job, pending, attempt, results);
  // A failed job: a later pass finds the moves it did make (from_lookup/not_found, target in
  // place).
  if (job->failed.kind() == Status::Kind::kRateLimited) return pending;
  for (const std::size_t i : pending) results[i] = job->failed;
  return {};
}

}  // namespace

bool DropboxCloud::Impl::BackOffContended(int attempt) {
  pacer.OnRateLimited(RateReason::kTooManyWriteOperations, std::nullopt);
  if (attempt >= pacer.options().max_write_attempts) return false;
  pacer.Sleep(pacer.WriteBackoff(attempt));
  return true;
}

Status DropboxCloud::Impl::DeleteOne(const std::string& path) {
  for (int attempt = 1;; ++attempt) {
    Reply r = Rpc("files/delete_v2", ojson{{"path", path}}, /*idempotent=*/false);
    if (r.ok() || r.Has("not_found")) return Status::Ok();
    if (!r.ambiguous || attempt >= pacer.options().max_attempts) return r.status;
    // The delete may have happened before the failure: look before deleting again.
    auto m = GetMetadata(path);
    if (m.ok() && !m->has_value()) return Status::Ok();
    if (!m.ok()) return m.status();
    pacer.Sleep(pacer.Backoff(attempt));
  }
}

void DropboxCloud::Impl::DeleteBatch(const std::vector<std::string>& paths,
                                     const std::vector<std::size_t>& index,
                                     std::vector<Status>& results) {
  std::vector<std::size_t> pending = index;
  for (int attempt = 1; !pending.empty(); ++attempt) {
    std::vector<std::size_t> retry =
        SettleDeletes(DeleteJob(*this, paths, pending), pending, results);
    if (retry.empty()) return;
    if (!BackOffContended(attempt)) {
      for (const std::size_t i : retry) {
        results[i] =
            Status::RateLimited("too many write operations, delete of " + paths[i] + " gave up",
                                std::chrono::milliseconds(0));
      }
      return;
    }
    pending = std::move(retry);
  }
}

Result<RemoteEntry> DropboxCloud::Impl::MoveOnce(const std::string& from, const std::string& to) {
  for (int attempt = 1;; ++attempt) {
    Reply r =
        Rpc("files/move_v2", ojson{{"from_path", from}, {"to_path", to}, {"autorename", false}},
            /*idempotent=*/false);
    if (r.ok()) {
      auto it = r.result.find("metadata");
      if (it == r.result.end()) return Status::Permanent("move_v2: no metadata in the result");
      auto m = ParseMetadata(*it, Metadata::Tag::kUnknown);
      if (!m.ok()) return m.status();
      return ToRemoteEntry(*m);
    }
    const bool from_missing = r.error && FromMissing(r.error->tags);
    const bool unsure = r.ambiguous || r.Has("internal_error");
    if (!from_missing && !unsure) return r.status;
    if (auto done = AlreadyMoved(*this, from, to)) return *done;
    if (from_missing) return r.status;
    if (attempt >= pacer.options().max_attempts) return r.status;
    pacer.Sleep(pacer.Backoff(attempt));
  }
}

void DropboxCloud::Impl::MoveBatchChunk(std::span<const cloud::MovePair> moves,
                                        std::vector<std::size_t> pending, MoveResults& results) {
  for (int attempt = 1; !pending.empty(); ++attempt) {
    MoveJob launched = LaunchMoves(*this, moves, pending);
    if (launched.replay) {
      for (const std::size_t i : pending) results[i] = MoveOnce(moves[i].from, moves[i].to);
      return;
    }
    std::vector<std::size_t> retry =
        SettleMoves(*this, moves, launched.job, pending, attempt, results);
    if (retry.empty()) return;
    if (!BackOffContended(attempt)) {
      for (const std::size_t i : retry) {
        results[i] =
            Status::RateLimited("too many write operations, move of " + moves[i].from + " gave up",
                                std::chrono::milliseconds(0));
      }
      return;
    }
    pending = std::move(retry);
  }
}

std::vector<Status> DropboxCloud::Delete(std::span<const std::string> paths) {
  std::vector<Status> results(paths.size());
  std::vector<std::string> nfc(paths.size());
  std::vector<std::size_t> valid;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (paths[i].empty()) {
      results[i] = Status::InvalidArgument("refusing to delete the cloud root");
      continue;
    }
    nfc[i] = unicode::ToNfc(paths[i]);
    valid.push_back(i);
  }
  if (valid.size() == 1) {
    results[valid[0]] = impl_->DeleteOne(nfc[valid[0]]);
    return results;
  }
  for (std::size_t begin = 0; begin < valid.size(); begin += kMaxBatchEntries) {
    const std::size_t end = std::min(valid.size(), begin + kMaxBatchEntries);
    impl_->DeleteBatch(nfc,
                       std::vector<std::size_t>(valid.begin() + static_cast<std::ptrdiff_t>(begin),
                                                valid.begin() + static_cast<std::ptrdiff_t>(end)),
                       results);
  }
  return results;
}

Result<RemoteEntry> DropboxCloud::Move(const std::string& from, const std::string& to) {
  const std::string f = unicode::ToNfc(from);
  const std::string t = unicode::ToNfc(to);
  if (core::CloudKey(f) != core::CloudKey(t)) return impl_->MoveOnce(f, t);
  if (f == t) {
    auto m = impl_->GetMetadata(t);
    if (!m.ok()) return m.status();
    if (!m->has_value()) return Status::NotFound(from + " does not exist");
    return ToRemoteEntry(**m);
  }
  // Dropbox cannot rename in case only (reference §9.1): go through a temporary name.
  const std::string temp = t + ".filesync-tmp-" + RandomHex(6);
  auto first = impl_->MoveOnce(f, temp);
  if (!first.ok()) return first.status();
  auto second = impl_->MoveOnce(temp, t);
  if (!second.ok()) {
    Log().error("case-only rename {} -> {} stopped at {}: {}", from, to, temp,
                second.status().ToString());
    if (!impl_->MoveOnce(temp, f).ok()) {
      Log().error("could not move {} back to {}; the next pass will find it there", temp, from);
    }
  }
  return second;
}

std::vector<Result<RemoteEntry>> DropboxCloud::MoveBatch(std::span<const cloud::MovePair> moves) {
  std::vector<cloud::MovePair> nfc;
  nfc.reserve(moves.size());
  std::vector<std::size_t> batchable;
  MoveResults results(moves.size());
  for (std::size_t i = 0; i < moves.size(); ++i) {
    nfc.push_back({unicode::ToNfc(moves[i].from), unicode::ToNfc(moves[i].to)});
    // Case-only renames are not supported by move_batch_v2 (reference §9.1): Move() takes them
    // through a temporary name, one at a time.
    if (core::CloudKey(nfc[i].from) == core::CloudKey(nfc[i].to)) {
      results[i] = Move(moves[i].from, moves[i].to);
    } else {
      batchable.push_back(i);
    }
  }
  if (batchable.size() == 1 || !impl_->move_batch_route.Available(impl_->clock)) {
    // One move_v2 request instead of a launch and its polls.
    for (const std::size_t i : batchable) results[i] = impl_->MoveOnce(nfc[i].from, nfc[i].to);
  } else {
    for (std::size_t begin = 0; begin < batchable.size(); begin += kMaxBatchEntries) {
      const std::size_t end = std::min(batchable.size(), begin + kMaxBatchEntries);
      impl_->MoveBatchChunk(
          nfc,
          std::vector<std::size_t>(batchable.begin() + static_cast<std::ptrdiff_t>(begin),
                                   batchable.begin() + static_cast<std::ptrdiff_t>(end)),
          results);
    }
  }
  std::vector<Result<RemoteEntry>> out;
  out.reserve(moves.size());
  for (auto& r : results)
    out.push_back(r ? std::move(*r) : Result<RemoteEntry>(Status::Permanent("not moved")));
  return out;
}

}  // namespace filesync::dropbox
