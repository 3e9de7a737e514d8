// EventProducer: the bounded queue between the EventMonitor (which pushes planned actions) and the
// EventConsumer's processors (which take them on demand), as in the seed's GenStage producer.
//
// Promises:
//  - Back-pressure: Push() blocks while `capacity` events are queued, so memory stays bounded.
//  - Supersede: pushing an event for a path that is still queued (not yet handed out) replaces
//    the queued one in place; the older event is never executed.
//  - Exclusion: Pop() never hands out an event whose path, or an ancestor or descendant of it,
//    is in flight (handed out and not yet Done()), so no two operations touch one path at once.
//  - Independent move batches: file moves (kPhaseFileMoves) are batched like deletes, but a batch
//    never holds two moves where one's `from` or `path` equals, contains or lies inside the
//    other's `from` or `path` (compared with core::CloudKey); such a move waits for a later Pop().
//    Folder moves are never batched.
//  - Full batches: while the pusher has a fill open (BeginFill() .. EndFill()), Pop() holds a
//    batchable head back until the queue holds a whole batch, the queue is full, the fill ends,
//    or `fill_linger` passes; so how a burst of pushes is cut into batches does not depend on how
//    fast the workers wake up.
//  - FIFO otherwise.
//  - Depth: if given `depth`, it always holds how many events are queued (for live metrics).
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/thread_annotations.h"
#include "plan/action.h"

namespace filesync::pipeline {

// An action bound to the sync root it belongs to.
struct Event {
  int root = 0;  // index of the sync dir in the engine
  plan::Action action;
  std::size_t index = 0;  // the action's place in its dir's plan (for the engine's accounting)
};

// A file move of the file-moves phase: the only moves that are batched (folder moves run one at
// a time, in order).
bool IsBatchableMove(const plan::Action& action);

struct BatchLimits {
  std::size_t max_files = 1;
  std::uint64_t max_bytes = 0;         // 0: no byte limit
  std::uint64_t small_file_limit = 0;  // uploads above this size are never batched
  // How move paths are compared for batch independence; true (the cautious choice) unless the
  // backend is known to be case-sensitive.
  bool case_insensitive = true;
  // The longest a batchable head waits for its batch to fill during a fill (see Full batches).
  std::chrono::milliseconds fill_linger{50};
};

class EventProducer {
 public:
  explicit EventProducer(std::size_t capacity, std::atomic<std::uint64_t>* depth = nullptr);
  EventProducer(const EventProducer&) = delete;
  EventProducer& operator=(const EventProducer&) = delete;

  // Queues `event`, blocking while the queue is full. Returns false once Close()/Cancel() ran.
  bool Push(Event event);

  // Blocks until an event can be handed out (see Exclusion) and returns it; when the head is a
  // small upload, a delete or a file move, further queued events of that kind are added up to
  // `limits` (moves count no bytes), so a backend can commit them together. Returns an
  // empty vector
  // once the queue is closed and drained, or cancelled.
  std::vector<Event> Pop(const BatchLimits& limits);

  // The pusher is about to push a burst of events / has pushed all of it (see Full batches).
  // WaitIdle(), Close() and Cancel() end a fill too.
  void BeginFill();
  void EndFill();

  // Marks events returned by Pop() as finished.
  void Done(const std::vector<Event>& events);

  // No more pushes; Pop() drains what is queued, then returns empty.
  void Close();
  // Drops everything queued; Pop() returns empty at once. In-flight events still call Done().
  void Cancel();
  // Re-opens a closed or cancelled queue for the next pass. REQUIRES: nothing in flight.
  void Reset();

  // Blocks until nothing is queued and nothing is in flight.
  void WaitIdle();

  [[nodiscard]] std::size_t queued() const;
  [[nodiscard]] std::size_t in_flight() const;

 private:
  static std::string Key(const Event& event);
  bool BlockedLocked(const std::string& key) const REQUIRES(mu_);
  void MarkInFlightLocked(const std::string& key) REQUIRES(mu_);
  void ClearInFlightLocked(const std::string& key) REQUIRES(mu_);
  static bool BatchableLocked(const Event& event, const BatchLimits& limits);
  void PublishDepthLocked() REQUIRES(mu_);

  const std::size_t capacity_;
  std::atomic<std::uint64_t>* const depth_;
  mutable core::Mutex mu_;
  core::CondVar not_full_;
  core::CondVar changed_;
  std::list<Event> queue_ GUARDED_BY(mu_);
  std::unordered_map<std::string, std::list<Event>::iterator> index_ GUARDED_BY(mu_);
  std::unordered_multiset<std::string> in_flight_ GUARDED_BY(mu_);
  // For each ancestor key of an in-flight key: how many in-flight keys lie below it.
  std::unordered_map<std::string, int> descendants_in_flight_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
  bool cancelled_ GUARDED_BY(mu_) = false;
  bool filling_ GUARDED_BY(mu_) = false;
};

}  // namespace filesync::pipeline
