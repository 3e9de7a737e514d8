// How: httplib::Server parses requests and writes responses; this file replaces the parts of it
// that would let clients hold its threads.
//  - Endpoint overrides process_and_close_socket (what a worker runs per connection) with a loop
//    over DeadlineStream, a Stream that polls in 50 ms slices against a per-request deadline
//    (httplib's own times out only between bytes, so a byte a second would hold a worker for
//    hours) and gives up at once when the server stops. A kept-alive connection waits for its
//    next request only while no other connection is queued.
//  - ConnectionPool is the TaskQueue: `threads` workers and a bounded count of connections.
//    When full, the listener thread runs the job itself with t_refusing set: the connection
//    gets a 503 and is handed to the Refuser, which lets the client read it before closing (a
//    close with the request unread would reset the connection and lose the 503).
//  - Every request goes through the pre-routing handler (Route), so httplib's file serving and
//    body readers never run.
// The listener and workers raise their nice value by `options.nice` (setpriority on the thread).
#include "ops/status_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <thread>

#include "core/thread_annotations.h"
#include "ops/status_page.h"

namespace filesync::ops {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSlice = std::chrono::milliseconds(50);
constexpr std::size_t kMaxRequestsPerConnection = 100;
constexpr std::size_t kMaxLingering = 64;
constexpr auto kLinger = std::chrono::seconds(1);
constexpr int kBacklog = 1024;
constexpr std::string_view kRedacted = "<redacted>";

// Set while the listener thread runs a job the pool refused.
thread_local bool t_refusing = false;
// Set by Route for a request after which the connection must close (a 405: its body is unread).
thread_local bool t_close_after = false;

void LowerPriority(int nice) {
  if (nice <= 0) return;
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  errno = 0;
  const int current = ::getpriority(PRIO_PROCESS, tid);
  if (errno == 0) ::setpriority(PRIO_PROCESS, tid, std::min(19, current + nice));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Sha256(std::string_view s) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

// Equal digests <=> equal strings; comparing digests with CRYPTO_memcmp takes the same time
// whatever the guess, its length included.
bool SameSecret(std::string_view given, const std::string& expected_digest) {
  const std::string digest = Sha256(given);
  return CRYPTO_memcmp(digest.data(), expected_digest.data(), digest.size()) == 0;
}

std::string Base64Decode(std::string_view in) {
  std::string out(3 * (in.size() / 4) + 3, '\0');
  if (in.size() % 4 != 0) return "";
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return "";
  std::size_t size = static_cast<std::size_t>(n);
  for (std::size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) --size;  // padding
  out.resize(size);
  return out;
}

std::string NumericAddress(const sockaddr_storage& addr, socklen_t len, int& port) {
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof host, serv,
                    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    port = 0;
    return "";
  }
  port = std::atoi(serv);
  return host;
}

// A socket Stream whose reads and writes give up at a deadline or when the server stops.
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(int fd, const std::atomic<bool>& stopping, std::chrono::milliseconds write_timeout)
      : fd_(fd), stopping_(stopping), write_timeout_(write_timeout) {}

  void StartRequest(std::chrono::milliseconds timeout) {
    read_deadline_ = Clock::now() + timeout;
    received_ = pos_ < end_;
    written_ = 0;
    timed_out_ = false;
  }
  // Waits for the next request's first byte; false if none comes by `deadline`, `give_up()`
  // turns true, or the server stops.
  bool WaitForRequest(Clock::time_point deadline, const std::function<bool()>& give_up) {
    while (pos_ == end_) {
      if (give_up()) return false;
      const int ready = Poll(POLLIN, std::min(deadline, Clock::now() + kSlice));
      if (ready < 0) return false;
      if (ready > 0) return true;
      if (Clock::now() >= deadline) return false;
    }
    return true;
  }
  [[nodiscard]] bool timed_out() const { return timed_out_; }
  [[nodiscard]] bool received() const { return received_; }
  [[nodiscard]] std::size_t written() const { return written_; }

  bool is_readable() const override { return pos_ < end_ || Wait(POLLIN, read_deadline_); }
  bool is_writable() const override { return Wait(POLLOUT, Clock::now() + write_timeout_); }

  ssize_t read(char* ptr, size_t size) override {
    while (pos_ == end_) {
      if (!Wait(POLLIN, read_deadline_)) return -1;
      const ssize_t n = ::recv(fd_, buffer_, sizeof buffer_, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) return n;
      pos_ = 0;
      end_ = static_cast<std::size_t>(n);
      received_ = true;
    }
    const std::size_t n = std::min(size, end_ - pos_);
    std::memcpy(ptr, buffer_ + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    const auto deadline = Clock::now() + write_timeout_;
    std::size_t sent = 0;
    while (sent < size) {
      if (!Wait(POLLOUT, deadline)) return -1;
      const ssize_t n = ::send(fd_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n < 0) return -1;
      sent += static_cast<std::size_t>(n);
    }
    written_ += sent;
    return static_cast<ssize_t>(sent);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ip = ::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0
             ? NumericAddress(addr, len, port)
             : "";
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ip = ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0
             ? NumericAddress(addr, len, port)
             : "";
  }
  socket_t socket() const override { return fd_; }

 private:
  // 1 ready, 0 not by `until`, -1 stopping or error.
  int Poll(short events, Clock::time_point until) const {
    if (stopping_.load()) return -1;
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    pollfd p{.fd = fd_, .events = events, .revents = 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, wait.count())));
    if (r < 0 && errno != EINTR) return -1;
    return r > 0 ? 1 : 0;
  }
  bool Wait(short events, Clock::time_point deadline) const {
    while (true) {
      const int ready = Poll(events, std::min(deadline, Clock::now() + kSlice));
      if (ready != 0) return ready > 0;
      if (Clock::now() >= deadline) {
        timed_out_ = true;
        return false;
      }
    }
  }

  const int fd_;
  const std::atomic<bool>& stopping_;
  const std::chrono::milliseconds write_timeout_;
  Clock::time_point read_deadline_;
  char buffer_[4096];
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  bool received_ = false;
  std::size_t written_ = 0;
  mutable bool timed_out_ = false;
};

void SendAll(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Closes refused connections gently: after the 503 and a FIN, it reads (and discards) what the
// client sent until the client closes or a second passes, so the close does not reset the
// connection before the client has read the 503.
class Refuser {
 public:
  explicit Refuser(const std::atomic<bool>& stopping) : stopping_(stopping) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Refuser() {
    {
      core::MutexLock lock(&mu_);
      done_ = true;
    }
    cv_.SignalAll();
    thread_.join();
    for (const auto& [fd, deadline] : lingering_) ::close(fd);
  }

  void Refuse(int fd) EXCLUDES(mu_) {
    SendAll(fd,
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\n\r\n"
            "too many connections; retry\r\n");
    ::shutdown(fd, SHUT_WR);
    {
      core::MutexLock lock(&mu_);
      if (lingering_.size() < kMaxLingering && !stopping_.load()) {
        lingering_.emplace_back(fd, Clock::now() + kLinger);
        cv_.SignalAll();
        return;
      }
    }
    ::close(fd);
  }

 private:
  void Run() EXCLUDES(mu_) {
    core::MutexLock lock(&mu_);
    while (!done_) {
      cv_.WaitFor(&mu_, kSlice);
      const auto now = Clock::now();
      std::erase_if(lingering_, [&](const std::pair<int, Clock::time_point>& entry) {
        char sink[1024];
        ssize_t n = 0;
        while ((n = ::recv(entry.first, sink, sizeof sink, MSG_DONTWAIT)) > 0) {
        }
        const bool finished = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
                              now >= entry.second || stopping_.load();
        if (finished) ::close(entry.first);
        return finished;
      });
    }
  }

  const std::atomic<bool>& stopping_;
  core::Mutex mu_;
  core::CondVar cv_;
  bool done_ GUARDED_BY(mu_) = false;
  std::vector<std::pair<int, Clock::time_point>> lingering_ GUARDED_BY(mu_);
  std::thread thread_;
};

// httplib's TaskQueue: `threads` workers, at most `max` connections queued or served.
class ConnectionPool : public httplib::TaskQueue {
 public:
  ConnectionPool(std::size_t threads, std::size_t max, int nice, std::atomic<std::size_t>& waiting)
      : max_(std::max<std::size_t>(1, max)), waiting_(waiting) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, threads); ++i) {
      workers_.emplace_back([this, nice] {
        LowerPriority(nice);
        Work();
      });
    }
  }

  void enqueue(std::function<void()> fn) EXCLUDES(mu_) override {
    {
      core::MutexLock lock(&mu_);
      if (jobs_.size() + busy_ < max_) {
        jobs_.push_back(std::move(fn));
        waiting_.store(jobs_.size());
        cv_.Signal();
        return;
      }
    }
    t_refusing = true;
    fn();
    t_refusing = false;
  }

  void shutdown() EXCLUDES(mu_) override {
    {
      core::MutexLock lock(&mu_);
      shutdown_ = true;
    }
    cv_.SignalAll();
    for (auto& t : workers_) t.join();
  }

 private:
  void Work() EXCLUDES(mu_) {
    while (true) {
      std::function<void()> job;
      {
        core::MutexLock lock(&mu_);
        while (jobs_.empty() && !shutdown_) cv_.Wait(&mu_);
        if (jobs_.empty()) return;  // shut down and drained
        job = std::move(jobs_.front());
        jobs_.pop_front();
        waiting_.store(jobs_.size());
        ++busy_;
      }
      job();
      core::MutexLock lock(&mu_);
      --busy_;
    }
  }

  const std::size_t max_;
  std::atomic<std::size_t>& waiting_;
  core::Mutex mu_;
  core::CondVar cv_;
  std::deque<std::function<void()>> jobs_ GUARDED_BY(mu_);
  std::size_t busy_ GUARDED_BY(mu_) = 0;
  bool shutdown_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace

namespace {

// httplib::Server with the connection loop replaced (see the top of this file).
class HttpEndpoint : public httplib::Server {
 public:
  HttpEndpoint(const StatusServerOptions& options, const std::atomic<bool>& stopping,
               const std::atomic<std::size_t>& waiting, Refuser& refuser)
      : options_(options), stopping_(stopping), waiting_(waiting), refuser_(refuser) {}

  std::uint16_t BoundPort() const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int port = 0;
    if (::getsockname(svr_sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      NumericAddress(addr, len, port);
    }
    return static_cast<std::uint16_t>(port);
  }
  void WidenBacklog() { ::listen(svr_sock_, kBacklog); }

 private:
  bool process_and_close_socket(socket_t sock) override {
    if (t_refusing) {
      refuser_.Refuse(sock);
      return true;
    }
    DeadlineStream stream(sock, stopping_, options_.write_timeout);
    for (std::size_t served = 0; served < kMaxRequestsPerConnection; ++served) {
      if (served > 0 && !stream.WaitForRequest(Clock::now() + options_.idle_timeout,
                                               [this] { return waiting_.load() > 0; })) {
        break;
      }
      stream.StartRequest(options_.request_timeout);
      const bool last = served + 1 == kMaxRequestsPerConnection || waiting_.load() > 0;
      bool closed = false;
      t_close_after = false;
      const bool ok = process_request(stream, last, closed, nullptr);
      if (!ok) {
        if (stream.timed_out() && stream.received() && stream.written() == 0) {
          SendAll(sock,
                  "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        }
        break;
      }
      if (closed || last || t_close_after) break;
    }
    // Discard what the client sent and we did not read (a 405's body): closing with unread
    // data would reset the connection, and the client could lose our answer.
    ::shutdown(sock, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(sock, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
    ::close(sock);
    return true;
  }

  const StatusServerOptions& options_;
  const std::atomic<bool>& stopping_;
  const std::atomic<std::size_t>& waiting_;
  Refuser& refuser_;
};

}  // namespace

struct StatusServer::Impl {
  StatusServerOptions options;
  const Registry& metrics;
  JsonSource status;

  core::Mutex token_mu;
  std::string token_digest GUARDED_BY(token_mu);          // SHA-256 of the token; "" without one
  std::vector<std::string> secrets GUARDED_BY(token_mu);  // never in a response (tokens included)

  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> waiting{0};
  std::unique_ptr<Refuser> refuser;
  std::unique_ptr<HttpEndpoint> http;
  std::thread listener;
  std::atomic<bool> listening{false};  // the listener thread is in listen_after_bind
  std::atomic<std::uint16_t> port{0};

  Impl(StatusServerOptions o, const Registry& m, JsonSource s)
      : options(std::move(o)), metrics(m), status(std::move(s)) {
    for (const std::string& secret : options.secrets) {
      if (!secret.empty()) secrets.push_back(secret);
    }
  }

  [[nodiscard]] std::string TokenDigest() EXCLUDES(token_mu) {
    core::MutexLock lock(&token_mu);
    return token_digest;
  }
  [[nodiscard]] std::vector<std::string> Secrets() EXCLUDES(token_mu) {
    core::MutexLock lock(&token_mu);
    return secrets;
  }

  bool Authorized(const httplib::Request& req, const std::string& digest) const {
    const std::string header = req.get_header_value("Authorization");
    const std::size_t space = header.find(' ');
    if (space == std::string::npos) return false;
    const std::string scheme = Lower(header.substr(0, space));
    std::string credentials = header.substr(space + 1);
    credentials.erase(0, credentials.find_first_not_of(' '));
    if (scheme == "bearer") return SameSecret(credentials, digest);
    if (scheme == "basic") {
      const std::string decoded = Base64Decode(credentials);
      const std::size_t colon = decoded.find(':');
      return colon != std::string::npos && SameSecret(decoded.substr(colon + 1), digest);
    }
    return false;
  }

  // Without a token: only names of this machine, so a page cannot reach us by DNS rebinding.
  bool HostAllowed(const httplib::Request& req) const {
    if (!req.has_header("Host")) return true;
    const std::string host = Lower(req.get_header_value("Host"));
    const std::string p = std::to_string(port.load());
    for (const std::string& name :
         {std::string("127.0.0.1"), std::string("localhost"), std::string("[::1]"),
          options.listen.ipv6 ? "[" + options.listen.host + "]" : options.listen.host}) {
      if (host == name || host == name + ":" + p) return true;
    }
    return false;
  }

  static std::string Redacted(std::string body, const std::vector<std::string>& hidden) {
    for (const std::string& secret : hidden) {
      for (std::size_t at = body.find(secret); at != std::string::npos;
           at = body.find(secret, at + kRedacted.size())) {
        body.replace(at, secret.size(), kRedacted);
      }
    }
    return body;
  }

  void Reply(httplib::Response& res, int code, std::string body, const char* type) {
    res.status = code;
    res.set_content(Redacted(std::move(body), Secrets()), type);
  }

  httplib::Server::HandlerResponse Route(const httplib::Request& req, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Content-Type-Options", "nosniff");
    constexpr const char* kText = "text/plain; charset=utf-8";
    const std::string digest = TokenDigest();
    if (!digest.empty() && !Authorized(req, digest)) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"filesync\"");
      res.headers.emplace("WWW-Authenticate", "Basic realm=\"filesync\", charset=\"UTF-8\"");
      Reply(res, 401, "401 Unauthorized: send the token of status_token_file as a bearer token\n",
            kText);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (digest.empty() && !HostAllowed(req)) {
      Reply(res, 403, "403 Forbidden: unexpected Host header; use the address in status_listen\n",
            kText);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "GET" && req.method != "HEAD") {
      t_close_after = true;  // any body it sent is unread
      res.set_header("Connection", "close");
      res.set_header("Allow", "GET, HEAD");
      Reply(res, 405, "405 Method Not Allowed: this endpoint is read-only\n", kText);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.path == "/metrics") {
      Reply(res, 200, metrics.Render(), std::string(Registry::kContentType).c_str());
    } else if (req.path == "/status") {
      try {
        Reply(res, 200, status(), "application/json");
      } catch (const std::exception&) {
        Reply(res, 500, "{\"error\":\"status unavailable\"}", "application/json");
      }
    } else if (req.path == "/") {
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                     "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                     "frame-ancestors 'none'");
      res.set_header("X-Frame-Options", "DENY");
      res.set_header("Referrer-Policy", "no-referrer");
      Reply(res, 200, std::string(kStatusPage), "text/html; charset=utf-8");
    } else {
      Reply(res, 404, "404 Not Found: the paths are /, /status and /metrics\n", kText);
    }
    return httplib::Server::HandlerResponse::Handled;
  }
};

namespace {

// Binds a throw-away socket the way httplib will, to learn why the address cannot be used.
int ProbeBind(const ListenAddress& listen) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (listen.ipv6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(listen.port);
    if (::inet_pton(AF_INET6, listen.host.c_str(), &a6->sin6_addr) != 1) return EINVAL;
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(listen.port);
    if (::inet_pton(AF_INET, listen.host.c_str(), &a4->sin_addr) != 1) return EINVAL;
    len = sizeof *a4;
  }
  const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const int yes = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  const int result = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0 ? 0 : errno;
  ::close(fd);
  return result;
}

std::string BindFix(int err, const ListenAddress& listen) {
  switch (err) {
    case EADDRINUSE:
      return "choose a free port, or stop the program listening there (ss -ltnp 'sport = :" +
             std::to_string(listen.port) + "')";
    case EACCES:
      return "choose a port above 1023 (lower ports need privileges)";
    case EADDRNOTAVAIL:
      return "use an address of this machine, e.g. 127.0.0.1";
    default:
      return "check the address, e.g. status_listen = \"127.0.0.1:9184\"";
  }
}

}  // namespace

StatusServer::StatusServer(StatusServerOptions options, const Registry& metrics, JsonSource status)
    : impl_(std::make_unique<Impl>(std::move(options), metrics, std::move(status))) {
  if (!impl_->options.token.empty()) impl_->token_digest = Sha256(impl_->options.token);
  if (!impl_->options.token.empty()) impl_->secrets.push_back(impl_->options.token);
}

StatusServer::~StatusServer() { Stop(); }

Status StatusServer::Start() {
  Impl& s = *impl_;
  if (s.http) return Status::Ok();
  const std::string key = "status_listen = \"" + s.options.listen.ToString() + "\"";
  if (!s.options.listen.loopback && s.TokenDigest().empty()) {
    return Status::InvalidArgument(key +
                                   ": not a loopback address, and there is no token; set "
                                   "status_token_file, or listen on 127.0.0.1");
  }
  if (const int err = ProbeBind(s.options.listen); err != 0) {
    return Status::InvalidArgument(key + ": cannot listen: " + std::strerror(err) + "; " +
                                   BindFix(err, s.options.listen));
  }
  s.stopping = false;
  s.refuser = std::make_unique<Refuser>(s.stopping);
  s.http = std::make_unique<HttpEndpoint>(s.options, s.stopping, s.waiting, *s.refuser);
  s.http->set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);  // not SO_REUSEPORT
    ::fcntl(sock, F_SETFD, FD_CLOEXEC);
  });
  // What httplib advertises in Keep-Alive; HttpEndpoint enforces these.
  s.http->set_keep_alive_timeout(std::max<std::time_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(s.options.idle_timeout).count()));
  s.http->set_keep_alive_max_count(kMaxRequestsPerConnection);
  s.http->set_pre_routing_handler(
      [&s](const httplib::Request& req, httplib::Response& res) { return s.Route(req, res); });
  s.http->new_task_queue = [&s] {
    return new ConnectionPool(s.options.threads, s.options.max_connections, s.options.nice,
                              s.waiting);
  };
  if (!s.http->bind_to_port(s.options.listen.host, s.options.listen.port)) {
    const int err = errno;
    s.http.reset();
    s.refuser.reset();
    return Status::InvalidArgument(key + ": cannot listen: " + std::strerror(err) + "; " +
                                   BindFix(err, s.options.listen));
  }
  s.http->WidenBacklog();
  s.port = s.http->BoundPort();
  s.listening = true;
  s.listener = std::thread([&s] {
    LowerPriority(s.options.nice);
    s.http->listen_after_bind();
    s.listening = false;
  });
  // stop() only works once listen_after_bind is running.
  while (!s.http->is_running() && s.listening) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!s.listening) {
    Stop();
    return Status::InvalidArgument(key + ": cannot listen; check the address, e.g. " +
                                   "status_listen = \"127.0.0.1:9184\"");
  }
  return Status::Ok();
}

void StatusServer::Stop() {
  Impl& s = *impl_;
  if (!s.http) return;
  s.stopping = true;
  s.http->stop();
  s.listener.join();
  s.http.reset();
  s.refuser.reset();
}

void StatusServer::SetToken(std::string token) {
  if (token.empty()) return;
  core::MutexLock lock(&impl_->token_mu);
  impl_->token_digest = Sha256(token);
  impl_->secrets.push_back(std::move(token));
}

std::uint16_t StatusServer::port() const { return impl_->port.load(); }

Result<std::string> FetchDaemonStatus(const ListenAddress& listen, const std::string& token,
                                      std::chrono::milliseconds timeout) {
  std::string host = listen.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  const std::string shown = listen.ipv6 ? "[" + host + "]" : host;
  httplib::Client client(host, listen.port);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  httplib::Headers headers = {{"Host", shown + ":" + std::to_string(listen.port)}};
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  const httplib::Result result = client.Get("/status", headers);
  const std::string where =
      "the daemon's status endpoint " + shown + ":" + std::to_string(listen.port);
  if (!result) {
    if (result.error() == httplib::Error::Connection) {
      return Status::NotFound("nothing listens at " + where);
    }
    return Status::Transient(where + " did not answer: " + httplib::to_string(result.error()));
  }
  if (result->status == 401 || result->status == 403) {
    return Status::Auth(where + " refused the request (HTTP " + std::to_string(result->status) +
                        "); check status_token_file");
  }
  if (result->status != 200) {
    return Status::Transient(where + " answered HTTP " + std::to_string(result->status));
  }
  return result->body;
}

}  // namespace filesync::ops
