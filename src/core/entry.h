// The words every module shares about an entry of a sync dir or of the cloud: its kind, and the
// identity that tells one version of a local file from another without reading it.
//
// "Unchanged" has one meaning, SameContent(): the same size, mtime, ctime and inode. The device
// number is left out on purpose:
//  - it is not stable: a NAS share (NFS, SMB), a USB disk or an LVM volume mounted again may get
//    another device number while its inode numbers, which come from the filesystem, stay;
//  - it adds nothing for a file's content: every write moves mtime and ctime, and ctime cannot be
//    set back by a user, so one inode with the same four values holds the same bytes. Two inodes
//    on different devices that share all four are a snapshot or clone of one file, which also
//    holds the same bytes;
//  - which filesystem is read is settled elsewhere: each pass reaches its files below the sync
//    dir's descriptor it opened and checked (device and inode, see the engine), and the scanner
//    does not enter other filesystems.
// (git compares no device either unless built with USE_STDEV, for the same reason.)
// operator== is exact equality, device included: whether a stored record is still up to date,
// not whether a file changed.
// Pure values and functions; thread-safe.
#pragma once

#include <sys/stat.h>

#include <cstdint>

namespace filesync::core {

// Persisted in the state store: never renumber.
enum class EntryKind : std::uint8_t { kFile = 1, kFolder = 2 };

// What identifies one version of a local file without reading it.
struct FileIdentity {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::uint64_t inode = 0;
  std::uint64_t device = 0;
  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

inline FileIdentity IdentityOf(const struct stat& st) {
  constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
  return {.size = static_cast<std::uint64_t>(st.st_size),
          .mtime_ns =
              static_cast<std::int64_t>(st.st_mtim.tv_sec) * kNanosPerSecond + st.st_mtim.tv_nsec,
          .ctime_ns =
              static_cast<std::int64_t>(st.st_ctim.tv_sec) * kNanosPerSecond + st.st_ctim.tv_nsec,
          .inode = static_cast<std::uint64_t>(st.st_ino),
          .device = static_cast<std::uint64_t>(st.st_dev)};
}

// True when `a` and `b` are the same version of a file (see the top of this file).
constexpr bool SameContent(const FileIdentity& a, const FileIdentity& b) {
  return a.size == b.size && a.mtime_ns == b.mtime_ns && a.ctime_ns == b.ctime_ns &&
         a.inode == b.inode;
}

}  // namespace filesync::core
