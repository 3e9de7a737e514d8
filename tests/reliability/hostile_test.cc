// Resource faults and hostile trees: each test states the defined behaviour (docs/reliability.md
// lists them all) and ends, once the fault is gone, with the harness's invariants. No case may
// crash filesync (a signal) or hang it (the harness kills a run after its timeout).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "harness.h"

namespace fs = std::filesystem;

namespace filesync::reliability {
namespace {

using std::chrono::milliseconds;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The final check of every test: one pass converges and the invariants hold.
void ExpectConverged(Sandbox& box) {
  const RunResult r = box.Sync();
  EXPECT_EQ(r.code, 0) << r.out.substr(0, 4000);
  const auto problems = box.Invariants();
  for (const auto& p : problems) ADD_FAILURE() << p;
}

// Creates `rel` (a '/'-separated path, parents included) below `root` with openat, so it works
// past PATH_MAX; writes `content` to the last component.
void WriteDeep(const fs::path& root, const std::string& rel, const std::string& content) {
  int dir = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  std::size_t start = 0;
  for (;;) {
    const auto slash = rel.find('/', start);
    const std::string name =
        rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (slash == std::string::npos) {
      const int fd = openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0) << name.size() << "-byte name: " << std::strerror(errno);
      ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
      close(fd);
      close(dir);
      return;
    }
    mkdirat(dir, name.c_str(), 0755);
    const int child = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(dir);
    ASSERT_GE(child, 0) << std::strerror(errno);
    dir = child;
    start = slash + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Resource faults

// Defined: a state.db that is not a valid store is set aside (state.db.corrupt-<time>) with a
// warning, a fresh store is built, and the pass converges without re-uploading garbage.
TEST(ResourceFaults, CorruptStateFileIsSetAsideAndRebuilt) {
  Sandbox box("corrupt-state");
  for (int i = 0; i < 50; ++i)
    WriteFile(box.client() / ("d" + std::to_string(i % 5)) / ("f" + std::to_string(i)),
              RandomBytes(static_cast<std::uint64_t>(i), 3000));
  ASSERT_EQ(box.Sync().code, 0);
  for (const char* shape : {"garbage", "truncated"}) {
    SCOPED_TRACE(shape);
    const fs::path db = box.state_dir() / "state.db";
    std::error_code ec;
    fs::remove(box.state_dir() / "state.db-wal", ec);
    fs::remove(box.state_dir() / "state.db-shm", ec);
    if (std::string(shape) == "garbage") {
      WriteFile(db, RandomBytes(99, 1 << 16));
    } else {
      fs::resize_file(db, fs::file_size(db) / 2);
    }
    // The tree changed too, so the rebuilt store must still find the difference.
    WriteFile(box.client() / "d1/f1", "changed while the state was broken");
    fs::remove(box.client() / "d2/f2");
    const RunResult r = box.Sync();
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(Contains(r.out, "corrupt") || Contains(r.out, "set aside") ||
                Contains(r.out, "rebuil"))
        << r.out;
    bool set_aside = false;
    for (const auto& e : fs::directory_iterator(box.state_dir()))
      set_aside |= e.path().filename().string().starts_with("state.db.corrupt");
    EXPECT_TRUE(set_aside);
    for (const auto& p : box.Invariants()) ADD_FAILURE() << p;
  }
}

// Defined: while one filesync holds the state dir, a second `run` or `sync` exits 1 at once
// with "state dir ... is in use by another filesync (pid N, filesync run)"; the first is
// undisturbed.
TEST(ResourceFaults, SecondInstanceOnTheSameStateIsRefused) {
  Sandbox box("second-instance");
  WriteFile(box.client() / "a", "a");
  const pid_t daemon = box.Spawn({"run"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!fs::exists(box.mirror() / "a") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(20));
  for (const char* command : {"run", "sync"}) {
    const auto start = std::chrono::steady_clock::now();
    const RunResult r = box.Run({command}, {}, 20);
    EXPECT_EQ(r.code, 1) << command << ": " << r.out;
    EXPECT_TRUE(Contains(
        r.out, "in use by another filesync (pid " + std::to_string(daemon) + ", filesync run)"))
        << command << ": " << r.out;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5))
        << command << " should be refused at once";
  }
  int status = 0;
  EXPECT_FALSE(Sandbox::WaitExit(daemon, 100, &status)) << "the first daemon must keep running";
  status = Sandbox::KillAndReap(daemon, SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ExpectConverged(box);
}

// Defined: when the state dir's filesystem is full the pass fails with a clear error (exit 1,
// never a crash), the client is untouched, every cloud file is complete, `status` says it is not
// in sync, and once space is back the next pass converges.
TEST(ResourceFaults, StateDirOnAFullFilesystem) {
  Sandbox box("full-state");
  fs::create_directories(box.state_dir());
  if (mount("tmpfs", box.state_dir().c_str(), "tmpfs", 0, "size=1M") != 0) {
    GTEST_SKIP() << "cannot mount a 1 MiB tmpfs on the state dir (" << std::strerror(errno)
                 << "); needs root / CAP_SYS_ADMIN";
  }
  struct Unmount {
    fs::path dir;
    ~Unmount() { umount2(dir.c_str(), MNT_DETACH); }
  } unmount{box.state_dir()};
  WriteFile(box.client() / "first.txt", "small start");
  ASSERT_EQ(box.Sync().code, 0);
  // Long names make the state records big: 2,500 of them do not fit in 1 MiB.
  const std::string pad(200, 'n');
  for (int i = 0; i < 2500; ++i)
    WriteFile(box.client() / ("dir" + std::to_string(i % 20)) / (pad + std::to_string(i)),
              std::to_string(i));
  const Tree source = Snapshot(box.client(), true);
  const RunResult r = box.Run({"sync"});
  EXPECT_EQ(r.signal, 0) << "crashed: " << r.out.substr(0, 3000);
  // The pass could not record its work, so it did not complete: exit 1.
  EXPECT_EQ(r.code, 1) << r.out.substr(0, 3000);
  EXPECT_TRUE(Contains(r.out, "full") || Contains(r.out, "space"))
      << "no clear error: " << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0);
  EXPECT_EQ(Snapshot(box.client(), true), source) << "the client must be untouched";
  for (const auto& [path, e] : Snapshot(box.mirror(), false)) {
    auto it = source.find(path);
    EXPECT_TRUE(it != source.end() && it->second == e) << "partial or stray cloud entry: " << path;
  }
  // `status` tells the truth about it: not in sync (issue 11: it said "none yet, errors 0").
  const nlohmann::json status = box.StatusJson();
  ASSERT_TRUE(status.is_object()) << "status failed";
  EXPECT_FALSE(status.value("converged", true)) << status.dump(2);
  EXPECT_TRUE(status["unrecorded_pass"].is_object() ||
              (status["last_pass"].is_object() && !status["last_pass"].value("converged", true)))
      << status.dump(2);
  ASSERT_EQ(mount("tmpfs", box.state_dir().c_str(), "tmpfs", MS_REMOUNT, "size=256M"), 0)
      << std::strerror(errno);
  ExpectConverged(box);
}

// Defined (run as an unprivileged user, since root reads anything): a folder or file that becomes
// unreadable mid-pass is reported (status error / scan issue, exit 1 for a file that cannot be
// read), nothing already in the cloud below it is deleted, and once the permissions are back the
// next pass converges.
TEST(ResourceFaults, PermissionsChangedMidPass) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root to switch to uid 65534 with setpriv (non-root runs cannot be "
                    "protected against)";
  if (std::system("setpriv --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "setpriv (util-linux) not installed";
  const std::string binary = BinaryPath();
  // The binary must be reachable by uid 65534.
  const std::string probe =
      "setpriv --reuid=65534 --regid=65534 --clear-groups test -x '" + binary + "'";
  if (std::system(probe.c_str()) != 0)
    GTEST_SKIP() << "uid 65534 cannot execute " << binary << " (a parent folder is not searchable)";
  Sandbox box("perms");
  box.set_prefix({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  for (int i = 0; i < 40; ++i)
    WriteFile(box.client() / "open" / ("f" + std::to_string(i)),
              RandomBytes(static_cast<std::uint64_t>(i), 1 << 20));
  for (int i = 0; i < 10; ++i)
    WriteFile(box.client() / "locked" / ("g" + std::to_string(i)),
              RandomBytes(static_cast<std::uint64_t>(100 + i), 1000));
  WriteFile(box.client() / "secret.txt", "file that will become unreadable");
  ASSERT_EQ(std::system(("chown -R 65534:65534 '" + box.base().string() + "'").c_str()), 0);
  ASSERT_EQ(box.Sync().code, 0);
  // New work so the next pass is busy when the permissions change under it.
  for (int i = 0; i < 40; ++i)
    WriteFile(box.client() / "open" / ("f" + std::to_string(i)),
              RandomBytes(static_cast<std::uint64_t>(1000 + i), 1 << 20));
  WriteFile(box.client() / "locked/new", "added just before the lock");
  ASSERT_EQ(std::system(("chown -R 65534:65534 '" + box.client().string() + "'").c_str()), 0);
  const pid_t pid = box.Spawn({"sync"});
  std::this_thread::sleep_for(milliseconds(30));
  fs::permissions(box.client() / "locked", fs::perms::none);
  fs::permissions(box.client() / "secret.txt", fs::perms::none);
  int status = 0;
  ASSERT_TRUE(Sandbox::WaitExit(pid, 120000, &status)) << "hung";
  EXPECT_TRUE(WIFEXITED(status)) << "crashed";
  // A full pass with the permissions still off: reported, nothing under them deleted.
  const RunResult r = box.Sync();
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.code, 1) << "an unreadable file means the cloud does not match: " << r.out;
  EXPECT_TRUE(Contains(r.out, "locked")) << r.out;
  EXPECT_TRUE(Contains(r.out, "secret.txt")) << r.out;
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(fs::exists(box.mirror() / "locked" / ("g" + std::to_string(i))))
        << "deleted from the cloud";
  EXPECT_TRUE(fs::exists(box.mirror() / "secret.txt"));
  const auto status_json = box.StatusJson();
  EXPECT_FALSE(status_json["errors"].empty()) << status_json.dump(2);
  fs::permissions(box.client() / "locked", fs::perms::owner_all);
  fs::permissions(box.client() / "secret.txt", fs::perms::owner_read | fs::perms::owner_write);
  ExpectConverged(box);
}

// Defined: a file replaced by a folder while a pass copies it never leaves a wrong file in the
// cloud as "synced"; that pass may end with 1; the next pass converges (type change handled).
TEST(ResourceFaults, FileReplacedByAFolderMidPass) {
  Sandbox box("file-to-folder");
  for (int i = 0; i < 20; ++i)
    WriteFile(box.client() / ("small" + std::to_string(i)),
              RandomBytes(static_cast<std::uint64_t>(i), 100000));
  WriteFile(box.client() / "big", RandomBytes(7, 128 << 20));
  const pid_t pid = box.Spawn({"sync"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  // Swap as soon as copying has visibly started (staging holds a temp file or the cloud a file).
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (!box.StagedCopies().empty() || fs::exists(box.mirror() / "small0", ec)) break;
    std::this_thread::sleep_for(milliseconds(1));
  }
  fs::remove(box.client() / "big");
  WriteFile(box.client() / "big" / "inside.txt", "now a folder");
  int status = 0;
  ASSERT_TRUE(Sandbox::WaitExit(pid, 120000, &status)) << "hung";
  EXPECT_TRUE(WIFEXITED(status)) << "crashed";
  ExpectConverged(box);
}

// ---------------------------------------------------------------------------------------------
// Hostile trees

// Defined: 120 levels of nesting sync like any tree (the scanner is iterative, not recursive).
TEST(HostileTrees, HundredAndTwentyLevelsOfNesting) {
  Sandbox box("deep");
  std::string rel;
  for (int i = 0; i < 120; ++i) rel += "lvl" + std::to_string(i) + "/";
  WriteDeep(box.client(), rel + "bottom.txt", "at the bottom");
  WriteDeep(box.client(), rel.substr(0, rel.size() / 2) + "middle.txt", "half way");
  ExpectConverged(box);
  EXPECT_EQ(Snapshot(box.mirror(), false).size(), 122u);
}

// Defined: a 255-byte name (the Linux limit) syncs, ASCII or multi-byte (85 x 3-byte characters
// = 255 bytes, 85 code points, within every backend's 255-code-point limit).
TEST(HostileTrees, NamesOf255Bytes) {
  Sandbox box("long-names");
  const std::string ascii(255, 'a');
  std::string cjk;
  for (int i = 0; i < 85; ++i) cjk += "\xe6\x97\xa5";
  WriteFile(box.client() / ascii, "ascii");
  WriteFile(box.client() / cjk / ascii, "nested");
  WriteFile(box.client() / (std::string(250, 'b') + ".txt"), "dot");
  ExpectConverged(box);
  // A rename of a long name is a move like any other.
  fs::rename(box.client() / ascii, box.client() / std::string(255, 'z'));
  ExpectConverged(box);
}

// Defined: relative paths up to 4,096 bytes sync (the local backend resolves them with openat,
// so absolute cloud paths past PATH_MAX work); entries deeper than 4,096 bytes are reported
// once (scan issue "too deep"), skipped, and nothing below them is deleted from the cloud.
TEST(HostileTrees, PathsPast4096Bytes) {
  Sandbox box("long-paths");
  std::string rel;
  for (int i = 0; i < 24; ++i)
    rel += std::string(200, static_cast<char>('a' + i)) + "/";  // 24 x 201 = 4,824 bytes
  WriteDeep(box.client(), rel.substr(0, 201 * 10) + "shallow.txt", "2 KiB deep");
  WriteDeep(box.client(), rel.substr(0, 201 * 19) + std::string(200, 'q'),
            "just under 4096 relative, past PATH_MAX absolute");
  WriteDeep(box.client(), rel + "too-deep.txt", "past 4096");
  const RunResult r = box.Sync();
  EXPECT_EQ(r.signal, 0) << r.out.substr(0, 3000);
  EXPECT_EQ(r.code, 0) << r.out.substr(0, 3000);
  for (const auto& p : box.Invariants()) ADD_FAILURE() << p;
}

// Defined: 100,000 entries in one folder sync, and a second pass does nothing (and reads nothing).
TEST(HostileTrees, HundredThousandEntriesInOneFolder) {
  if (!SlowTestsEnabled()) GTEST_SKIP() << "slow: set FILESYNC_SLOW_TESTS=1";
  Sandbox box("wide");
  const fs::path dir = box.client() / "wide";
  fs::create_directories(dir);
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (int i = 0; i < 100000; ++i) {
    const std::string name = "entry-" + std::to_string(i);
    const int fd = openat(dfd, name.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_EQ(write(fd, name.data(), name.size()), static_cast<ssize_t>(name.size()));
    close(fd);
  }
  close(dfd);
  const auto start = std::chrono::steady_clock::now();
  const RunResult r = box.Run({"sync"}, {}, 900);
  std::printf("100,000-entry initial sync: %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  EXPECT_EQ(r.code, 0) << r.out.substr(0, 3000);
  for (const auto& p : box.Invariants()) ADD_FAILURE() << p;
}

void SparseFileCopies(std::uint64_t gib) {
  Sandbox box("sparse");
  const fs::path file = box.client() / "disk.img";
  fs::create_directories(box.client());
  {
    const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(gib << 30)), 0);
    // A little data in the middle and at the end, so the copy is not all zeroes.
    ASSERT_EQ(pwrite(fd, "middle", 6, static_cast<off_t>(gib << 29)), 6);
    ASSERT_EQ(pwrite(fd, "end", 3, static_cast<off_t>((gib << 30) - 3)), 3);
    close(fd);
  }
  const auto start = std::chrono::steady_clock::now();
  const RunResult r = box.Run({"sync"}, {}, 1800);
  std::printf("%llu GiB sparse file synced in %.1f s\n", static_cast<unsigned long long>(gib),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  EXPECT_EQ(r.code, 0) << r.out.substr(0, 3000);
  for (const auto& p : box.Invariants()) ADD_FAILURE() << p;
  struct stat source {
  }, stored{};
  ASSERT_EQ(stat(file.c_str(), &source), 0);
  ASSERT_EQ(stat((box.mirror() / "disk.img").c_str(), &stored), 0);
  EXPECT_LE(stored.st_blocks, source.st_blocks + 2048) << "the copy's holes were filled";
}

// Defined: a sparse file is copied with the right content hash, and its holes stay holes in the
// local cloud (a few blocks of data, not gib GiB).
TEST(HostileTrees, SparseFileOf2GiB) { SparseFileCopies(2); }

TEST(HostileTrees, SparseFileOf40GiB) {
  if (!SlowTestsEnabled()) GTEST_SKIP() << "slow: set FILESYNC_SLOW_TESTS=1";
  SparseFileCopies(40);
}

// Defined: a file that grows or shrinks while a pass reads it is not recorded as synced from a
// torn read; once it is stable the next pass uploads its final content.
void MutatedDuringSync(bool grow) {
  Sandbox box(grow ? "grown" : "truncated");
  const fs::path file = box.client() / "live.log";
  WriteFile(file, RandomBytes(1, 128 << 20));
  const pid_t pid = box.Spawn({"sync"});
  std::atomic<bool> done{false};
  std::thread mutator([&] {
    // Grow in 1 MiB appends, or cut it down step by step, for ~1 s, while the pass reads it.
    for (int i = 0; i < 100 && !done; ++i) {
      if (grow) {
        std::ofstream(file, std::ios::binary | std::ios::app)
            << RandomBytes(1000 + static_cast<std::uint64_t>(i), 1 << 20);
      } else {
        fs::resize_file(file, fs::file_size(file) - (1 << 20));
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
  });
  int status = 0;
  const bool exited = Sandbox::WaitExit(pid, 120000, &status);
  done = true;
  mutator.join();
  ASSERT_TRUE(exited) << "hung";
  EXPECT_TRUE(WIFEXITED(status)) << "crashed";
  // However that pass ended, the next one must converge on the final content.
  ExpectConverged(box);
}

TEST(HostileTrees, FileGrownDuringSync) { MutatedDuringSync(true); }
TEST(HostileTrees, FileTruncatedDuringSync) { MutatedDuringSync(false); }

// Defined: names that are not valid UTF-8 (files and folders) are skipped with one warning each
// (bad bytes shown as \xNN); the rest syncs; exit 0.
TEST(HostileTrees, NamesThatAreNotUtf8) {
  Sandbox box("not-utf8");
  WriteFile(box.client() / "good.txt", "fine");
  const std::vector<std::string> bad = {
      "latin1-caf\xe9",          // ISO-8859-1
      "overlong-\xc0\xaf",       // overlong '/'
      "surrogate-\xed\xa0\x80",  // UTF-16 surrogate
      "truncated-\xe2\x82",      // cut multi-byte sequence
      "ff-\xff\xfe",             // never valid
  };
  for (const auto& name : bad) WriteFile(box.client() / name, "bad name");
  WriteFile(box.client() / "dir-\xff" / "inside-good-name.txt", "under a bad folder");
  WriteFile(box.client() / "ok-dir" / ("nested-\xc3\x28"), "bad second byte");
  const RunResult r = box.Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(Contains(r.out, "\\xff")) << "the bad bytes should be shown escaped: " << r.out;
  for (const auto& p : box.Invariants()) ADD_FAILURE() << p;
  EXPECT_EQ(Snapshot(box.mirror(), false).size(), 2u);  // good.txt and ok-dir
}

// Defined: symlinks are never followed (outside the root, inside it, in loops, dangling); each
// is skipped with a warning; the pass ends promptly with exit 0.
TEST(HostileTrees, SymlinksOutsideTheRootAndLoops) {
  Sandbox box("symlinks");
  WriteFile(box.client() / "real/file.txt", "real");
  WriteFile(box.base() / "outside/secret.txt", "must never reach the cloud");
  fs::create_directory_symlink(box.base() / "outside", box.client() / "to-outside");
  fs::create_directory_symlink("/", box.client() / "to-root");
  fs::create_directory_symlink("..", box.client() / "real/to-parent");
  fs::create_directory_symlink(".", box.client() / "real/self");
  fs::create_symlink("loop-b", box.client() / "loop-a");
  fs::create_symlink("loop-a", box.client() / "loop-b");
  fs::create_symlink("nowhere", box.client() / "dangling");
  fs::create_symlink("real/file.txt", box.client() / "to-file-inside");
  const RunResult r = box.Run({"sync"}, {}, 60);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(Contains(r.out, "to-outside")) << "each symlink gets a warning: " << r.out;
  for (const auto& p : box.Invariants()) ADD_FAILURE() << p;
  EXPECT_FALSE(fs::exists(box.mirror() / "to-outside"));
  EXPECT_EQ(Snapshot(box.mirror(), false).size(), 2u);  // real, real/file.txt
}

}  // namespace
}  // namespace filesync::reliability
