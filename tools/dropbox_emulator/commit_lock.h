// The emulated namespace write lock (reference §14): every commit holds it for a configurable
// time (--commit-lock-ms). Single-item commits that find it taken fail at once (the route
// answers 429 too_many_write_operations); batch commits queue for it instead.
//
// Thread-safe. Guards are RAII; holding is simulated with a sleep while locked.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>

namespace filesync::emulator {

class CommitLock {
 public:
  explicit CommitLock(std::chrono::milliseconds hold) : hold_(hold) {}

  class Guard {
   public:
    explicit Guard(std::unique_lock<std::timed_mutex> lock) : lock_(std::move(lock)) {}

   private:
    std::unique_lock<std::timed_mutex> lock_;
  };

  // Single commit: the lock now (after holding it for the hold time), or nullopt if taken.
  std::optional<Guard> TryAcquire();
  // Batch commit: waits for the lock.
  Guard Acquire();

 private:
  std::chrono::milliseconds hold_;
  std::timed_mutex mu_;
};

}  // namespace filesync::emulator
