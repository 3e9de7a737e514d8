#include "cloud/local/local_cloud.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "cloud/local_file.h"
#include "scan/scanner.h"
#include "util/log.h"

// Confinement: every operation reaches its target from root_fd_ (or staging_fd_) one checked name
// at a time and never through a symlink, so a link planted in the cloud folder (a shared NAS
// folder anyone may write to) is refused instead of followed. Parents are opened with one
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); when that fails (missing folders to make,
// something in the way, or a kernel without openat2) a walk opens each component with
// openat(O_NOFOLLOW | O_DIRECTORY), which says exactly what is in the way. The last component is
// then handled with the *at() calls, which never follow it either.
namespace filesync::cloud {
namespace {

constexpr std::size_t kCopyBuffer = 1024 * 1024;
constexpr int kFolderFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Owns a descriptor like cloud::Fd, but can be moved (into a Result).
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

std::string RevOf(const FileIdentity& id) {
  return std::to_string(id.inode) + ":" + std::to_string(id.mtime_ns) + ":" +
         std::to_string(id.size);
}

bool WriteAll(int fd, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

Status SymlinkInTheWay(const std::string& cloud_path) {
  return Status::Conflict("cloud entry " + cloud_path + " is a symlink; not following it");
}

// Rejects anything but "" (the root) or "/name/name..." with plain names.
Status CheckCloudPath(const std::string& cloud_path) {
  if (cloud_path.empty()) return Status::Ok();
  if (cloud_path.front() != '/' || cloud_path.find('\0') != std::string::npos) {
    return Status::InvalidArgument("malformed cloud path '" + cloud_path + "'");
  }
  std::size_t start = 1;
  while (start <= cloud_path.size()) {
    const std::size_t end = std::min(cloud_path.find('/', start), cloud_path.size());
    const std::string_view part = std::string_view(cloud_path).substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return Status::InvalidArgument("cloud path '" + cloud_path +
                                     "' has an empty, '.' or '..' component");
    }
    if (start == 1 && part == LocalCloud::kStagingName) {
      return Status::InvalidArgument("cloud path '" + cloud_path + "' is reserved for staging");
    }
    start = end + 1;
  }
  return Status::Ok();
}

// Why `name` in `dir` (the entry at `cloud_path`) could not be opened as a folder (errno `err`).
// A file where the folder should be is kConflict when the folder was to be made (`create`), and
// kNotFound when it was only looked up: there is no such folder, so nothing below it exists.
Status FolderError(int dir, const std::string& name, const std::string& cloud_path, int err,
                   bool create) {
  if (err == ENOENT) return Status::NotFound("cloud folder " + cloud_path + " does not exist");
  if (err == ENOTDIR || err == ELOOP) {
    struct stat st {};
    if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
      return SymlinkInTheWay(cloud_path);
    }
    if (!create) return Status::NotFound("cloud entry " + cloud_path + " is not a folder");
    return Status::Conflict("a file is in the way of folder " + cloud_path);
  }
  errno = err;
  return Status::Io(Errno("cannot open cloud folder " + cloud_path));
}

// openat2() confined to `root_fd` and refusing every symlink; -1 on any failure.
int OpenBeneath(int root_fd, const char* relative) {
  static std::atomic<bool> unsupported{false};
  if (unsupported.load(std::memory_order_relaxed)) return -1;
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(kFolderFlags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  const long fd = syscall(SYS_openat2, root_fd, relative, &how, sizeof how);
  if (fd < 0 && errno == ENOSYS) unsupported.store(true, std::memory_order_relaxed);
  return static_cast<int>(fd);
}

// Opens the folder at the checked cloud path `cloud_path` below `root_fd` without following any
// symlink; with `create`, missing folders are made on the way.
Result<UniqueFd> OpenFolder(int root_fd, const std::string& cloud_path, bool create) {
  if (cloud_path.empty()) {
    const int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return Status::Io(Errno("cannot open the cloud root"));
    return UniqueFd(fd);
  }
  if (const int fd = OpenBeneath(root_fd, cloud_path.c_str() + 1); fd >= 0) return UniqueFd(fd);
  UniqueFd held(-1);
  int dir = root_fd;
  std::size_t start = 1;
  while (start <= cloud_path.size()) {
    const std::size_t end = std::min(cloud_path.find('/', start), cloud_path.size());
    const std::string name = cloud_path.substr(start, end - start);
    int fd = openat(dir, name.c_str(), kFolderFlags);
    if (fd < 0 && errno == ENOENT && create) {
      if (mkdirat(dir, name.c_str(), 0777) != 0 && errno != EEXIST) {
        return Status::Io(Errno("cannot create folder " + cloud_path.substr(0, end)));
      }
      fd = openat(dir, name.c_str(), kFolderFlags);
    }
    if (fd < 0) return FolderError(dir, name, cloud_path.substr(0, end), errno, create);
    held = UniqueFd(fd);
    dir = fd;
    start = end + 1;
  }
  return held;
}

// The folder holding the entry at the checked, non-root cloud path (opened as by OpenFolder), and
// the entry's name in it.
Result<UniqueFd> OpenParent(int root_fd, const std::string& cloud_path, bool create,
                            std::string& name) {
  const std::size_t slash = cloud_path.rfind('/');
  name = cloud_path.substr(slash + 1);
  return OpenFolder(root_fd, cloud_path.substr(0, slash), create);
}

// Removes `name` in `dir` and, if it is a folder, everything below it. Symlinks are removed,
// never followed: each folder is opened with O_NOFOLLOW from its parent's descriptor.
bool RemoveTree(int dir, const char* name) {
  if (unlinkat(dir, name, 0) == 0 || errno == ENOENT) return true;
  if (errno != EISDIR && errno != EPERM) return false;
  const int fd = openat(dir, name, kFolderFlags);
  if (fd < 0) return errno == ENOENT;
  DIR* stream = fdopendir(fd);
  if (stream == nullptr) {
    close(fd);
    return false;
  }
  bool ok = true;
  while (const dirent* entry = readdir(stream)) {
    const std::string_view child = entry->d_name;
    if (child == "." || child == "..") continue;
    ok = RemoveTree(fd, entry->d_name) && ok;
  }
  closedir(stream);
  return (unlinkat(dir, name, AT_REMOVEDIR) == 0 || errno == ENOENT) && ok;
}

}  // namespace

LocalCloud::LocalCloud(std::filesystem::path root) : root_(std::move(root)) {
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);
  if (ec)
    throw std::runtime_error("cannot create local cloud dir " + root_.string() + ": " +
                             ec.message());
  // The configured path may lead through symlinks (a mount, a link to a NAS): it is trusted.
  root_fd_ = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd_ < 0)
    throw std::runtime_error(Errno("cannot open local cloud dir " + root_.string()));
  const std::string staging = (root_ / kStagingName).string();
  // Leftovers of a crash are partial files nobody can see; removing them is always safe.
  if (!RemoveTree(root_fd_, kStagingName))
    throw std::runtime_error(Errno("cannot clear staging dir " + staging));
  if (mkdirat(root_fd_, kStagingName, 0777) != 0 && errno != EEXIST)
    throw std::runtime_error(Errno("cannot create staging dir " + staging));
  staging_fd_ = openat(root_fd_, kStagingName, kFolderFlags);
  if (staging_fd_ < 0) throw std::runtime_error(Errno("cannot open staging dir " + staging));
}

LocalCloud::~LocalCloud() {
  if (staging_fd_ >= 0) close(staging_fd_);
  if (root_fd_ >= 0) close(root_fd_);
}

Capabilities LocalCloud::capabilities() const {
  return {.incremental_listing = false,
          .case_insensitive = false,
          .max_batch_files = 64,
          .max_batch_bytes = 64ULL << 20,
          .small_file_limit = 8ULL << 20};
}

std::string LocalCloud::StagingName(const char* suffix) {
  return std::to_string(getpid()) + "-" + std::to_string(counter_.fetch_add(1)) + suffix;
}

Result<ListResult> LocalCloud::List(const std::string& root, const std::string& cursor) {
  ListResult result;
  result.cursor = "local";
  if (!cursor.empty()) return result;
  if (Status s = CheckCloudPath(root); !s.ok()) return s;
  result.complete = true;
  auto folder = OpenFolder(root_fd_, root, false);
  if (!folder.ok()) {
    if (folder.status().kind() == Status::Kind::kNotFound) return result;
    return folder.status();
  }
  struct stat opened {};
  if (fstat(folder->get(), &opened) != 0) return Status::Io(Errno("cannot stat cloud " + root));
  // The scanner takes a path; its root must be the folder just reached without links.
  auto scanned = scan::Scan(root_.string() + root, scan::ScanOptions{});
  if (!scanned.ok()) {
    if (scanned.status().kind() == Status::Kind::kNotFound) return result;
    return scanned.status();
  }
  if (scanned->root.inode != opened.st_ino ||
      scanned->root.device != static_cast<std::uint64_t>(opened.st_dev)) {
    return Status::Conflict("cloud folder " + root + " was replaced while it was listed");
  }
  for (const scan::Issue& issue : scanned->issues) {
    if (issue.kind == scan::IssueKind::kSymlink) {
      log::Get("local_cloud")
          ->warn("cloud entry {} is a symlink; not following it", JoinPath(root, issue.path));
    }
  }
  result.changes.reserve(scanned->entries.size());
  for (auto& entry : scanned->entries) {
    if (root.empty() &&
        (entry.path == kStagingName || entry.path.starts_with(std::string(kStagingName) + "/"))) {
      continue;
    }
    ListChange change;
    change.entry.path = JoinPath(root, entry.path);
    change.entry.kind = entry.kind;
    if (entry.kind == EntryKind::kFile) {
      change.entry.size = entry.identity.size;
      change.entry.has_content_hash = false;
      change.entry.rev = RevOf(entry.identity);
    }
    result.changes.push_back(std::move(change));
  }
  return result;
}

Status LocalCloud::CreateFolder(const std::string& path) {
  if (Status s = CheckCloudPath(path); !s.ok()) return s;
  auto folder = OpenFolder(root_fd_, path, true);
  return folder.ok() ? Status::Ok() : folder.status();
}

std::vector<Result<UploadedFile>> LocalCloud::Upload(std::span<const UploadItem> items,
                                                     const Transfer& transfer) {
  std::vector<Result<UploadedFile>> results;
  results.reserve(items.size());
  for (const UploadItem& item : items) results.push_back(UploadOne(item, transfer));
  return results;
}

Result<UploadedFile> LocalCloud::UploadOne(const UploadItem& item, const Transfer& transfer) {
  if (Status s = CheckCloudPath(item.cloud_path); !s.ok()) return s;
  if (item.cloud_path.empty()) return Status::Conflict("the cloud root is a folder");
  auto opened = OpenForUpload(item);
  if (!opened.ok()) return opened.status();
  const Fd src = std::move(opened->first);
  struct stat before {};
  if (fstat(src.get(), &before) != 0) return Status::Io(Errno("cannot stat " + item.local_path));
  std::string name;
  auto parent = OpenParent(root_fd_, item.cloud_path, true, name);
  if (!parent.ok()) return parent.status();
  struct stat existing {};
  if (fstatat(parent->get(), name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(existing.st_mode)) {
    return Status::Conflict("a folder is in the way of file " + item.cloud_path);
  }

  const std::string temp = StagingName(".part");
  Fd out(openat(staging_fd_, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                before.st_mode & 07777));
  if (out.get() < 0) return Status::Io(Errno("cannot create staging file " + temp));
  thread_local std::vector<std::uint8_t> buffer(kCopyBuffer);
  hash::ContentHasher hasher;
  std::uint64_t copied = 0;
  posix_fadvise(src.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  for (;;) {
    const ssize_t n = read(src.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const Status s = Status::Io(Errno("cannot read " + item.local_path));
      unlinkat(staging_fd_, temp.c_str(), 0);
      return s;
    }
    if (n == 0) break;
    const auto len = static_cast<std::size_t>(n);
    hasher.Update(std::span(buffer.data(), len));
    if (!WriteAll(out.get(), buffer.data(), len)) {
      const Status s = Status::Io(Errno("cannot write staging file " + temp));
      unlinkat(staging_fd_, temp.c_str(), 0);
      return s;
    }
    copied += len;
    transfer.Progress(len);
    if (transfer.cancelled()) {
      unlinkat(staging_fd_, temp.c_str(), 0);
      return Status::Cancelled("stopped while copying " + item.local_path);
    }
  }
  struct stat after {};
  if (fstat(src.get(), &after) != 0 || IdentityOf(after) != IdentityOf(before) ||
      copied != static_cast<std::uint64_t>(before.st_size)) {
    unlinkat(staging_fd_, temp.c_str(), 0);
    return Status::Changed(item.local_path + " changed while it was copied");
  }
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  futimens(out.get(), times);
  struct stat written {};
  fstat(out.get(), &written);
  // Replaces a file, or a symlink itself, at the destination; never what a link points to.
  if (renameat(staging_fd_, temp.c_str(), parent->get(), name.c_str()) != 0) {
    const int err = errno;
    unlinkat(staging_fd_, temp.c_str(), 0);
    if (err == EISDIR || err == ENOTDIR)
      return Status::Conflict("something is in the way of " + item.cloud_path);
    errno = err;
    return Status::Io(Errno("cannot rename into " + item.cloud_path));
  }
  UploadedFile uploaded;
  uploaded.identity = IdentityOf(before);
  uploaded.digest = hasher.Finish();
  uploaded.bytes_transferred = copied;
  uploaded.entry.path = item.cloud_path;
  uploaded.entry.kind = EntryKind::kFile;
  uploaded.entry.size = copied;
  uploaded.entry.content_hash = uploaded.digest;
  uploaded.entry.rev = RevOf(IdentityOf(written));
  return uploaded;
}

Status LocalCloud::DeleteOne(const std::string& path) {
  if (Status s = CheckCloudPath(path); !s.ok()) return s;
  if (path.empty()) return Status::InvalidArgument("refusing to delete the cloud root");
  std::string name;
  auto parent = OpenParent(root_fd_, path, false, name);
  if (!parent.ok()) {
    return parent.status().kind() == Status::Kind::kNotFound ? Status::Ok() : parent.status();
  }
  struct stat st {};
  if (fstatat(parent->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::Io(Errno("cannot stat cloud " + path));
  }
  if (!S_ISDIR(st.st_mode)) {
    // A symlink is removed itself; what it points to is left alone.
    return unlinkat(parent->get(), name.c_str(), 0) == 0 || errno == ENOENT
               ? Status::Ok()
               : Status::Io(Errno("cannot delete cloud " + path));
  }
  // Rename first so the folder disappears at once; then remove it at leisure.
  const std::string doomed = StagingName(".deleted");
  if (renameat(parent->get(), name.c_str(), staging_fd_, doomed.c_str()) != 0) {
    return Status::Io(Errno("cannot delete cloud " + path));
  }
  if (!RemoveTree(staging_fd_, doomed.c_str())) {
    log::Get("local_cloud")
        ->warn(
            "could not remove all of deleted cloud folder {} from staging; the next start "
            "clears it",
            path);
  }
  return Status::Ok();
}

std::vector<Status> LocalCloud::Delete(std::span<const std::string> paths) {
  std::vector<Status> results;
  results.reserve(paths.size());
  for (const std::string& path : paths) results.push_back(DeleteOne(path));
  return results;
}

Result<RemoteEntry> LocalCloud::Move(const std::string& from, const std::string& to) {
  if (Status s = CheckCloudPath(from); !s.ok()) return s;
  if (Status s = CheckCloudPath(to); !s.ok()) return s;
  if (from.empty() || to.empty()) return Status::InvalidArgument("cannot move the cloud root");
  std::string from_name;
  auto source = OpenParent(root_fd_, from, false, from_name);
  if (!source.ok()) {
    if (source.status().kind() == Status::Kind::kNotFound)
      return Status::NotFound("cannot move " + from + ": " + source.status().message());
    return source.status();
  }
  struct stat st {};
  if (fstatat(source->get(), from_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Status::NotFound(Errno("cannot move " + from));
  if (S_ISLNK(st.st_mode)) return SymlinkInTheWay(from);
  std::string to_name;
  auto target = OpenParent(root_fd_, to, true, to_name);
  if (!target.ok()) return target.status();
  if (renameat2(source->get(), from_name.c_str(), target->get(), to_name.c_str(),
                RENAME_NOREPLACE) != 0) {
    if (errno != EEXIST) return Status::Io(Errno("cannot move " + from + " to " + to));
    // A case-insensitive filesystem reports the entry itself as "existing" on a case-only rename.
    struct stat other {};
    const bool same_entry =
        fstatat(target->get(), to_name.c_str(), &other, AT_SYMLINK_NOFOLLOW) == 0 &&
        other.st_ino == st.st_ino && other.st_dev == st.st_dev;
    if (!same_entry)
      return Status::Conflict("cannot move " + from + " to " + to + ": destination exists");
    if (renameat(source->get(), from_name.c_str(), target->get(), to_name.c_str()) != 0) {
      return Status::Io(Errno("cannot move " + from + " to " + to));
    }
  }
  RemoteEntry entry;
  entry.path = to;
  entry.kind = S_ISDIR(st.st_mode) ? EntryKind::kFolder : EntryKind::kFile;
  if (entry.kind == EntryKind::kFile) {
    struct stat moved {};
    fstatat(target->get(), to_name.c_str(), &moved, AT_SYMLINK_NOFOLLOW);
    entry.size = static_cast<std::uint64_t>(moved.st_size);
    entry.has_content_hash = false;
    entry.rev = RevOf(IdentityOf(moved));
  }
  return entry;
}

Status LocalCloud::Flush() {
  if (syncfs(root_fd_) != 0) return Status::Io(Errno("syncfs " + root_.string()));
  return Status::Ok();
}

}  // namespace filesync::cloud
