// The emulator's HTTP front end: one cpp-httplib server (optionally TLS) answering the api,
// content and notify routes (distinguished by path, /2/<route>), /oauth2/token,
// GET /oauth2/authorize (both also under the legacy /1/ prefix), and the /admin endpoints
// (counters, reset_cursors, health).
//
// Per request to /2/: count it, draw faults (latency, 429, 500, 503, drop — all before the
// route's effect; drop_after after it), check the bearer token (except longpoll), decode the
// argument (RPC body JSON; Dropbox-API-Arg header for content routes: UTF-8 without control
// characters, or pure ASCII with strict_arg_header), then run the route handler. Faults never
// apply to /admin or /oauth2. Range headers are the download route's to answer (httplib's own
// range handling is switched off per request).
//
// Dropped connections: httplib 0.11 gives handlers no socket, so the server finds the
// connection's socket by matching the request's local/remote ports (getsockname/getpeername
// over the process's descriptors) and shuts it down; httplib's later write fails and it
// closes the socket, so the client sees EOF with no response. Stop() shuts down every client
// connection the same way so idle keep-alive connections do not delay the exit.
//
// Thread safety: httplib runs handlers on its thread pool; counters have their own mutex and
// all other state is in thread-safe components.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/thread_annotations.h"
#include "dropbox_emulator/auth.h"
#include "dropbox_emulator/faults.h"
#include "dropbox_emulator/routes.h"
#include "util/status.h"

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace filesync::emulator {

class Exchange;  // one request being answered (server.cc)

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string data_dir;
  AuthConfig auth;
  FaultSpec faults;
  std::uint64_t seed = 1;
  std::chrono::milliseconds commit_lock{5};
  std::chrono::seconds longpoll_max{480};
  std::string tls_cert;
  std::string tls_key;
  int threads = 64;
  // Refuse raw non-ASCII bytes in Dropbox-API-Arg, as the JSON-encoding page asks clients not
  // to send them (filesync's own tests use this so its escaping stays checked). Off, raw UTF-8
  // is accepted, as Dropbox does.
  bool strict_arg_header = false;
  // Routes answered as unknown ("Unknown API function", HTTP 400), as a server that predates
  // them would: lets tests check a client's fallback from the optional batch routes.
  std::set<std::string> without_routes;
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> Create(const ServerOptions& options);
  ~Server();

  // Binds; returns the port (the ephemeral one when options.port was 0).
  Result<int> Bind();
  // Serves until Stop(); returns when the server has stopped.
  void Serve();
  // Thread-safe; callable from a signal-handling thread.
  void Stop();
  [[nodiscard]] bool tls() const { return !options_.tls_cert.empty(); }

 private:
  explicit Server(const ServerOptions& options);
  void InstallHandlers();
  // Answers one POST request: the admin endpoints, /oauth2/token, or an API route.
  void Serve(Exchange& ex) EXCLUDES(counters_mu_);
  // Drains the body, counts the request under `counted_route` (none if ""), sends `reply`.
  void Finish(Exchange& ex, const Reply& reply, const std::string& counted_route);
  Reply TokenReply(Exchange& ex);
  Reply AuthorizeReply(const httplib::Request& req);
  // /2/<route>: faults, then the route's auth and argument, then its handler.
  void ServeApi(Exchange& ex, const std::string& route);
  // Finds the route, checks the token and decodes the argument into `call`; the refusal if any.
  std::optional<Reply> PrepareCall(Exchange& ex, Call& call);
  void Count(const std::string& route, std::uint64_t bytes) EXCLUDES(counters_mu_);
  std::string CountersJson() EXCLUDES(counters_mu_);

  ServerOptions options_;
  std::atomic<int> port_{0};
  std::unique_ptr<Namespace> ns_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<UploadSessions> sessions_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<CommitLock> commit_lock_;
  std::unique_ptr<JobTable> jobs_;
  std::unique_ptr<FaultInjector> faults_;
  RouteContext ctx_;
  std::unique_ptr<httplib::Server> http_;

  core::Mutex counters_mu_;
  std::map<std::string, std::uint64_t> routes_count_ GUARDED_BY(counters_mu_);
  std::uint64_t total_ GUARDED_BY(counters_mu_) = 0;
  std::uint64_t bytes_received_ GUARDED_BY(counters_mu_) = 0;
};

}  // namespace filesync::emulator
