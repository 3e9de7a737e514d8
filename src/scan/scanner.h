// Scanner: one pass over a local sync dir, listing every regular file and directory below it
// with the identity (size, mtime, ctime, inode, device) that tells whether a file changed since
// it was last hashed, without reading any file.
//
// Promises:
//  - Nothing is followed: symlinks are reported (kSymlink) and skipped, never entered, so a scan
//    never leaves the root. FIFOs, sockets and device nodes are reported (kSpecialFile) and
//    skipped. Directories on another filesystem than the root (mount points) are reported
//    (kOtherFilesystem) and not entered.
//  - One bad entry never aborts the pass: unreadable directories (kUnreadable), names that are
//    not valid UTF-8 (kNotUtf8, shown with the bad bytes escaped as \xNN), entries that vanish
//    while being looked at (kVanished) and paths longer than kMaxRelativePath bytes (kTooDeep)
//    are reported and skipped; the rest of the tree is still listed.
//  - A path named by an issue is not in `entries`, and nothing below it was seen: a caller
//    mirroring the tree must leave the far side of such a path alone rather than delete it.
//  - Excluded paths (ScanOptions::exclude) are skipped silently; excluded directories are not
//    entered.
//  - Only the root is resolved by path; everything below it is reached with openat() from its
//    parent's descriptor, so paths longer than PATH_MAX work and a directory swapped for a
//    symlink mid-scan is refused rather than followed.
// A file being readable is only known when it is opened; the scanner reports unreadable
// directories only.
// Thread safety: Scan() and StatIdentity() are reentrant; Scan() may use `threads` worker
// threads internally and joins them before returning.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/entry.h"
#include "scan/exclude.h"
#include "util/status.h"

namespace filesync::scan {

// Longest relative path (in bytes) the scanner lists; deeper entries are kTooDeep.
inline constexpr std::size_t kMaxRelativePath = 4096;

struct Entry {
  std::string path;  // relative to the root, '/'-separated, raw bytes (valid UTF-8 guaranteed)
  core::EntryKind kind = core::EntryKind::kFile;
  // Files: as fstatat() saw them. Directories: from fstat() on the opened directory; size is 0.
  core::FileIdentity identity;
};

enum class IssueKind {
  kSymlink,          // a symbolic link: not followed, skipped
  kSpecialFile,      // FIFO, socket, character or block device: skipped
  kUnreadable,       // a directory that cannot be opened or listed (EACCES, EIO...)
  kNotUtf8,          // a name that is not valid UTF-8: skipped (path shows bytes as \xNN)
  kVanished,         // removed between being listed and being looked at
  kTooDeep,          // path longer than kMaxRelativePath bytes
  kOtherFilesystem,  // a directory on another device than the root (a mount point)
};

const char* IssueKindName(IssueKind kind);

struct Issue {
  IssueKind kind;
  std::string path;  // relative to the root; not valid UTF-8 is escaped (kNotUtf8)
  std::string message;
};

struct ScanOptions {
  const ExcludeMatcher* exclude = nullptr;  // not owned; may be null (nothing excluded)
  int threads = 1;                          // directories are read by this many threads
  // Roughly how many entries to expect (e.g. the last scan's count; 0: unknown). Each thread
  // reserves room for that many up front, which costs address space, not memory, and saves
  // growing (copying) its list over and over.
  std::size_t expected_entries = 0;
};

struct ScanResult {
  std::vector<Entry> entries;      // sorted by path in byte order (so parents before children)
  std::vector<Issue> issues;       // sorted by path
  core::FileIdentity root;         // identity of the root dir (device + inode tell it was replaced)
  std::uint64_t dirs_scanned = 0;  // directories listed, the root included
};

// Scans the tree below `root` (a symlink as the root itself is followed). The root missing is
// kNotFound; not a directory or not readable is kIo; both name the path.
Result<ScanResult> Scan(const std::string& root, const ScanOptions& options);
// The same for a directory the caller has opened (`root` only names it in messages): the scan
// lists exactly that directory, whatever its path leads to by now. `dir_fd` stays the caller's.
Result<ScanResult> Scan(int dir_fd, const std::string& root, const ScanOptions& options);

// Test seam (leveldb's TEST_ style; production code never calls it): Scan(root, options), with
// `before_stat` called (from worker threads) with each entry's relative path just before it is
// looked at with fstatat(), so a test can make it vanish.
Result<ScanResult> TEST_ScanWithStatHook(const std::string& root, const ScanOptions& options,
                                         std::function<void(const std::string& path)> before_stat);

// Identity of `path` itself (lstat: a symlink is not followed). Missing is kNotFound, any other
// failure kIo.
Result<core::FileIdentity> StatIdentity(const std::string& path);

}  // namespace filesync::scan
