// Implementation notes: fork + execv with the child's stdout on a pipe; the parent polls the
// pipe for the first line. The child's stderr is inherited so emulator logs show up in the
// test output. The pipe stays open until the process is reaped (the emulator writes nothing
// else to stdout, so it cannot fill).
#include "emulator_process.h"

#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#ifndef FILESYNC_EMULATOR_PATH
#define FILESYNC_EMULATOR_PATH ""
#endif

namespace filesync::test_support {
namespace {

constexpr int kStartTimeoutMs = 15000;

bool HasFlag(const std::vector<std::string>& args, const std::string& flag) {
  for (const auto& a : args) {
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

}  // namespace

EmulatorProcess::EmulatorProcess() = default;

EmulatorProcess::~EmulatorProcess() {
  Stop();
  if (own_data_dir_ && !data_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

std::string EmulatorProcess::BinaryPath() { return FILESYNC_EMULATOR_PATH; }

void EmulatorProcess::set_data_dir(std::string dir) {
  if (own_data_dir_ && !data_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
  data_dir_ = std::move(dir);
  own_data_dir_ = false;
}

::testing::AssertionResult EmulatorProcess::Start(const std::vector<std::string>& extra_args) {
  if (running()) return ::testing::AssertionFailure() << "emulator already running";
  const std::string binary = BinaryPath();
  if (binary.empty() || ::access(binary.c_str(), X_OK) != 0) {
    return ::testing::AssertionFailure()
           << "emulator binary not found or not executable: '" << binary
           << "' (build the filesync-dropbox-emulator target; the path comes from the "
              "FILESYNC_EMULATOR_PATH compile definition)";
  }
  if (data_dir_.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fs-emu-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return ::testing::AssertionFailure() << "mkdtemp failed: " << std::strerror(errno);
    }
    data_dir_ = tmpl;
    own_data_dir_ = true;
  }
  extra_args_ = extra_args;

  std::vector<std::string> args = {binary, "--listen", "127.0.0.1:" + std::to_string(port_),
                                   "--data", data_dir_};
  if (!HasFlag(extra_args, "--token")) {
    args.push_back("--token");
    args.push_back(token_);
  }
  if (strict_arg_header_) args.push_back("--strict-arg-header");
  args.insert(args.end(), extra_args.begin(), extra_args.end());

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return ::testing::AssertionFailure() << "pipe failed: " << std::strerror(errno);
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return ::testing::AssertionFailure() << "fork failed: " << std::strerror(errno);
  }
  if (pid == 0) {
    // A test process that dies (a sanitizer halt, a crash) must not leave the emulator holding
    // ctest's output pipe open until the test's timeout.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  pid_ = pid;
  stdout_fd_ = fds[0];

  // Read the first line, with a deadline.
  std::string line;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{stdout_fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<std::size_t>(n));
  }
  const std::string prefix = "listening on ";
  const auto nl = line.find('\n');
  if (nl == std::string::npos || line.rfind(prefix, 0) != 0) {
    Kill();
    return ::testing::AssertionFailure() << "emulator did not print 'listening on ...' (got: '"
                                         << line << "'); args:" << ::testing::PrintToString(args);
  }
  url_ = line.substr(prefix.size(), nl - prefix.size());
  const auto colon = url_.rfind(':');
  port_ = std::atoi(url_.c_str() + colon + 1);
  return ::testing::AssertionSuccess();
}

void EmulatorProcess::Reap(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || r < 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
}

void EmulatorProcess::Stop() {
  if (!running()) return;
  ::kill(pid_, SIGTERM);
  Reap(10000);
}

void EmulatorProcess::Kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  Reap(10000);
}

::testing::AssertionResult EmulatorProcess::Restart() {
  Stop();
  return Start(extra_args_);
}

nlohmann::json EmulatorProcess::Counters() {
  httplib::Client cli("127.0.0.1", port_);
  auto res = cli.Get("/admin/counters");
  if (!res || res->status != 200) {
    ADD_FAILURE() << "GET /admin/counters failed"
                  << (res ? " with HTTP " + std::to_string(res->status) : std::string());
    return nlohmann::json::object();
  }
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded()) {
    ADD_FAILURE() << "GET /admin/counters returned non-JSON: " << res->body;
    return nlohmann::json::object();
  }
  return j;
}

void EmulatorProcess::ResetCounters() {
  httplib::Client cli("127.0.0.1", port_);
  auto res = cli.Post("/admin/counters/reset");
  if (!res || res->status != 200) ADD_FAILURE() << "POST /admin/counters/reset failed";
}

}  // namespace filesync::test_support
