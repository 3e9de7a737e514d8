// HTTP transport for the Dropbox backend: a plain request/response interface (HttpTransport)
// and its libcurl implementation. libcurl appears in no header.
//
// Promises of the curl transport (MakeCurlTransport):
//  - TLS peer and host verification are always on; HttpClientOptions::ca_file adds a CA bundle
//    to trust (tests against a loopback server with its own certificate).
//  - HTTP/2 is negotiated over TLS where the server offers it; plain http stays HTTP/1.1.
//  - Connections, DNS answers and TLS sessions are reused across requests and threads.
//  - A connect takes at most 30 s; a transfer slower than low_speed_limit bytes/s for
//    low_speed_time is aborted; HttpRequest::timeout bounds the whole request (0: no bound).
//  - Any HTTP status is a successful Send(); network failures come back as kTransient, TLS
//    verification failures as kPermanent. Request headers (Authorization) are never logged.
//  - A request whose HttpRequest::cancel is set while it runs is abandoned within about a
//    second (kCancelled).
//  - With HttpClientOptions::throttle, a request body is sent only as fast as the throttle
//    grants it (the bwlimit); with `observer`, every request's outcome and every rate-limit
//    answer is reported under its route (the URL path after "/2/", e.g. "files/upload").
// Thread-safe: Send() may be called from many threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cloud/cloud_ops.h"
#include "util/status.h"

namespace filesync::dropbox {

// An ordered header list with case-insensitive lookup.
class HttpHeaders {
 public:
  void Add(std::string name, std::string value);
  // Replaces every header called `name` (any case) by one with `value`.
  void Set(std::string name, std::string value);
  // The first header called `name` (any case), or nullopt.
  [[nodiscard]] std::optional<std::string_view> Get(std::string_view name) const;
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& items() const {
    return items_;
  }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  HttpHeaders headers;
  // The whole body. File chunks are buffered because their content_hash must be in a header
  // before the body starts, so a streaming source would read every byte twice.
  std::string body;
  std::chrono::seconds timeout{120};  // whole request; 0 means no bound (low-speed abort only)
  // Close the connection afterwards instead of reusing it: for a request the server may refuse
  // before reading its body, which some servers then leave unread on the connection.
  bool close_connection_after = false;
  // Set (by a stop request) while the request runs: it is abandoned, its connection closed, and
  // Send() returns kCancelled. May be null.
  const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;
  std::string body;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Performs one request. A response with any status is ok(); no response at all is kTransient.
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

// How a failed TLS verification's message starts (kPermanent).
inline constexpr std::string_view kTlsVerificationFailed = "TLS verification failed";

struct HttpClientOptions {
  std::string ca_file;  // extra CA bundle (PEM); "" uses the system store only
  std::string user_agent = "filesync/0.1";
  std::chrono::seconds connect_timeout{30};
  long low_speed_limit = 1024;                 // bytes/s ...
  std::chrono::seconds low_speed_time{60};     // ... for this long aborts the transfer
  cloud::Throttle* throttle = nullptr;         // outlives the transport; null: full speed
  cloud::RequestObserver* observer = nullptr;  // outlives the transport; null: none
};

std::shared_ptr<HttpTransport> MakeCurlTransport(HttpClientOptions options);

// application/x-www-form-urlencoded / URL query escaping of one value (RFC 3986 unreserved kept).
std::string UrlEncode(std::string_view value);

}  // namespace filesync::dropbox
