// Maps Dropbox HTTP error responses and error-union values to Status (reference §2, §11).
//
//   400            -> kInvalidArgument (the plain-text body is kept in the message)
//   401            -> kAuth; expired_token is set for expired_access_token (refresh, retry once)
//   403, 422       -> kPermanent
//   409            -> by the route's error union, walked tag by tag (see StatusFromErrorUnion)
//   429            -> kRateLimited, reason and retry_after from the JSON body / Retry-After
//   5xx            -> kTransient (retry_after set when a Retry-After header came with it)
//   anything else  -> kPermanent
// Messages carry the route, the error_summary and X-Dropbox-Request-Id; never a token.
// Pure functions, thread-safe.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/dropbox/http_client.h"
#include "util/status.h"

namespace filesync::dropbox {

enum class RateReason { kNone, kTooManyRequests, kTooManyWriteOperations };

struct ApiError {
  Status status;
  long http_status = 0;
  // Tag chain of the error union, outermost first: {"path", "conflict", "folder"} for
  // {".tag":"path","path":{".tag":"conflict","conflict":{".tag":"folder"}}}. For 401 the
  // AuthError tag, for 429 the RateLimitError reason.
  std::vector<std::string> tags;
  nlohmann::json error;  // the "error" member of a JSON error body (null otherwise)
  RateReason rate_reason = RateReason::kNone;
  std::optional<std::chrono::milliseconds> retry_after;
  bool expired_token = false;
  // The server does not know the route (HTTP 404, or a 400 "Unknown API function"): an older
  // server or an API proxy without an optional route.
  bool unknown_route = false;
  std::string request_id;

  [[nodiscard]] bool Has(std::string_view tag) const;
  // "path/conflict/folder"
  [[nodiscard]] std::string TagPath() const;
};

// Classifies a response whose status is not 2xx. `route` is used in messages only.
ApiError ClassifyResponse(const HttpResponse& response, std::string_view route);

// Tag chain of an error-union value. Follows, at each level, the member named like the tag, or
// else the first member that is itself a union (UploadWriteFailed keeps its WriteError in
// "reason"): {".tag":"path","reason":{".tag":"conflict",...}} -> {"path","conflict",...}.
std::vector<std::string> UnionTags(const nlohmann::json& value);

// Status for an error-union value (a 409 "error" member or a batch entry's "failure"):
//   too_many_write_operations -> kRateLimited (no retry_after: back off)
//   not_found, reset -> kNotFound;  conflict, incorrect_offset, locked -> kConflict
//   malformed_path, disallowed_name, concurrent_session_* , not_closed, closed -> kInvalidArgument
//   content_hash_mismatch -> kChanged;  internal_error -> kTransient
//   insufficient_space, no_write_permission, access_restricted, ... and anything unknown ->
//   kPermanent
Status StatusFromErrorUnion(const nlohmann::json& value, std::string_view context);

// Seconds in a Retry-After header ("7"); HTTP dates and garbage give nullopt.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view header);

// The correct_offset carried by an incorrect_offset error anywhere in the union, if any.
std::optional<std::uint64_t> CorrectOffset(const nlohmann::json& value);

}  // namespace filesync::dropbox
