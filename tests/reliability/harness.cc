// How: processes are fork/exec'd directly (no shell), with output to a pipe (Run) or to a log
// file (Spawn); snapshots walk with openat/fdopendir so they also reach paths past PATH_MAX.
// The Dropbox cloud is read with list_folder(recursive) + continue over cpp-httplib; the state
// store through its own API (StateStore::Open, which also proves no process holds it) plus a
// read-only SQLite connection for integrity_check and leftover upload-session records.
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <thread>

#include "core/rel_path.h"
#include "dropbox_emulator/faults.h"
#include "emulator_process.h"
#include "hash/content_hash.h"
#include "store/state_store.h"
#include "util/unicode.h"

namespace fs = std::filesystem;

namespace filesync::reliability {
namespace {

constexpr std::size_t kMaxRelativePath = 4096;

std::vector<std::string> CommandLine(const std::vector<std::string>& prefix, const fs::path& config,
                                     const std::vector<std::string>& args) {
  std::vector<std::string> argv = prefix;
  argv.push_back(BinaryPath());
  argv.emplace_back("--config");
  argv.push_back(config.string());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// In the child: exec argv with stdout and stderr on `out_fd`.
[[noreturn]] void ExecChild(const std::vector<std::string>& argv, int out_fd) {
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  if (out_fd > 2) close(out_fd);
  setpgid(0, 0);
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  execvp(cargv[0], cargv.data());
  _exit(127);
}

void Walk(int dir_fd, const std::string& rel, bool syncable_only, Tree& tree) {
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    close(dir_fd);
    return;
  }
  std::vector<std::string> names;
  while (const dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (syncable_only && !unicode::IsValidUtf8(name)) continue;
    const std::string path = rel.empty() ? name : rel + "/" + name;
    if (syncable_only && path.size() > kMaxRelativePath) continue;
    struct stat st {};
    if (fstatat(dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      tree[path] = Entry{.dir = true};
      const int child =
          openat(dirfd(dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) Walk(child, path, syncable_only, tree);
    } else if (S_ISREG(st.st_mode)) {
      Entry entry{.size = static_cast<std::uint64_t>(st.st_size)};
      const int fd = openat(dirfd(dir), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) {
        auto hashed = hash::HashFd(fd);
        entry.hash = hashed.ok() ? hash::ToHex(hashed->digest) : "<unreadable>";
        close(fd);
      } else {
        entry.hash = "<unreadable>";
      }
      tree[path] = entry;
    } else if (!syncable_only) {
      tree[path] = Entry{.hash = S_ISLNK(st.st_mode) ? "<symlink>" : "<special>"};
    }
  }
  closedir(dir);
}

// Every entry under `path` in the emulator's namespace, recursively (path "" = everything).
// A missing folder is an empty list. Returns false (and *error) if the listing fails.
bool ListDropbox(const std::string& url, const std::string& token, const std::string& path,
                 std::vector<nlohmann::json>* out, std::string* error) {
  httplib::Client client(url);
  client.set_read_timeout(60, 0);
  const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  auto r =
      client.Post("/2/files/list_folder", auth,
                  nlohmann::json{{"path", path}, {"recursive", true}}.dump(), "application/json");
  for (;;) {
    if (!r) {
      *error = "list_folder " + path + ": no response (" + httplib::to_string(r.error()) + ")";
      return false;
    }
    if (r->status == 409 && r->body.find("not_found") != std::string::npos) return true;
    if (r->status != 200) {
      *error = "list_folder " + path + ": HTTP " + std::to_string(r->status) + " " +
               r->body.substr(0, 300);
      return false;
    }
    auto page = nlohmann::json::parse(r->body, nullptr, false);
    if (!page.is_object()) {
      *error = "list_folder " + path + ": response is not JSON";
      return false;
    }
    for (auto& e : page["entries"]) out->push_back(std::move(e));
    if (!page.value("has_more", false)) return true;
    r = client.Post("/2/files/list_folder/continue", auth,
                    nlohmann::json{{"cursor", page["cursor"]}}.dump(), "application/json");
  }
}

// What a case-insensitive, NFC-normalising cloud should hold for a client tree, keyed by
// core::CloudKey: the planner's rule (src/plan/planner.h) — of paths that fold to the same
// key the byte-wise smallest is synced; below a folder that lost, nothing is.
struct Folded {
  std::string path;  // the client's path (bytes as on disk)
  Entry entry;
};
std::map<std::string, Folded> FoldForDropbox(const Tree& client) {
  std::map<std::string, Folded> out;
  std::vector<std::string> lost_dirs;
  for (const auto& [path, e] : client) {  // std::map: byte-wise order, as the planner sorts
    bool under_lost = false;
    for (const auto& d : lost_dirs) under_lost = under_lost || path.starts_with(d + "/");
    if (under_lost) continue;
    auto [it, fresh] = out.emplace(core::CloudKey(path), Folded{path, e});
    if (!fresh && e.dir) lost_dirs.push_back(path);
  }
  return out;
}

std::string Describe(const Entry& e) {
  return e.dir ? "folder"
               : "file of " + std::to_string(e.size) + " bytes, hash " + e.hash.substr(0, 12);
}

}  // namespace

const char* BackendName(BackendKind kind) {
  return kind == BackendKind::kLocal ? "local" : "dropbox";
}

std::vector<BackendKind> BackendsFromEnv(const std::string& fallback) {
  const char* v = std::getenv("FILESYNC_BACKEND");
  const std::string choice = v != nullptr && *v != '\0' ? v : fallback;
  if (choice == "local") return {BackendKind::kLocal};
  if (choice == "dropbox") return {BackendKind::kDropbox};
  if (choice == "both") return {BackendKind::kLocal, BackendKind::kDropbox};
  throw std::invalid_argument("FILESYNC_BACKEND must be local, dropbox or both, not '" + choice +
                              "'");
}

FaultTally& FaultTally::operator+=(const FaultTally& o) {
  requests += o.requests;
  latency += o.latency;
  rate_limited += o.rate_limited;
  server_500 += o.server_500;
  server_503 += o.server_503;
  dropped += o.dropped;
  dropped_after += o.dropped_after;
  emulator_restarts += o.emulator_restarts;
  return *this;
}

std::string FaultTally::ToString() const {
  return std::to_string(failures()) +
         " failed requests injected (429: " + std::to_string(rate_limited) +
         ", 500: " + std::to_string(server_500) + ", 503: " + std::to_string(server_503) +
         ", dropped: " + std::to_string(dropped) +
         ", dropped after commit: " + std::to_string(dropped_after) + ") and " +
         std::to_string(latency) + " delayed, over " + std::to_string(requests) +
         " requests made while faults were on; " + std::to_string(emulator_restarts) +
         " fault-spec changes";
}

std::string BinaryPath() { return FILESYNC_BINARY; }

bool SlowTestsEnabled() {
  const char* v = std::getenv("FILESYNC_SLOW_TESTS");
  return v != nullptr && std::string(v) == "1";
}

std::string RandomBytes(std::uint64_t seed, std::size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  std::size_t i = 0;
  while (i < n) {
    std::uint64_t v = rng();
    for (int k = 0; k < 8 && i < n; ++k, ++i, v >>= 8) s[i] = static_cast<char>(v & 0xff);
  }
  return s;
}

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

Tree Snapshot(const fs::path& root, bool syncable_only) {
  Tree tree;
  const int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) Walk(fd, "", syncable_only, tree);
  return tree;
}

std::vector<std::string> Diff(const Tree& expected, const Tree& actual, std::size_t limit,
                              const std::string& expected_name, const std::string& actual_name) {
  std::vector<std::string> out;
  auto add = [&](std::string line) {
    if (out.size() < limit) out.push_back(std::move(line));
  };
  for (const auto& [path, e] : expected) {
    auto it = actual.find(path);
    if (it == actual.end()) {
      add("missing in " + actual_name + ": " + path + " (" + Describe(e) + ")");
    } else if (!(it->second == e)) {
      add("differs: " + path + ": " + expected_name + " " + Describe(e) + ", " + actual_name + " " +
          Describe(it->second));
    }
  }
  for (const auto& [path, e] : actual) {
    if (!expected.contains(path))
      add("extra in " + actual_name + ": " + path + " (" + Describe(e) + ")");
  }
  return out;
}

Sandbox::Sandbox(const std::string& name, BackendKind backend) : backend_(backend) {
  base_ = fs::temp_directory_path() / ("filesync-rel-" + std::to_string(getpid()) + "-" + name);
  std::error_code ec;
  fs::remove_all(base_, ec);
  client_ = base_ / "data";
  cloud_ = base_ / "cloud";
  state_ = base_ / "state";
  fs::create_directories(client_);
  if (backend_ == BackendKind::kDropbox) StartEmulator();
  WriteConfig();
}

void Sandbox::StartEmulator() {
  if (!emulator_) {
    emulator_ = std::make_unique<test_support::EmulatorProcess>();
    fs::create_directories(base_ / "emulator");
    emulator_->set_data_dir((base_ / "emulator").string());
  }
  std::vector<std::string> args;
  if (!faults_.empty()) args = {"--faults", faults_};
  const auto started = emulator_->Start(args);
  if (!started) throw std::runtime_error(started.message());
}

void Sandbox::SetFaults(const std::string& spec) {
  if (backend_ != BackendKind::kDropbox || spec == faults_) return;
  past_faults_ += CurrentRunFaults();
  ++past_faults_.emulator_restarts;
  emulator_->Stop();
  faults_ = spec;
  StartEmulator();
}

FaultTally Sandbox::CurrentRunFaults() {
  FaultTally t;
  if (!emulator_ || !emulator_->running() || faults_.empty()) return t;
  const nlohmann::json counters = Counters();
  std::uint64_t requests = 0;
  if (counters.contains("routes")) {
    for (const auto& [route, n] : counters["routes"].items()) {
      if (!route.starts_with("oauth2/")) requests += n.get<std::uint64_t>();  // not faulted
    }
  }
  std::string error;
  const auto spec = emulator::ParseFaultSpec(faults_, &error);
  if (!spec) throw std::invalid_argument(error);
  // The emulator makes one Draw() per /2/ request in arrival order from a PRNG seeded the same
  // way (spec seed, else --seed's default 1): the first `requests` draws are what it injected.
  emulator::FaultInjector replay(*spec, 1);
  t.requests = requests;
  for (std::uint64_t i = 0; i < requests; ++i) {
    const emulator::FaultDecision d = replay.Draw();
    t.latency += d.latency_ms > 0 ? 1 : 0;
    t.rate_limited += d.status == 429 ? 1 : 0;
    t.server_500 += d.status == 500 ? 1 : 0;
    t.server_503 += d.status == 503 ? 1 : 0;
    t.dropped += d.drop_before ? 1 : 0;
    t.dropped_after += d.drop_after ? 1 : 0;
  }
  return t;
}

FaultTally Sandbox::FaultsInjected() {
  FaultTally t = past_faults_;
  t += CurrentRunFaults();
  return t;
}

nlohmann::json Sandbox::Counters() {
  if (!emulator_ || !emulator_->running()) return nlohmann::json::object();
  return emulator_->Counters();
}

Tree Sandbox::CloudTree() {
  if (backend_ == BackendKind::kLocal) return Snapshot(mirror(), false);
  std::vector<nlohmann::json> entries;
  std::string error;
  if (!ListDropbox(emulator_->url(), emulator_->token(), kMirrorPath, &entries, &error))
    throw std::runtime_error(error);
  Tree tree;
  const std::size_t prefix = std::string(kMirrorPath).size() + 1;
  for (const auto& e : entries) {
    const std::string display = e.value("path_display", "");
    if (display.size() < prefix) continue;  // the mirror folder itself
    const std::string rel = display.substr(prefix);
    if (e.value(".tag", "") == "folder") {
      tree[rel] = Entry{.dir = true};
    } else {
      tree[rel] = Entry{.size = e.value("size", std::uint64_t{0}),
                        .hash = e.value("content_hash", "<no content_hash>")};
    }
  }
  return tree;
}

Sandbox::~Sandbox() {
  emulator_.reset();  // stops the emulator (its data dir is inside base_)
  const char* keep = std::getenv("FILESYNC_KEEP_SANDBOX");
  if (keep_ || (keep != nullptr && std::string(keep) == "1")) return;
  std::error_code ec;
  // Make everything removable again (tests change permissions).
  for (auto it = fs::recursive_directory_iterator(
           base_, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec))
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::remove_all(base_, ec);
  if (ec) {
    // Paths past PATH_MAX: fall back to rm, which walks with openat.
    const std::string cmd = "rm -rf '" + base_.string() + "'";
    if (std::system(cmd.c_str()) != 0) return;
  }
}

void Sandbox::WriteConfig(const std::string& extra) {
  config_ = base_ / "filesync.toml";
  std::ofstream out(config_);
  out << "client_sync_dirs = [\"" << client_.string() << "\"]\n"
      << "cloud_root = \"/backup\"\n"
      << "state_dir = \"" << state_.string() << "\"\n"
      << "poll_interval = 1\n"
      << "workers = 2\n"
      << "log_level = \"info\"\n";
  if (backend_ == BackendKind::kLocal) {
    out << "local_cloud_dir = \"" << cloud_.string() << "\"\n";
  } else {
    // The config holds a token: keep it private (filesync warns about a readable one).
    fs::permissions(config_, fs::perms::owner_read | fs::perms::owner_write);
    out << "backend = \"dropbox\"\n"
        << "dbx_token = \"" << emulator_->token() << "\"\n"
        << "dbx_api_url = \"" << emulator_->url() << "\"\n"
        << "dbx_content_url = \"" << emulator_->url() << "\"\n"
        << "dbx_notify_url = \"" << emulator_->url() << "\"\n";
  }
  out << extra;
}

RunResult Sandbox::Run(const std::vector<std::string>& args, const std::vector<std::string>& prefix,
                       int timeout_s) {
  RunResult r;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return r;
  const auto argv = CommandLine(prefix.empty() ? prefix_ : prefix, config_, args);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    ExecChild(argv, fds[1]);
  }
  close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool timed_out = false;
  char buf[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{.fd = fds[0], .events = POLLIN};
    if (poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000))) <= 0) continue;
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (timed_out) r.out += "\nTIMEOUT after " + std::to_string(timeout_s) + " s";
  return r;
}

pid_t Sandbox::Spawn(const std::vector<std::string>& args, const std::vector<std::string>& prefix) {
  const auto argv = CommandLine(prefix.empty() ? prefix_ : prefix, config_, args);
  const int fd = open(log_file().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t pid = fork();
  if (pid == 0) ExecChild(argv, fd);
  if (fd >= 0) close(fd);
  return pid;
}

int Sandbox::KillAndReap(pid_t pid, int sig) {
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

std::vector<fs::path> Sandbox::StagedCopies() const {
  std::vector<fs::path> copies;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(staging(), ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().extension() == ".part") copies.push_back(it->path());
  }
  return copies;
}

bool Sandbox::WaitExit(pid_t pid, int timeout_ms, int* status) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

nlohmann::json Sandbox::PlanJson() {
  const RunResult r = Run({"plan", "--json"});
  const auto start = r.out.find("{\"");
  if (r.code != 0 || start == std::string::npos) return nlohmann::json();
  return nlohmann::json::parse(r.out.substr(start), nullptr, false);
}

nlohmann::json Sandbox::StatusJson() {
  const RunResult r = Run({"status", "--json"});
  const auto start = r.out.find('{');
  if (r.code != 0 || start == std::string::npos) return nlohmann::json();
  return nlohmann::json::parse(r.out.substr(start), nullptr, false);
}

std::vector<std::string> Sandbox::Invariants() {
  std::vector<std::string> problems;
  // 1. The cloud holds exactly the client's syncable entries, byte for byte.
  const Tree expected = Snapshot(client_, true);
  Tree actual;
  try {
    actual = CloudTree();
  } catch (const std::exception& e) {
    problems.push_back(std::string("cannot read the cloud: ") + e.what());
    return problems;
  }
  if (backend_ == BackendKind::kLocal) {
    for (auto& line : Diff(expected, actual)) problems.push_back(std::move(line));
  } else {
    // Case-insensitive and NFC-normalising: compare by cloud key, then check the display path
    // is the synced client path in NFC (case-only and NFC/NFD renames must reach the cloud).
    const auto want = FoldForDropbox(expected);
    std::map<std::string, std::pair<std::string, Entry>> have;
    for (const auto& [path, e] : actual) {
      auto [it, fresh] = have.emplace(core::CloudKey(path), std::pair{path, e});
      if (!fresh) problems.push_back("duplicate in cloud: " + path + " and " + it->second.first);
    }
    Tree want_tree, have_tree;
    for (const auto& [key, f] : want) want_tree[key] = f.entry;
    for (const auto& [key, h] : have) have_tree[key] = h.second;
    for (auto& line : Diff(want_tree, have_tree)) problems.push_back(std::move(line));
    for (const auto& [key, f] : want) {
      auto it = have.find(key);
      if (it != have.end() && it->second.first != unicode::ToNfc(f.path))
        problems.push_back("cloud path " + it->second.first + " should read " +
                           unicode::ToNfc(f.path));
    }
  }
  // 2. No "conflicted copy" names (duplicates on a case-insensitive backend: above).
  for (const auto& [path, e] : actual) {
    if (path.find("conflicted copy") != std::string::npos)
      problems.push_back("conflicted copy in cloud: " + path);
  }
  // 3. No temp or partial files. Local: the staging folder holds nothing but the cloud dir's
  //    marker (`cloud-id`; every instance removes its own staging folder when it ends) and
  //    nothing else sits beside the cloud root. Dropbox: nothing in the whole namespace outside
  //    the mirror (and its parent), and no case-rename temporary anywhere.
  std::error_code ec;
  if (backend_ == BackendKind::kLocal) {
    for (const auto& e : fs::directory_iterator(staging(), ec)) {
      if (e.path().filename() != "cloud-id")
        problems.push_back("staging leftover: " + e.path().string());
    }
    for (const auto& e : fs::directory_iterator(cloud_, ec)) {
      const auto name = e.path().filename().string();
      if (name != "backup" && name != ".filesync-staging")
        problems.push_back("unexpected entry in cloud dir: " + name);
    }
  } else {
    std::vector<nlohmann::json> all;
    std::string error;
    if (!ListDropbox(emulator_->url(), emulator_->token(), "", &all, &error)) {
      problems.push_back("cannot list the namespace: " + error);
    }
    const std::string mirror_lower = core::CloudKey(kMirrorPath);
    for (const auto& e : all) {
      const std::string lower = e.value("path_lower", "");
      const std::string display = e.value("path_display", "");
      if (lower != "/backup" && lower != mirror_lower && !lower.starts_with(mirror_lower + "/"))
        problems.push_back("unexpected entry in the namespace: " + display);
      if (display.find(".filesync-tmp-") != std::string::npos)
        problems.push_back("temporary entry left in the cloud: " + display);
    }
  }
  for (auto& p : StateStoreProblems(actual)) problems.push_back(std::move(p));
  // 5. A dry run finds nothing to do.
  const auto plan = PlanJson();
  if (!plan.is_object()) {
    problems.push_back("plan --json failed or did not print JSON");
  } else {
    for (const auto& root : plan["roots"]) {
      if (root.contains("actions") && !root["actions"].empty()) {
        problems.push_back("plan not empty: " + root["actions"].dump().substr(0, 600));
      }
      if (root.contains("stopped")) problems.push_back("plan stopped: " + root["stopped"].dump());
    }
    if (plan.contains("actions") && !plan["actions"].empty())
      problems.push_back("plan not empty: " + plan["actions"].dump().substr(0, 600));
  }
  // 6. No recorded errors.
  const auto status = StatusJson();
  if (!status.is_object()) {
    problems.push_back("status --json failed or did not print JSON");
  } else if (!status["errors"].empty()) {
    problems.push_back("status errors: " + status["errors"].dump().substr(0, 600));
  }
  return problems;
}

// 4. The state store agrees with both sides: its cloud view (remote table) is what the cloud
//    holds, its file records are the client's syncable entries with their current hashes, no
//    upload-session record is left over, and SQLite's integrity check passes.
std::vector<std::string> Sandbox::StateStoreProblems(const Tree& cloud) {
  std::vector<std::string> problems;
  const bool folded = backend_ == BackendKind::kDropbox;
  auto key = [&](const std::string& path) { return folded ? core::CloudKey(path) : path; };
  {
    std::string warning;
    auto store = store::StateStore::Open(state_, &warning);
    if (!store.ok()) return {"state store: cannot open: " + store.status().ToString()};
    if (!warning.empty()) problems.push_back("state store: " + warning);
    auto roots = (*store)->Roots();
    if (!roots.ok()) return {"state store: roots: " + roots.status().ToString()};
    const store::RootInfo* root = nullptr;
    for (const auto& r : *roots) {
      if (fs::path(r.local_dir) == client_) root = &r;
    }
    if (root == nullptr) return {"state store: no root for " + client_.string()};
    Tree remote;
    Status loaded = (*store)->LoadRemote(root->id, [&](store::RemoteRecord&& r) {
      Entry e{.dir = r.kind == core::EntryKind::kFolder};
      if (!e.dir) {
        e.size = r.size;
        e.hash = r.has_digest ? hash::ToHex(r.digest) : "<none>";
      }
      if (!remote.emplace(key(r.path), e).second)
        problems.push_back("state store: two remote records for one cloud entry: " + r.path);
    });
    if (!loaded.ok()) problems.push_back("state store: remote: " + loaded.ToString());
    Tree cloud_keyed;
    for (const auto& [path, e] : cloud) cloud_keyed[key(path)] = e;
    for (auto& line : Diff(cloud_keyed, remote, 20, "cloud", "state store's remote view"))
      problems.push_back(std::move(line));
    Tree files;
    loaded = (*store)->LoadFiles(root->id, [&](store::FileRecord&& f) {
      Entry e{.dir = f.kind == core::EntryKind::kFolder};
      if (!e.dir) {
        e.size = f.identity.size;
        e.hash = f.has_digest ? hash::ToHex(f.digest) : "<none>";
      }
      files[f.path] = e;
    });
    if (!loaded.ok()) problems.push_back("state store: files: " + loaded.ToString());
    // File records are the hash cache of what is synced: on Dropbox, a client path that loses a
    // case/NFC collision is not synced and may or may not have one.
    const Tree client = Snapshot(client_, true);
    Tree synced = client;
    if (folded) {
      synced.clear();
      for (const auto& [k, f] : FoldForDropbox(client)) synced[f.path] = f.entry;
      std::erase_if(files, [&](const auto& kv) {
        return client.contains(kv.first) && !synced.contains(kv.first);
      });
    }
    for (auto& line : Diff(synced, files, 20, "client", "state store's file records"))
      problems.push_back(std::move(line));
  }
  sqlite3* db = nullptr;
  const std::string path = (state_ / "state.db").string();
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    problems.push_back("state store: cannot open " + path + " read-only");
  } else {
    auto each = [&](const char* sql, const std::function<void(const std::string&)>& fn) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
        problems.push_back(std::string("state store: ") + sqlite3_errmsg(db));
        return;
      }
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(stmt, 0);
        fn(text == nullptr ? "" : reinterpret_cast<const char*>(text));
      }
      sqlite3_finalize(stmt);
    };
    each("PRAGMA integrity_check", [&](const std::string& row) {
      if (row != "ok") problems.push_back("state store integrity_check: " + row);
    });
    each("SELECT key FROM kv WHERE key LIKE 'dropbox_session:%'", [&](const std::string& row) {
      problems.push_back("state store: upload session record left after quiescence: " + row);
    });
  }
  sqlite3_close(db);
  return problems;
}

}  // namespace filesync::reliability
