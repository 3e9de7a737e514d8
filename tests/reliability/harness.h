// Reliability harness: drives the real filesync binary on a real temporary tree and checks the
// end state. Shared by the convergence, crash-torture and fault/hostile-tree tests.
//
// A Sandbox owns <tmp>/filesync-rel-<pid>-<name>/ with one client dir ("data"), a state dir and
// a config file; it is removed at destruction unless FILESYNC_KEEP_SANDBOX=1. The backend is a
// parameter:
//  - kLocal: the cloud is the folder <base>/cloud, read by walking it;
//  - kDropbox: the sandbox runs its own `filesync-dropbox-emulator` process (data in
//    <base>/emulator) and reads the cloud through the emulator's API (list_folder: display
//    paths, sizes, content hashes). SetFaults() restarts the emulator with a `--faults` spec
//    (same port and data, so the daemon's config stays valid); FaultsInjected() counts what the
//    emulator injected, by replaying its seeded fault PRNG over the number of requests it served.
//
// Invariants() is the quiescence check every test ends with: the cloud holds exactly the
// client's syncable entries (paths, types, content hashes of the bytes; on Dropbox compared
// case-insensitively after NFC, with the planner's collision rule: of names that fold to the
// same key the byte-wise smallest is synced), no temp/staging leftovers, no duplicate or
// "conflicted copy" entries, the state store agrees with the cloud and the client and holds no
// stale upload session, `plan --json` has no actions and `status --json` has no errors.
// Not thread-safe: drive one Sandbox from one test thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace filesync::test_support {
class EmulatorProcess;
}

namespace filesync::reliability {

enum class BackendKind { kLocal, kDropbox };
const char* BackendName(BackendKind kind);

struct RunResult {
  int code = -1;    // exit code; -1 if killed by a signal or not run
  int signal = 0;   // terminating signal, if any
  std::string out;  // stdout + stderr
};

// One entry of a tree snapshot: a folder, or a file with its size and content hash (hex).
struct Entry {
  bool dir = false;
  std::uint64_t size = 0;
  std::string hash;
  bool operator==(const Entry&) const = default;
};
using Tree = std::map<std::string, Entry>;  // relative '/'-separated path -> entry

// Snapshot of `root` (not followed through symlinks). With `syncable_only`, leaves out what the
// engine promises to skip: symlinks, FIFOs/sockets/devices and names that are not valid UTF-8
// (with everything below them), and paths longer than 4,096 bytes (the scanner's documented
// limit, scan::kMaxRelativePath). Files are hashed with the Dropbox content hash. Works on paths
// longer than PATH_MAX (openat all the way down).
Tree Snapshot(const std::filesystem::path& root, bool syncable_only);

// Human-readable differences between two snapshots (empty when equal), at most `limit` lines.
// `expected_name`/`actual_name` name the two sides ("client", "cloud").
std::vector<std::string> Diff(const Tree& expected, const Tree& actual, std::size_t limit = 20,
                              const std::string& expected_name = "client",
                              const std::string& actual_name = "cloud");

// Faults the emulator injected, by kind (one request can be delayed and also fail).
struct FaultTally {
  std::uint64_t requests = 0;  // /2/ requests served (each draws from the fault PRNG once)
  std::uint64_t latency = 0;
  std::uint64_t rate_limited = 0;  // 429 with Retry-After
  std::uint64_t server_500 = 0;
  std::uint64_t server_503 = 0;
  std::uint64_t dropped = 0;        // connection closed before the route ran
  std::uint64_t dropped_after = 0;  // the route ran, then the connection was closed
  int emulator_restarts = 0;        // fault-spec changes

  [[nodiscard]] std::uint64_t failures() const {
    return rate_limited + server_500 + server_503 + dropped + dropped_after;
  }
  FaultTally& operator+=(const FaultTally& o);
  [[nodiscard]] std::string ToString() const;
};

// FILESYNC_BACKEND=local|dropbox|both (default `fallback`): the backends a long run covers.
std::vector<BackendKind> BackendsFromEnv(const std::string& fallback);

class Sandbox {
 public:
  explicit Sandbox(const std::string& name, BackendKind backend = BackendKind::kLocal);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Leaves the sandbox on disk at destruction (for a failing case); its path is base().
  void Keep() { keep_ = true; }

  // (Re)writes the config file; `extra` is appended verbatim (TOML lines).
  void WriteConfig(const std::string& extra = "");

  // Prepended to every command line from now on (e.g. setpriv ... to drop privileges).
  void set_prefix(std::vector<std::string> prefix) { prefix_ = std::move(prefix); }

  // Runs `filesync --config <config> <args...>` to completion. `prefix` (default: set_prefix's)
  // is prepended to the command line. Gives up (SIGKILL) after `timeout_s`
  // and reports code -1, signal 9, with "TIMEOUT" appended to out.
  RunResult Run(const std::vector<std::string>& args, const std::vector<std::string>& prefix = {},
                int timeout_s = 300);
  RunResult Sync(const std::vector<std::string>& flags = {}) {
    std::vector<std::string> args{"sync"};
    args.insert(args.end(), flags.begin(), flags.end());
    return Run(args);
  }
  // Starts `filesync --config <config> <args...>` in the background (output appended to
  // log_file()); returns its pid.
  pid_t Spawn(const std::vector<std::string>& args, const std::vector<std::string>& prefix = {});
  // SIGKILL (or `sig`) and reap; returns the wait status.
  static int KillAndReap(pid_t pid, int sig = 9);
  // Waits up to `timeout_ms` for `pid` to exit; true and *status set if it did.
  static bool WaitExit(pid_t pid, int timeout_ms, int* status);

  nlohmann::json PlanJson();  // {} (not an object) if the output does not parse
  nlohmann::json StatusJson();

  // Empty when the system is quiescent and converged; otherwise one line per broken invariant.
  std::vector<std::string> Invariants();

  // What the cloud holds under the mirror (paths relative to it; on Dropbox the display paths,
  // with sizes and content hashes from the listing). Dropbox: faults must be off (SetFaults("")).
  Tree CloudTree();

  // Dropbox only (no-ops on kLocal): restarts the emulator with `--faults spec` ("" = none).
  // No filesync process may be running (its requests would fail while the port is closed).
  void SetFaults(const std::string& spec);
  [[nodiscard]] const std::string& faults() const { return faults_; }
  // Everything injected since the sandbox started, including the current emulator run.
  FaultTally FaultsInjected();
  // The emulator's /admin/counters ({} on kLocal).
  nlohmann::json Counters();

  [[nodiscard]] BackendKind backend() const { return backend_; }
  [[nodiscard]] const std::filesystem::path& base() const { return base_; }
  [[nodiscard]] const std::filesystem::path& client() const { return client_; }
  [[nodiscard]] const std::filesystem::path& cloud_dir() const { return cloud_; }
  [[nodiscard]] const std::filesystem::path& state_dir() const { return state_; }
  [[nodiscard]] const std::filesystem::path& config() const { return config_; }
  [[nodiscard]] std::filesystem::path log_file() const { return base_ / "spawned.log"; }
  // Where the client dir is mirrored (local backend): <cloud>/backup/data.
  [[nodiscard]] std::filesystem::path mirror() const { return cloud_ / "backup" / "data"; }
  [[nodiscard]] std::filesystem::path staging() const { return cloud_ / ".filesync-staging"; }
  // Staged copies (".part" files) anywhere in the local staging folder: a copy in flight, or
  // left behind.
  [[nodiscard]] std::vector<std::filesystem::path> StagedCopies() const;
  // The mirror's cloud path (both backends).
  static constexpr const char* kMirrorPath = "/backup/data";

 private:
  // Tally of the current emulator run (its requests so far under faults_).
  FaultTally CurrentRunFaults();
  void StartEmulator();
  std::vector<std::string> StateStoreProblems(const Tree& cloud);

  BackendKind backend_;
  std::vector<std::string> prefix_;
  bool keep_ = false;
  std::filesystem::path base_, client_, cloud_, state_, config_;
  std::unique_ptr<test_support::EmulatorProcess> emulator_;
  std::string faults_;
  FaultTally past_faults_;  // of emulator runs that ended
};

// The filesync binary under test (compile definition FILESYNC_BINARY).
std::string BinaryPath();

// Deterministic pseudo-random bytes for file contents.
std::string RandomBytes(std::uint64_t seed, std::size_t n);

// Writes `content` to `path` (creating parents), replacing it.
void WriteFile(const std::filesystem::path& path, const std::string& content);

// True if FILESYNC_SLOW_TESTS=1.
bool SlowTestsEnabled();

}  // namespace filesync::reliability
