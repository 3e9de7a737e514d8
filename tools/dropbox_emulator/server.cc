// One catch-all POST handler with a content reader serves every route, so upload bodies are
// streamed to disk and RPC bodies are read into memory (they are small). A body the handler did
// not read is drained afterwards so the keep-alive connection stays in sync.
#include "dropbox_emulator/server.h"

#include <dirent.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "dropbox_emulator/wire.h"

namespace filesync::emulator {
namespace {

constexpr std::uint64_t kMaxRpcBody = 64ULL * 1024 * 1024;

int PortOf(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
  return -1;
}

// Shuts down connected sockets whose local port is `local_port` and, unless `remote_port` is
// -1, whose peer port is `remote_port` (see server.h).
void ShutdownConnections(int local_port, int remote_port) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (dirent* d = ::readdir(dir)) {
    const int fd = std::atoi(d->d_name);
    if (fd <= 2) continue;
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t ll = sizeof local;
    socklen_t pl = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
    if (PortOf(local) == local_port && (remote_port == -1 || PortOf(peer) == remote_port)) {
      ::shutdown(fd, SHUT_RDWR);
      if (remote_port != -1) break;
    }
  }
  ::closedir(dir);
}

void DropConnection(const httplib::Request& req) {
  ShutdownConnections(req.local_port, req.remote_port);
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() &&
               std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start <= body.size()) {
    auto end = body.find('&', start);
    if (end == std::string::npos) end = body.size();
    const std::string pair = body.substr(start, end - start);
    const auto eq = pair.find('=');
    if (!pair.empty()) {
      out[UrlDecode(pair.substr(0, eq))] =
          eq == std::string::npos ? std::string() : UrlDecode(pair.substr(eq + 1));
    }
    start = end + 1;
  }
  return out;
}

std::string RequestId() {
  static std::atomic<std::uint64_t> n{1};
  char buf[32];
  std::snprintf(buf, sizeof buf, "emu%013llx", static_cast<unsigned long long>(n.fetch_add(1)));
  return buf;
}

void Send(const Reply& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [k, v] : reply.headers) res.set_header(k, v);
  res.set_header("X-Dropbox-Request-Id", RequestId());
  if (!reply.file_path.empty()) {
    const std::string path = reply.file_path;
    const auto start = static_cast<off_t>(reply.file_offset);
    res.set_content_provider(
        static_cast<std::size_t>(reply.file_size), reply.content_type,
        [path, start](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
          const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
          if (fd < 0) return false;
          std::vector<char> buf(std::min<std::size_t>(length, 1 << 20));
          const ssize_t n = ::pread(fd, buf.data(), buf.size(), start + static_cast<off_t>(offset));
          ::close(fd);
          if (n <= 0) return false;
          return sink.write(buf.data(), static_cast<std::size_t>(n));
        });
    return;
  }
  res.set_content(reply.body, reply.content_type);
}

Reply OAuthErrorReply(const OAuthError& e) {
  return Reply::Json({{"error", e.error}, {"error_description", e.description}}, 400);
}

constexpr const char* kTokenScope =
    "account_info.read files.content.read files.content.write files.metadata.read "
    "files.metadata.write";

// The /oauth2/token request: its form fields, with HTTP Basic credentials taking precedence
// over client_id/client_secret; nullopt for a malformed Basic header.
std::optional<TokenRequest> ReadTokenRequest(const httplib::Request& req, const std::string& body) {
  auto form = ParseForm(body);
  TokenRequest t;
  t.grant_type = form["grant_type"];
  t.client_id = form["client_id"];
  if (form.count("client_secret") != 0) t.client_secret = form["client_secret"];
  t.refresh_token = form["refresh_token"];
  t.code = form["code"];
  if (form.count("code_verifier") != 0) t.code_verifier = form["code_verifier"];
  if (form.count("redirect_uri") != 0) t.redirect_uri = form["redirect_uri"];
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Basic ", 0) == 0) {
    auto decoded = Base64Decode(auth.substr(6));
    const auto colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) return std::nullopt;
    t.client_id = decoded->substr(0, colon);
    t.client_secret = decoded->substr(colon + 1);
  }
  return t;
}

Reply IssuedTokenReply(const IssuedToken& issued) {
  nlohmann::json j = {{"access_token", issued.access_token},
                      {"token_type", "bearer"},
                      {"expires_in", issued.expires_in},
                      {"scope", kTokenScope},
                      {"account_id", kAccountId},
                      {"uid", "12345"}};
  if (!issued.refresh_token.empty()) j["refresh_token"] = issued.refresh_token;
  return Reply::Json(j);
}

// The reply for an injected fault that answers instead of the route (429, 500, 503).
std::optional<Reply> FaultReply(const FaultDecision& fault) {
  if (fault.status == 429) return Reply::RateLimited("too_many_requests", 1, 1);
  if (fault.status != 0) {
    return Reply::Text(fault.status, fault.status == 500 ? "Internal Server Error (injected)"
                                                         : "Service Unavailable (injected)");
  }
  return std::nullopt;
}

// A JSON argument in an RPC request body (empty: none, the Void argument).
std::optional<Reply> DecodeRpcArg(const httplib::Request& req, const std::string& route,
                                  const std::string& text, Call* call) {
  const std::string type = req.get_header_value("Content-Type");
  if (!text.empty() && type.rfind("application/json", 0) != 0 &&
      type.find("dropbox-cors-hack") == std::string::npos) {
    return Reply::Text(400, "Error in call to API function \"" + route +
                                "\": Bad HTTP \"Content-Type\" header: \"" + type +
                                "\".  Expecting one of \"application/json\", "
                                "\"application/json; charset=utf-8\", \"text/plain; "
                                "charset=dropbox-cors-hack\".");
  }
  if (!text.empty()) {
    call->arg = nlohmann::json::parse(text, nullptr, false);
    if (call->arg.is_discarded()) {
      return BadArgument(route, "request body: could not decode input as JSON");
    }
  }
  return std::nullopt;
}

// The JSON argument of a content route, from the Dropbox-API-Arg header or the arg parameter.
std::optional<Reply> DecodeHeaderArg(const httplib::Request& req, const std::string& route,
                                     bool strict, Call* call) {
  std::string header = req.get_header_value("Dropbox-API-Arg");
  if (header.empty() && req.has_param("arg")) header = req.get_param_value("arg");
  if (header.empty()) {
    return BadArgument(route,
                       "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".");
  }
  if (strict ? !IsHeaderSafe(header) : !IsUtf8HeaderValue(header)) {
    return BadArgument(route, strict ? "HTTP header \"Dropbox-API-Arg\": could not decode input "
                                       "as JSON (non-ASCII characters must be escaped as "
                                       "\\uXXXX; the emulator runs with --strict-arg-header)"
                                     : "HTTP header \"Dropbox-API-Arg\": could not decode input "
                                       "as JSON (it must be UTF-8, with control characters "
                                       "and DEL escaped as \\uXXXX)");
  }
  call->arg = nlohmann::json::parse(header, nullptr, false);
  if (call->arg.is_discarded()) {
    return BadArgument(route, "HTTP header \"Dropbox-API-Arg\": could not decode input as JSON");
  }
  return std::nullopt;
}

}  // namespace

// One POST request being answered. Its body is read at most once; what the handler did not read
// is drained before the reply, so the keep-alive connection stays in sync.
class Exchange {
 public:
  Exchange(const httplib::Request& request, httplib::Response& response,
           const httplib::ContentReader& reader)
      : req(request), res(response), reader_(reader) {}
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Reads the whole body into *out; false when it is over kMaxRpcBody.
  bool ReadAll(std::string* out) {
    return body([&](const char* d, std::size_t n) {
      if (out->size() + n > kMaxRpcBody) return false;
      out->append(d, n);
      return true;
    });
  }
  void Drain() {
    if (!consumed_) body([](const char*, std::size_t) { return true; });
  }
  [[nodiscard]] std::uint64_t bytes() const { return bytes_; }

  const httplib::Request& req;
  httplib::Response& res;
  std::string range;  // the Range header, which the download route answers
  // The body, for a route handler (Call::body).
  const BodyReader body = [this](const BodySink& sink) {
    if (consumed_) return true;
    consumed_ = true;
    return reader_([&](const char* d, std::size_t n) {
      bytes_ += n;
      return sink(d, n);
    });
  };

 private:
  const httplib::ContentReader& reader_;
  bool consumed_ = false;
  std::uint64_t bytes_ = 0;
};

Server::Server(const ServerOptions& options) : options_(options) {}

Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  std::unique_ptr<Server> s(new Server(options));
  auto ns = Namespace::Open(options.data_dir);
  if (!ns.ok()) return ns.status();
  s->ns_ = std::move(ns).value();
  s->blobs_ = std::make_unique<BlobStore>(options.data_dir);
  s->sessions_ = std::make_unique<UploadSessions>(options.data_dir, s->blobs_.get());
  s->tokens_ = std::make_unique<TokenStore>(options.auth);
  s->commit_lock_ = std::make_unique<CommitLock>(options.commit_lock);
  s->jobs_ = std::make_unique<JobTable>();
  s->faults_ = std::make_unique<FaultInjector>(options.faults, options.seed);
  s->ctx_ = {s->ns_.get(),          s->sessions_.get(), s->blobs_.get(),     s->tokens_.get(),
             s->commit_lock_.get(), s->jobs_.get(),     options.longpoll_max};
  if (s->tls()) {
    auto tls =
        std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!tls->is_valid()) return Status::InvalidArgument("cannot load --tls-cert/--tls-key");
    s->http_ = std::move(tls);
  } else {
    s->http_ = std::make_unique<httplib::Server>();
  }
  const int threads = options.threads;
  s->http_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<std::size_t>(threads));
  };
  s->http_->set_keep_alive_max_count(100000);
  s->http_->set_tcp_nodelay(
      true);  // responses are written in pieces; avoid Nagle + delayed-ACK stalls
  s->http_->set_read_timeout(30, 0);
  s->http_->set_write_timeout(30, 0);
  s->InstallHandlers();
  return s;
}

Result<int> Server::Bind() {
  const int port = options_.port == 0
                       ? http_->bind_to_any_port(options_.host)
                       : (http_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port < 0)
    return Status::Io("cannot bind " + options_.host + ":" + std::to_string(options_.port));
  port_ = port;
  return port;
}

void Server::Serve() { http_->listen_after_bind(); }

void Server::Stop() {
  ns_->Shutdown();
  http_->stop();
  // Idle keep-alive connections would otherwise hold worker threads (and the exit) for the
  // keep-alive timeout.
  ShutdownConnections(port_.load(), -1);
}

void Server::Count(const std::string& route, std::uint64_t bytes) {
  core::MutexLock lock(&counters_mu_);
  ++routes_count_[route];
  ++total_;
  bytes_received_ += bytes;
}

std::string Server::CountersJson() {
  core::MutexLock lock(&counters_mu_);
  nlohmann::json routes = nlohmann::json::object();
  for (const auto& [k, v] : routes_count_) routes[k] = v;
  return nlohmann::json{{"routes", routes}, {"total", total_}, {"bytes_received", bytes_received_}}
      .dump();
}

void Server::Finish(Exchange& ex, const Reply& reply, const std::string& counted_route) {
  ex.Drain();
  if (!counted_route.empty()) Count(counted_route, ex.bytes());
  Send(reply, ex.res);
}

void Server::Serve(Exchange& ex) {
  // httplib would apply a Range header to whatever we answer (a 409 body included), keeping
  // a 200 status; the download route answers Range itself. The Request
  // is httplib's own non-const object, handed to handlers by const reference.
  ex.range = ex.req.get_header_value("Range");
  const_cast<httplib::Request&>(ex.req).ranges.clear();
  const std::string& path = ex.req.path;
  if (path == "/admin/counters/reset") {
    core::MutexLock lock(&counters_mu_);
    routes_count_.clear();
    total_ = 0;
    bytes_received_ = 0;
    ex.res.set_content("null", "application/json");
    return;
  }
  if (path == "/admin/reset_cursors") {
    ns_->ResetCursors();
    ex.res.set_content("null", "application/json");
    return;
  }
  if (path == "/oauth2/token" || path == "/1/oauth2/token") {
    Finish(ex, TokenReply(ex), "oauth2/token");
    return;
  }
  if (path.rfind("/2/", 0) != 0) {
    Finish(ex, Reply::Text(400, "Unknown API endpoint: " + path), "");
    return;
  }
  ServeApi(ex, path.substr(3));
}

Reply Server::AuthorizeReply(const httplib::Request& req) {
  AuthorizeRequest a;
  a.client_id = req.get_param_value("client_id");
  a.response_type = req.get_param_value("response_type");
  a.code_challenge = req.get_param_value("code_challenge");
  a.code_challenge_method = req.get_param_value("code_challenge_method");
  a.token_access_type = req.get_param_value("token_access_type");
  if (req.has_param("redirect_uri")) a.redirect_uri = req.get_param_value("redirect_uri");
  auto out = tokens_->Authorize(a);
  if (auto* e = std::get_if<OAuthError>(&out)) {
    return Reply::Text(400, e->error + ": " + e->description);
  }
  return Reply::Text(200, std::get<std::string>(out));
}

Reply Server::TokenReply(Exchange& ex) {
  std::string text;
  ex.ReadAll(&text);
  const auto request = ReadTokenRequest(ex.req, text);
  if (!request) return OAuthErrorReply({"invalid_client", "malformed Basic authorization"});
  auto out = tokens_->Token(*request);
  if (auto* e = std::get_if<OAuthError>(&out)) return OAuthErrorReply(*e);
  return IssuedTokenReply(std::get<IssuedToken>(out));
}

void Server::ServeApi(Exchange& ex, const std::string& route) {
  const FaultDecision fault = faults_->Draw(route);
  if (fault.latency_ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(fault.latency_ms));
  if (fault.drop_before) {
    Count(route, ex.bytes());
    DropConnection(ex.req);
    return;
  }
  if (auto refusal = FaultReply(fault)) {
    Finish(ex, *refusal, route);
    return;
  }
  Call call{route, nullptr, &ex.body, "", ex.range};
  if (auto refusal = PrepareCall(ex, call)) {
    Finish(ex, *refusal, route);
    return;
  }
  Reply reply = HandleRoute(ctx_, call);
  if (fault.drop_after) {
    ex.Drain();
    Count(route, ex.bytes());
    DropConnection(ex.req);
    return;
  }
  Finish(ex, reply, route);
}

std::optional<Reply> Server::PrepareCall(Exchange& ex, Call& call) {
  const std::string& route = call.route;
  const RouteInfo* info = FindRoute(route);
  if (info == nullptr || options_.without_routes.contains(route)) {
    return Reply::Text(400, "Unknown API function: \"" + route + "\"");
  }
  if (info->needs_auth) {
    const std::string auth = ex.req.get_header_value("Authorization");
    const std::string token = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
    const auto check = tokens_->Validate(token);
    if (check != TokenStore::Check::kValid) {
      return Reply::Auth(check == TokenStore::Check::kExpired ? "expired_access_token"
                                                              : "invalid_access_token");
    }
    call.token = token;
  }
  if (info->style != RouteStyle::kRpc) {
    return DecodeHeaderArg(ex.req, route, options_.strict_arg_header, &call);
  }
  static const BodyReader kEmpty = [](const BodySink&) { return true; };
  std::string text;
  if (!ex.ReadAll(&text)) return BadArgument(route, "request body too large");
  call.body = &kEmpty;
  return DecodeRpcArg(ex.req, route, text, &call);
}

void Server::InstallHandlers() {
  http_->Get("/admin/counters", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(CountersJson(), "application/json");
  });
  http_->Get("/admin/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  // The /1/ spellings are the legacy OAuth paths, which Dropbox still serves and Dropbox's Go
  // SDK up to v6.0.4 (rclone 1.60) uses.
  http_->Get(R"((/1)?/oauth2/authorize)",
             [this](const httplib::Request& req, httplib::Response& res) {
               Count("oauth2/authorize", 0);
               Send(AuthorizeReply(req), res);
             });

  const auto serve = [this](const httplib::Request& req, httplib::Response& res,
                            const httplib::ContentReader& content_reader) {
    Exchange ex(req, res, content_reader);
    Serve(ex);
  };
  http_->Post(R"(/.*)", serve);

  // httplib answers a request it could not parse (a header line over its 8 KiB limit, a bad
  // request line) before any handler runs, and then keeps the connection open with the body
  // still unread, so the next request on it reads that body as its request line and gets a 400
  // it did not earn. A real front end closes such a connection; so do we. Every reply of ours
  // carries a request id, which tells these refusals apart. httplib also answers 416 itself,
  // before routing, to a Range header it cannot parse (another unit, bad syntax, a huge number);
  // RFC 7233 says to ignore such a header, so a bodiless POST (a download) is served as usual
  // and the download route decides.
  http_->set_error_handler(httplib::Server::HandlerWithResponse(
      [serve](const httplib::Request& req, httplib::Response& res) {
        if (res.has_header("X-Dropbox-Request-Id"))
          return httplib::Server::HandlerResponse::Unhandled;
        const std::string length = req.get_header_value("Content-Length");
        if (res.status == 416 && req.method == "POST" && req.has_header("Range") &&
            (length.empty() || length == "0") && !req.has_header("Transfer-Encoding")) {
          static const httplib::ContentReader kNoBody(
              [](const httplib::ContentReceiver&) { return true; },
              [](const httplib::MultipartContentHeader&, const httplib::ContentReceiver&) {
                return true;
              });
          res = httplib::Response();
          serve(req, res, kNoBody);
          return httplib::Server::HandlerResponse::Handled;
        }
        res.set_header("Connection", "close");
        if (res.status == 400)
          res.set_content("Bad request: malformed request line, or a header line over 8 KiB\n",
                          "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }));
}

}  // namespace filesync::emulator
