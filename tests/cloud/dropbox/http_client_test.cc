#include "cloud/dropbox/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace filesync::dropbox {
namespace {

TEST(HttpHeaders, LookupIgnoresCaseAndSetReplaces) {
  HttpHeaders h;
  h.Add("Content-Type", "application/json");
  h.Add("X-Dropbox-Request-Id", "abc");
  EXPECT_EQ(h.Get("content-type"), "application/json");
  EXPECT_EQ(h.Get("X-DROPBOX-REQUEST-ID"), "abc");
  EXPECT_FALSE(h.Get("Retry-After"));
  h.Set("authorization", "Bearer 1");
  h.Set("Authorization", "Bearer 2");
  EXPECT_EQ(h.Get("AUTHORIZATION"), "Bearer 2");
  EXPECT_EQ(h.items().size(), 3u);
}

TEST(UrlEncode, KeepsUnreservedEscapesTheRest) {
  EXPECT_EQ(UrlEncode("aZ0-._~"), "aZ0-._~");
  EXPECT_EQ(UrlEncode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
}

TEST(CurlTransport, UnreachableHostIsTransient) {
  auto transport = MakeCurlTransport(HttpClientOptions{.connect_timeout = std::chrono::seconds(2)});
  HttpRequest request;
  request.url = "http://127.0.0.1:1/2/files/list_folder";  // nothing listens on port 1
  request.body = "{}";
  auto r = transport->Send(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), Status::Kind::kTransient);
}

// A server that takes the connection and never answers: only the cancel flag ends the request
// (no timeout is set), within about a second of being raised.
TEST(CurlTransport, CancelAbandonsARequestInFlight) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  std::atomic<bool> cancel{false};
  auto transport = MakeCurlTransport(HttpClientOptions{});
  HttpRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/2/files/x";
  request.body = std::string(1 << 20, 'x');
  request.timeout = std::chrono::seconds(0);
  request.cancel = &cancel;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel = true;
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = transport->Send(request);
  const auto took = std::chrono::steady_clock::now() - start;
  stopper.join();
  close(listener);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), Status::Kind::kCancelled) << r.status().ToString();
  EXPECT_LT(took, std::chrono::seconds(3));
}

}  // namespace
}  // namespace filesync::dropbox
