// The hold time is spent right after acquiring, so contention windows are deterministic.
#include "dropbox_emulator/commit_lock.h"

#include <thread>

namespace filesync::emulator {

std::optional<CommitLock::Guard> CommitLock::TryAcquire() {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return std::nullopt;
  if (hold_.count() > 0) std::this_thread::sleep_for(hold_);
  return Guard(std::move(lock));
}

CommitLock::Guard CommitLock::Acquire() {
  std::unique_lock lock(mu_);
  if (hold_.count() > 0) std::this_thread::sleep_for(hold_);
  return Guard(std::move(lock));
}

}  // namespace filesync::emulator
