// The status endpoint over real sockets, from issue 15: GET /metrics, /status, /; 404 for other
// paths, 405 (with Allow) for other methods, 401 without the token, no secret in any answer, a
// port in use is a clear error naming status_listen; it survives 1,000 concurrent connections
// (each answered or cleanly refused with 503) while a "sync" thread keeps its pace, and slow or
// idle clients do not hold its workers. Timing bounds are wide: CI runs under sanitizers on a
// loaded 2-core box.
#include "ops/status_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace filesync::ops {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int Connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

struct Reply {
  int code = 0;                                     // 0: no parsable status line
  std::multimap<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool closed = false;  // the server closed the connection after it
  [[nodiscard]] std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Parses one response from the start of `raw`; `consumed` = its length, 0 if incomplete.
Reply Parse(const std::string& raw, std::size_t& consumed, bool eof) {
  Reply r;
  consumed = 0;
  const std::size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  std::size_t pos = raw.find("\r\n");
  const std::string status_line = raw.substr(0, pos);
  if (status_line.starts_with("HTTP/1.1 ") && status_line.size() >= 12) {
    r.code = std::atoi(status_line.c_str() + 9);
  }
  while (pos < end) {
    const std::size_t next = raw.find("\r\n", pos + 2);
    const std::string line = raw.substr(pos + 2, next - pos - 2);
    const std::size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers.emplace(name, line.substr(line.find_first_not_of(' ', colon + 1)));
    pos = next;
  }
  const std::string length = r.Header("content-length");
  if (!length.empty()) {
    const std::size_t n = std::stoul(length);
    if (raw.size() < end + 4 + n) return r;
    r.body = raw.substr(end + 4, n);
    consumed = end + 4 + n;
  } else if (eof) {
    r.body = raw.substr(end + 4);
    consumed = raw.size();
  }
  return r;
}

// Reads one response from `fd` (and whether the server then closed), up to `timeout`.
Reply ReadReply(int fd, Clock::duration timeout = seconds(20)) {
  const auto deadline = Clock::now() + timeout;
  std::string raw;
  bool eof = false;
  std::size_t consumed = 0;
  Reply r;
  while (Clock::now() < deadline) {
    r = Parse(raw, consumed, eof);
    if (consumed > 0 || eof) break;
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buffer[65536];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) {
      eof = true;
      continue;
    }
    raw.append(buffer, static_cast<std::size_t>(n));
  }
  if (consumed > 0) {
    // Closed right after? (A quick look: a server keeping it open leaves it open.)
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    char c;
    r.closed = eof || (::poll(&p, 1, 200) > 0 && ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0);
  }
  return r;
}

Reply Request(std::uint16_t port, const std::string& raw) {
  const int fd = Connect(port);
  if (fd < 0) return {};
  SendAll(fd, raw);
  Reply r = ReadReply(fd);
  ::close(fd);
  return r;
}

std::string Get(std::uint16_t port, const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n" + extra +
         "Connection: close\r\n\r\n";
}

StatusServerOptions Loopback() {
  return {.listen = {.host = "127.0.0.1", .port = 0, .loopback = true, .ipv6 = false}};
}

constexpr std::string_view kStatusJson = R"({"converged":true,"roots":[]})";

class StatusServerTest : public ::testing::Test {
 protected:
  StatusServerTest() : requests_(registry_.AddCounter("test_requests_total", "Requests.")) {
    requests_.With({}).Inc(7);
  }

  // Starts a server with `options` whose /status is `status`.
  void Start(
      StatusServerOptions options,
      StatusServer::JsonSource status = [] { return std::string(kStatusJson); }) {
    server_ = std::make_unique<StatusServer>(std::move(options), registry_, std::move(status));
    const Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }

  Registry registry_;
  Family<Counter>& requests_;
  std::unique_ptr<StatusServer> server_;
  std::uint16_t port_ = 0;
};

TEST_F(StatusServerTest, ServesMetricsStatusAndThePage) {
  Start(Loopback());
  const Reply metrics = Request(port_, Get(port_, "/metrics"));
  EXPECT_EQ(metrics.code, 200);
  EXPECT_EQ(metrics.Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics.body, registry_.Render());
  EXPECT_NE(metrics.body.find("test_requests_total 7\n"), std::string::npos) << metrics.body;
  EXPECT_EQ(metrics.Header("cache-control"), "no-store");

  const Reply status = Request(port_, Get(port_, "/status"));
  EXPECT_EQ(status.code, 200);
  EXPECT_EQ(status.Header("content-type"), "application/json");
  EXPECT_EQ(status.body, kStatusJson);

  const Reply page = Request(port_, Get(port_, "/"));
  EXPECT_EQ(page.code, 200);
  EXPECT_EQ(page.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<title>filesync status</title>"), std::string::npos);
  const std::string csp = page.Header("content-security-policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
  // Self-contained: nothing is loaded from elsewhere.
  for (const char* external : {"src=", "href=", "@import", "url(", "//cdn", "https://"}) {
    EXPECT_EQ(page.body.find(external), std::string::npos) << "the page references " << external;
  }
}

TEST_F(StatusServerTest, HeadIsGetWithoutABody) {
  Start(Loopback());
  const Reply r = Request(port_,
                          "HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Connection: close\r\n\r\n");
  EXPECT_EQ(r.code, 200);
  EXPECT_TRUE(r.body.empty());
}

TEST_F(StatusServerTest, UnknownPathsAre404) {
  Start(Loopback());
  for (const char* path :
       {"/nope", "/metrics/x", "/status.json", "/index.html", "/../etc/passwd", "/Metrics"}) {
    EXPECT_EQ(Request(port_, Get(port_, path)).code, 404) << path;
  }
  EXPECT_EQ(Request(port_, Get(port_, "/metrics?name=x")).code, 200) << "a query is ignored";
}

TEST_F(StatusServerTest, OtherMethodsAre405WithAllow) {
  Start(Loopback());
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    // Keep-alive and a body: the server must not read the body as the next request.
    SendAll(fd, std::string(method) +
                    " /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Length: 33\r\n\r\nGET /metrics HTTP/1.1\r\nX: y\r\n\r\n");
    const Reply r = ReadReply(fd);
    ::close(fd);
    EXPECT_EQ(r.code, 405) << method;
    EXPECT_EQ(r.Header("allow"), "GET, HEAD") << method;
    EXPECT_TRUE(r.closed) << method << ": the connection stays open with an unread body";
  }
}

TEST_F(StatusServerTest, TokenIsRequiredAndNeverEchoed) {
  constexpr const char* kToken = "TOPSECRET-0123456789abcdef";
  StatusServerOptions options = Loopback();
  options.token = kToken;
  Start(options, [] { return std::string(R"({"leak":"TOPSECRET-0123456789abcdef"})"); });
  const Reply none = Request(port_, Get(port_, "/metrics"));
  EXPECT_EQ(none.code, 401);
  std::string challenges;
  for (auto [it, end] = none.headers.equal_range("www-authenticate"); it != end; ++it) {
    challenges += it->second + "\n";
  }
  EXPECT_NE(challenges.find("Bearer realm=\"filesync\""), std::string::npos) << challenges;
  EXPECT_NE(challenges.find("Basic realm=\"filesync\""), std::string::npos) << challenges;
  EXPECT_EQ(none.body.find("test_requests_total"), std::string::npos) << "no data without it";

  for (const std::string& bad : {std::string("Bearer wrong"), std::string("Bearer ") + kToken + "x",
                                 std::string("Bearer TOPSECRET"), std::string("Token ") + kToken,
                                 std::string(kToken), std::string("Basic dXNlcjp3cm9uZw==")}) {
    EXPECT_EQ(Request(port_, Get(port_, "/status", "Authorization: " + bad + "\r\n")).code, 401)
        << bad;
  }
  const Reply bearer = Request(
      port_, Get(port_, "/status", std::string("Authorization: Bearer ") + kToken + "\r\n"));
  EXPECT_EQ(bearer.code, 200);
  EXPECT_EQ(bearer.body.find("TOPSECRET"), std::string::npos) << "the token is redacted";
  EXPECT_NE(bearer.body.find("<redacted>"), std::string::npos) << bearer.body;
  // Basic, as a browser sends it: base64("anyone:" + token).
  const Reply basic = Request(port_, Get(port_, "/metrics",
                                         "Authorization: Basic "
                                         "YW55b25lOlRPUFNFQ1JFVC0wMTIzNDU2Nzg5YWJjZGVm\r\n"));
  EXPECT_EQ(basic.code, 200);
  // A token also applies to the methods and paths that do not exist.
  EXPECT_EQ(Request(port_,
                    "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n")
                .code,
            401);
  server_->SetToken("NEWSECRET-0123456789abcdef");
  EXPECT_EQ(
      Request(port_, Get(port_, "/status", std::string("Authorization: Bearer ") + kToken + "\r\n"))
          .code,
      401);
  EXPECT_EQ(
      Request(port_, Get(port_, "/status", "Authorization: Bearer NEWSECRET-0123456789abcdef\r\n"))
          .code,
      200);
}

TEST_F(StatusServerTest, SecretsNeverAppearInAnswers) {
  StatusServerOptions options = Loopback();
  options.secrets = {"sl.SECRET-ACCESS-TOKEN", "", "refresh-SECRET-42"};
  auto& labelled = registry_.AddCounter("test_leak_total", "l", {Label::Open("v", 2)});
  labelled.With({"refresh-SECRET-42"}).Inc();
  Start(options, [] { return std::string(R"({"error":"token sl.SECRET-ACCESS-TOKEN refused"})"); });
  for (const char* path : {"/status", "/metrics", "/"}) {
    const Reply r = Request(port_, Get(port_, path));
    EXPECT_EQ(r.code, 200) << path;
    EXPECT_EQ(r.body.find("SECRET"), std::string::npos) << path << ": " << r.body;
  }
}

TEST_F(StatusServerTest, HostHeaderOfAnotherSiteIsForbiddenWithoutAToken) {
  Start(Loopback());
  const std::string p = std::to_string(port_);
  EXPECT_EQ(Request(port_, "GET /status HTTP/1.1\r\nHost: evil.example:" + p +
                               "\r\nConnection: close\r\n\r\n")
                .code,
            403)
      << "a DNS-rebinding page would send its own name";
  for (const std::string& host :
       {"localhost:" + p, "127.0.0.1:" + p, "LOCALHOST:" + p, "[::1]:" + p}) {
    EXPECT_EQ(
        Request(port_, "GET /status HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")
            .code,
        200)
        << host;
  }
}

TEST_F(StatusServerTest, AThrowingStatusSourceIs500) {
  Start(Loopback(), []() -> std::string { throw std::runtime_error("no snapshot"); });
  EXPECT_EQ(Request(port_, Get(port_, "/status")).code, 500);
  EXPECT_EQ(Request(port_, Get(port_, "/metrics")).code, 200);
}

TEST_F(StatusServerTest, NonLoopbackWithoutATokenDoesNotStart) {
  StatusServer server({.listen = {.host = "0.0.0.0", .port = 0, .loopback = false}}, registry_,
                      [] { return std::string("{}"); });
  const Status s = server.Start();
  EXPECT_EQ(s.kind(), Status::Kind::kInvalidArgument);
  EXPECT_NE(s.message().find("status_listen = \"0.0.0.0:0\""), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("status_token_file"), std::string::npos) << s.message();
}

TEST_F(StatusServerTest, APortInUseIsAClearError) {
  Start(Loopback());
  StatusServerOptions same = Loopback();
  same.listen.port = port_;
  StatusServer second(same, registry_, [] { return std::string("{}"); });
  const Status s = second.Start();
  ASSERT_FALSE(s.ok()) << "two servers on one port (SO_REUSEPORT?)";
  EXPECT_EQ(s.kind(), Status::Kind::kInvalidArgument);
  const std::string want = "status_listen = \"127.0.0.1:" + std::to_string(port_) + "\"";
  EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("Address already in use"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("choose a free port"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_EQ(Request(port_, Get(port_, "/metrics")).code, 200) << "the first one still serves";
}

TEST_F(StatusServerTest, RestartsOnTheSamePortAndStopIsIdempotent) {
  Start(Loopback());
  const std::uint16_t port = port_;
  ASSERT_EQ(Request(port, Get(port, "/metrics")).code, 200);
  server_->Stop();
  server_->Stop();
  EXPECT_LT(Connect(port), 0) << "nothing listens after Stop()";
  StatusServerOptions again = Loopback();
  again.listen.port = port;
  Start(again);
  EXPECT_EQ(Request(port, Get(port, "/metrics")).code, 200);
}

// The server's threads run at a lower priority than the caller's, so a flood of clients takes
// CPU from the sync last.
TEST_F(StatusServerTest, ServerThreadsRunNicer) {
  const int before = ::getpriority(PRIO_PROCESS, 0);
  Start(Loopback());
  const auto nicer_threads = [before] {
    int nicer = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream in(task.path() / "stat");
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // from field 3, the state
      std::string field;
      for (int i = 3; i <= 19 && fields >> field; ++i) {  // field 19 is the nice value
      }
      if (std::atoi(field.c_str()) >= std::min(19, before + 10)) ++nicer;
    }
    return nicer;
  };
  const auto deadline = Clock::now() + seconds(5);  // the workers lower their own on start
  while (nicer_threads() < 5 && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_GE(nicer_threads(), 5) << "the listener and 4 workers";
  EXPECT_EQ(::getpriority(PRIO_PROCESS, 0), before) << "the caller's own priority is unchanged";
}

// --- FetchDaemonStatus (what `filesync status` asks first) ---------------------------------------

TEST_F(StatusServerTest, FetchDaemonStatusGetsTheJsonWithTheToken) {
  StatusServerOptions options = Loopback();
  options.token = "fetch-token-0123456789";
  Start(options);
  const ListenAddress at{.host = "127.0.0.1", .port = port_, .loopback = true};
  const auto good = FetchDaemonStatus(at, "fetch-token-0123456789", seconds(5));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(*good, kStatusJson);
  EXPECT_EQ(FetchDaemonStatus(at, "wrong-token-0123456789", seconds(5)).status().kind(),
            Status::Kind::kAuth);
  const ListenAddress any{.host = "0.0.0.0", .port = port_, .loopback = false};
  EXPECT_TRUE(FetchDaemonStatus(any, "fetch-token-0123456789", seconds(5)).ok())
      << "0.0.0.0 is asked on 127.0.0.1";
  server_->Stop();
  EXPECT_EQ(FetchDaemonStatus(at, "fetch-token-0123456789", seconds(5)).status().kind(),
            Status::Kind::kNotFound);
}

TEST_F(StatusServerTest, FetchDaemonStatusOverIpv6PassesTheHostCheck) {
  StatusServerOptions options;
  options.listen = {.host = "::1", .port = 0, .loopback = true, .ipv6 = true};
  server_ = std::make_unique<StatusServer>(options, registry_, [] { return std::string("{}"); });
  if (const Status s = server_->Start(); !s.ok())
    GTEST_SKIP() << "no IPv6 loopback: " << s.message();
  const auto r = FetchDaemonStatus(
      {.host = "::1", .port = server_->port(), .loopback = true, .ipv6 = true}, "", seconds(5));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "{}");
}

// --- slow and idle clients -------------------------------------------------------------------

// A client that sends one byte a second never completes its request: it gets 408 and is
// dropped after request_timeout, and in the meantime (one worker only) the next client waits at
// most that long.
TEST_F(StatusServerTest, ASlowClientDoesNotHoldAWorkerForever) {
  StatusServerOptions options = Loopback();
  options.threads = 1;
  options.request_timeout = seconds(2);
  Start(options);
  const int slow = Connect(port_);
  ASSERT_GE(slow, 0);
  std::atomic<bool> stop{false};
  const auto started = Clock::now();
  std::thread dribble([&] {
    const std::string request =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + std::string(200, 'a') + "\r\n\r\n";
    for (char c : request) {
      if (stop || !SendAll(slow, std::string_view(&c, 1))) return;
      std::this_thread::sleep_for(seconds(1));
    }
  });
  std::this_thread::sleep_for(milliseconds(300));  // the slow one has the only worker
  const auto asked = Clock::now();
  const Reply other = Request(port_, Get(port_, "/status"));
  const double waited = Seconds(Clock::now() - asked);
  EXPECT_EQ(other.code, 200);
  EXPECT_LT(waited, 8.0) << "the only worker was held by a slow client";

  const Reply cut = ReadReply(slow, seconds(10));
  const double held = Seconds(Clock::now() - started);
  stop = true;
  dribble.join();
  ::close(slow);
  EXPECT_EQ(cut.code, 408);
  EXPECT_LT(held, 8.0) << "the slow client was not cut off";
}

// A kept-alive connection that sends nothing gives its worker up as soon as another connection
// is waiting.
TEST_F(StatusServerTest, AnIdleKeptAliveConnectionYieldsItsWorker) {
  StatusServerOptions options = Loopback();
  options.threads = 1;
  options.idle_timeout = seconds(60);
  Start(options);
  const int idle = Connect(port_);
  ASSERT_GE(idle, 0);
  SendAll(idle, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");  // keep-alive
  const Reply first = ReadReply(idle);
  ASSERT_EQ(first.code, 200);
  EXPECT_FALSE(first.closed) << "keep-alive with nobody waiting";
  const auto asked = Clock::now();
  EXPECT_EQ(Request(port_, Get(port_, "/status")).code, 200);
  EXPECT_LT(Seconds(Clock::now() - asked), 3.0);
  ::close(idle);
}

TEST_F(StatusServerTest, StopIsPromptWithClientsConnected) {
  StatusServerOptions options = Loopback();
  options.threads = 2;
  options.request_timeout = seconds(60);
  Start(options);
  std::vector<int> fds;
  for (int i = 0; i < 6; ++i) {
    fds.push_back(Connect(port_));
    SendAll(fds.back(), "GET /metrics HTTP/1.1\r\n");  // never finished
  }
  std::this_thread::sleep_for(milliseconds(300));
  const auto stopping = Clock::now();
  server_->Stop();
  EXPECT_LT(Seconds(Clock::now() - stopping), 2.0);
  for (int fd : fds) ::close(fd);
}

// --- 1,000 concurrent connections -------------------------------------------------------------

struct Flood {
  int answered = 0;  // 200
  int refused = 0;   // 503
  int other = 0;     // anything else, a reset or no answer
};

// Opens `clients` connections at once (non-blocking, one thread), sends a GET /metrics on each and
// reads every answer to the end.
Flood FloodWith(std::uint16_t port, int clients, Clock::duration timeout) {
  struct Conn {
    int fd = -1;
    std::string out;
    std::size_t sent = 0;
    std::string in;
    bool done = false;
  };
  std::vector<Conn> conns(static_cast<std::size_t>(clients));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (Conn& c : conns) {
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);  // EINPROGRESS
    c.out = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
            "\r\nConnection: close\r\n\r\n";
  }
  const auto deadline = Clock::now() + timeout;
  std::size_t open = conns.size();
  while (open > 0 && Clock::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<Conn*> which;
    for (Conn& c : conns) {
      if (c.done) continue;
      fds.push_back({.fd = c.fd,
                     .events = static_cast<short>(c.sent < c.out.size() ? POLLOUT : POLLIN),
                     .revents = 0});
      which.push_back(&c);
    }
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      Conn& c = *which[i];
      if (fds[i].revents == 0) continue;
      if (c.sent < c.out.size()) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) c.sent += static_cast<std::size_t>(n);
        if (n < 0 && errno != EAGAIN && errno != EINPROGRESS) {
          c.done = true;
          --open;
        }
        continue;
      }
      char buffer[65536];
      const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        c.in.append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        c.done = true;
        --open;
      }
    }
  }
  Flood result;
  for (Conn& c : conns) {
    std::size_t consumed = 0;
    const Reply r = Parse(c.in, consumed, true);
    if (r.code == 200 && r.body.find("test_requests_total 7\n") != std::string::npos) {
      ++result.answered;
    } else if (r.code == 503 && r.Header("retry-after") == "1") {
      ++result.refused;
    } else {
      ++result.other;
    }
    ::close(c.fd);
  }
  return result;
}

// Lateness of a thread that wants to run every 5 ms, as a sync loop's pace: the 99th
// percentile and the worst, in ms.
struct Pace {
  double p99 = 0;
  double worst = 0;
};

class PaceMeter {
 public:
  PaceMeter() : thread_([this] { Run(); }) {}
  ~PaceMeter() { Finish(); }
  Pace Finish() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
    }
    std::sort(late_.begin(), late_.end());
    if (late_.empty()) return {};
    return {late_[late_.size() * 99 / 100], late_.back()};
  }

 private:
  void Run() {
    auto next = Clock::now();
    while (!stop_) {
      next += milliseconds(5);
      std::this_thread::sleep_until(next);
      late_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - next).count());
      if (Clock::now() > next + milliseconds(5)) next = Clock::now();
    }
  }
  std::atomic<bool> stop_{false};
  std::vector<double> late_;
  std::thread thread_;
};

// Lowers this thread's CPU priority to nice 19 until Restore() (or destruction). Raising it
// back needs CAP_SYS_NICE: the test runs as root, or else it stays low (harmless for a test).
class LowestPriority {
 public:
  LowestPriority() : before_(::getpriority(PRIO_PROCESS, 0)) { ::setpriority(PRIO_PROCESS, 0, 19); }
  ~LowestPriority() { Restore(); }
  void Restore() { ::setpriority(PRIO_PROCESS, 0, before_); }

 private:
  const int before_;
};

void RaiseFileLimit(rlim_t want) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < want) {
    limit.rlim_cur = std::min(want, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

TEST_F(StatusServerTest, SurvivesAThousandConcurrentConnectionsWithoutSlowingTheCaller) {
  constexpr int kClients = 1000;
  RaiseFileLimit(4 * kClients);
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < 2 * kClients + 100) {
    GTEST_SKIP() << "RLIMIT_NOFILE " << limit.rlim_cur << " is too low for " << kClients
                 << " client sockets and their server ends";
  }
  // A registry large enough that each answer takes real work.
  auto& wide = registry_.AddCounter("test_wide_total", "w", {Label::Open("n", 200)});
  for (int i = 0; i < 200; ++i) wide.With({"value" + std::to_string(i)}).Inc(i);

  PaceMeter idle_meter;
  std::this_thread::sleep_for(seconds(1));
  const Pace baseline = idle_meter.Finish();

  const auto start_began = Clock::now();
  Start(Loopback());
  const double start_took = Seconds(Clock::now() - start_began);

  // Waves of 1,000 simultaneous connections for at least 3 s, while the pace is measured. The
  // clients run at the lowest priority: they stand for other programs (or machines), and what
  // is measured is what the server, not the load generator, takes from the caller.
  PaceMeter meter;
  const auto flood_began = Clock::now();
  int waves = 0;
  Flood total;
  LowestPriority lowest;
  while (waves < 3 || Seconds(Clock::now() - flood_began) < 3.0) {
    const Flood flood = FloodWith(port_, kClients, seconds(90));
    ++waves;
    EXPECT_EQ(flood.other, 0) << "wave " << waves << ": every connection is answered or cleanly "
                              << "refused";
    EXPECT_EQ(flood.answered + flood.refused, kClients) << "wave " << waves;
    EXPECT_GE(flood.answered, 100) << "wave " << waves << ": a burst is mostly refused";
    total.answered += flood.answered;
    total.refused += flood.refused;
    total.other += flood.other;
  }
  const double flood_took = Seconds(Clock::now() - flood_began);
  lowest.Restore();
  const Pace loaded = meter.Finish();
  std::printf(
      "%d waves of %d connections in %.2f s: %d answered, %d refused (503), %d other; "
      "sync pace lateness p99/worst: idle %.2f/%.2f ms, under load %.2f/%.2f ms\n",
      waves, kClients, flood_took, total.answered, total.refused, total.other, baseline.p99,
      baseline.worst, loaded.p99, loaded.worst);
  EXPECT_LT(start_took, 1.0) << "Start() must not block the caller";
  // The caller's pace: its wake-ups stay on time while the server is flooded.
  EXPECT_LT(loaded.p99, baseline.p99 + 50.0);
  EXPECT_LT(loaded.worst, baseline.worst + 500.0);
  // And the server still answers afterwards.
  EXPECT_EQ(Request(port_, Get(port_, "/metrics")).code, 200);
}

}  // namespace
}  // namespace filesync::ops
