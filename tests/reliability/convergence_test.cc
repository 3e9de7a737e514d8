// Randomized convergence: from a seed, a reproducible sequence of local operations on a real
// tree, interleaved with `filesync sync` runs, `filesync run` daemons that see the tree change
// under them, and kill -9 at random moments followed by a rerun. On the Dropbox backend the
// emulator also changes its fault spec between steps (429 with Retry-After, 500/503, dropped
// connections before or after the route ran, latency), drawn from a second generator so a seed
// performs the same file operations on both backends. After a final sync (faults off; it must
// exit 0) the harness's invariants must hold.
//
// Built twice: reliability_seeds (label integration: a fixed set of seeds per backend for CI,
// plus Replay for FILESYNC_SEED=N) and reliability_long (label slow: the seeds of
// FILESYNC_SEEDS=A..B, skipped when unset). Replay and SeedRange take FILESYNC_BACKEND=
// local|dropbox|both (default both).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "hash/content_hash.h"

namespace fs = std::filesystem;

namespace filesync::reliability {
namespace {

// Names drawn from a small pool so that renames land on existing names, case-only variants and
// NFC/NFD twins meet, and names are reused after deletes.
const std::vector<std::string> kNames = {
    "a",
    "A",
    "b",
    "doc.txt",
    "Doc.txt",
    "notes",
    "Notes",
    "caf\xc3\xa9" /* NFC */,
    "cafe\xcc\x81" /* NFD */,
    "\xe6\x97\xa5\xe6\x9c\xac" /* 日本 */,
    "\xc3\x85ngstr\xc3\xb6m",
    "A\xcc\x8angstro\xcc\x88m",
    "with space",
    "x.bin",
    "deep",
};

constexpr const char* kAnchor = "anchor-never-touched";
constexpr const char* kDaemonStarted = "filesync daemon started";

int Occurrences(const fs::path& file, const std::string& needle) {
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Fault specs the Dropbox emulator cycles through (probabilities per request; a seed= is added).
// High enough that most passes meet some, low enough that retries (up to 5 per request) mostly
// get through.
const std::vector<std::string> kFaultSpecs = {
    "",                          // healthy
    "429=0.15",                  // rate limited, Retry-After: 1
    "500=0.1,503=0.1",           // server errors
    "drop=0.1,drop_after=0.08",  // connections closed before / after the route ran
    "latency=0.5:100",           // slow server
    "429=0.05,500=0.05,503=0.05,drop=0.05,drop_after=0.05,latency=0.2:50",  // everything
};

class Scenario {
 public:
  Scenario(std::uint64_t seed, Sandbox& box)
      : rng_(seed), fault_rng_(seed ^ 0x6661756c7473ULL), box_(box) {
    Record(kAnchor);
  }

  // Runs `steps` random steps; log() then lists what was done.
  void Run(int steps) {
    for (int step = 0; step < steps; ++step) {
      MaybeChangeFaults();
      const int dice = Pick(100);
      if (dice < 70) {
        FileOp();
      } else if (dice < 80) {
        Log("sync -> " + std::to_string(SyncCode(box_.Sync())));
      } else if (dice < 88) {
        KillSync();
      } else {
        DaemonPhase();
      }
    }
  }

  [[nodiscard]] const std::vector<std::string>& log() const { return log_; }
  [[nodiscard]] int crashes() const { return crashes_; }
  [[nodiscard]] const std::vector<std::string>& failures() const { return failures_; }

  // Dropbox: before a step, one time in four, the emulator restarts with another fault spec.
  void MaybeChangeFaults() {
    if (box_.backend() != BackendKind::kDropbox || fault_rng_() % 4 != 0) return;
    const std::string& kind = kFaultSpecs[fault_rng_() % kFaultSpecs.size()];
    SetFaults(kind);
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<std::uint64_t>(n)); }
  void Log(std::string line) { log_.push_back(std::move(line)); }

  void SetFaults(const std::string& kind) {
    const std::string spec =
        kind.empty() ? "" : kind + ",seed=" + std::to_string(fault_rng_() % 1000000);
    if (spec == box_.faults()) return;
    box_.SetFaults(spec);
    Log("emulator faults: " + (spec.empty() ? std::string("none") : spec));
  }

  int SyncCode(const RunResult& r) {
    // A pass may legitimately report 1 (a file changed under it, a kill left work); it must never
    // crash, hang or fail with a usage error.
    if (r.signal != 0 || (r.code != 0 && r.code != 1)) {
      failures_.push_back("filesync sync ended with code " + std::to_string(r.code) + " signal " +
                          std::to_string(r.signal) + ":\n" + r.out.substr(0, 2000));
    }
    return r.code;
  }

  // Entries of the client tree (relative paths), sorted, so choices are reproducible.
  std::vector<fs::path> Entries(bool dirs, bool files) {
    std::vector<fs::path> out;
    for (auto it = fs::recursive_directory_iterator(box_.client());
         it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_symlink() || it->path().filename() == kAnchor) continue;
      if ((dirs && it->is_directory()) || (files && it->is_regular_file()))
        out.push_back(fs::relative(it->path(), box_.client()));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path RandomDir() {
    auto dirs = Entries(true, false);
    const int n = static_cast<int>(dirs.size());
    const int i = Pick(n + 2);  // the root is chosen more often
    return i < n ? dirs[static_cast<std::size_t>(i)] : fs::path();
  }
  std::string RandomName() {
    return kNames[static_cast<std::size_t>(Pick(static_cast<int>(kNames.size())))] +
           (Pick(3) == 0 ? "" : std::to_string(Pick(4)));
  }
  std::string Content() {
    const int kind = Pick(10);
    const std::size_t size = kind == 0  ? 0
                             : kind < 8 ? static_cast<std::size_t>(Pick(5000))
                                        : static_cast<std::size_t>(Pick(3 << 20));
    return RandomBytes(rng_(), size);
  }
  fs::path Abs(const fs::path& rel) { return box_.client() / rel; }

  static std::string FlipCase(const std::string& name) {
    std::string out = name;
    for (char& c : out) {
      if (c >= 'a' && c <= 'z') {
        c = static_cast<char>(c - 'a' + 'A');
      } else if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c - 'A' + 'a');
      }
    }
    return out;
  }

  void FileOp() {
    std::error_code ec;
    const auto files = Entries(false, true);
    const auto dirs = Entries(true, false);
    const int op = Pick(14);
    auto pick = [&](const std::vector<fs::path>& v) {
      return v[static_cast<std::size_t>(Pick(static_cast<int>(v.size())))];
    };
    switch (op) {
      case 0:
      case 1: {  // create (or replace) a file
        const fs::path rel = RandomDir() / RandomName();
        if (fs::is_directory(Abs(rel))) return;
        Write(rel, Content());
        Record(rel);
        Log("create " + rel.string());
        return;
      }
      case 2: {  // modify in place (maybe same size)
        if (files.empty()) return;
        const fs::path rel = pick(files);
        const auto size = fs::file_size(Abs(rel), ec);
        Write(rel, Pick(2) == 0 ? RandomBytes(rng_(), static_cast<std::size_t>(size)) : Content());
        Record(rel);
        Log("modify " + rel.string());
        return;
      }
      case 3: {  // append
        if (files.empty()) return;
        const fs::path rel = pick(files);
        std::ofstream(Abs(rel), std::ios::binary | std::ios::app)
            << RandomBytes(rng_(), static_cast<std::size_t>(Pick(10000)));
        Record(rel);
        Log("append " + rel.string());
        return;
      }
      case 4: {  // truncate
        if (files.empty()) return;
        const fs::path rel = pick(files);
        const auto size = fs::file_size(Abs(rel), ec);
        fs::resize_file(Abs(rel),
                        size == 0 ? 0
                                  : static_cast<std::uintmax_t>(Pick(
                                        static_cast<int>(std::min<std::uintmax_t>(size, 1 << 30)))),
                        ec);
        Record(rel);
        Log("truncate " + rel.string());
        return;
      }
      case 5: {  // delete a file
        if (files.empty()) return;
        const fs::path rel = pick(files);
        fs::remove(Abs(rel), ec);
        Log("delete " + rel.string());
        return;
      }
      case 6: {  // delete a folder
        if (dirs.empty()) return;
        const fs::path rel = pick(dirs);
        fs::remove_all(Abs(rel), ec);
        Log("rmtree " + rel.string());
        return;
      }
      case 7:
      case 8: {  // rename or move a file or folder (possibly over an existing file)
        auto all = files;
        all.insert(all.end(), dirs.begin(), dirs.end());
        if (all.empty()) return;
        const fs::path from = pick(all);
        const fs::path to = RandomDir() / RandomName();
        if (to.string().starts_with(from.string() + "/") || to == from) return;
        fs::rename(Abs(from), Abs(to), ec);
        Log("rename " + from.string() + " -> " + to.string() +
            (ec ? " (failed: " + ec.message() + ")" : ""));
        return;
      }
      case 9: {  // case-only rename
        auto all = files;
        all.insert(all.end(), dirs.begin(), dirs.end());
        if (all.empty()) return;
        const fs::path from = pick(all);
        const fs::path to = from.parent_path() / FlipCase(from.filename().string());
        if (to == from || fs::exists(Abs(to))) return;
        fs::rename(Abs(from), Abs(to), ec);
        Log("case-rename " + from.string() + " -> " + to.string());
        return;
      }
      case 10: {  // empty folders, possibly nested
        fs::path rel = RandomDir() / RandomName();
        if (Pick(2) == 0) rel /= RandomName();
        fs::create_directories(Abs(rel), ec);
        Log("mkdir " + rel.string() + (ec ? " (failed)" : ""));
        return;
      }
      case 11: {  // file -> folder swap
        if (files.empty()) return;
        const fs::path rel = pick(files);
        fs::remove(Abs(rel), ec);
        fs::create_directories(Abs(rel), ec);
        if (Pick(2) == 0) {
          const fs::path child = rel / RandomName();
          Write(child, Content());
          Record(child);
        }
        Log("file->folder " + rel.string());
        return;
      }
      case 12: {  // folder -> file swap
        if (dirs.empty()) return;
        const fs::path rel = pick(dirs);
        fs::remove_all(Abs(rel), ec);
        Write(rel, Content());
        Record(rel);
        Log("folder->file " + rel.string());
        return;
      }
      default: {  // NFC <-> NFD rename of a name that has a composed character
        auto all = files;
        all.insert(all.end(), dirs.begin(), dirs.end());
        for (const auto& from : all) {
          std::string name = from.filename().string();
          std::string to_name;
          if (auto p = name.find("caf\xc3\xa9"); p != std::string::npos) {
            to_name = name.substr(0, p) + "cafe\xcc\x81" + name.substr(p + 5);
          } else if (auto q = name.find("cafe\xcc\x81"); q != std::string::npos) {
            to_name = name.substr(0, q) + "caf\xc3\xa9" + name.substr(q + 6);
          } else {
            continue;
          }
          const fs::path to = from.parent_path() / to_name;
          if (fs::exists(Abs(to))) continue;
          fs::rename(Abs(from), Abs(to), ec);
          Log("nfc/nfd-rename " + from.string() + " -> " + to.string());
          return;
        }
        return;
      }
    }
  }

  void KillSync() {
    const pid_t pid = box_.Spawn({"sync"});
    const int delay_ms = Pick(400);
    int status = 0;
    if (Sandbox::WaitExit(pid, delay_ms, &status)) {
      Log("sync (finished before the kill at " + std::to_string(delay_ms) + " ms)");
      return;
    }
    Sandbox::KillAndReap(pid);
    ++crashes_;
    Log("sync killed -9 after " + std::to_string(delay_ms) + " ms");
    CheckNoPartialFiles();
    Log("rerun -> " + std::to_string(SyncCode(box_.Sync())));
  }

  // The daemon runs while the tree changes under it; then it is killed (-9) or stopped (TERM).
  void DaemonPhase() {
    const int started_before = Occurrences(box_.log_file(), kDaemonStarted);
    const pid_t pid = box_.Spawn({"run"});
    const int ops = Pick(6);
    atomic_writes_ = true;
    for (int i = 0; i < ops; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(Pick(300)));
      FileOp();
    }
    atomic_writes_ = false;
    // At least 300 ms: a SIGTERM that lands before filesync has installed its handlers would
    // kill it by the default action, which is not what this step tests.
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + Pick(1200)));
    if (Pick(3) == 0) {
      // A SIGTERM before filesync has installed its handlers (a loaded machine can take longer
      // than the sleep above to start it) would kill it by the default action, which is not
      // what this step tests: wait for the daemon's start line first.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (Occurrences(box_.log_file(), kDaemonStarted) <= started_before &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      const int status = Sandbox::KillAndReap(pid, SIGTERM);
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!clean)
        failures_.push_back("filesync run did not exit 0 on SIGTERM (wait status " +
                            std::to_string(status) + ")");
      Log("daemon with " + std::to_string(ops) + " concurrent ops, SIGTERM");
    } else {
      Sandbox::KillAndReap(pid);
      ++crashes_;
      Log("daemon with " + std::to_string(ops) + " concurrent ops, killed -9");
      CheckNoPartialFiles();
    }
  }

  // While a daemon runs, whole-file writes go through a temp file and a rename, so the daemon never
  // sees a half-written file (which would be a legitimate version for it to copy, but not one the
  // partial-file check could recognise).
  void Write(const fs::path& rel, const std::string& content) {
    if (!atomic_writes_) {
      WriteFile(Abs(rel), content);
      return;
    }
    const fs::path temp = box_.base() / "write.tmp";
    WriteFile(temp, content);
    fs::create_directories(Abs(rel).parent_path());
    fs::rename(temp, Abs(rel));
  }

  // Remembers the content hash of the client file at `rel` as a version the cloud may hold.
  void Record(const fs::path& rel) {
    auto h = hash::HashFile(Abs(rel).string());
    if (h.ok()) versions_.insert(hash::ToHex(h->digest));
  }

  // Right after a kill: every file visible in the cloud is a complete copy of some version the
  // client had (never a prefix or a mix), and no temp file sits at a destination.
  void CheckNoPartialFiles() {
    // The emulator would fault the check's own listing: look with faults off, then go on with
    // the same kind of faults (a fresh seed).
    const std::string faults = box_.faults();
    box_.SetFaults("");
    const Tree cloud = box_.CloudTree();
    if (!faults.empty()) SetFaults(faults.substr(0, faults.rfind(",seed=")));
    for (const auto& [path, e] : cloud) {
      if (!e.dir && !versions_.contains(e.hash)) {
        failures_.push_back(
            "after a kill, cloud file " + path + " (" + std::to_string(e.size) +
            " bytes) matches no version the client ever had: a partial or torn copy");
      }
    }
  }

  std::mt19937_64 rng_;
  std::mt19937_64 fault_rng_;  // Dropbox only, so the file operations match across backends
  Sandbox& box_;
  std::vector<std::string> log_;
  std::vector<std::string> failures_;
  std::set<std::string> versions_;  // content hashes of every version of every client file
  int crashes_ = 0;
  bool atomic_writes_ = false;
};

std::string ReplayCommand(std::uint64_t seed, BackendKind backend) {
  const std::string env = std::string("FILESYNC_BACKEND=") + BackendName(backend) +
                          " FILESYNC_SEED=" + std::to_string(seed);
  return env + " " + fs::read_symlink("/proc/self/exe").string() +
         " --gtest_filter='Convergence.Replay'   (or: " + env +
         " ctest --test-dir <build> -R 'reliability_seeds.Convergence.Replay' --output-on-failure)";
}

constexpr int kSteps = 60;

struct SeedResult {
  int crashes = 0;  // kill -9 survived
  FaultTally faults;
  bool passed = true;
};

// Runs one seed; records gtest failures with the replay command.
SeedResult RunSeed(std::uint64_t seed, BackendKind backend) {
  Sandbox box("seed-" + std::to_string(seed) + "-" + BackendName(backend), backend);
  // Random deletes may remove most of the tree in one pass: that is the user's intent here, so
  // max_delete must not stop it. The anchor (never touched) keeps the sync dir from becoming
  // "suddenly empty", which filesync rightly refuses to mirror.
  box.WriteConfig("max_delete = \"1000000,100%\"\n");
  WriteFile(box.client() / kAnchor, "anchor");
  Scenario scenario(seed, box);
  scenario.Run(kSteps);
  // Quiescence: the emulator heals, then one final sync must converge.
  box.SetFaults("");
  const RunResult final_sync = box.Sync();
  std::vector<std::string> problems = scenario.failures();
  if (final_sync.code != 0)
    problems.push_back("final sync exited " + std::to_string(final_sync.code) + ":\n" +
                       final_sync.out.substr(0, 3000));
  for (auto& p : box.Invariants()) problems.push_back(std::move(p));
  SeedResult result{scenario.crashes(), box.FaultsInjected(), problems.empty()};
  if (!problems.empty()) {
    std::ostringstream msg;
    msg << "seed " << seed << " (" << BackendName(backend) << " backend) broke " << problems.size()
        << " invariant(s):\n";
    for (const auto& p : problems) msg << "  - " << p << "\n";
    msg << "operations (" << scenario.log().size() << "):\n";
    for (const auto& l : scenario.log()) msg << "    " << l << "\n";
    box.Keep();
    msg << "sandbox kept: " << box.base().string() << "\n";
    msg << "replay: " << ReplayCommand(seed, backend)
        << "\n(kill timings are not reproducible, nor is which request meets which fault; the "
           "operations and fault specs are)\n";
    ADD_FAILURE() << msg.str();
  }
  std::printf("seed %llu (%s): %s, %d kill -9 survived%s%s\n",
              static_cast<unsigned long long>(seed), BackendName(backend),
              result.passed ? "converged" : "FAILED", result.crashes,
              backend == BackendKind::kDropbox ? "; " : "",
              backend == BackendKind::kDropbox ? result.faults.ToString().c_str() : "");
  std::fflush(stdout);
  return result;
}

// Totals over several seeds, printed at the end of a long run.
void PrintTotals(const std::vector<std::pair<BackendKind, SeedResult>>& results) {
  for (const BackendKind backend : {BackendKind::kLocal, BackendKind::kDropbox}) {
    int seeds = 0, passed = 0, crashes = 0;
    FaultTally faults;
    for (const auto& [b, r] : results) {
      if (b != backend) continue;
      ++seeds;
      passed += r.passed ? 1 : 0;
      crashes += r.crashes;
      faults += r.faults;
    }
    if (seeds == 0) continue;
    std::printf("%s: %d/%d seeds converged, %d kill -9 survived%s%s\n", BackendName(backend),
                passed, seeds, crashes, backend == BackendKind::kDropbox ? "; " : "",
                backend == BackendKind::kDropbox ? faults.ToString().c_str() : "");
  }
}

class Convergence : public ::testing::TestWithParam<std::uint64_t> {};

#ifdef FILESYNC_RELIABILITY_LONG

// FILESYNC_SEEDS=A..B (inclusive) or a single N, on the backends of FILESYNC_BACKEND.
TEST(Convergence, SeedRange) {
  const char* spec = std::getenv("FILESYNC_SEEDS");
  if (spec == nullptr)
    GTEST_SKIP() << "long run: set FILESYNC_SEEDS=1000..1100 (and FILESYNC_BACKEND=local|dropbox|"
                    "both, default both)";
  const std::string s = spec;
  const auto dots = s.find("..");
  const std::uint64_t first = std::stoull(s.substr(0, dots));
  const std::uint64_t last = dots == std::string::npos ? first : std::stoull(s.substr(dots + 2));
  std::vector<std::pair<BackendKind, SeedResult>> results;
  for (std::uint64_t seed = first; seed <= last; ++seed) {
    for (const BackendKind backend : BackendsFromEnv("both"))
      results.emplace_back(backend, RunSeed(seed, backend));
  }
  std::printf("seeds %llu..%llu:\n", static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(last));
  PrintTotals(results);
}

#else

TEST_P(Convergence, Local) { RunSeed(GetParam(), BackendKind::kLocal); }

TEST_P(Convergence, Dropbox) { RunSeed(GetParam(), BackendKind::kDropbox); }

// The CI seeds: fixed, so a red CI run is reproducible.
INSTANTIATE_TEST_SUITE_P(Seeds, Convergence, ::testing::Values(1, 2, 3, 4, 5, 6));

// Found by seed 101 on Dropbox, reduced to three passes without faults or kills. The state
// store's remote table is keyed by the path bytes, the engine's view by the cloud key (NFC +
// lower case): a folder created from an NFD local name is recorded in NFD; after a local rename
// to NFC the listing adds the NFC spelling as a second row; the move deletes only the NFC row.
// The NFD row survived as a phantom: the next process planned "delete café2" for a folder the
// cloud no longer had, so a pass that exited 0 left a non-empty plan. Fixed: rows are written and
// deleted by the spelling the engine's record carries (src/pipeline/event_monitor.cc).
TEST(ConvergenceFindings, DropboxNfdFolderRenamedToNfcThenMovedLeavesNoPhantom) {
  Sandbox box("nfd-phantom", BackendKind::kDropbox);
  WriteFile(box.client() / kAnchor, "anchor");
  const fs::path nfd = box.client() / "cafe\xcc\x81";
  const fs::path nfc = box.client() / "caf\xc3\xa9";
  fs::create_directories(nfd);
  ASSERT_EQ(box.Sync().code, 0);
  fs::rename(nfd, nfc);
  ASSERT_EQ(box.Sync().code, 0);
  fs::rename(nfc, box.client() / "moved");
  const RunResult r = box.Sync();
  EXPECT_EQ(r.code, 0) << r.out;
  for (const auto& p : box.Invariants()) ADD_FAILURE() << p;
}

#endif

TEST(Convergence, Replay) {
  const char* seed = std::getenv("FILESYNC_SEED");
  if (seed == nullptr)
    GTEST_SKIP() << "replays one seed: set FILESYNC_SEED=N (and FILESYNC_BACKEND=local|dropbox|"
                    "both, default both)";
  std::vector<std::pair<BackendKind, SeedResult>> results;
  for (const BackendKind backend : BackendsFromEnv("both"))
    results.emplace_back(backend, RunSeed(std::stoull(seed), backend));
  PrintTotals(results);
}

}  // namespace
}  // namespace filesync::reliability
