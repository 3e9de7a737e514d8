// Crash torture: kill -9 at many points of one initial sync of a 10,000-file tree. Each run is
// killed at the next point (early ones by time offset, during scan and hashing; later ones when the
// cloud holds the next fraction of the files), then the next run picks up from there. After every
// kill, every file visible in the cloud must have exactly the source's content (no partial file is
// ever visible at a destination) and nothing may sit outside the source's paths. The final run
// must exit 0 and leave the invariants true.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fs = std::filesystem;

namespace filesync::reliability {
namespace {

void MakeTree(const fs::path& root, int files) {
  const int dirs = std::max(1, files / 100);
  for (int i = 0; i < files; ++i) {
    const std::size_t size = i % 500 == 7 ? (1u << 20) + static_cast<std::size_t>(i)
                                          : static_cast<std::size_t>((i * 7919) % 8192);
    char dir[32];
    std::snprintf(dir, sizeof dir, "d%03d", i % dirs);
    WriteFile(root / dir / ("f" + std::to_string(i) + ".bin"),
              RandomBytes(static_cast<std::uint64_t>(i), size));
  }
}

std::size_t CountFiles(const fs::path& root) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) ++n;
  }
  return n;
}

struct TortureResult {
  int kills = 0;
  int finished_early = 0;
  std::vector<std::string> problems;  // broken invariants after the final run
};

// Reports the final invariants.
void Verdict(const TortureResult& r) {
  std::printf("crashes survived: %d (runs that finished before their kill point: %d)\n", r.kills,
              r.finished_early);
  for (const auto& p : r.problems) ADD_FAILURE() << p;
}

TortureResult Torture(Sandbox& box, int files, int points) {
  MakeTree(box.client(), files);
  const Tree source = Snapshot(box.client(), true);
  TortureResult result;
  const int timed = std::max(1, points / 4);  // the first quarter by time: scan and hashing
  for (int k = 1; k <= points; ++k) {
    const pid_t pid = box.Spawn({"sync"});
    int status = 0;
    bool exited = false;
    if (k <= timed) {
      exited = Sandbox::WaitExit(pid, 40 * k, &status);
    } else {
      const std::size_t threshold = static_cast<std::size_t>(files) *
                                    static_cast<std::size_t>(k - timed) /
                                    static_cast<std::size_t>(points - timed + 1);
      for (;;) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
          exited = true;
          break;
        }
        if (CountFiles(box.mirror()) >= threshold) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    if (exited) {
      ++result.finished_early;
      EXPECT_TRUE(WIFEXITED(status))
          << "kill point " << k << ": sync died by signal " << WTERMSIG(status);
      continue;
    }
    Sandbox::KillAndReap(pid);
    ++result.kills;
    // What is visible now is complete: every cloud file is byte-identical to its source.
    const Tree cloud = Snapshot(box.mirror(), false);
    std::size_t present = 0;
    for (const auto& [path, e] : cloud) {
      auto it = source.find(path);
      if (it == source.end()) {
        ADD_FAILURE() << "kill point " << k << ": unexpected entry in cloud: " << path;
      } else if (!(it->second == e)) {
        ADD_FAILURE() << "kill point " << k << ": partial or wrong file visible: " << path
                      << " has " << e.size << " bytes, source " << it->second.size;
      }
      present += e.dir ? 0 : 1;
    }
    std::printf("kill point %d: killed -9 with %zu/%d files in the cloud\n", k, present, files);
  }
  const RunResult last = box.Sync();
  EXPECT_EQ(last.code, 0) << last.out.substr(0, 3000);
  result.problems = box.Invariants();
  return result;
}

// A kill right after files land in the cloud but before the state store records them, then the
// client deletes those files: the next pass must still delete them from the cloud (no orphan
// that plan and status do not see). Targets the window between LocalCloud's rename into place
// and the batch commit.
TEST(CrashTorture, KillBeforeTheStateCommitThenDeleteLeavesNoOrphans) {
  Sandbox box("orphans");
  WriteFile(box.client() / "anchor", "keeps the dir from being suddenly empty");
  ASSERT_EQ(box.Sync().code, 0);
  int kills = 0;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 300; ++i)
      WriteFile(box.client() / "batch" / ("f" + std::to_string(i)),
                RandomBytes(static_cast<std::uint64_t>(round * 1000 + i), 20000));
    const pid_t pid = box.Spawn({"sync"});
    int status = 0;
    bool exited = false;
    while (!(exited = waitpid(pid, &status, WNOHANG) == pid) &&
           CountFiles(box.mirror() / "batch") == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (!exited) {
      Sandbox::KillAndReap(pid);
      ++kills;
    }
    fs::remove_all(box.client() / "batch");
    const RunResult r = box.Sync({"--allow-mass-delete"});
    EXPECT_EQ(r.code, 0) << r.out;
    const auto problems = box.Invariants();
    if (problems.empty()) continue;
    std::printf("round %d: %zu orphan file(s) in the cloud after a kill and a client delete\n",
                round, CountFiles(box.mirror() / "batch"));
    for (const auto& p : problems) ADD_FAILURE() << "round " << round << ": " << p;
    break;
  }
  std::printf("crashes survived: %d\n", kills);
}

TEST(CrashTorture, ThreeKillPointsOf10000FileInitialSync) {
  Sandbox box("torture3");
  const auto r = Torture(box, 10000, 3);
  Verdict(r);
}

TEST(CrashTorture, TwentyKillPointsOf10000FileInitialSync) {
  if (!SlowTestsEnabled()) GTEST_SKIP() << "slow: set FILESYNC_SLOW_TESTS=1";
  Sandbox box("torture20");
  const auto r = Torture(box, 10000, 20);
  EXPECT_GE(r.kills, 15) << "most kill points should land inside a run";
  Verdict(r);
}

}  // namespace
}  // namespace filesync::reliability
