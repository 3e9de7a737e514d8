// How the walk works:
//  - Each directory is one unit of work: (parent's descriptor, name, relative path). A worker
//    opens it with openat(O_NOFOLLOW|O_DIRECTORY) from the parent's descriptor, so no path is
//    ever re-resolved and depth is not limited by PATH_MAX. Parent descriptors are shared
//    (shared_ptr) and closed as soon as the last child has been opened, so a long chain of
//    directories holds only a couple of descriptors.
//  - A directory is read whole with getdents64() into a per-worker buffer before any of it is
//    reported, so a listing that fails half-way reports the directory alone, not half of it.
//  - d_type saves the fstatat() for directories, symlinks and special files; a directory's
//    identity (and the other-filesystem check) comes from fstat() on its open descriptor, which
//    cannot race. Regular files (and DT_UNKNOWN) need fstatat(AT_SYMLINK_NOFOLLOW).
//  - Work is a shared LIFO stack guarded by one mutex (taken once per directory or slice, not
//    per file); LIFO keeps few parents open. With several threads, a directory of more than
//    kSliceEntries names is cut into slices of its listing that any worker can stat, so one
//    huge directory is not left to a single thread. Each worker collects entries and issues
//    locally; they are merged and sorted once at the end. Merging hands each drained list's
//    pages back to the kernel as it goes (madvise), so two copies of the listing are never
//    resident together: the merge is the peak of a no-change pass's memory.
#include "scan/scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <memory>
#include <thread>

#include "core/thread_annotations.h"
#include "core/unique_fd.h"
#include "util/unicode.h"

namespace filesync::scan {
namespace {

constexpr std::size_t kDentsChunk = 64 * 1024;
// Names per slice of a large directory's listing (parallel scans only).
constexpr std::size_t kSliceEntries = 2048;

std::string ErrnoText(int err) { return std::strerror(err); }

unsigned char TypeOfMode(mode_t mode) {
  if (S_ISREG(mode)) return DT_REG;
  if (S_ISDIR(mode)) return DT_DIR;
  if (S_ISLNK(mode)) return DT_LNK;
  return DT_FIFO;  // any special file; only "special" matters below
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if none starts there.
std::size_t Utf8SequenceLength(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0Fu;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07u;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    return 0;
  }
  return len;
}

// The name with every byte that is not part of valid UTF-8 shown as \xNN.
std::string EscapeBytes(std::string_view name) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < name.size();) {
    const std::size_t len = Utf8SequenceLength(name, i);
    if (len > 0) {
      out.append(name.substr(i, len));
      i += len;
      continue;
    }
    const auto b = static_cast<unsigned char>(name[i]);
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 0xFu];
    ++i;
  }
  return out;
}

std::string Join(std::string_view dir, std::string_view name) {
  std::string path;
  path.reserve(dir.size() + 1 + name.size());
  path.append(dir);
  if (!dir.empty()) path += '/';
  path.append(name);
  return path;
}

// The whole getdents64() listing of a directory whose names are handled in slices.
struct Listing {
  std::shared_ptr<core::UniqueFd> dir;
  std::string path;
  std::vector<char> records;
};

// One unit of work: a directory waiting to be opened (its name inside `parent`), or, when
// `listing` is set, the records [begin, end) of a large directory's listing.
struct DirWork {
  std::shared_ptr<core::UniqueFd> parent;
  std::string path;
  std::size_t name_offset = 0;
  std::shared_ptr<const Listing> listing;
  std::size_t begin = 0;
  std::size_t end = 0;
};

struct WorkerOutput {
  std::vector<Entry> entries;
  std::vector<Issue> issues;
  std::uint64_t dirs = 0;
};

class Walker {
 public:
  Walker(const ScanOptions& options, std::uint64_t root_device, std::size_t threads,
         std::function<void(const std::string&)> before_stat)
      : options_(options),
        root_device_(root_device),
        threads_(threads),
        before_stat_(std::move(before_stat)) {}

  // Reads the root; false (with errno) if it cannot be listed.
  bool ListRoot(const std::shared_ptr<core::UniqueFd>& root, WorkerOutput& out,
                std::vector<char>& buffer, int* err) {
    std::vector<DirWork> children;
    const std::size_t used = ReadAll(root->get(), buffer, err);
    if (*err != 0) return false;
    ++out.dirs;
    Dispatch(root, "", buffer, used, out, children);
    core::MutexLock lock(&mu_);
    stack_ = std::move(children);
    return true;
  }

  void Run(WorkerOutput& out) EXCLUDES(mu_) {
    std::vector<char> buffer;
    std::vector<DirWork> children;
    for (;;) {
      DirWork work;
      {
        core::MutexLock lock(&mu_);
        while (stack_.empty() && active_ != 0) cv_.Wait(&mu_);
        if (stack_.empty()) return;
        work = std::move(stack_.back());
        stack_.pop_back();
        ++active_;
      }
      if (work.listing != nullptr) {
        const Listing& listing = *work.listing;
        HandleListing(listing.dir, listing.path, listing.records, work.begin, work.end, out,
                      children);
      } else {
        ProcessDir(std::move(work), out, buffer, children);
      }
      {
        core::MutexLock lock(&mu_);
        const std::size_t pushed = children.size();
        for (DirWork& child : children) stack_.push_back(std::move(child));
        children.clear();
        --active_;
        if (active_ == 0 && stack_.empty()) {
          cv_.SignalAll();
        } else if (pushed > 1) {
          cv_.SignalAll();
        } else if (pushed == 1) {
          cv_.Signal();
        }
      }
    }
  }

 private:
  // Reads every record of the directory into buffer; returns the bytes used (err set on error).
  static std::size_t ReadAll(int fd, std::vector<char>& buffer, int* err) {
    *err = 0;
    std::size_t used = 0;
    for (;;) {
      if (buffer.size() < used + kDentsChunk) buffer.resize(used + kDentsChunk);
      const ssize_t n = getdents64(fd, buffer.data() + used, buffer.size() - used);
      if (n < 0) {
        if (errno == EINTR) continue;
        *err = errno;
        return 0;
      }
      if (n == 0) return used;
      used += static_cast<std::size_t>(n);
    }
  }

  void ProcessDir(DirWork work, WorkerOutput& out, std::vector<char>& buffer,
                  std::vector<DirWork>& children) {
    const char* name = work.path.c_str() + work.name_offset;
    const int fd =
        openat(work.parent->get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int open_err = errno;
    work.parent.reset();
    if (fd < 0) {
      switch (open_err) {
        case ENOENT:
          out.issues.push_back(
              {IssueKind::kVanished, std::move(work.path), "removed during the scan"});
          break;
        case ENOTDIR:
          out.issues.push_back({IssueKind::kVanished, std::move(work.path),
                                "no longer a directory (changed during the scan)"});
          break;
        case ELOOP:
          out.issues.push_back({IssueKind::kSymlink, std::move(work.path),
                                "replaced by a symbolic link during the scan; not followed"});
          break;
        default:
          out.issues.push_back({IssueKind::kUnreadable, std::move(work.path),
                                "cannot open directory: " + ErrnoText(open_err)});
      }
      return;
    }
    auto dir = std::make_shared<core::UniqueFd>(fd);
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      out.issues.push_back({IssueKind::kUnreadable, std::move(work.path),
                            "cannot stat directory: " + ErrnoText(errno)});
      return;
    }
    if (static_cast<std::uint64_t>(st.st_dev) != root_device_) {
      out.issues.push_back({IssueKind::kOtherFilesystem, std::move(work.path),
                            "on another filesystem (a mount point); not entered"});
      return;
    }
    int err = 0;
    const std::size_t used = ReadAll(fd, buffer, &err);
    if (err != 0) {
      out.issues.push_back({IssueKind::kUnreadable, std::move(work.path),
                            "cannot list directory: " + ErrnoText(err)});
      return;
    }
    ++out.dirs;
    core::FileIdentity identity = core::IdentityOf(st);
    identity.size = 0;
    out.entries.push_back({work.path, core::EntryKind::kFolder, identity});
    Dispatch(dir, work.path, buffer, used, out, children);
  }

  // Handles a listing now, or (large directory, several threads) queues it in slices; the
  // buffer then moves into the shared listing.
  void Dispatch(const std::shared_ptr<core::UniqueFd>& dir, const std::string& dir_path,
                std::vector<char>& buffer, std::size_t used, WorkerOutput& out,
                std::vector<DirWork>& children) {
    std::vector<std::size_t> cuts;  // record offsets where slices start, after the first
    if (threads_ > 1) {
      std::size_t count = 0;
      for (std::size_t offset = 0; offset < used; offset += Record(buffer, offset)->d_reclen) {
        if (count > 0 && count % kSliceEntries == 0) cuts.push_back(offset);
        ++count;
      }
    }
    if (cuts.empty()) {
      HandleListing(dir, dir_path, buffer, 0, used, out, children);
      return;
    }
    buffer.resize(used);
    auto listing = std::make_shared<const Listing>(Listing{dir, dir_path, std::move(buffer)});
    buffer = {};
    cuts.push_back(used);
    std::size_t begin = 0;
    for (const std::size_t end : cuts) {
      children.push_back({.listing = listing, .begin = begin, .end = end});
      begin = end;
    }
  }

  static const struct dirent64* Record(const std::vector<char>& buffer, std::size_t offset) {
    return reinterpret_cast<const struct dirent64*>(buffer.data() + offset);
  }

  void HandleListing(const std::shared_ptr<core::UniqueFd>& dir, const std::string& dir_path,
                     const std::vector<char>& buffer, std::size_t begin, std::size_t end,
                     WorkerOutput& out, std::vector<DirWork>& children) {
    for (std::size_t offset = begin; offset < end;) {
      const struct dirent64* record = Record(buffer, offset);
      offset += record->d_reclen;
      const char* name = record->d_name;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
      HandleEntry(dir, dir_path, name, record->d_type, out, children);
    }
  }

  // fstatat() of one name; false (with the issue recorded) if it failed.
  bool Stat(int dir_fd, const std::string& path, const char* name, struct stat* st,
            WorkerOutput& out) {
    if (before_stat_) before_stat_(path);
    if (fstatat(dir_fd, name, st, AT_SYMLINK_NOFOLLOW) == 0) return true;
    const int err = errno;
    if (err == ENOENT) {
      out.issues.push_back({IssueKind::kVanished, path, "removed during the scan"});
    } else {
      out.issues.push_back({IssueKind::kUnreadable, path, "cannot stat: " + ErrnoText(err)});
    }
    return false;
  }

  // `name_z` is the NUL-terminated name inside the getdents buffer.
  void HandleEntry(const std::shared_ptr<core::UniqueFd>& dir, const std::string& dir_path,
                   const char* name_z, unsigned char type, WorkerOutput& out,
                   std::vector<DirWork>& children) {
    const std::string_view name(name_z);
    std::string path = Join(dir_path, name);
    struct stat st {};
    bool have_stat = false;
    if (type == DT_UNKNOWN) {
      if (!Stat(dir->get(), path, name_z, &st, out)) return;
      have_stat = true;
      type = TypeOfMode(st.st_mode);
    }
    if (options_.exclude != nullptr && options_.exclude->Matches(path, type == DT_DIR)) return;
    if (!unicode::IsValidUtf8(name)) {
      out.issues.push_back({IssueKind::kNotUtf8, Join(dir_path, EscapeBytes(name)),
                            "name is not valid UTF-8; skipped"});
      return;
    }
    if (path.size() > kMaxRelativePath) {
      out.issues.push_back(
          {IssueKind::kTooDeep, std::move(path),
           "path longer than " + std::to_string(kMaxRelativePath) + " bytes; skipped"});
      return;
    }
    if (type == DT_REG && !have_stat) {
      if (!Stat(dir->get(), path, name_z, &st, out)) return;
      type = TypeOfMode(st.st_mode);
    }
    switch (type) {
      case DT_REG:
        out.entries.push_back({std::move(path), core::EntryKind::kFile, core::IdentityOf(st)});
        break;
      case DT_DIR: {
        const std::size_t name_offset = path.size() - name.size();
        children.push_back({dir, std::move(path), name_offset});
        break;
      }
      case DT_LNK:
        out.issues.push_back({IssueKind::kSymlink, std::move(path), "symbolic link; not followed"});
        break;
      default:
        out.issues.push_back({IssueKind::kSpecialFile, std::move(path),
                              "not a regular file or directory (FIFO, socket or device); skipped"});
    }
  }

  const ScanOptions& options_;
  const std::uint64_t root_device_;
  const std::size_t threads_;
  const std::function<void(const std::string&)> before_stat_;  // TEST_ScanWithStatHook only
  core::Mutex mu_;
  core::CondVar cv_;
  std::vector<DirWork> stack_ GUARDED_BY(mu_);
  int active_ GUARDED_BY(mu_) = 0;  // directories being processed
};

// Appends `from` to `to` (whose capacity must already suffice), back to front, and drops the
// pages of `from` that empty out on the way; `from` ends up empty. The dropped pages belong to
// `from`'s unused capacity, whose contents nothing reads.
void MoveReleasing(std::vector<Entry>& from, std::vector<Entry>& to) {
  constexpr std::size_t kStep = 4096;  // entries moved between two releases
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto address = [&from](std::size_t index) {
    return reinterpret_cast<std::uintptr_t>(from.data() + index);
  };
  std::uintptr_t released = address(from.size()) & ~(page - 1);  // page-aligned, at or below
  while (!from.empty()) {
    for (std::size_t i = std::min(kStep, from.size()); i > 0; --i) {
      to.push_back(std::move(from.back()));
      from.pop_back();
    }
    const std::uintptr_t first_free_page = (address(from.size()) + page - 1) & ~(page - 1);
    if (first_free_page < released) {
      madvise(reinterpret_cast<void*>(first_free_page), released - first_free_page, MADV_DONTNEED);
      released = first_free_page;
    }
  }
}

}  // namespace

const char* IssueKindName(IssueKind kind) {
  switch (kind) {
    case IssueKind::kSymlink:
      return "symlink";
    case IssueKind::kSpecialFile:
      return "special_file";
    case IssueKind::kUnreadable:
      return "unreadable";
    case IssueKind::kNotUtf8:
      return "not_utf8";
    case IssueKind::kVanished:
      return "vanished";
    case IssueKind::kTooDeep:
      return "too_deep";
    case IssueKind::kOtherFilesystem:
      return "other_filesystem";
  }
  return "unknown";
}

namespace {

Result<ScanResult> ScanOpen(int dir_fd, const std::string& root, const ScanOptions& options,
                            std::function<void(const std::string&)> before_stat) {
  const int root_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (root_fd < 0) return Status::Io("cannot open sync dir " + root + ": " + ErrnoText(errno));
  auto root_dir = std::make_shared<core::UniqueFd>(root_fd);
  struct stat st {};
  if (fstat(root_fd, &st) != 0) {
    return Status::Io("cannot stat sync dir " + root + ": " + ErrnoText(errno));
  }
  ScanResult result;
  result.root = core::IdentityOf(st);
  result.root.size = 0;

  const std::size_t threads = static_cast<std::size_t>(std::clamp(options.threads, 1, 64));
  Walker walker(options, result.root.device, threads, std::move(before_stat));
  std::vector<WorkerOutput> outputs(threads);
  for (WorkerOutput& out : outputs)
    out.entries.reserve(options.expected_entries + options.expected_entries / 8);
  {
    std::vector<char> buffer;
    int err = 0;
    if (!walker.ListRoot(root_dir, outputs[0], buffer, &err)) {
      return Status::Io("cannot list sync dir " + root + ": " + ErrnoText(err));
    }
  }
  root_dir.reset();  // still open while children hold it
  {
    std::vector<std::jthread> pool;
    pool.reserve(threads - 1);
    for (std::size_t i = 1; i < threads; ++i) {
      pool.emplace_back([&walker, &outputs, i] { walker.Run(outputs[i]); });
    }
    walker.Run(outputs[0]);
  }

  std::size_t total_entries = 0;
  std::size_t total_issues = 0;
  for (const WorkerOutput& out : outputs) {
    total_entries += out.entries.size();
    total_issues += out.issues.size();
  }
  // The first thread's list usually has room for all (expected_entries): take it over rather
  // than copy it.
  if (outputs[0].entries.capacity() >= total_entries) {
    result.entries = std::move(outputs[0].entries);
    outputs[0].entries = {};
  }
  result.entries.reserve(total_entries);
  result.issues.reserve(total_issues);
  for (WorkerOutput& out : outputs) {
    MoveReleasing(out.entries, result.entries);
    std::move(out.issues.begin(), out.issues.end(), std::back_inserter(result.issues));
    result.dirs_scanned += out.dirs;
    out = {};
  }
  std::sort(result.entries.begin(), result.entries.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  std::sort(result.issues.begin(), result.issues.end(),
            [](const Issue& a, const Issue& b) { return a.path < b.path; });
  return result;
}

Result<ScanResult> ScanPath(const std::string& root, const ScanOptions& options,
                            std::function<void(const std::string&)> before_stat) {
  const int root_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound("sync dir " + root + " does not exist");
    if (err == ENOTDIR) return Status::Io("sync dir " + root + " is not a directory");
    return Status::Io("cannot open sync dir " + root + ": " + ErrnoText(err));
  }
  const core::UniqueFd owned(root_fd);
  return ScanOpen(root_fd, root, options, std::move(before_stat));
}

}  // namespace

Result<ScanResult> Scan(const std::string& root, const ScanOptions& options) {
  return ScanPath(root, options, nullptr);
}

Result<ScanResult> Scan(int dir_fd, const std::string& root, const ScanOptions& options) {
  return ScanOpen(dir_fd, root, options, nullptr);
}

Result<ScanResult> TEST_ScanWithStatHook(const std::string& root, const ScanOptions& options,
                                         std::function<void(const std::string& path)> before_stat) {
  return ScanPath(root, options, std::move(before_stat));
}

Result<core::FileIdentity> StatIdentity(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound("no such file: " + path);
    return Status::Io("cannot stat " + path + ": " + ErrnoText(err));
  }
  return core::IdentityOf(st);
}

}  // namespace filesync::scan
