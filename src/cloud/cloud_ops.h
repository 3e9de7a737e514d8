// What the backends report to, and ask of, the operations layer (ops/), without depending on it:
//
//   Throttle         asked before each piece of a transfer is sent (the bwlimit: Dropbox upload
//                    bodies, the local backend's copies), shared by every worker and backend.
//   RequestObserver  told of every cloud request's outcome and every rate-limit answer (the
//                    filesync_http_* metrics). `route` is the backend's name for the call
//                    ("files/upload", "local/copy"); never a file name.
// Both are optional: a backend given none sends at full speed and reports nothing.
// Thread safety: implementations must accept calls from any thread at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "util/status.h"

namespace filesync::cloud {

class Throttle {
 public:
  virtual ~Throttle() = default;
  // Blocks until `bytes` may be sent; Ok, or kCancelled once *cancel (may be null) is true.
  virtual Status Acquire(std::uint64_t bytes, const std::atomic<bool>* cancel) = 0;
};

class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  // A request got an answer with this HTTP status, or none at all (http_status 0).
  virtual void Answered(std::string_view route, long http_status) = 0;
  // A request was rate limited: `reason` is Dropbox's ("too_many_requests",
  // "too_many_write_operations") or "http_503"; the server asked to wait `retry_after_seconds`
  // (0 when it did not say).
  virtual void RateLimited(std::string_view route, std::string_view reason,
                           double retry_after_seconds) = 0;
};

}  // namespace filesync::cloud
