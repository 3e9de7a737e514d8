#include "cloud/local/local_cloud.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "core/folder_identity.h"
#include "core/rel_path.h"
#include "core/stable_file.h"
#include "scan/scanner.h"
#include "util/log.h"

// Confinement: every operation reaches its target from root_fd_ (or the staging folder's
// descriptor) one checked name at a time and never through a symlink, so a link planted in the
// cloud folder (a shared NAS folder anyone may write to) is refused instead of followed. Parents
// are opened with one core::OpenBeneath (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
// when that fails (missing folders to make, something in the way) core::WalkFolders opens each
// component with openat(O_NOFOLLOW | O_DIRECTORY), which says exactly what is in the way. The last
// component is then handled with the *at() calls, which never follow it either.
//
// Staging across instances. Each instance stages in .filesync-staging/<instance>/ and holds an
// flock on <instance>/owner while it lives. Another instance's folder is removed only when its
// owner is dead:
//  - same boot id (the same running kernel, so the same machine, whatever the container): dead
//    when its owner lock can be taken. flock between processes of one kernel is reliable, also
//    on NFS and SMB mounts (the client kernel arbitrates its own processes' locks).
//  - another boot id (another host, or this host before a reboot): the lock can be taken AND
//    nothing in the folder changed for kStaleAfter. Whether one host sees another's flock depends
//    on the protocol (NFSv4 and SMB with byte-range locks carry it; `nolock` or `local_lock`
//    mounts do not), so the idle time is what is relied on there: a live instance touches its
//    owner file at every pass and its copies write continuously, so only a host that stopped
//    for a day loses its leftovers, never an instance that is copying.
// Anything else in .filesync-staging (leftovers of versions that staged there directly) is
// removed once it has been idle for kStaleAfter.
namespace filesync::cloud {
namespace {

using core::EntryKind;
using core::FileIdentity;
using core::IdentityOf;
using core::JoinPath;
using core::UniqueFd;

constexpr std::size_t kCopyBuffer = 1024 * 1024;
constexpr int kFolderFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// Permission bits and the sticky bit; setuid and setgid are dropped (the copy's owner is
// whoever runs filesync, so keeping them could hand out that user's rights).
constexpr mode_t kKeptModeBits = 01777;
constexpr const char* kOwnerName = "owner";
// In the shared staging folder: a random id made on the first pass, which tells this folder from
// a bare mount point or a folder made again, however the device numbers of a remount fall.
constexpr const char* kMarkerName = "cloud-id";
constexpr std::chrono::hours kStaleAfter{24};

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string RevOf(const FileIdentity& id) {
  return std::to_string(id.inode) + ":" + std::to_string(id.mtime_ns) + ":" +
         std::to_string(id.size);
}

std::int64_t Nanos(const struct timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

bool PWriteAll(int fd, const std::uint8_t* data, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    const ssize_t n = pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Reads up to `size` bytes at `offset`; fewer only at end of file. -1 on an error.
ssize_t PReadFull(int fd, std::uint8_t* data, std::size_t size, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(done);
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

// The local folders a cloud path stands for: `cloud_path` names the local entry `relative`
// below the sync dir `dir_fd`, so it ends with "/" + relative, and what comes before is the
// sync dir's mirror folder. Tells the mode a cloud folder made on the way should have.
struct LocalFolders {
  int dir_fd = -1;
  std::string_view relative;
  std::string_view cloud_path;

  // The mode of the local folder the cloud folder `prefix` (a prefix of cloud_path ending at a
  // component) stands for; nullopt for folders above the mirror folder or when it cannot tell.
  [[nodiscard]] std::optional<mode_t> ModeOf(std::string_view prefix) const {
    if (dir_fd < 0) return std::nullopt;
    std::size_t mirror = cloud_path.size();
    if (!relative.empty()) {
      if (cloud_path.size() <= relative.size() ||
          cloud_path.substr(cloud_path.size() - relative.size()) != relative ||
          cloud_path[cloud_path.size() - relative.size() - 1] != '/') {
        return std::nullopt;
      }
      mirror = cloud_path.size() - relative.size() - 1;
    }
    if (prefix.size() < mirror) return std::nullopt;
    struct stat st {};
    if (prefix.size() == mirror) {
      if (fstat(dir_fd, &st) != 0) return std::nullopt;
    } else {
      const std::string local(relative.substr(0, prefix.size() - mirror - 1));
      const UniqueFd folder = core::OpenBeneath(dir_fd, local, O_PATH | O_DIRECTORY);
      if (!folder.valid() || fstat(folder.get(), &st) != 0) return std::nullopt;
    }
    return st.st_mode & kKeptModeBits;
  }
};

// Makes folder `name` in `dir` and opens it; with a `mode`, sets exactly that (umask aside).
// -1 with errno set on failure; EEXIST when it was there already.
int MakeFolder(int dir, const std::string& name, std::optional<mode_t> mode) {
  if (mkdirat(dir, name.c_str(), mode ? 0700 : 0777) != 0) return -1;
  const int fd = openat(dir, name.c_str(), kFolderFlags);
  if (fd >= 0 && mode) (void)fchmod(fd, *mode);
  return fd;
}

// Opens the folder at the checked cloud path `cloud_path` below `root_fd` without following any
// symlink; with `create`, missing folders are made on the way (with the modes `local` tells).
Result<UniqueFd> OpenFolder(int root_fd, const std::string& cloud_path, bool create,
                            const LocalFolders* local = nullptr) {
  if (root_fd < 0) return Status::Io("the local cloud dir is not open: no pass has begun");
  if (cloud_path.empty()) {
    const int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return Status::Io(Errno("cannot open the cloud root"));
    return UniqueFd(fd);
  }
  const std::string_view relative = std::string_view(cloud_path).substr(1);
  if (UniqueFd fd = core::OpenBeneath(root_fd, std::string(relative), O_RDONLY | O_DIRECTORY);
      fd.valid()) {
    return fd;
  }
  Status failed;
  UniqueFd fd = core::WalkFolders(
      root_fd, relative, [&](int dir, const std::string& name, std::string_view prefix) {
        // `prefix` lies in cloud_path, one character after its leading '/'.
        const std::string_view path(cloud_path.data(), prefix.size() + 1);
        int next = openat(dir, name.c_str(), kFolderFlags);
        if (next < 0 && errno == ENOENT && create) {
          next = MakeFolder(dir, name, local ? local->ModeOf(path) : std::nullopt);
          if (next < 0 && errno != EEXIST) {
            failed = Status::Io(Errno("cannot create folder " + std::string(path)));
            return -1;
          }
          if (next < 0) next = openat(dir, name.c_str(), kFolderFlags);  // made meanwhile
        }
        if (next < 0) {
          const int err = errno;
          failed = FolderError(dir, name, std::string(path), err, create);
        }
        return next;
      });
  if (fd.valid()) return fd;
  return failed.ok() ? Status::Io(Errno("cannot open cloud folder " + cloud_path)) : failed;
}

// The folder holding the entry at the checked, non-root cloud path (opened as by OpenFolder), and
// the entry's name in it.
Result<UniqueFd> OpenParent(int root_fd, const std::string& cloud_path, bool create,
                            std::string& name, const LocalFolders* local = nullptr) {
  const std::size_t slash = cloud_path.rfind('/');
  name = cloud_path.substr(slash + 1);
  return OpenFolder(root_fd, cloud_path.substr(0, slash), create, local);
}

// The names in the folder `dir` (without "." and "..").
std::vector<std::string> Names(int dir) {
  std::vector<std::string> names;
  const int fd = fcntl(dir, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return names;
  DIR* stream = fdopendir(fd);
  if (stream == nullptr) {
    close(fd);
    return names;
  }
  rewinddir(stream);  // the duplicate shares the offset an earlier listing left at the end
  while (const dirent* entry = readdir(stream)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  closedir(stream);
  return names;
}

// Removes `name` in `dir` and, if it is a folder, everything below it. Symlinks are removed,
// never followed: each folder is opened with O_NOFOLLOW from its parent's descriptor.
bool RemoveTree(int dir, const char* name) {
  if (unlinkat(dir, name, 0) == 0 || errno == ENOENT) return true;
  if (errno != EISDIR && errno != EPERM) return false;
  const UniqueFd fd(openat(dir, name, kFolderFlags));
  if (fd.get() < 0) return errno == ENOENT;
  bool ok = true;
  for (const std::string& child : Names(fd.get())) ok = RemoveTree(fd.get(), child.c_str()) && ok;
  return (unlinkat(dir, name, AT_REMOVEDIR) == 0 || errno == ENOENT) && ok;
}

// The latest mtime of the folder `dir` and of the entries directly in it.
std::int64_t NewestChange(int dir) {
  struct stat st {};
  std::int64_t newest = fstat(dir, &st) == 0 ? Nanos(st.st_mtim) : 0;
  for (const std::string& name : Names(dir)) {
    if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      newest = std::max(newest, Nanos(st.st_mtim));
  }
  return newest;
}

bool IdleLongEnough(std::int64_t newest_ns) {
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return now - newest_ns >
         std::chrono::duration_cast<std::chrono::nanoseconds>(kStaleAfter).count();
}

// True when `name` in the shared staging folder belongs to no live instance (see the top of this
// file); `lock` then holds its owner's lock, if it had an owner file, until the caller is done.
bool OwnerIsGone(int shared, const std::string& name, const std::string& boot_id, UniqueFd& lock) {
  struct stat st {};
  if (fstatat(shared, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
  if (!S_ISDIR(st.st_mode)) return IdleLongEnough(Nanos(st.st_mtim));
  const UniqueFd dir(openat(shared, name.c_str(), kFolderFlags));
  if (dir.get() < 0) return false;
  lock = UniqueFd(openat(dir.get(), kOwnerName, O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  bool unlocked = false;
  if (lock.get() >= 0) {
    unlocked = flock(lock.get(), LOCK_EX | LOCK_NB) == 0;
    if (!unlocked && errno == EWOULDBLOCK) return false;  // alive
  }
  if (unlocked && name.starts_with(boot_id + ".")) return true;
  return IdleLongEnough(NewestChange(dir.get()));
}

std::string ReadBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string line;
  std::getline(in, line);
  std::string id;
  for (const char c : line) {
    if (std::isxdigit(static_cast<unsigned char>(c)) || c == '-') id.push_back(c);
  }
  return id.empty() ? "no-boot-id" : id;
}

std::string InstanceName(const std::string& boot_id) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string safe_host;
  for (const char* c = host; *c != '\0' && safe_host.size() < 64; ++c) {
    const bool plain = std::isalnum(static_cast<unsigned char>(*c)) || *c == '-' || *c == '_';
    safe_host.push_back(plain ? *c : '_');
  }
  char random[9];
  std::snprintf(random, sizeof random, "%08x", std::random_device{}());
  return boot_id + "." + std::to_string(getpid()) + "." + random + "." + safe_host;
}

// What identifies the cloud folder: the marker filesync leaves in it, and its device and inode.
struct FolderRecord {
  std::string marker;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  [[nodiscard]] std::string ToString(const std::string& path) const {
    return "local:" + marker + ":" + std::to_string(device) + ":" + std::to_string(inode) + ":" +
           path;
  }
  // Parses ToString(path)'s result; nullopt for anything else (another path, another backend).
  static std::optional<FolderRecord> Parse(const std::string& recorded, const std::string& path) {
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (int i = 0; i < 4; ++i) {
      const std::size_t colon = recorded.find(':', start);
      if (colon == std::string::npos) return std::nullopt;
      fields.push_back(recorded.substr(start, colon - start));
      start = colon + 1;
    }
    if (fields[0] != "local" || recorded.substr(start) != path) return std::nullopt;
    try {
      return FolderRecord{fields[1], std::stoull(fields[2]), std::stoull(fields[3])};
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
};

bool IsMarker(std::string_view text) {
  return text.size() == 32 && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

// The marker in the cloud folder `root` ("" if none, or unreadable).
std::string ReadMarker(int root) {
  const UniqueFd shared(openat(root, LocalCloud::kStagingName, kFolderFlags));
  const UniqueFd file(
      shared.get() < 0 ? -1 : openat(shared.get(), kMarkerName, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (file.get() < 0) return "";
  char text[33] = {};
  const ssize_t n = PReadFull(file.get(), reinterpret_cast<std::uint8_t*>(text), 32, 0);
  return n == 32 && IsMarker(text) ? std::string(text, 32) : "";
}

std::string NewMarker() {
  std::random_device random;
  std::string marker;
  for (int i = 0; i < 4; ++i) {
    char part[9];
    std::snprintf(part, sizeof part, "%08x", random());
    marker += part;
  }
  return marker;
}

// A temp file in staging, removed unless the copy is committed.
class StagedFile {
 public:
  StagedFile(int dir, std::string name) : dir_(dir), name_(std::move(name)) {}
  ~StagedFile() {
    if (!name_.empty()) unlinkat(dir_, name_.c_str(), 0);
  }
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  void Commit() { name_.clear(); }

 private:
  int dir_;
  std::string name_;
};

UploadedFile Uploaded(const UploadItem& item, const struct stat& source, const hash::Digest& digest,
                      std::uint64_t transferred, const struct stat& stored) {
  UploadedFile uploaded;
  uploaded.identity = IdentityOf(source);
  uploaded.digest = digest;
  uploaded.bytes_transferred = transferred;
  uploaded.entry.path = item.cloud_path;
  uploaded.entry.kind = EntryKind::kFile;
  uploaded.entry.size = static_cast<std::uint64_t>(source.st_size);
  uploaded.entry.content_hash = digest;
  uploaded.entry.rev = RevOf(IdentityOf(stored));
  return uploaded;
}

Status StoppedCopying(const std::string& shown) {
  return Status::Cancelled("stopped while copying " + shown);
}

// Hashes `count` zero bytes (a hole of the source), reporting them as progress.
Status HashZeros(hash::ContentHasher& hasher, std::uint64_t count, const Transfer& transfer,
                 const std::string& shown) {
  static const std::vector<std::uint8_t> zeros(kCopyBuffer);
  while (count > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(count, kCopyBuffer));
    hasher.Update(std::span(zeros.data(), n));
    count -= n;
    transfer.Progress(n);
    if (transfer.cancelled()) return StoppedCopying(shown);
  }
  return Status::Ok();
}

// Copies the `size` bytes of `src` into `out`, hashing them, and leaves the source's holes as
// holes (SEEK_DATA/SEEK_HOLE; a filesystem without them reports one data extent). Returns the
// data bytes written.
Result<std::uint64_t> CopyKeepingHoles(int src, int out, std::uint64_t size,
                                       hash::ContentHasher& hasher, const Transfer& transfer,
                                       Throttle* throttle, const std::string& shown) {
  thread_local std::vector<std::uint8_t> buffer(kCopyBuffer);
  posix_fadvise(src, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::uint64_t offset = 0, written = 0;
  bool holes = true;
  while (offset < size) {
    std::uint64_t data = offset, end = size;
    if (holes) {
      const off_t found = lseek(src, static_cast<off_t>(offset), SEEK_DATA);
      if (found >= 0 || errno == ENXIO) {
        data = found >= 0 ? std::min(static_cast<std::uint64_t>(found), size) : size;
        const off_t hole = data < size ? lseek(src, static_cast<off_t>(data), SEEK_HOLE) : -1;
        if (hole >= 0) end = std::min(static_cast<std::uint64_t>(hole), size);
      } else {
        holes = false;  // not supported here: everything is data
      }
    }
    if (Status s = HashZeros(hasher, data - offset, transfer, shown); !s.ok()) return s;
    for (offset = data; offset < end;) {
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(kCopyBuffer, end - offset));
      const ssize_t n = pread(src, buffer.data(), want, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::Io(Errno("cannot read " + shown));
      if (n == 0) return Status::Changed(shown + " shrank while it was copied");
      const auto len = static_cast<std::size_t>(n);
      if (throttle != nullptr && !throttle->Acquire(len, transfer.cancel).ok())
        return StoppedCopying(shown);
      hasher.Update(std::span(buffer.data(), len));
      if (!PWriteAll(out, buffer.data(), len, offset))
        return Status::Io(Errno("cannot write the staging copy of " + shown));
      offset += len;
      written += len;
      transfer.Progress(len);
      if (transfer.cancelled()) return StoppedCopying(shown);
    }
  }
  if (ftruncate(out, static_cast<off_t>(size)) != 0)  // a hole at the end
    return Status::Io(Errno("cannot size the staging copy of " + shown));
  return written;
}

// Reads `src` and `dst` side by side (`size` bytes each), hashing src's bytes. True when every
// byte is the same; false when they differ or dst cannot be read (then it is copied over).
Result<bool> SameBytes(int src, int dst, std::uint64_t size, hash::ContentHasher& hasher,
                       const Transfer& transfer, const std::string& shown) {
  thread_local std::vector<std::uint8_t> mine(kCopyBuffer), theirs(kCopyBuffer);
  posix_fadvise(src, 0, 0, POSIX_FADV_SEQUENTIAL);
  posix_fadvise(dst, 0, 0, POSIX_FADV_SEQUENTIAL);
  for (std::uint64_t offset = 0; offset < size;) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kCopyBuffer, size - offset));
    const ssize_t got = PReadFull(src, mine.data(), want, offset);
    if (got < 0) return Status::Io(Errno("cannot read " + shown));
    if (static_cast<std::size_t>(got) < want)
      return Status::Changed(shown + " shrank while it was compared");
    if (PReadFull(dst, theirs.data(), want, offset) != got) return false;
    if (std::memcmp(mine.data(), theirs.data(), want) != 0) return false;
    hasher.Update(std::span(mine.data(), want));
    offset += want;
    transfer.Progress(want);
    if (transfer.cancelled()) return StoppedCopying(shown);
  }
  return true;
}

// When the file `name` in `dir` already holds exactly the bytes of `src`: brings its mtime and
// mode in line (metadata only; failures are harmless) and describes it as uploaded with nothing
// transferred. nullopt when the bytes differ.
Result<std::optional<UploadedFile>> KeepIfSame(const UploadItem& item, const core::StableFile& src,
                                               int dir, const std::string& name,
                                               const Transfer& transfer) {
  const struct stat& source = src.stat_at_open();
  const UniqueFd dst(openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (dst.get() < 0) return std::optional<UploadedFile>();
  hash::ContentHasher hasher;
  auto same = SameBytes(src.fd(), dst.get(), static_cast<std::uint64_t>(source.st_size), hasher,
                        transfer, item.local_path);
  if (!same.ok()) return same.status();
  if (!*same) return std::optional<UploadedFile>();
  if (Status s = src.CheckUnchanged("compared"); !s.ok()) return s;
  struct stat stored {};
  if (fstat(dst.get(), &stored) != 0) return std::optional<UploadedFile>();
  if ((stored.st_mode & 07777) != (source.st_mode & kKeptModeBits))
    (void)fchmod(dst.get(), source.st_mode & kKeptModeBits);
  if (Nanos(stored.st_mtim) != Nanos(source.st_mtim)) {
    const struct timespec times[2] = {{0, UTIME_OMIT}, source.st_mtim};
    (void)futimens(dst.get(), times);
  }
  fstat(dst.get(), &stored);
  return std::optional<UploadedFile>(Uploaded(item, source, hasher.Finish(), 0, stored));
}

}  // namespace

LocalCloud::LocalCloud(std::filesystem::path root, Throttle* throttle)
    : root_(std::move(root)),
      throttle_(throttle),
      boot_id_(ReadBootId()),
      instance_(InstanceName(boot_id_)) {}

LocalCloud::~LocalCloud() {
  if (staging_fd_.get() < 0 || shared_fd_.get() < 0) return;
  for (const std::string& name : Names(staging_fd_.get())) {
    if (name != kOwnerName) RemoveTree(staging_fd_.get(), name.c_str());
  }
  unlinkat(staging_fd_.get(), kOwnerName, 0);  // still locked: nobody takes the folder meanwhile
  unlinkat(shared_fd_.get(), instance_.c_str(), AT_REMOVEDIR);
}

Capabilities LocalCloud::capabilities() const {
  return {.incremental_listing = false,
          .case_insensitive = false,
          .max_batch_files = 64,
          .max_batch_bytes = 64ULL << 20,
          .small_file_limit = 8ULL << 20};
}

Result<std::string> LocalCloud::BeginPass(const PassStart& start) {
  const std::string shown = "local_cloud_dir " + root_.string();
  const auto known = FolderRecord::Parse(start.recorded, root_.string());
  root_fd_ = UniqueFd();
  UniqueFd fd(open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 && errno == ENOENT && !known) {
    if (start.dry_run) return std::string();  // lists as empty; nothing is made
    std::error_code ec;
    std::filesystem::create_directories(root_, ec);
    if (ec) {
      return Status::Io("cannot create " + shown + ": " + ec.message() +
                        "; create it, or set local_cloud_dir to a folder filesync can write to");
    }
    log::Get("local_cloud")->info("created {} (no earlier pass recorded it)", shown);
    fd = UniqueFd(open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  if (fd.get() < 0 && errno == ENOENT) {
    return Status::NotFound(
        shown +
        " is missing (not mounted? deleted?); nothing is synced until it is back. An earlier "
        "pass synced into it, so filesync does not make it again: if it was removed on purpose, "
        "create it and run: filesync sync --allow-mass-delete");
  }
  if (fd.get() < 0) return Status::Io(Errno("cannot open " + shown));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Status::Io(Errno("cannot stat " + shown));
  FolderRecord found{ReadMarker(fd.get()), static_cast<std::uint64_t>(st.st_dev),
                     static_cast<std::uint64_t>(st.st_ino)};
  // The same folder: the same inode, and the same device or, since a remounted NAS may get
  // another device number, the marker recorded. (A copy carrying the marker is another folder.)
  const bool same =
      known && found.inode == known->inode &&
      (found.device == known->device || (!found.marker.empty() && found.marker == known->marker));
  if (known && !same && !start.accept_replaced) {
    return Status::Conflict(
        shown +
        " is not the folder synced before (other inode or device and no marker of an earlier "
        "pass: a NAS not mounted, leaving the bare mount point, or the folder replaced?); "
        "nothing is synced. If it was replaced on purpose, run: filesync sync "
        "--allow-mass-delete");
  }
  root_fd_ = std::move(fd);
  if (start.dry_run) return found.ToString(root_.string());
  if (Status s = PrepareStaging(); !s.ok()) {
    root_fd_ = UniqueFd();
    return s;
  }
  if (found.marker.empty()) {
    auto marker = WriteMarker();
    if (!marker.ok()) {
      root_fd_ = UniqueFd();
      return marker.status();
    }
    found.marker = *marker;
  }
  return found.ToString(root_.string());
}

Result<std::string> LocalCloud::WriteMarker() {
  const std::string marker = NewMarker();
  const std::string temp = StagingName(".marker");
  {
    const UniqueFd file(openat(staging_fd_.get(), temp.c_str(),
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (file.get() < 0 ||
        !PWriteAll(file.get(), reinterpret_cast<const std::uint8_t*>((marker + "\n").data()),
                   marker.size() + 1, 0)) {
      return Status::Io(Errno("cannot write " + (root_ / kStagingName / kMarkerName).string()));
    }
  }
  // Atomic: a reader sees no marker or a whole one.
  if (renameat(staging_fd_.get(), temp.c_str(), shared_fd_.get(), kMarkerName) != 0) {
    unlinkat(staging_fd_.get(), temp.c_str(), 0);
    return Status::Io(Errno("cannot write " + (root_ / kStagingName / kMarkerName).string()));
  }
  return marker;
}

Status LocalCloud::PrepareStaging() {
  const std::string shared_path = (root_ / kStagingName).string();
  if (mkdirat(root_fd_.get(), kStagingName, 0777) != 0 && errno != EEXIST)
    return Status::Io(Errno("cannot create staging folder " + shared_path));
  UniqueFd shared(openat(root_fd_.get(), kStagingName, kFolderFlags));
  if (shared.get() < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return Status::Conflict("cloud entry /" + std::string(kStagingName) +
                              " is not a folder (a symlink?); remove it, filesync stages there");
    }
    return Status::Io(Errno("cannot open staging folder " + shared_path));
  }
  if (Status s = OpenOwnStaging(shared.get(), shared_path); !s.ok()) return s;
  (void)futimens(owner_fd_.get(), nullptr);  // "alive", for hosts that cannot see the lock
  // Our own leftovers: nothing of ours is in flight between passes.
  for (const std::string& name : Names(staging_fd_.get())) {
    if (name != kOwnerName) RemoveTree(staging_fd_.get(), name.c_str());
  }
  for (const std::string& name : Names(shared.get())) {
    UniqueFd lock;
    if (name == instance_ || name == kMarkerName) continue;
    if (!OwnerIsGone(shared.get(), name, boot_id_, lock)) continue;
    if (RemoveTree(shared.get(), name.c_str())) {
      log::Get("local_cloud")
          ->info("removed staging leftovers of a stopped filesync: {}/{}", shared_path, name);
    }
  }
  shared_fd_ = std::move(shared);
  return Status::Ok();
}

Status LocalCloud::OpenOwnStaging(int shared, const std::string& shared_path) {
  const auto in_place = [&](int fd) {
    struct stat held {
    }, named{};
    return fd >= 0 && fstat(fd, &held) == 0 &&
           fstatat(shared, instance_.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
           held.st_ino == named.st_ino && held.st_dev == named.st_dev;
  };
  if (in_place(staging_fd_.get())) return Status::Ok();
  owner_fd_ = UniqueFd();
  staging_fd_ = UniqueFd();
  const std::string own_path = shared_path + "/" + instance_;
  // Another instance starting at the same moment may take the folder for a dead one's until it
  // is locked (and remove it, holding the lock meanwhile): then make it again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (mkdirat(shared, instance_.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::Io(Errno("cannot create staging folder " + own_path));
    UniqueFd own(openat(shared, instance_.c_str(), kFolderFlags));
    if (own.get() < 0) return Status::Io(Errno("cannot open staging folder " + own_path));
    UniqueFd owner(openat(own.get(), kOwnerName, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (owner.get() < 0) return Status::Io(Errno("cannot create " + own_path + "/" + kOwnerName));
    if (flock(owner.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      log::Get("local_cloud")
          ->warn(
              "cannot lock {}/{} ({}): other filesync instances sharing this folder tell "
              "this one is alive only by its staging folder changing within a day",
              own_path, kOwnerName, std::strerror(errno));
    }
    if (!in_place(own.get())) continue;
    const std::string who = "filesync pid " + std::to_string(getpid()) + "\n";
    (void)!pwrite(owner.get(), who.data(), who.size(), 0);
    staging_fd_ = std::move(own);
    owner_fd_ = std::move(owner);
    return Status::Ok();
  }
  return Status::Io("cannot set up staging folder " + own_path + ": it keeps being removed");
}

std::string LocalCloud::StagingName(const char* suffix) {
  return std::to_string(counter_.fetch_add(1)) + suffix;
}

Result<std::string> LocalCloud::FolderIdentity(const std::string& path) {
  if (Status s = CheckCloudPath(path); !s.ok()) return s;
  if (root_fd_.get() < 0) return Status::NotFound("local_cloud_dir does not exist yet");
  auto folder = OpenFolder(root_fd_.get(), path, false);
  if (!folder.ok()) return folder.status();
  auto identity = core::FolderIdentity(folder->get());
  if (!identity.ok())
    return Status::Io("cannot stat cloud " + path + ": " + identity.status().message());
  return identity;
}

Result<ListResult> LocalCloud::List(const std::string& root, const std::string& cursor) {
  ListResult result;
  result.cursor = "local";
  if (!cursor.empty()) return result;
  if (Status s = CheckCloudPath(root); !s.ok()) return s;
  result.complete = true;
  if (root_fd_.get() < 0) return result;  // a dry run before the first pass made the folder
  auto folder = OpenFolder(root_fd_.get(), root, false);
  if (!folder.ok()) {
    if (folder.status().kind() == Status::Kind::kNotFound) return result;
    return folder.status();
  }
  // Scans exactly the folder just reached without links, whatever its path leads to meanwhile.
  auto scanned = scan::Scan(folder->get(), root_.string() + root, scan::ScanOptions{});
  if (!scanned.ok()) return scanned.status();
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
  return CreateFolderFrom({.cloud_path = path});
}

Status LocalCloud::CreateFolderFrom(const FolderItem& item) {
  if (Status s = CheckCloudPath(item.cloud_path); !s.ok()) return s;
  const LocalFolders local{
      .dir_fd = item.local_dir_fd, .relative = item.relative, .cloud_path = item.cloud_path};
  auto folder = OpenFolder(root_fd_.get(), item.cloud_path, true, &local);
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
  if (staging_fd_.get() < 0) return Status::Io("no staging folder: no pass has begun");
  auto opened = OpenForUpload(item);
  if (!opened.ok()) return opened.status();
  const core::StableFile& src = *opened;
  const struct stat& before = src.stat_at_open();
  const LocalFolders local{
      .dir_fd = item.local_dir_fd, .relative = item.relative, .cloud_path = item.cloud_path};
  std::string name;
  auto parent = OpenParent(root_fd_.get(), item.cloud_path, true, name, &local);
  if (!parent.ok()) return parent.status();
  struct stat existing {};
  const bool exists = fstatat(parent->get(), name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && S_ISDIR(existing.st_mode))
    return Status::Conflict("a folder is in the way of file " + item.cloud_path);
  if (exists && S_ISREG(existing.st_mode) && existing.st_size == before.st_size &&
      !item.cloud_differs) {
    auto kept = KeepIfSame(item, src, parent->get(), name, transfer);
    if (!kept.ok()) return kept.status();
    if (kept->has_value()) return std::move(**kept);
  }

  const std::string temp = StagingName(".part");
  const UniqueFd out(openat(staging_fd_.get(), temp.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (out.get() < 0) return Status::Io(Errno("cannot create staging file " + temp));
  StagedFile staged(staging_fd_.get(), temp);
  hash::ContentHasher hasher;
  auto written = CopyKeepingHoles(src.fd(), out.get(), static_cast<std::uint64_t>(before.st_size),
                                  hasher, transfer, throttle_, item.local_path);
  if (!written.ok()) return written.status();
  if (Status s = src.CheckUnchanged("copied"); !s.ok()) return s;
  (void)fchmod(out.get(), before.st_mode & kKeptModeBits);
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  futimens(out.get(), times);
  struct stat stored {};
  fstat(out.get(), &stored);
  // Replaces a file, or a symlink itself, at the destination; never what a link points to.
  if (renameat(staging_fd_.get(), temp.c_str(), parent->get(), name.c_str()) != 0) {
    if (errno == EISDIR || errno == ENOTDIR)
      return Status::Conflict("something is in the way of " + item.cloud_path);
    return Status::Io(Errno("cannot rename into " + item.cloud_path));
  }
  staged.Commit();
  return Uploaded(item, before, hasher.Finish(), *written, stored);
}

Status LocalCloud::DeleteOne(const std::string& path) {
  if (Status s = CheckCloudPath(path); !s.ok()) return s;
  if (path.empty()) return Status::InvalidArgument("refusing to delete the cloud root");
  std::string name;
  auto parent = OpenParent(root_fd_.get(), path, false, name);
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
  if (staging_fd_.get() < 0) return Status::Io("no staging folder: no pass has begun");
  // Rename first so the folder disappears at once; then remove it at leisure.
  const std::string doomed = StagingName(".deleted");
  if (renameat(parent->get(), name.c_str(), staging_fd_.get(), doomed.c_str()) != 0) {
    return Status::Io(Errno("cannot delete cloud " + path));
  }
  if (!RemoveTree(staging_fd_.get(), doomed.c_str())) {
    log::Get("local_cloud")
        ->warn(
            "could not remove all of deleted cloud folder {} from staging; the next pass "
            "tries again",
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
  auto source = OpenParent(root_fd_.get(), from, false, from_name);
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
  auto target = OpenParent(root_fd_.get(), to, true, to_name);
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
  if (root_fd_.get() < 0) return Status::Ok();
  if (syncfs(root_fd_.get()) != 0) return Status::Io(Errno("syncfs " + root_.string()));
  return Status::Ok();
}

}  // namespace filesync::cloud
