// Helpers for the security tests: a sandbox of real temporary directories, the real `filesync`
// binary run as a child process (its own umask, environment and captured stdout/stderr), and a
// byte search that says which files hold a secret.
//
// Children get a clean environment: the parent's variables minus every FILESYNC_*, plus HOME and
// TMPDIR pointing into the sandbox (so any temporary file the binary writes is searched too),
// plus the test's own additions. Not thread-safe: one test thread drives one Sandbox.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace filesync::security_test {

namespace fs = std::filesystem;

struct RunResult {
  int code = -1;  // exit code; -1 if killed by a signal or not started
  std::string out;
  std::string err;
  [[nodiscard]] std::string all() const { return out + err; }
};

struct ChildOptions {
  std::map<std::string, std::string> env;  // added to the clean environment
  int umask = 022;
  std::string stdin_text;  // written to the child's stdin, then closed
};

// A random token-like string, distinctive enough to be searched for: "<prefix><32 hex digits>".
std::string Canary(const std::string& prefix);

// The fragments a leak check looks for: the whole secret and, for long secrets, every 12-byte
// slice of it at steps of 6, so a truncated or partly masked secret is still found.
std::vector<std::string> Fragments(const std::string& secret);

// True if `haystack` holds any fragment of `secret`.
bool Leaks(const std::string& haystack, const std::string& secret);

std::string ReadFile(const fs::path& path);
void WriteFile(const fs::path& path, const std::string& content, fs::perms mode = fs::perms::none);

// Every regular file below `root` (symlinks not followed) whose bytes leak `secret`.
std::vector<fs::path> FilesLeaking(const fs::path& root, const std::string& secret);

// relative path -> content ("<dir>" for folders) of a local tree; symlinks are not listed.
std::map<std::string, std::string> Tree(const fs::path& root);

// Polls `pred` every 100 ms until it holds or `timeout_ms` pass; returns its last value.
bool WaitFor(const std::function<bool()>& pred, int timeout_ms);

// Mode bits (07777) of `path` (not following a symlink); -1 if it does not exist.
int ModeOf(const fs::path& path);

// Everything the Dropbox emulator at `url` holds: path_display -> content ("<dir>" for folders),
// listed recursively from the namespace root with `token`. Records a test failure if the
// emulator does not answer.
std::map<std::string, std::string> DropboxNamespace(const std::string& url,
                                                    const std::string& token);

class Sandbox {
 public:
  // Creates /tmp/filesync-security-<pid>-<name> ('/' in `name` becomes '-'), removed by the
  // destructor.
  explicit Sandbox(std::string name);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  [[nodiscard]] const fs::path& base() const { return base_; }
  [[nodiscard]] fs::path tmp() const { return base_ / "tmp"; }
  [[nodiscard]] fs::path home() const { return base_ / "home"; }

  // Runs `filesync <args>` to completion (killed after `timeout_s`).
  RunResult Run(const std::vector<std::string>& args, const ChildOptions& options = {},
                int timeout_s = 120) const;

  // Starts `filesync <args>` in the background; stdout and stderr go to `out_file`. With
  // `stdin_writer`, the child's stdin is a pipe whose write end is stored there (close it when
  // done); otherwise stdin is /dev/null.
  pid_t Spawn(const std::vector<std::string>& args, const fs::path& out_file,
              const ChildOptions& options = {}, int* stdin_writer = nullptr) const;

  // Runs `filesync <args>` (an `auth` command) under umask 0000 through the PKCE code flow: reads
  // the printed code_challenge, asks the emulator at `emulator_url` (app key "test-app-key") for
  // the one-time code as the user's browser would, and pastes it on stdin.
  RunResult Authorize(const std::string& emulator_url, const std::vector<std::string>& args) const;

  // Waits for the child to exit (SIGKILL after `timeout_s`); returns the exit code or -1.
  static int Wait(pid_t pid, int timeout_s);
  // SIGTERM, then waits (SIGKILL after `timeout_s`); returns the exit code or -1.
  static int Stop(pid_t pid, int timeout_s = 30);

 private:
  std::vector<std::string> Environment(const ChildOptions& options) const;

  fs::path base_;
};

}  // namespace filesync::security_test
