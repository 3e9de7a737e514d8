// ConnectProxy: a loopback HTTP CONNECT proxy that tunnels a fixed set of host names to one
// local port. A client that cannot be told another API host (rclone's Dropbox backend builds
// https://api.dropboxapi.com/... from constants) but honours HTTPS_PROXY is pointed at it, and
// every tunnel it asks for ends at the emulator on 127.0.0.1, which serves a certificate for
// those names that only the client under test trusts. Nothing leaves the machine: a CONNECT to
// any other host:port is refused with 403, and the proxy itself listens on 127.0.0.1 only.
//
// Hand-written (about 150 lines) because no Debian package offers a CONNECT proxy that maps
// host names to a loopback port without touching system name resolution.
//
// Thread safety: Start/Stop from one thread; accessors are thread-safe. One thread accepts,
// one thread per tunnel relays bytes; Stop() (and the destructor) ends them all.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace filesync::conformance_test {

class ConnectProxy {
 public:
  // `allowed` holds "host:port" targets (e.g. "api.dropboxapi.com:443").
  ConnectProxy(int target_port, std::set<std::string> allowed);
  ~ConnectProxy();
  ConnectProxy(const ConnectProxy&) = delete;
  ConnectProxy& operator=(const ConnectProxy&) = delete;

  // Listens on 127.0.0.1 (an ephemeral port); false if that fails.
  bool Start();
  void Stop();
  [[nodiscard]] int port() const { return port_; }
  // Tunnels opened so far.
  [[nodiscard]] int tunnels() const { return tunnels_.load(); }
  // The CONNECT targets (or first lines) that were refused.
  [[nodiscard]] std::vector<std::string> refused() const;

 private:
  void AcceptLoop();
  void Serve(int client);
  void Relay(int a, int b);
  void Track(int fd, bool add);

  const int target_port_;
  const std::set<std::string> allowed_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd that ends the accept loop
  int port_ = 0;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> tunnels_{0};

  mutable std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;          // connection threads still running
  std::set<int> open_fds_;  // sockets to shut down on Stop()
  std::vector<std::string> refused_;
};

}  // namespace filesync::conformance_test
