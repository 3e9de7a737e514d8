#include "cloud/local_file.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace filesync::cloud {

FileIdentity IdentityOf(const struct stat& st) {
  return {
      .size = static_cast<std::uint64_t>(st.st_size),
      .mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      .ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec,
      .inode = static_cast<std::uint64_t>(st.st_ino),
      .device = static_cast<std::uint64_t>(st.st_dev)};
}

int OpenBeneath(int dir_fd, const std::string& relative, int flags) {
  flags |= O_CLOEXEC | O_NOFOLLOW;
  static std::atomic<bool> no_openat2{false};
  if (!no_openat2.load(std::memory_order_relaxed)) {
    struct open_how how {};
    how.flags = static_cast<__u64>(static_cast<unsigned>(flags));
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    const long fd = syscall(SYS_openat2, dir_fd, relative.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS) return static_cast<int>(fd);
    no_openat2.store(true, std::memory_order_relaxed);
  }
  // No openat2 (kernels before 5.6): one component at a time, each folder without following.
  if (relative.empty() || relative.front() == '/') {
    errno = EXDEV;
    return -1;
  }
  Fd held;
  int dir = dir_fd;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = relative.find('/', start);
    const std::string name = relative.substr(start, slash - start);
    if (name.empty() || name == "." || name == "..") {
      errno = EXDEV;
      return -1;
    }
    if (slash == std::string::npos) return openat(dir, name.c_str(), flags);
    const int next = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) return -1;
    held = Fd(next);
    dir = next;
    start = slash + 1;
  }
}

Result<std::pair<Fd, FileIdentity>> OpenForUpload(const UploadItem& item) {
  const std::string& shown = item.local_path;
  Fd fd(item.local_dir_fd >= 0 ? OpenBeneath(item.local_dir_fd, item.relative, O_RDONLY)
                               : open(shown.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == EXDEV)
      return Status::Changed(shown + " vanished or was replaced");
    return Status::Io("cannot open " + shown + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return Status::Io("cannot stat " + shown + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode) || IdentityOf(st) != item.expected)
    return Status::Changed(shown + " changed since it was scanned");
  return std::make_pair(std::move(fd), IdentityOf(st));
}

}  // namespace filesync::cloud
