// StatusServer: the daemon's read-only HTTP endpoint (`status_listen`), on cpp-httplib.
//
//   GET /metrics  the registry in the Prometheus text format (Registry::kContentType)
//   GET /status   the JSON the `status` callback returns: the object `filesync status --json`
//                 prints, plus the fields the status page reads (ops/status_page.h)
//   GET /         the status page (ops/status_page.h)
// HEAD works wherever GET does; any other method gets 405 with "Allow: GET, HEAD", any other path
// 404. Nothing can be changed through it.
//
// Security model:
//  - With a token (required off loopback: Start() refuses a non-loopback address without one),
//    every request needs "Authorization: Bearer <token>", or HTTP Basic with the token as the
//    password (so a browser can open the page); otherwise 401 with WWW-Authenticate for both
//    schemes. The comparison takes the same time whatever the guess.
//  - Without a token (loopback only) a request whose Host header is not this address, localhost,
//    127.0.0.1 or [::1] (with the port) gets 403, so a web page cannot read the endpoint
//    through DNS rebinding.
//  - Responses are `Cache-Control: no-store` and `nosniff`; the page's Content-Security-Policy
//    allows no resource from anywhere but itself. The token and every string in `secrets`
//    (pass the Dropbox tokens and app secret) are replaced by "<redacted>" in any body.
//
// Robustness: the server runs on its own threads (a listener and `threads` workers, at a lower
// CPU priority than the caller), so a flood of clients competes with the sync for no lock and
// little CPU. At most `max_connections` are queued or being served; beyond that a connection
// gets "503 Service Unavailable" with Retry-After and is closed. Each request must arrive whole
// within `request_timeout` (a client sending a byte a second gets 408 and is dropped), a kept-
// alive connection waits at most `idle_timeout` for its next request and gives its worker up at
// once when other connections are waiting, and each response must be taken within
// `write_timeout`.
//
// Usage (the daemon):
//   ops::StatusServer server({.listen = *config.status_listen, .token = config.status_token,
//                             .secrets = {config.dbx_token, config.dbx_refresh_token,
//                                         config.dbx_app_secret}},
//                            metrics.registry, [&] { return StatusJson().dump(); });
//   if (Status s = server.Start(); !s.ok()) -> print s.message() (one line naming status_listen
//                                             and the fix), exit 2
//   ...
//   server.Stop();  // or let the destructor do it; returns within about 100 ms
// On SIGHUP: a changed token alone -> SetToken(); a changed address -> Start() a new server and,
// only if that succeeds, Stop() the old one (else keep the old one and log the error line).
//
// Thread safety: Start/Stop from one thread; SetToken and port() from any. The `status`
// callback runs on the server's worker threads, concurrently: it must be thread-safe and quick
// (build the JSON from atomics or a snapshot, never wait for a pass); if it throws, the answer is
// 500.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ops/listen_address.h"
#include "ops/metrics.h"
#include "util/status.h"

namespace filesync::ops {

struct StatusServerOptions {
  ListenAddress listen;  // port 0 (tests): any free port, see port()
  std::string token;     // "" only on loopback
  std::vector<std::string> secrets;
  std::size_t threads = 4;
  // Queued + being served. With the refused connections still closing (at most 64), this bounds
  // the server's file descriptors, which it shares with the sync (often a soft limit of 1024).
  std::size_t max_connections = 128;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{5000};
  std::chrono::milliseconds write_timeout{10000};
  int nice = 10;  // added to the nice value of the server's threads (0: same as the caller)
};

class StatusServer {
 public:
  using JsonSource = std::function<std::string()>;

  StatusServer(StatusServerOptions options, const Registry& metrics, JsonSource status);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // Binds and starts serving. kInvalidArgument with a one-line message naming status_listen and
  // the fix when the address cannot be used (port in use, no such address, a privileged port,
  // non-loopback without a token). Serving happens on the server's own threads.
  Status Start();
  // Stops accepting, drops the connections in progress, joins every thread. Idempotent.
  void Stop();

  // Replaces the token (non-empty); requests from then on need the new one.
  void SetToken(std::string token);
  // The bound port (after Start()).
  [[nodiscard]] std::uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What `filesync status` asks a running daemon first: GET /status from the endpoint at `listen`
// (an all-interfaces address is asked on its loopback twin), with the token when there is one.
// The body (JSON) on 200; kNotFound when nothing listens there, kAuth on 401/403, kTransient on
// a timeout or another answer. Thread safety: a pure function.
Result<std::string> FetchDaemonStatus(const ListenAddress& listen, const std::string& token,
                                      std::chrono::milliseconds timeout);

}  // namespace filesync::ops
