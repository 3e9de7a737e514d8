// Children are started with fork + execve (never through a shell, so argv is exactly what the
// test passed); their output goes to files, which avoids pipe deadlocks on large logs.
#include "security_support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace filesync::security_test {
namespace {

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Child side of Run/Spawn: never returns.
[[noreturn]] void Exec(const std::vector<std::string>& args, std::vector<std::string> env,
                       const ChildOptions& options, int stdin_fd, const fs::path& out_file,
                       const fs::path& err_file) {
  umask(static_cast<mode_t>(options.umask));
  if (stdin_fd >= 0) dup2(stdin_fd, 0);
  const int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  const int err = out_file == err_file
                      ? out
                      : open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  if (out < 0 || err < 0) _exit(126);
  dup2(out, 1);
  dup2(err, 2);
  std::vector<std::string> argv = {FILESYNC_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  auto argv_ptrs = Pointers(argv);
  auto env_ptrs = Pointers(env);
  execve(FILESYNC_BINARY, argv_ptrs.data(), env_ptrs.data());
  _exit(127);
}

int Reap(pid_t pid, int timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string Canary(const std::string& prefix) {
  std::random_device device;
  std::mt19937_64 rng((static_cast<std::uint64_t>(device()) << 32) ^ device() ^
                      static_cast<std::uint64_t>(getpid()));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = prefix;
  for (int i = 0; i < 32; ++i) out.push_back(kHex[rng() % 16]);
  return out;
}

std::vector<std::string> Fragments(const std::string& secret) {
  std::vector<std::string> out = {secret};
  constexpr std::size_t kSlice = 12, kStep = 6, kTail = 32;
  if (secret.size() < kTail) return out;
  const std::string tail = secret.substr(secret.size() - kTail);
  for (std::size_t at = 0; at + kSlice <= tail.size(); at += kStep)
    out.push_back(tail.substr(at, kSlice));
  return out;
}

bool Leaks(const std::string& haystack, const std::string& secret) {
  for (const auto& fragment : Fragments(secret))
    if (haystack.find(fragment) != std::string::npos) return true;
  return false;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& path, const std::string& content, fs::perms mode) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  if (mode != fs::perms::none) fs::permissions(path, mode);
}

std::vector<fs::path> FilesLeaking(const fs::path& root, const std::string& secret) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(root, ec))) return out;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    if (Leaks(ReadFile(it->path()), secret)) out.push_back(it->path());
  }
  return out;
}

std::map<std::string, std::string> Tree(const fs::path& root) {
  std::map<std::string, std::string> tree;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(root, ec))) return tree;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const auto rel = fs::relative(it->path(), root).string();
    if (it->is_symlink()) continue;
    if (it->is_directory()) {
      tree[rel] = "<dir>";
    } else if (it->is_regular_file()) {
      tree[rel] = ReadFile(it->path());
    }
  }
  return tree;
}

bool WaitFor(const std::function<bool()>& pred, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

int ModeOf(const fs::path& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

std::map<std::string, std::string> DropboxNamespace(const std::string& url,
                                                    const std::string& token) {
  std::map<std::string, std::string> out;
  httplib::Client client(url);
  const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  auto r =
      client.Post("/2/files/list_folder", auth,
                  nlohmann::json{{"path", ""}, {"recursive", true}}.dump(), "application/json");
  std::vector<std::string> files;
  while (r && r->status == 200) {
    const auto page = nlohmann::json::parse(r->body);
    for (const auto& e : page["entries"]) {
      const std::string path = e.value("path_display", "");
      if (e.value(".tag", "") == "folder") {
        out[path] = "<dir>";
      } else {
        files.push_back(path);
      }
    }
    if (!page.value("has_more", false)) break;
    r = client.Post("/2/files/list_folder/continue", auth,
                    nlohmann::json{{"cursor", page["cursor"]}}.dump(), "application/json");
  }
  if (!r || r->status != 200) {
    ADD_FAILURE() << "list_folder failed: " << (r ? r->body : httplib::to_string(r.error()));
    return out;
  }
  for (const auto& path : files) {
    auto headers = auth;
    headers.emplace("Dropbox-API-Arg", nlohmann::json{{"path", path}}.dump(-1, ' ', true));
    auto d = client.Post("/2/files/download", headers, "", "application/octet-stream");
    out[path] = d && d->status == 200 ? d->body : "<download failed>";
  }
  return out;
}

Sandbox::Sandbox(std::string name) {
  for (char& ch : name)
    if (ch == '/') ch = '-';
  base_ =
      fs::temp_directory_path() / ("filesync-security-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(base_);
  fs::create_directories(tmp());
  fs::create_directories(home());
  fs::create_directories(base_ / "captures");
}

Sandbox::~Sandbox() {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(base_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_symlink(ec) && it->is_directory(ec))
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::remove_all(base_, ec);
}

std::vector<std::string> Sandbox::Environment(const ChildOptions& options) const {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string::npos || entry.starts_with("FILESYNC_")) continue;
    vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  vars["HOME"] = home().string();
  vars["TMPDIR"] = tmp().string();
  vars.erase("XDG_STATE_HOME");
  for (const auto& [k, v] : options.env) vars[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

RunResult Sandbox::Run(const std::vector<std::string>& args, const ChildOptions& options,
                       int timeout_s) const {
  static int counter = 0;
  const std::string id = std::to_string(++counter);
  const fs::path out_file = base_ / "captures" / (id + ".out");
  const fs::path err_file = base_ / "captures" / (id + ".err");
  int in[2] = {-1, -1};
  RunResult result;
  if (pipe2(in, O_CLOEXEC) != 0) return result;
  auto env = Environment(options);
  const pid_t pid = fork();
  if (pid == 0) {
    close(in[1]);
    Exec(args, std::move(env), options, in[0], out_file, err_file);
  }
  close(in[0]);
  if (!options.stdin_text.empty()) {
    const ssize_t n = write(in[1], options.stdin_text.data(), options.stdin_text.size());
    (void)n;
  }
  close(in[1]);
  if (pid < 0) return result;
  result.code = Reap(pid, timeout_s);
  result.out = ReadFile(out_file);
  result.err = ReadFile(err_file);
  return result;
}

pid_t Sandbox::Spawn(const std::vector<std::string>& args, const fs::path& out_file,
                     const ChildOptions& options, int* stdin_writer) const {
  auto env = Environment(options);
  int in[2] = {-1, -1};
  if (stdin_writer != nullptr) {
    if (pipe2(in, O_CLOEXEC) != 0) return -1;
    *stdin_writer = in[1];
  } else {
    in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  const pid_t pid = fork();
  if (pid == 0) Exec(args, std::move(env), options, in[0], out_file, out_file);
  if (in[0] >= 0) close(in[0]);
  return pid;
}

RunResult Sandbox::Authorize(const std::string& emulator_url,
                             const std::vector<std::string>& args) const {
  static int n = 0;
  const fs::path out_file = base_ / "captures" / ("auth-" + std::to_string(++n) + ".out");
  int stdin_fd = -1;
  const pid_t pid = Spawn(args, out_file, {.umask = 0}, &stdin_fd);
  RunResult result;
  if (pid <= 0) return result;
  std::string out;
  WaitFor(
      [&] {
        out = ReadFile(out_file);
        return out.find("code_challenge=") != std::string::npos &&
               out.find("Paste") != std::string::npos;
      },
      15000);
  const auto at = out.find("code_challenge=");
  if (at != std::string::npos) {
    const auto start = at + std::string("code_challenge=").size();
    const std::string challenge = out.substr(start, out.find_first_of("&\n ", start) - start);
    httplib::Client client(emulator_url);
    client.enable_server_certificate_verification(false);  // the test's own browser
    auto page = client.Get(
        "/oauth2/authorize?client_id=test-app-key&response_type=code&token_access_type=offline"
        "&code_challenge_method=S256&code_challenge=" +
        challenge);
    if (page && page->status == 200) {
      std::string code = page->body;
      code.erase(code.find_last_not_of(" \r\n") + 1);
      code += "\n";
      const ssize_t written = write(stdin_fd, code.data(), code.size());
      (void)written;
    }
  }
  close(stdin_fd);
  result.code = Wait(pid, 30);
  result.out = ReadFile(out_file);
  return result;
}

int Sandbox::Wait(pid_t pid, int timeout_s) { return pid > 0 ? Reap(pid, timeout_s) : -1; }

int Sandbox::Stop(pid_t pid, int timeout_s) {
  if (pid <= 0) return -1;
  kill(pid, SIGTERM);
  return Reap(pid, timeout_s);
}

}  // namespace filesync::security_test
