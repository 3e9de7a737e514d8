// Each accepted connection gets a detached thread that reads the CONNECT request head, opens a
// socket to 127.0.0.1:<target port>, answers 200 and then copies bytes both ways with poll()
// until either side closes. Stop() wakes the acceptor through an eventfd, shuts down every open
// socket so the relays return, and waits until no connection thread is left.
#include "connect_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace filesync::conformance_test {
namespace {

bool WriteAll(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool WriteAll(int fd, const std::string& s) { return WriteAll(fd, s.data(), s.size()); }

// Reads up to the end of the request head (an empty line), at most 8 KiB. Bytes after the head
// (a client that starts TLS before the 200) are returned in `rest`.
bool ReadHead(int fd, std::string* head, std::string* rest) {
  std::string buf;
  char chunk[1024];
  while (buf.size() < 8192) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<std::size_t>(n));
    const auto end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      *head = buf.substr(0, end);
      *rest = buf.substr(end + 4);
      return true;
    }
  }
  return false;
}

int ConnectLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

ConnectProxy::ConnectProxy(int target_port, std::set<std::string> allowed)
    : target_port_(target_port), allowed_(std::move(allowed)) {}

ConnectProxy::~ConnectProxy() { Stop(); }

bool ConnectProxy::Start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (listen_fd_ < 0 || wake_fd_ < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return false;
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void ConnectProxy::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::unique_lock lock(mu_);
  for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  idle_.wait(lock, [this] { return active_ == 0; });
  lock.unlock();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

std::vector<std::string> ConnectProxy::refused() const {
  std::lock_guard lock(mu_);
  return refused_;
}

void ConnectProxy::Track(int fd, bool add) {
  std::lock_guard lock(mu_);
  if (add) {
    open_fds_.insert(fd);
    if (stopping_) ::shutdown(fd, SHUT_RDWR);
  } else {
    open_fds_.erase(fd);
  }
}

void ConnectProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if ((fds[1].revents & POLLIN) != 0) break;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    {
      std::lock_guard lock(mu_);
      ++active_;
    }
    std::thread([this, client] {
      Serve(client);
      std::lock_guard lock(mu_);
      if (--active_ == 0) idle_.notify_all();
    }).detach();
  }
}

void ConnectProxy::Serve(int client) {
  Track(client, true);
  std::string head;
  std::string rest;
  int upstream = -1;
  if (ReadHead(client, &head, &rest)) {
    // "CONNECT host:port HTTP/1.1"
    const std::string line = head.substr(0, head.find("\r\n"));
    const auto sp1 = line.find(' ');
    const auto sp2 = line.find(' ', sp1 + 1);
    const std::string target = sp1 == std::string::npos || sp2 == std::string::npos
                                   ? ""
                                   : line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (line.rfind("CONNECT ", 0) != 0 || allowed_.count(target) == 0) {
      {
        std::lock_guard lock(mu_);
        refused_.push_back(line);
      }
      WriteAll(client, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    } else if ((upstream = ConnectLoopback(target_port_)) < 0) {
      WriteAll(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    } else {
      Track(upstream, true);
      ++tunnels_;
      if (WriteAll(client, "HTTP/1.1 200 Connection established\r\n\r\n") &&
          WriteAll(upstream, rest)) {
        Relay(client, upstream);
      }
      Track(upstream, false);
      ::close(upstream);
    }
  }
  Track(client, false);
  ::close(client);
}

void ConnectProxy::Relay(int a, int b) {
  char buf[64 * 1024];
  for (;;) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) return;
    for (int i = 0; i < 2; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const int from = fds[i].fd;
      const int to = from == a ? b : a;
      const ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0 || !WriteAll(to, buf, static_cast<std::size_t>(n))) return;
    }
  }
}

}  // namespace filesync::conformance_test
