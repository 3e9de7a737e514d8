#include "pipeline/event_processor.h"

#include <algorithm>
#include <random>
#include <thread>

#include "core/rel_path.h"

namespace filesync::pipeline {
namespace {

ActionOutcome Outcome(Status status, int attempts) {
  ActionOutcome outcome;
  outcome.status = std::move(status);
  outcome.attempts = attempts;
  return outcome;
}

}  // namespace

EventProcessor::EventProcessor(cloud::Cloud& cloud, std::vector<RootContext> roots,
                               RetryPolicy retry, ActionSink& sink, const std::atomic<bool>& stop,
                               cloud::ProgressFn progress)
    : cloud_(cloud),
      roots_(std::move(roots)),
      retry_(retry),
      sink_(sink),
      stop_(stop),
      backend_retries_(cloud.capabilities().retries_transient),
      transfer_{.progress = std::move(progress), .cancel = &stop} {}

std::string EventProcessor::CloudPath(const Event& event, const std::string& relative) const {
  return core::JoinPath(roots_.at(static_cast<std::size_t>(event.root)).cloud_path, relative);
}

bool EventProcessor::Backoff(int attempt, const Status& last) {
  using std::chrono::milliseconds;
  // Full jitter (uniform in [0, min(cap, base * 2^attempt)]) spreads retries of many workers;
  // a server's Retry-After is a floor, never shortened.
  const auto ceiling = std::min<long long>(retry_.max_delay.count(), retry_.base_delay.count()
                                                                         << std::min(attempt, 20));
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto delay =
      milliseconds(std::uniform_int_distribution<long long>(0, std::max(0LL, ceiling))(rng));
  if (last.retry_after()) delay = std::max(delay, *last.retry_after());
  const auto deadline = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < deadline) {
    if (stop_.load()) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        milliseconds(50), deadline - std::chrono::steady_clock::now()));
  }
  return !stop_.load();
}

void EventProcessor::Process(const std::vector<Event>& events) {
  if (events.empty()) return;
  const plan::Action& head = events.front().action;
  switch (head.kind) {
    case plan::ActionKind::kUpload:
      ProcessUploads(events);
      return;
    case plan::ActionKind::kDelete:
      ProcessDeletes(events);
      return;
    case plan::ActionKind::kMove:
      if (IsBatchableMove(head)) {
        ProcessMoves(events);
        return;
      }
      break;
    default:
      break;
  }
  for (const Event& event : events) ProcessSingle(event);
}

bool EventProcessor::ShouldRetry(const Status& status, int attempt) const {
  return !status.ok() && status.IsRetryable() && !backend_retries_ && attempt < retry_.max_attempts;
}

void EventProcessor::RunBatch(const std::vector<Event>& events, const BatchAttempt& attempt_fn) {
  std::vector<std::size_t> pending(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) pending[i] = i;
  for (int attempt = 1; !pending.empty(); ++attempt) {
    std::vector<ActionOutcome> results = attempt_fn(pending);
    std::vector<std::size_t> retry;
    Status last;
    for (std::size_t k = 0; k < pending.size(); ++k) {
      ActionOutcome outcome =
          k < results.size()
              ? std::move(results[k])
              : Outcome(Status::Permanent("backend returned too few results"), attempt);
      if (ShouldRetry(outcome.status, attempt)) {
        retry.push_back(pending[k]);
        last = outcome.status;
        continue;
      }
      outcome.attempts = attempt;
      sink_.OnDone(events[pending[k]], outcome);
    }
    if (!retry.empty() && !Backoff(attempt, last)) {
      for (const std::size_t i : retry) {
        sink_.OnDone(events[i], Outcome(Status::Cancelled("shutdown before retry"), attempt));
      }
      return;
    }
    pending = std::move(retry);
  }
}

void EventProcessor::ProcessUploads(const std::vector<Event>& events) {
  RunBatch(events, [&](std::span<const std::size_t> pending) {
    std::vector<cloud::UploadItem> items;
    items.reserve(pending.size());
    for (const std::size_t i : pending) {
      const Event& e = events[i];
      const RootContext& root = roots_.at(static_cast<std::size_t>(e.root));
      items.push_back({.local_path = root.local_dir + "/" + e.action.path,
                       .local_dir_fd = root.local_dir_fd,
                       .relative = e.action.path,
                       .cloud_path = CloudPath(e, e.action.path),
                       .expected = e.action.identity,
                       .mtime_ns = e.action.identity.mtime_ns,
                       .cloud_differs = e.action.cloud_differs});
    }
    auto results = cloud_.Upload(items, transfer_);
    std::vector<ActionOutcome> outcomes;
    outcomes.reserve(results.size());
    for (auto& r : results) {
      ActionOutcome o = Outcome(r.status(), 0);
      if (r.ok()) o.uploaded = std::move(r.value());
      outcomes.push_back(std::move(o));
    }
    return outcomes;
  });
}

void EventProcessor::ProcessDeletes(const std::vector<Event>& events) {
  RunBatch(events, [&](std::span<const std::size_t> pending) {
    std::vector<std::string> paths;
    paths.reserve(pending.size());
    for (const std::size_t i : pending)
      paths.push_back(CloudPath(events[i], events[i].action.path));
    std::vector<ActionOutcome> outcomes;
    for (const Status& s : cloud_.Delete(paths)) outcomes.push_back(Outcome(s, 0));
    return outcomes;
  });
}

void EventProcessor::ProcessMoves(const std::vector<Event>& events) {
  RunBatch(events, [&](std::span<const std::size_t> pending) {
    std::vector<cloud::MovePair> moves;
    moves.reserve(pending.size());
    for (const std::size_t i : pending) {
      moves.push_back({CloudPath(events[i], events[i].action.from),
                       CloudPath(events[i], events[i].action.path)});
    }
    auto results = cloud_.MoveBatch(moves);
    std::vector<ActionOutcome> outcomes;
    outcomes.reserve(results.size());
    for (auto& r : results) {
      ActionOutcome o = Outcome(r.status(), 0);
      if (r.ok()) o.moved = std::move(r.value());
      outcomes.push_back(std::move(o));
    }
    return outcomes;
  });
}

void EventProcessor::ProcessSingle(const Event& event) {
  const plan::Action& a = event.action;
  RunBatch({event}, [&](std::span<const std::size_t>) {
    ActionOutcome outcome;
    if (a.kind == plan::ActionKind::kCreateFolder) {
      outcome.status = cloud_.CreateFolderFrom(
          {.local_dir_fd = roots_.at(static_cast<std::size_t>(event.root)).local_dir_fd,
           .relative = a.path,
           .cloud_path = CloudPath(event, a.path)});
    } else {
      auto moved = cloud_.Move(CloudPath(event, a.from), CloudPath(event, a.path));
      if (moved.ok()) {
        outcome.moved = std::move(moved.value());
      } else {
        outcome.status = moved.status();
      }
    }
    return std::vector<ActionOutcome>{std::move(outcome)};
  });
}

}  // namespace filesync::pipeline
