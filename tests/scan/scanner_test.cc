#include "scan/scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace filesync::scan {
namespace {

// Removes a tree with openat()/unlinkat(), so paths past PATH_MAX go too; makes locked
// directories writable first.
void RemoveTreeAt(int parent, const char* name) {
  struct stat st {};
  if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    fchmodat(parent, name, 0700, 0);
    const int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      DIR* dir = fdopendir(fd);
      std::vector<std::string> names;
      while (dirent* e = readdir(dir)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      for (const std::string& n : names) RemoveTreeAt(dirfd(dir), n.c_str());
      closedir(dir);
    }
    unlinkat(parent, name, AT_REMOVEDIR);
  } else {
    unlinkat(parent, name, 0);
  }
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "scan_test_XXXXXX";
    char* made = mkdtemp(tmpl.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() { RemoveTreeAt(AT_FDCWD, path_.c_str()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

  void MakeDir(const std::string& rel) const {
    ASSERT_EQ(mkdir((*this / rel).c_str(), 0755), 0) << rel;
  }
  void MakeFile(const std::string& rel, const std::string& content = "x") const {
    const int fd = open((*this / rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << rel << ": " << std::strerror(errno);
    ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    close(fd);
  }

 private:
  std::string path_;
};

std::vector<std::string> Paths(const ScanResult& r) {
  std::vector<std::string> paths;
  for (const Entry& e : r.entries) paths.push_back(e.path);
  return paths;
}

const Issue* FindIssue(const ScanResult& r, const std::string& path) {
  for (const Issue& issue : r.issues) {
    if (issue.path == path) return &issue;
  }
  return nullptr;
}

bool HasEntry(const ScanResult& r, const std::string& path) {
  for (const Entry& e : r.entries) {
    if (e.path == path) return true;
  }
  return false;
}

ScanResult MustScan(const std::string& root, const ScanOptions& options = {}) {
  auto r = Scan(root, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : ScanResult{};
}

TEST(ScannerTest, ListsNestedTreeSortedByteWiseWithParentsFirst) {
  TempDir t;
  t.MakeDir("a");
  t.MakeDir("a/b");
  t.MakeFile("a/b/c.txt", "hello");
  t.MakeFile("a/x.txt");
  t.MakeFile("a-b");
  t.MakeFile("b.txt");
  t.MakeDir("e");
  t.MakeFile("Z");
  const ScanResult r = MustScan(t.path());
  const std::vector<std::string> expected = {"Z",         "a",       "a-b",   "a/b",
                                             "a/b/c.txt", "a/x.txt", "b.txt", "e"};
  EXPECT_EQ(Paths(r), expected);
  EXPECT_TRUE(r.issues.empty());
  EXPECT_EQ(r.dirs_scanned, 4u);  // root, a, a/b, e
}

TEST(ScannerTest, ReportsKindsAndIdentityFields) {
  TempDir t;
  t.MakeDir("d");
  t.MakeFile("d/f.bin", std::string(1234, 'q'));
  const ScanResult r = MustScan(t.path());
  ASSERT_EQ(r.entries.size(), 2u);

  struct stat st {};
  ASSERT_EQ(lstat((t / "d/f.bin").c_str(), &st), 0);
  const Entry& file = r.entries[1];
  EXPECT_EQ(file.path, "d/f.bin");
  EXPECT_EQ(file.kind, core::EntryKind::kFile);
  EXPECT_EQ(file.identity.size, 1234u);
  EXPECT_EQ(file.identity.inode, st.st_ino);
  EXPECT_EQ(file.identity.device, st.st_dev);
  EXPECT_EQ(file.identity.mtime_ns, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec);
  EXPECT_EQ(file.identity.ctime_ns, st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec);

  ASSERT_EQ(lstat((t / "d").c_str(), &st), 0);
  const Entry& dir = r.entries[0];
  EXPECT_EQ(dir.path, "d");
  EXPECT_EQ(dir.kind, core::EntryKind::kFolder);
  EXPECT_EQ(dir.identity.inode, st.st_ino);
  EXPECT_EQ(dir.identity.device, st.st_dev);

  ASSERT_EQ(lstat(t.path().c_str(), &st), 0);
  EXPECT_EQ(r.root.inode, st.st_ino);
  EXPECT_EQ(r.root.device, st.st_dev);
}

TEST(ScannerTest, IdentityChangesWhenFileIsRewritten) {
  TempDir t;
  t.MakeFile("f", "one");
  const ScanResult before = MustScan(t.path());
  ASSERT_EQ(before.entries.size(), 1u);
  struct timespec times[2] = {{0, UTIME_OMIT}, {1'000'000, 5}};
  ASSERT_EQ(utimensat(AT_FDCWD, (t / "f").c_str(), times, 0), 0);
  const ScanResult after = MustScan(t.path());
  ASSERT_EQ(after.entries.size(), 1u);
  EXPECT_EQ(after.entries[0].identity.mtime_ns, 1'000'000LL * 1'000'000'000LL + 5);
  EXPECT_NE(before.entries[0].identity, after.entries[0].identity);
}

TEST(ScannerTest, MissingRootIsNotFoundNamingThePath) {
  TempDir t;
  auto r = Scan(t / "nope", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), Status::Kind::kNotFound);
  EXPECT_NE(r.status().message().find(t / "nope"), std::string::npos);
}

TEST(ScannerTest, RootThatIsAFileIsIo) {
  TempDir t;
  t.MakeFile("file");
  auto r = Scan(t / "file", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), Status::Kind::kIo);
  EXPECT_NE(r.status().message().find(t / "file"), std::string::npos);
}

TEST(ScannerTest, SymlinksAreReportedOnceAndNeverFollowed) {
  TempDir outside;
  outside.MakeFile("secret.txt");
  outside.MakeDir("sub");
  TempDir t;
  t.MakeDir("d");
  t.MakeFile("d/real.txt");
  ASSERT_EQ(symlink(outside.path().c_str(), (t / "out").c_str()), 0);
  ASSERT_EQ(symlink("real.txt", (t / "d/link.txt").c_str()), 0);
  ASSERT_EQ(symlink("/nonexistent/dangling", (t / "dangling").c_str()), 0);
  const ScanResult r = MustScan(t.path());
  EXPECT_EQ(Paths(r), (std::vector<std::string>{"d", "d/real.txt"}));
  ASSERT_EQ(r.issues.size(), 3u);
  for (const std::string path : {"dangling", "d/link.txt", "out"}) {
    const Issue* issue = FindIssue(r, path);
    ASSERT_NE(issue, nullptr) << path;
    EXPECT_EQ(issue->kind, IssueKind::kSymlink) << path;
  }
}

TEST(ScannerTest, SymlinkedRootIsFollowedButNothingBelowIt) {
  TempDir t;
  t.MakeDir("real");
  t.MakeFile("real/f");
  ASSERT_EQ(symlink((t / "real").c_str(), (t / "alias").c_str()), 0);
  const ScanResult r = MustScan(t / "alias");
  EXPECT_EQ(Paths(r), (std::vector<std::string>{"f"}));
}

TEST(ScannerTest, FifosAndSocketsAreSkippedAsSpecialFiles) {
  TempDir t;
  t.MakeFile("plain");
  ASSERT_EQ(mkfifo((t / "pipe").c_str(), 0644), 0);
  const int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = t / "sock";
  ASSERT_LT(sock_path.size(), sizeof(addr.sun_path));
  std::strncpy(addr.sun_path, sock_path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(sock);
  const ScanResult r = MustScan(t.path());
  EXPECT_EQ(Paths(r), (std::vector<std::string>{"plain"}));
  ASSERT_NE(FindIssue(r, "pipe"), nullptr);
  EXPECT_EQ(FindIssue(r, "pipe")->kind, IssueKind::kSpecialFile);
  ASSERT_NE(FindIssue(r, "sock"), nullptr);
  EXPECT_EQ(FindIssue(r, "sock")->kind, IssueKind::kSpecialFile);
}

// Runs fn as an unprivileged user when the test runs as root (root reads everything), passing
// back what it printed. Outside root it just runs fn.
std::string RunUnprivileged(const std::function<std::string()>& fn) {
  if (geteuid() != 0) return fn();
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    if (setgid(65534) != 0 || setuid(65534) != 0) {
      out = "cannot drop privileges";
    } else {
      out = fn();
    }
    const ssize_t ignored = write(fds[1], out.data(), out.size());
    (void)ignored;
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n = 0;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

std::string Describe(const Result<ScanResult>& r) {
  if (!r.ok()) return "error " + r.status().ToString() + "\n";
  std::string out;
  for (const Entry& e : r->entries) out += "entry " + e.path + "\n";
  for (const Issue& i : r->issues)
    out += std::string("issue ") + IssueKindName(i.kind) + " " + i.path + "\n";
  return out;
}

TEST(ScannerTest, UnreadableDirectoryIsReportedAndTheRestIsScanned) {
  TempDir t;
  ASSERT_EQ(chmod(t.path().c_str(), 0755), 0);  // reachable by the unprivileged user
  t.MakeDir("locked");
  t.MakeFile("locked/hidden.txt");
  t.MakeDir("open");
  t.MakeFile("open/seen.txt");
  ASSERT_EQ(chmod((t / "locked").c_str(), 0), 0);
  const std::string out = RunUnprivileged([&] { return Describe(Scan(t.path(), {})); });
  EXPECT_EQ(out,
            "entry open\n"
            "entry open/seen.txt\n"
            "issue unreadable locked\n");
}

TEST(ScannerTest, UnreadableRootIsIoNamingThePath) {
  TempDir t;
  ASSERT_EQ(chmod(t.path().c_str(), 0755), 0);
  t.MakeDir("root");
  ASSERT_EQ(chmod((t / "root").c_str(), 0), 0);
  const std::string out = RunUnprivileged([&] { return Describe(Scan(t / "root", {})); });
  EXPECT_EQ(out.rfind("error io: ", 0), 0u) << out;
  EXPECT_NE(out.find(t / "root"), std::string::npos) << out;
}

// Runs fn in a child process with a private mount namespace, passing back what it printed;
// "SKIP: why" when the namespace cannot be had (needs root / CAP_SYS_ADMIN).
std::string RunInPrivateMountNamespace(const std::function<std::string()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      out = std::string("SKIP: no private mount namespace: ") + std::strerror(errno);
    } else {
      out = fn();
    }
    const ssize_t ignored = write(fds[1], out.data(), out.size());
    (void)ignored;
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n = 0;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

TEST(ScannerTest, MountPointsAreReportedAndNotEntered) {
  TempDir t;
  t.MakeFile("a.txt");
  t.MakeDir("mnt");
  t.MakeDir("plain");
  const std::string out = RunInPrivateMountNamespace([&]() -> std::string {
    if (mount("tmpfs", (t / "mnt").c_str(), "tmpfs", 0, "size=1m") != 0) {
      return std::string("SKIP: cannot mount tmpfs: ") + std::strerror(errno);
    }
    const int fd = open((t / "mnt/on-other-fs.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
    return Describe(Scan(t.path(), {}));
  });
  if (out.rfind("SKIP: ", 0) == 0) GTEST_SKIP() << out.substr(6);
  EXPECT_EQ(out,
            "entry a.txt\n"
            "entry plain\n"
            "issue other_filesystem mnt\n");
}

TEST(ScannerTest, NamesThatAreNotUtf8AreReportedEscapedAndSkipped) {
  TempDir t;
  t.MakeDir("d");
  t.MakeFile("bad\xff.txt");
  t.MakeFile("d/x\xc3(y");
  t.MakeDir("baddir\xfe");
  t.MakeFile("baddir\xfe/inside");
  t.MakeFile("ok-\xc3\xa9.txt");  // valid UTF-8 (e acute)
  const ScanResult r = MustScan(t.path());
  EXPECT_EQ(Paths(r), (std::vector<std::string>{"d", "ok-\xc3\xa9.txt"}));
  ASSERT_EQ(r.issues.size(), 3u);
  for (const std::string path : {"bad\\xff.txt", "d/x\\xc3(y", "baddir\\xfe"}) {
    const Issue* issue = FindIssue(r, path);
    ASSERT_NE(issue, nullptr) << path;
    EXPECT_EQ(issue->kind, IssueKind::kNotUtf8);
  }
}

TEST(ScannerTest, EntryVanishingBeforeStatIsReportedAndSkipped) {
  TempDir t;
  t.MakeFile("a.txt");
  t.MakeFile("gone.txt");
  t.MakeFile("z.txt");
  auto scanned = TEST_ScanWithStatHook(t.path(), ScanOptions{}, [&](const std::string& path) {
    if (path == "gone.txt") unlink((t / "gone.txt").c_str());
  });
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  const ScanResult& r = *scanned;
  EXPECT_EQ(Paths(r), (std::vector<std::string>{"a.txt", "z.txt"}));
  ASSERT_EQ(r.issues.size(), 1u);
  EXPECT_EQ(r.issues[0].kind, IssueKind::kVanished);
  EXPECT_EQ(r.issues[0].path, "gone.txt");
}

TEST(ScannerTest, DeepPathsPastPathMaxWorkAndTooDeepIsReported) {
  TempDir t;
  const std::string name(100, 'd');
  // 50 levels of 101 bytes each: level k has a relative path of 101*k - 1 bytes, so level 40
  // (4039 bytes) is the deepest within the 4096-byte limit.
  int fd = open(t.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string rel;
  std::string deepest_file;
  for (int level = 1; level <= 50; ++level) {
    ASSERT_EQ(mkdirat(fd, name.c_str(), 0755), 0) << level;
    const int next = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(fd);
    ASSERT_GE(next, 0);
    fd = next;
    rel += (rel.empty() ? "" : "/") + name;
    if (level == 40) {
      // Relative path 4039 + 1 + 50 bytes: within the limit, but past PATH_MAX as an absolute
      // path under the temp dir.
      const std::string file(50, 'f');
      const int f = openat(fd, file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      ASSERT_GE(f, 0);
      close(f);
      deepest_file = rel + "/" + file;
    }
  }
  close(fd);
  ASSERT_GT(t.path().size() + 1 + deepest_file.size(), static_cast<std::size_t>(PATH_MAX));

  const ScanResult r = MustScan(t.path());
  EXPECT_EQ(r.entries.size(), 41u);  // 40 directories and the file
  EXPECT_TRUE(HasEntry(r, deepest_file));
  for (const Entry& e : r.entries) EXPECT_LE(e.path.size(), kMaxRelativePath);
  ASSERT_EQ(r.issues.size(), 1u);
  EXPECT_EQ(r.issues[0].kind, IssueKind::kTooDeep);
  EXPECT_EQ(r.issues[0].path.size(), 41u * 101u - 1u);
}

TEST(ScannerTest, ExcludedPathsAreSkippedAndExcludedDirsNotEntered) {
  TempDir t;
  t.MakeDir("node_modules");
  t.MakeFile("node_modules/pkg.js");
  ASSERT_EQ(mkfifo((t / "node_modules/fifo").c_str(), 0644), 0);  // would be an issue if seen
  t.MakeDir("src");
  t.MakeFile("src/a.cc");
  t.MakeFile("src/a.tmp");
  t.MakeDir("build");
  t.MakeFile("src/build");
  auto matcher = ExcludeMatcher::Compile({"node_modules", "*.tmp", "build/"});
  ASSERT_TRUE(matcher.ok());
  ScanOptions options;
  options.exclude = &matcher.value();
  const ScanResult r = MustScan(t.path(), options);
  EXPECT_EQ(Paths(r), (std::vector<std::string>{"src", "src/a.cc", "src/build"}));
  EXPECT_TRUE(r.issues.empty());
  EXPECT_EQ(r.dirs_scanned, 2u);
}

TEST(ScannerTest, ParallelScanEqualsSerialScan) {
  TempDir t;
  for (int i = 0; i < 30; ++i) {
    const std::string d = "dir" + std::to_string(i);
    t.MakeDir(d);
    for (int j = 0; j < 5; ++j) {
      const std::string sub = d + "/sub" + std::to_string(j);
      t.MakeDir(sub);
      for (int k = 0; k < 10; ++k)
        t.MakeFile(sub + "/f" + std::to_string(k), std::to_string(i * k));
    }
    t.MakeFile(d + "/top.txt");
  }
  ASSERT_EQ(mkfifo((t / "dir3/fifo").c_str(), 0644), 0);
  ASSERT_EQ(symlink("top.txt", (t / "dir7/link").c_str()), 0);
  const ScanResult serial = MustScan(t.path());
  ScanOptions parallel_options;
  parallel_options.threads = 4;
  const ScanResult parallel = MustScan(t.path(), parallel_options);
  ASSERT_EQ(serial.entries.size(), 30u * (1 + 5 * 11 + 1));
  ASSERT_EQ(parallel.entries.size(), serial.entries.size());
  for (std::size_t i = 0; i < serial.entries.size(); ++i) {
    EXPECT_EQ(parallel.entries[i].path, serial.entries[i].path);
    EXPECT_EQ(parallel.entries[i].kind, serial.entries[i].kind);
    EXPECT_EQ(parallel.entries[i].identity, serial.entries[i].identity);
  }
  ASSERT_EQ(parallel.issues.size(), 2u);
  ASSERT_EQ(serial.issues.size(), 2u);
  for (std::size_t i = 0; i < serial.issues.size(); ++i) {
    EXPECT_EQ(parallel.issues[i].path, serial.issues[i].path);
    EXPECT_EQ(parallel.issues[i].kind, serial.issues[i].kind);
  }
  EXPECT_EQ(parallel.dirs_scanned, serial.dirs_scanned);
  EXPECT_EQ(serial.dirs_scanned, 1u + 30u * 6u);
  EXPECT_EQ(parallel.root, serial.root);
}

TEST(ScannerTest, ParallelScanOfOneLargeDirectoryEqualsSerialScan) {
  TempDir t;
  // Several thousand names: a parallel scan cuts this listing into slices.
  for (int i = 0; i < 5000; ++i) t.MakeFile("f" + std::to_string(i));
  t.MakeDir("sub");
  t.MakeFile("sub/inner");
  ASSERT_EQ(symlink("f1", (t / "link").c_str()), 0);
  const ScanResult serial = MustScan(t.path());
  ScanOptions parallel_options;
  parallel_options.threads = 3;
  const ScanResult parallel = MustScan(t.path(), parallel_options);
  ASSERT_EQ(serial.entries.size(), 5002u);
  ASSERT_EQ(parallel.entries.size(), serial.entries.size());
  for (std::size_t i = 0; i < serial.entries.size(); ++i) {
    ASSERT_EQ(parallel.entries[i].path, serial.entries[i].path);
    EXPECT_EQ(parallel.entries[i].identity, serial.entries[i].identity);
  }
  ASSERT_EQ(parallel.issues.size(), 1u);
  EXPECT_EQ(parallel.issues[0].path, "link");
  EXPECT_EQ(parallel.dirs_scanned, 2u);
}

TEST(ScannerTest, StatIdentityUsesLstat) {
  TempDir t;
  t.MakeFile("f", "abc");
  ASSERT_EQ(symlink("f", (t / "l").c_str()), 0);
  auto file = StatIdentity(t / "f");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->size, 3u);
  auto link = StatIdentity(t / "l");
  ASSERT_TRUE(link.ok());
  EXPECT_NE(link->inode, file->inode);
  EXPECT_EQ(link->size, 1u);  // the link's own size: its target "f"
  auto missing = StatIdentity(t / "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().kind(), Status::Kind::kNotFound);
}

}  // namespace
}  // namespace filesync::scan
