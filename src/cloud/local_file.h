// Helpers every backend and the engine use to read local files safely: an owning descriptor, the
// FileIdentity of a stat result (what "unchanged" means for a file that is read for upload), and
// the confined open that reaches a file below an already opened sync dir without following any
// symlink (so a folder swapped for a link mid-pass cannot lead a read outside the sync dir).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "cloud/cloud.h"
#include "util/status.h"

namespace filesync::cloud {

FileIdentity IdentityOf(const struct stat& st);

// Owns a file descriptor; closes it when destroyed. Movable, not copyable.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// Opens `relative` (a '/'-separated path with no empty, "." or ".." component) below the
// directory `dir_fd` with `flags` (O_CLOEXEC and O_NOFOLLOW are added), following no symlink on
// the way or at the end: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or a walk opening each
// folder with O_NOFOLLOW where the kernel lacks openat2. Returns the descriptor, or -1 with errno
// set (ELOOP or ENOTDIR for a link in the way, ENOENT, EXDEV for an escape).
int OpenBeneath(int dir_fd, const std::string& relative, int flags);

// Opens the file an UploadItem names for reading (below its sync dir's descriptor when it has
// one, see UploadItem) and checks it is still the regular file the scan saw: a vanished, replaced
// or changed file is kChanged, other failures kIo. On success also returns its identity.
Result<std::pair<Fd, FileIdentity>> OpenForUpload(const UploadItem& item);

}  // namespace filesync::cloud
