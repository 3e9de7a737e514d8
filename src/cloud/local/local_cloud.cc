#include "cloud/local/local_cloud.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "cloud/local_file.h"
#include "scan/scanner.h"

namespace filesync::cloud {
namespace {

constexpr std::size_t kCopyBuffer = 1024 * 1024;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

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

}  // namespace

LocalCloud::LocalCloud(std::filesystem::path root)
    : root_(std::move(root)), staging_((root_ / kStagingName).string()) {
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);
  if (ec)
    throw std::runtime_error("cannot create local cloud dir " + root_.string() + ": " +
                             ec.message());
  // Leftovers of a crash are partial files nobody can see; removing them is always safe.
  std::filesystem::remove_all(staging_, ec);
  std::filesystem::create_directories(staging_, ec);
  if (ec) throw std::runtime_error("cannot create staging dir " + staging_ + ": " + ec.message());
  root_fd_ = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd_ < 0)
    throw std::runtime_error(Errno("cannot open local cloud dir " + root_.string()));
}

LocalCloud::~LocalCloud() {
  if (root_fd_ >= 0) close(root_fd_);
}

Capabilities LocalCloud::capabilities() const {
  return {.incremental_listing = false,
          .case_insensitive = false,
          .max_batch_files = 64,
          .max_batch_bytes = 64ULL << 20,
          .small_file_limit = 8ULL << 20};
}

Result<std::string> LocalCloud::Resolve(const std::string& cloud_path) const {
  if (cloud_path.empty()) return root_.string();
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
    if (start == 1 && part == kStagingName) {
      return Status::InvalidArgument("cloud path '" + cloud_path + "' is reserved for staging");
    }
    start = end + 1;
  }
  return root_.string() + cloud_path;
}

Status LocalCloud::MakeParents(const std::string& absolute) const {
  const std::string parent = std::filesystem::path(absolute).parent_path().string();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (!ec) return Status::Ok();
  if (ec == std::errc::file_exists || ec == std::errc::not_a_directory) {
    return Status::Conflict("a file is in the way of folder " + parent);
  }
  return Status::Io("cannot create " + parent + ": " + ec.message());
}

std::string LocalCloud::StagingName(const char* suffix) {
  return staging_ + "/" + std::to_string(getpid()) + "-" + std::to_string(counter_.fetch_add(1)) +
         suffix;
}

Result<ListResult> LocalCloud::List(const std::string& root, const std::string& cursor) {
  ListResult result;
  result.cursor = "local";
  if (!cursor.empty()) return result;
  auto dir = Resolve(root);
  if (!dir.ok()) return dir.status();
  result.complete = true;
  struct stat st {};
  if (lstat(dir->c_str(), &st) != 0 && errno == ENOENT) return result;
  auto scanned = scan::Scan(*dir, scan::ScanOptions{});
  if (!scanned.ok()) {
    if (scanned.status().kind() == Status::Kind::kNotFound) return result;
    return scanned.status();
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
  auto dir = Resolve(path);
  if (!dir.ok()) return dir.status();
  std::error_code ec;
  std::filesystem::create_directories(*dir, ec);
  if (!ec) return Status::Ok();
  if (ec == std::errc::file_exists || ec == std::errc::not_a_directory) {
    return Status::Conflict("a file is in the way of folder " + path);
  }
  return Status::Io("cannot create folder " + path + ": " + ec.message());
}

std::vector<Result<UploadedFile>> LocalCloud::Upload(std::span<const UploadItem> items,
                                                     const ProgressFn& progress) {
  std::vector<Result<UploadedFile>> results;
  results.reserve(items.size());
  for (const UploadItem& item : items) results.push_back(UploadOne(item, progress));
  return results;
}

Result<UploadedFile> LocalCloud::UploadOne(const UploadItem& item, const ProgressFn& progress) {
  auto dest = Resolve(item.cloud_path);
  if (!dest.ok()) return dest.status();
  Fd src(open(item.local_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (src.get() < 0) {
    if (errno == ENOENT || errno == ELOOP)
      return Status::Changed(item.local_path + " vanished or was replaced");
    return Status::Io(Errno("cannot open " + item.local_path));
  }
  struct stat before {};
  if (fstat(src.get(), &before) != 0) return Status::Io(Errno("cannot stat " + item.local_path));
  if (!S_ISREG(before.st_mode) || IdentityOf(before) != item.expected) {
    return Status::Changed(item.local_path + " changed since it was scanned");
  }
  if (Status s = MakeParents(*dest); !s.ok()) return s;
  struct stat existing {};
  if (lstat(dest->c_str(), &existing) == 0 && S_ISDIR(existing.st_mode)) {
    return Status::Conflict("a folder is in the way of file " + item.cloud_path);
  }

  const std::string temp = StagingName(".part");
  Fd out(open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, before.st_mode & 07777));
  if (out.get() < 0) return Status::Io(Errno("cannot create " + temp));
  thread_local std::vector<std::uint8_t> buffer(kCopyBuffer);
  hash::ContentHasher hasher;
  std::uint64_t copied = 0;
  posix_fadvise(src.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  for (;;) {
    const ssize_t n = read(src.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const Status s = Status::Io(Errno("cannot read " + item.local_path));
      unlink(temp.c_str());
      return s;
    }
    if (n == 0) break;
    const auto len = static_cast<std::size_t>(n);
    hasher.Update(std::span(buffer.data(), len));
    if (!WriteAll(out.get(), buffer.data(), len)) {
      const Status s = Status::Io(Errno("cannot write " + temp));
      unlink(temp.c_str());
      return s;
    }
    copied += len;
    if (progress) progress(len);
  }
  struct stat after {};
  if (fstat(src.get(), &after) != 0 || IdentityOf(after) != IdentityOf(before) ||
      copied != static_cast<std::uint64_t>(before.st_size)) {
    unlink(temp.c_str());
    return Status::Changed(item.local_path + " changed while it was copied");
  }
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  futimens(out.get(), times);
  struct stat written {};
  fstat(out.get(), &written);
  if (rename(temp.c_str(), dest->c_str()) != 0) {
    const int err = errno;
    unlink(temp.c_str());
    if (err == EISDIR || err == ENOTDIR)
      return Status::Conflict("something is in the way of " + item.cloud_path);
    errno = err;
    return Status::Io(Errno("cannot rename into " + *dest));
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

std::vector<Status> LocalCloud::Delete(std::span<const std::string> paths) {
  std::vector<Status> results;
  results.reserve(paths.size());
  for (const std::string& path : paths) {
    auto target = Resolve(path);
    if (!target.ok() || path.empty()) {
      results.push_back(target.ok() ? Status::InvalidArgument("refusing to delete the cloud root")
                                    : target.status());
      continue;
    }
    struct stat st {};
    if (lstat(target->c_str(), &st) != 0) {
      results.push_back(errno == ENOENT || errno == ENOTDIR
                            ? Status::Ok()
                            : Status::Io(Errno("cannot stat " + *target)));
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      results.push_back(unlink(target->c_str()) == 0 || errno == ENOENT
                            ? Status::Ok()
                            : Status::Io(Errno("cannot delete " + *target)));
      continue;
    }
    // Rename first so the folder disappears at once; then remove it at leisure.
    const std::string doomed = StagingName(".deleted");
    if (rename(target->c_str(), doomed.c_str()) != 0) {
      results.push_back(Status::Io(Errno("cannot delete " + *target)));
      continue;
    }
    std::error_code ec;
    std::filesystem::remove_all(doomed, ec);
    results.push_back(Status::Ok());
  }
  return results;
}

Result<RemoteEntry> LocalCloud::Move(const std::string& from, const std::string& to) {
  auto source = Resolve(from);
  if (!source.ok()) return source.status();
  auto target = Resolve(to);
  if (!target.ok()) return target.status();
  struct stat st {};
  if (lstat(source->c_str(), &st) != 0) return Status::NotFound(Errno("cannot move " + from));
  if (Status s = MakeParents(*target); !s.ok()) return s;
  if (renameat2(AT_FDCWD, source->c_str(), AT_FDCWD, target->c_str(), RENAME_NOREPLACE) != 0) {
    if (errno != EEXIST) return Status::Io(Errno("cannot move " + from + " to " + to));
    // A case-insensitive filesystem reports the entry itself as "existing" on a case-only rename.
    struct stat other {};
    const bool same_entry = lstat(target->c_str(), &other) == 0 && other.st_ino == st.st_ino &&
                            other.st_dev == st.st_dev;
    if (!same_entry)
      return Status::Conflict("cannot move " + from + " to " + to + ": destination exists");
    if (rename(source->c_str(), target->c_str()) != 0) {
      return Status::Io(Errno("cannot move " + from + " to " + to));
    }
  }
  RemoteEntry entry;
  entry.path = to;
  entry.kind = S_ISDIR(st.st_mode) ? EntryKind::kFolder : EntryKind::kFile;
  if (entry.kind == EntryKind::kFile) {
    struct stat moved {};
    lstat(target->c_str(), &moved);
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
