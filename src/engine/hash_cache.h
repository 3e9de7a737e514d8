// The hash cache (the seed's Filesync.Cache): which local files need reading to know their
// content hash. Its rules:
//   - identity match: a file whose identity (inode, size, mtime, ctime; core::SameContent) is the
//     one recorded with its digest has that digest, unread;
//   - inode after a rename: a path with no record takes the digest of a record with the same
//     inode, size and mtime (a rename changes ctime, so ctime is not compared); a path whose
//     record's identity changed is an edit and is read again, even if its mtime was put back;
//   - racily clean: a file whose mtime is within kRacyWindowNs of the moment it was recorded may
//     still change within the same timestamp tick (git's "racily clean"); its record is smudged
//     (mtime 0) so the next pass reads it again.
// Records live in RootState::files and go to the store through `batch`.
// Thread safety: HashCache is a short-lived view; the caller holds whatever guards the map and
// the batch. HashFiles runs on `workers` threads of its own and is safe to call from one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/pass_report.h"
#include "engine/root_state.h"
#include "plan/planner.h"
#include "scan/scanner.h"
#include "store/state_store.h"

namespace filesync::engine {

inline constexpr std::int64_t kRacyWindowNs = 2'000'000'000;

class HashCache {
 public:
  // `now_ns`: wall-clock time (unix ns) the records are taken at, for the racily-clean rule.
  HashCache(FileMap& files, store::StateStore::Batch& batch, std::int64_t now_ns)
      : files_(files), batch_(batch), now_ns_(now_ns) {}

  // The scan's entries as plan items, with the digests the cache knows (moved out of `entries`).
  static std::vector<plan::LocalItem> LookUp(const FileMap& files,
                                             std::vector<scan::Entry>& entries);
  // Records `digest` as the content of `path` with `identity` (smudged if racily clean).
  void Record(const std::string& path, core::FileIdentity identity, const hash::Digest& digest);
  // Brings the records in line with what the scan saw: new digests and folders recorded,
  // records of paths no longer there dropped.
  void Reconcile(const std::vector<plan::LocalItem>& items);

 private:
  FileMap& files_;
  store::StateStore::Batch& batch_;
  const std::int64_t now_ns_;
};

struct HashTotals {
  std::uint64_t bytes = 0;
  std::uint64_t files = 0;
};

// Reads and hashes items[which[...]] below `dir_fd` on `workers` threads, filling in their
// digests. A file that changes while read, or cannot be read, is left without one (its upload
// reports it). Stops early once `stop` is set.
HashTotals HashFiles(int dir_fd, const std::string& local_dir, std::vector<plan::LocalItem>& items,
                     const std::vector<std::size_t>& which, int workers,
                     const std::atomic<bool>& stop, PassProgress* progress);

}  // namespace filesync::engine
