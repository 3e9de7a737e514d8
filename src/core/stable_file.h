// Reading a local file that may change or be swapped while it is read, with one rule: a file is
// read only below a sync dir's descriptor without following any symlink, it must still be the
// version the scan saw when it is opened, and still that version once it has been read
// (core::SameContent, see entry.h), else the read is kChanged and the caller tries it next pass.
// So a folder swapped for a link mid-pass cannot lead a read outside the sync dir, and bytes of
// a file written meanwhile are never recorded as its content.
//
// Use: auto file = StableFile::Open(dir_fd, relative, shown, expected); read file->fd();
// then file->CheckUnchanged("copied") before trusting what was read.
// Thread safety: the functions are reentrant; a StableFile is a value (its descriptor may be read
// from several threads at once with pread, as the Dropbox chunk uploads do).
#pragma once

#include <sys/stat.h>

#include <functional>
#include <string>
#include <string_view>

#include "core/entry.h"
#include "core/unique_fd.h"
#include "util/status.h"

namespace filesync::core {

// Opens `relative` (a '/'-separated path with no empty, "." or ".." component) below the
// directory `dir_fd` with `flags` (O_CLOEXEC and O_NOFOLLOW are added), following no symlink on
// the way or at the end: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or OpenBeneathWalking
// where the kernel lacks openat2. Returns no descriptor with errno set on failure (ELOOP or
// ENOTDIR for a link in the way, ENOENT, EXDEV for an escape).
UniqueFd OpenBeneath(int dir_fd, const std::string& relative, int flags);
// The same without openat2 (kernels before 5.6): WalkFolders to the parent, each folder opened
// with O_NOFOLLOW, then the last component with `flags`.
UniqueFd OpenBeneathWalking(int dir_fd, const std::string& relative, int flags);

// Opens one folder `name` in the folder `parent`; `prefix` is the walked path up to and
// including `name` (a view into the walk's `relative`). Returns a descriptor, or -1 with errno
// set to stop the walk.
using OpenFolderStep =
    std::function<int(int parent, const std::string& name, std::string_view prefix)>;
// Opens the folders of `relative` one component at a time from `dir_fd`, each with `step` (a
// caller may make missing folders on the way, or say exactly what is in the way), and returns
// the last one. No descriptor (errno set) when a step fails or a component is empty, "." or ".."
// (EXDEV).
UniqueFd WalkFolders(int dir_fd, std::string_view relative, const OpenFolderStep& step);

// A regular file opened for reading by that rule.
class StableFile {
 public:
  // Opens `relative` below `dir_fd` (OpenBeneath) and checks that it is a regular file with
  // `expected`'s content identity. dir_fd < 0: opens `shown` itself, not following a link at its
  // last component (for callers that trust the whole path). `shown` names the file in messages.
  // A vanished, replaced or changed file is kChanged; any other failure kIo.
  static Result<StableFile> Open(int dir_fd, const std::string& relative, std::string shown,
                                 const FileIdentity& expected);

  [[nodiscard]] int fd() const { return fd_.get(); }
  // As the file was when opened.
  [[nodiscard]] const struct stat& stat_at_open() const { return stat_; }
  [[nodiscard]] const FileIdentity& identity() const { return identity_; }
  [[nodiscard]] const std::string& shown() const { return shown_; }

  // Ok when the file still has the identity it was opened with; else kChanged, worded
  // "<shown> changed while it was <while_being>" (e.g. "copied"). Call it after the last read.
  [[nodiscard]] Status CheckUnchanged(std::string_view while_being) const;

 private:
  StableFile(UniqueFd fd, const struct stat& st, std::string shown)
      : fd_(std::move(fd)), stat_(st), identity_(IdentityOf(st)), shown_(std::move(shown)) {}

  UniqueFd fd_;
  struct stat stat_ {};
  FileIdentity identity_;
  std::string shown_;
};

}  // namespace filesync::core
