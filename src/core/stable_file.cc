#include "core/stable_file.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace filesync::core {
namespace {

constexpr int kFolderFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

bool PlainName(std::string_view name) { return !name.empty() && name != "." && name != ".."; }

// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); ENOSYS once means never again (kernels
// before 5.6).
int OpenAt2Beneath(int dir_fd, const std::string& relative, int flags) {
  static std::atomic<bool> no_openat2{false};
  if (no_openat2.load(std::memory_order_relaxed)) {
    errno = ENOSYS;
    return -1;
  }
  struct open_how how {};
  how.flags = static_cast<__u64>(static_cast<unsigned>(flags));
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  const long fd = syscall(SYS_openat2, dir_fd, relative.c_str(), &how, sizeof how);
  if (fd < 0 && errno == ENOSYS) no_openat2.store(true, std::memory_order_relaxed);
  return static_cast<int>(fd);
}

}  // namespace

UniqueFd WalkFolders(int dir_fd, std::string_view relative, const OpenFolderStep& step) {
  UniqueFd held;
  int dir = dir_fd;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = relative.find('/', start);
    const std::string name(relative.substr(start, slash - start));
    if (!PlainName(name)) {
      errno = EXDEV;
      return {};
    }
    const std::string_view prefix =
        relative.substr(0, slash == std::string_view::npos ? relative.size() : slash);
    const int next = step(dir, name, prefix);
    if (next < 0) return {};
    held.Reset(next);
    dir = next;
    if (slash == std::string_view::npos) return held;
    start = slash + 1;
  }
}

UniqueFd OpenBeneathWalking(int dir_fd, const std::string& relative, int flags) {
  flags |= O_CLOEXEC | O_NOFOLLOW;
  const std::size_t slash = relative.rfind('/');
  const std::string name = relative.substr(slash + 1);  // the whole path when there is no '/'
  if (!PlainName(name)) {
    errno = EXDEV;
    return {};
  }
  if (slash == std::string::npos) return UniqueFd(openat(dir_fd, name.c_str(), flags));
  const UniqueFd parent =
      WalkFolders(dir_fd, std::string_view(relative).substr(0, slash),
                  [](int dir, const std::string& folder, std::string_view /*prefix*/) {
                    return openat(dir, folder.c_str(), kFolderFlags);
                  });
  if (!parent.valid()) return {};
  return UniqueFd(openat(parent.get(), name.c_str(), flags));
}

UniqueFd OpenBeneath(int dir_fd, const std::string& relative, int flags) {
  if (const int fd = OpenAt2Beneath(dir_fd, relative, flags | O_CLOEXEC | O_NOFOLLOW);
      fd >= 0 || errno != ENOSYS) {
    return UniqueFd(fd);
  }
  return OpenBeneathWalking(dir_fd, relative, flags);
}

Result<StableFile> StableFile::Open(int dir_fd, const std::string& relative, std::string shown,
                                    const FileIdentity& expected) {
  UniqueFd fd = dir_fd >= 0 ? OpenBeneath(dir_fd, relative, O_RDONLY)
                            : UniqueFd(open(shown.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == EXDEV)
      return Status::Changed(shown + " vanished or was replaced");
    return Status::Io("cannot open " + shown + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return Status::Io("cannot stat " + shown + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode) || !SameContent(IdentityOf(st), expected))
    return Status::Changed(shown + " changed since it was scanned");
  return StableFile(std::move(fd), st, std::move(shown));
}

Status StableFile::CheckUnchanged(std::string_view while_being) const {
  struct stat now {};
  if (fstat(fd_.get(), &now) != 0)
    return Status::Io("cannot stat " + shown_ + ": " + std::strerror(errno));
  if (!SameContent(IdentityOf(now), identity_))
    return Status::Changed(shown_ + " changed while it was " + std::string(while_being));
  return Status::Ok();
}

}  // namespace filesync::core
