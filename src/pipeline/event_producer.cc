#include "pipeline/event_producer.h"

#include <algorithm>
#include <iterator>

#include "core/rel_path.h"
#include "plan/planner.h"

namespace filesync::pipeline {
namespace {

// The cloud paths a batch of moves touches (sources and targets), to keep the batch's moves
// independent: a move may join only if none of its paths equals, contains or lies inside one
// already taken.
class MovePaths {
 public:
  explicit MovePaths(bool case_insensitive) : case_insensitive_(case_insensitive) {}

  [[nodiscard]] bool Independent(const Event& event) const {
    for (const std::string& key : Keys(event)) {
      if (taken_.contains(key) || below_taken_.contains(key)) return false;
      bool under = false;
      core::ForEachAncestor(key, [&](std::string_view ancestor) {
        under = taken_.contains(std::string(ancestor));
        return !under;
      });
      if (under) return false;
    }
    return true;
  }

  void Add(const Event& event) {
    for (std::string& key : Keys(event)) {
      core::ForEachAncestor(
          key, [&](std::string_view ancestor) { below_taken_.insert(std::string(ancestor)); });
      taken_.insert(std::move(key));
    }
  }

 private:
  [[nodiscard]] std::vector<std::string> Keys(const Event& event) const {
    std::vector<std::string> keys;
    for (const std::string* path : {&event.action.from, &event.action.path}) {
      std::string key = std::to_string(event.root);
      key.push_back('\0');
      key.append(core::CloudKey(*path, case_insensitive_));
      keys.push_back(std::move(key));
    }
    return keys;
  }

  bool case_insensitive_;
  std::unordered_set<std::string> taken_;
  std::unordered_set<std::string> below_taken_;  // proper ancestors of taken_ keys
};

}  // namespace

bool IsBatchableMove(const plan::Action& action) {
  return action.kind == plan::ActionKind::kMove && action.entry_kind == core::EntryKind::kFile &&
         action.phase == plan::kPhaseFileMoves;
}

EventProducer::EventProducer(std::size_t capacity, std::atomic<std::uint64_t>* depth)
    : capacity_(std::max<std::size_t>(1, capacity)), depth_(depth) {}

void EventProducer::PublishDepthLocked() {
  if (depth_ != nullptr) depth_->store(queue_.size());
}

std::string EventProducer::Key(const Event& event) {
  std::string key = std::to_string(event.root);
  key.push_back('\0');
  key.append(event.action.path);
  return key;
}

bool EventProducer::Push(Event event) {
  core::MutexLock lock(&mu_);
  std::string key = Key(event);
  if (auto it = index_.find(key); it != index_.end() && !closed_ && !cancelled_) {
    *it->second = std::move(event);
    changed_.SignalAll();
    return true;
  }
  while (queue_.size() >= capacity_ && !closed_ && !cancelled_) not_full_.Wait(&mu_);
  if (closed_ || cancelled_) return false;
  queue_.push_back(std::move(event));
  index_.emplace(std::move(key), std::prev(queue_.end()));
  PublishDepthLocked();
  changed_.SignalAll();
  return true;
}

bool EventProducer::BlockedLocked(const std::string& key) const {
  if (in_flight_.contains(key)) return true;
  bool blocked = false;
  // The callback runs within this call, mu_ held; the analysis cannot see into it.
  const auto* in_flight = &in_flight_;
  core::ForEachAncestor(key, [&](std::string_view ancestor) {
    blocked = in_flight->contains(std::string(ancestor));
    return !blocked;
  });
  if (blocked) return true;
  return descendants_in_flight_.contains(key);
}

void EventProducer::MarkInFlightLocked(const std::string& key) {
  in_flight_.insert(key);
  auto* below = &descendants_in_flight_;  // mu_ held (see BlockedLocked)
  core::ForEachAncestor(key, [&](std::string_view ancestor) { ++(*below)[std::string(ancestor)]; });
}

void EventProducer::ClearInFlightLocked(const std::string& key) {
  auto it = in_flight_.find(key);
  if (it == in_flight_.end()) return;
  in_flight_.erase(it);
  auto* below = &descendants_in_flight_;  // mu_ held (see BlockedLocked)
  core::ForEachAncestor(key, [&](std::string_view ancestor) {
    auto d = below->find(std::string(ancestor));
    if (d != below->end() && --d->second == 0) below->erase(d);
  });
}

bool EventProducer::BatchableLocked(const Event& event, const BatchLimits& limits) {
  switch (event.action.kind) {
    case plan::ActionKind::kUpload:
      return event.action.identity.size <= limits.small_file_limit;
    case plan::ActionKind::kDelete:
      return true;
    case plan::ActionKind::kMove:
      return IsBatchableMove(event.action);
    default:
      return false;
  }
}

std::vector<Event> EventProducer::Pop(const BatchLimits& limits) {
  core::MutexLock lock(&mu_);
  std::vector<Event> batch;
  std::optional<std::chrono::steady_clock::time_point> linger_until;
  for (;;) {
    if (cancelled_) return batch;
    bool lingering = false;
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      const std::string key = Key(*it);
      if (BlockedLocked(key)) continue;
      const plan::ActionKind head_kind = it->action.kind;
      const bool batchable = BatchableLocked(*it, limits) && limits.max_files > 1;
      if (batchable && filling_ && queue_.size() < std::min(limits.max_files, capacity_)) {
        const auto now = std::chrono::steady_clock::now();
        if (!linger_until) linger_until = now + limits.fill_linger;
        if (now < *linger_until) {
          lingering = true;
          break;
        }
      }
      // A move transfers no bytes (its identity.size is the size of the file it renames).
      const bool count_bytes = head_kind != plan::ActionKind::kMove;
      std::uint64_t bytes = it->action.identity.size;
      std::optional<MovePaths> moves;
      if (IsBatchableMove(it->action)) moves.emplace(limits.case_insensitive);
      auto take = [&](std::list<Event>::iterator pos, const std::string& k) REQUIRES(mu_) {
        index_.erase(k);
        MarkInFlightLocked(k);
        if (moves) moves->Add(*pos);
        batch.push_back(std::move(*pos));
        return queue_.erase(pos);
      };
      auto next = take(it, key);
      while (batchable && batch.size() < limits.max_files && next != queue_.end()) {
        const std::string next_key = Key(*next);
        const bool fits = !count_bytes || limits.max_bytes == 0 ||
                          bytes + next->action.identity.size <= limits.max_bytes;
        if (next->action.kind == head_kind && BatchableLocked(*next, limits) && fits &&
            !BlockedLocked(next_key) && (!moves || moves->Independent(*next))) {
          bytes += next->action.identity.size;
          next = take(next, next_key);
        } else {
          ++next;
        }
      }
      PublishDepthLocked();
      not_full_.SignalAll();
      return batch;
    }
    if (closed_ && queue_.empty()) return batch;
    if (lingering) {
      changed_.WaitUntil(&mu_, *linger_until);
    } else {
      changed_.Wait(&mu_);
    }
  }
}

void EventProducer::BeginFill() {
  core::MutexLock lock(&mu_);
  filling_ = true;
}

void EventProducer::EndFill() {
  core::MutexLock lock(&mu_);
  filling_ = false;
  changed_.SignalAll();
}

void EventProducer::Done(const std::vector<Event>& events) {
  core::MutexLock lock(&mu_);
  for (const Event& event : events) ClearInFlightLocked(Key(event));
  changed_.SignalAll();
}

void EventProducer::Close() {
  core::MutexLock lock(&mu_);
  closed_ = true;
  filling_ = false;
  changed_.SignalAll();
  not_full_.SignalAll();
}

void EventProducer::Cancel() {
  core::MutexLock lock(&mu_);
  cancelled_ = true;
  filling_ = false;
  queue_.clear();
  index_.clear();
  PublishDepthLocked();
  changed_.SignalAll();
  not_full_.SignalAll();
}

void EventProducer::Reset() {
  core::MutexLock lock(&mu_);
  closed_ = false;
  cancelled_ = false;
  queue_.clear();
  index_.clear();
  PublishDepthLocked();
}

void EventProducer::WaitIdle() {
  core::MutexLock lock(&mu_);
  filling_ = false;
  changed_.SignalAll();
  while (!((queue_.empty() || cancelled_) && in_flight_.empty())) changed_.Wait(&mu_);
}

std::size_t EventProducer::queued() const {
  core::MutexLock lock(&mu_);
  return queue_.size();
}

std::size_t EventProducer::in_flight() const {
  core::MutexLock lock(&mu_);
  return in_flight_.size();
}

}  // namespace filesync::pipeline
