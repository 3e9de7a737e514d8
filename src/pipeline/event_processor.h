// EventProcessor: carries out events (a single action, or a batch of small uploads, deletes or
// file moves) against the Cloud, as the seed's Client.EventProcessor does with Filesync.Cloud's
// functions.
//
// Retries: one owner per failure. A backend whose Capabilities::retries_transient is set
// (Dropbox: its pacer retries 5xx, network errors and 429s, and resends a file whose upload
// session was lost) has already retried what it returns: its failures are final for this pass
// (the next pass plans the action again). For other backends the transient failures (kTransient,
// kRateLimited) are retried here, in ONE loop (RunBatch) for batches and single actions alike,
// with exponential backoff and full jitter, honouring a Retry-After hint; a batch retries only
// its failed events, together. Nothing else is retried: kChanged waits for the next scan. A stop
// during a backoff ends the waiting events as kCancelled (deferred, not failed). Every event
// ends in exactly one ActionSink::OnDone() call with its outcome, so the engine can record it.
// Thread safety: Process() may run on many threads at once; the sink must be thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cloud/cloud.h"
#include "pipeline/event_producer.h"

namespace filesync::pipeline {

struct RootContext {
  std::string local_dir;   // absolute local sync dir (for messages)
  int local_dir_fd = -1;   // the sync dir as opened for this pass; files are opened below it
  std::string cloud_path;  // where it mirrors to, e.g. "/filesync/photos"
};

struct ActionOutcome {
  Status status;
  std::optional<cloud::UploadedFile> uploaded;  // kUpload success
  std::optional<cloud::RemoteEntry> moved;      // kMove success
  int attempts = 0;
};

class ActionSink {
 public:
  virtual ~ActionSink() = default;
  virtual void OnDone(const Event& event, const ActionOutcome& outcome) = 0;
};

struct RetryPolicy {
  int max_attempts = 5;
  std::chrono::milliseconds base_delay{500};
  std::chrono::milliseconds max_delay{30000};
};

class EventProcessor {
 public:
  EventProcessor(cloud::Cloud& cloud, std::vector<RootContext> roots, RetryPolicy retry,
                 ActionSink& sink, const std::atomic<bool>& stop, cloud::ProgressFn progress);

  // REQUIRES: every event in `events` has the same action kind (as EventProducer::Pop returns).
  void Process(const std::vector<Event>& events);

 private:
  std::string CloudPath(const Event& event, const std::string& relative) const;
  // One attempt at the events at `pending` (indexes into the batch): one outcome per index, in
  // order (status and payload; attempts are filled in by RunBatch).
  using BatchAttempt =
      std::function<std::vector<ActionOutcome>(std::span<const std::size_t> pending)>;
  // The retry loop: runs `attempt` until no event is left to retry, reporting each event once.
  void RunBatch(const std::vector<Event>& events, const BatchAttempt& attempt);
  // Whether a failed attempt number `attempt` is tried again (see the header comment).
  [[nodiscard]] bool ShouldRetry(const Status& status, int attempt) const;
  void ProcessUploads(const std::vector<Event>& events);
  void ProcessDeletes(const std::vector<Event>& events);
  void ProcessMoves(const std::vector<Event>& events);
  void ProcessSingle(const Event& event);
  // Sleeps before retry number `attempt`; false if stop was requested.
  bool Backoff(int attempt, const Status& last);

  cloud::Cloud& cloud_;
  const std::vector<RootContext> roots_;
  const RetryPolicy retry_;
  ActionSink& sink_;
  const std::atomic<bool>& stop_;
  const bool backend_retries_;      // cloud_.capabilities().retries_transient
  const cloud::Transfer transfer_;  // progress, and stop_ as the cancel flag
};

}  // namespace filesync::pipeline
