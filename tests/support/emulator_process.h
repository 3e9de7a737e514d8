// EmulatorProcess: runs the real `filesync-dropbox-emulator` binary for integration tests.
//
// Start() launches the binary with `--listen 127.0.0.1:<port> --data <dir>` (port 0 the first
// time, so the kernel picks a free one), plus `--token <token()>` unless the extra arguments
// carry their own --token, plus `--strict-arg-header` unless set_strict_arg_header(false) (so a
// client under test that sends raw non-ASCII in Dropbox-API-Arg fails, though Dropbox would
// accept it), and waits for its first stdout line (`listening on http://...`).
// The data directory is a fresh temporary directory owned by this object (removed by the
// destructor) unless set_data_dir() chose one. Restart() stops the process and starts it again
// on the same port and data directory with the same arguments, so a client configured with
// url() keeps working. Stop() sends SIGTERM and waits; Kill() sends SIGKILL (a crash).
//
// The binary path is the compile definition FILESYNC_EMULATOR_PATH; Start() fails with a clear
// message if it is missing. Not thread-safe: drive one object from one test thread.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace filesync::test_support {

class EmulatorProcess {
 public:
  EmulatorProcess();
  ~EmulatorProcess();
  EmulatorProcess(const EmulatorProcess&) = delete;
  EmulatorProcess& operator=(const EmulatorProcess&) = delete;

  // Launches the emulator and waits (up to 15 s) for the "listening on" line.
  ::testing::AssertionResult Start(const std::vector<std::string>& extra_args = {});
  // SIGTERM, then wait for exit (SIGKILL after 10 s). No-op when not running.
  void Stop();
  // SIGKILL and reap: simulates a crash.
  void Kill();
  // Stop() (if running), then Start() again with the previous arguments, port and data dir.
  ::testing::AssertionResult Restart();

  [[nodiscard]] bool running() const { return pid_ > 0; }
  // Process id while running (-1 otherwise), e.g. to read /proc/<pid>/status.
  [[nodiscard]] pid_t pid() const { return pid_; }
  // "http://127.0.0.1:PORT" (or https with TLS), as printed by the emulator.
  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::string& data_dir() const { return data_dir_; }
  // The static bearer token passed with --token (default "test-token").
  [[nodiscard]] const std::string& token() const { return token_; }
  void set_token(std::string token) { token_ = std::move(token); }
  // Whether Start() passes --strict-arg-header (default true); call before Start().
  void set_strict_arg_header(bool strict) { strict_arg_header_ = strict; }
  // Use `dir` (which must exist) instead of a temporary directory; call before Start().
  void set_data_dir(std::string dir);

  // GET /admin/counters as JSON ({"routes":{...},"total":N,"bytes_received":N}); records a
  // test failure and returns an empty object if the emulator does not answer.
  nlohmann::json Counters();
  // POST /admin/counters/reset.
  void ResetCounters();

  // Path of the emulator binary (from FILESYNC_EMULATOR_PATH).
  static std::string BinaryPath();

 private:
  void Reap(int timeout_ms);

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int port_ = 0;
  std::string url_;
  std::string data_dir_;
  bool own_data_dir_ = false;
  std::string token_ = "test-token";
  bool strict_arg_header_ = true;
  std::vector<std::string> extra_args_;
};

}  // namespace filesync::test_support
