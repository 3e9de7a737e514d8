// How: processes are fork/exec'd directly (no shell), with output to a pipe (Run) or to a log
// file (Spawn); snapshots walk with openat/fdopendir so they also reach paths past PATH_MAX.
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "hash/content_hash.h"
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

std::string Describe(const Entry& e) {
  return e.dir ? "folder"
               : "file of " + std::to_string(e.size) + " bytes, hash " + e.hash.substr(0, 12);
}

}  // namespace

const char* BackendName(BackendKind kind) {
  return kind == BackendKind::kLocal ? "local" : "dropbox";
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

std::vector<std::string> Diff(const Tree& expected, const Tree& actual, std::size_t limit) {
  std::vector<std::string> out;
  auto add = [&](std::string line) {
    if (out.size() < limit) out.push_back(std::move(line));
  };
  for (const auto& [path, e] : expected) {
    auto it = actual.find(path);
    if (it == actual.end()) {
      add("missing in cloud: " + path + " (" + Describe(e) + ")");
    } else if (!(it->second == e)) {
      add("differs: " + path + ": client " + Describe(e) + ", cloud " + Describe(it->second));
    }
  }
  for (const auto& [path, e] : actual) {
    if (!expected.contains(path)) add("extra in cloud: " + path + " (" + Describe(e) + ")");
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
  WriteConfig();
}

Sandbox::~Sandbox() {
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
  if (backend_ == BackendKind::kLocal) out << "local_cloud_dir = \"" << cloud_.string() << "\"\n";
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
  const Tree actual = Snapshot(mirror(), false);
  for (auto& line : Diff(expected, actual)) problems.push_back(std::move(line));
  // 2. No duplicates: no "conflicted copy" names, no two entries the cloud would consider the
  //    same path (only possible on a case-insensitive backend).
  std::map<std::string, std::string> keys;
  for (const auto& [path, e] : actual) {
    if (path.find("conflicted copy") != std::string::npos)
      problems.push_back("conflicted copy in cloud: " + path);
    if (backend_ != BackendKind::kLocal) {
      auto [it, fresh] = keys.emplace(unicode::CloudKey(path), path);
      if (!fresh) problems.push_back("duplicate in cloud: " + path + " and " + it->second);
    }
  }
  // 3. No temp or partial files: the staging folder is empty and nothing else sits beside the
  //    cloud root.
  std::error_code ec;
  if (fs::exists(staging(), ec) && !fs::is_empty(staging(), ec)) {
    for (const auto& e : fs::directory_iterator(staging(), ec))
      problems.push_back("staging leftover: " + e.path().string());
  }
  for (const auto& e : fs::directory_iterator(cloud_, ec)) {
    const auto name = e.path().filename().string();
    if (name != "backup" && name != ".filesync-staging")
      problems.push_back("unexpected entry in cloud dir: " + name);
  }
  // 4. A dry run finds nothing to do.
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
  // 5. No recorded errors.
  const auto status = StatusJson();
  if (!status.is_object()) {
    problems.push_back("status --json failed or did not print JSON");
  } else if (!status["errors"].empty()) {
    problems.push_back("status errors: " + status["errors"].dump().substr(0, 600));
  }
  return problems;
}

}  // namespace filesync::reliability
