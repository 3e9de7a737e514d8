// The 409 classification looks at the whole tag chain, innermost tag first, because the
// meaningful tag sits at different depths per route (path/not_found, path_lookup/not_found,
// lookup_failed/incorrect_offset, too_many_write_operations at the top level).
#include "cloud/dropbox/errors.h"

#include <charconv>

namespace filesync::dropbox {

namespace {

constexpr std::size_t kMaxBodyInMessage = 300;

std::string Shorten(std::string_view text) {
  std::string out(text.substr(0, kMaxBodyInMessage));
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (text.size() > kMaxBodyInMessage) out += "...";
  return out;
}

bool IsJson(const HttpResponse& response) {
  const auto type = response.headers.Get("Content-Type");
  return type && type->find("json") != std::string_view::npos;
}

Status::Kind KindForTag(std::string_view tag) {
  using K = Status::Kind;
  if (tag == "too_many_write_operations") return K::kRateLimited;
  if (tag == "not_found" || tag == "reset") return K::kNotFound;
  if (tag == "conflict" || tag == "incorrect_offset" || tag == "locked") return K::kConflict;
  if (tag == "malformed_path" || tag == "disallowed_name" || tag == "not_closed" ||
      tag == "closed" || tag.starts_with("concurrent_session_") || tag == "invalid_async_job_id" ||
      tag == "length_mismatch") {
    return K::kInvalidArgument;
  }
  if (tag == "content_hash_mismatch") return K::kChanged;
  if (tag == "internal_error") return K::kTransient;
  return K::kOk;  // not decisive at this level
}

std::string JoinTags(const std::vector<std::string>& tags) {
  std::string out;
  for (const auto& t : tags) {
    if (!out.empty()) out += '/';
    out += t;
  }
  return out;
}

Status MakeStatus(Status::Kind kind, std::string message) {
  using K = Status::Kind;
  switch (kind) {
    case K::kNotFound:
      return Status::NotFound(std::move(message));
    case K::kConflict:
      return Status::Conflict(std::move(message));
    case K::kRateLimited:
      return Status::RateLimited(std::move(message), std::chrono::milliseconds(0));
    case K::kTransient:
      return Status::Transient(std::move(message));
    case K::kAuth:
      return Status::Auth(std::move(message));
    case K::kInvalidArgument:
      return Status::InvalidArgument(std::move(message));
    case K::kChanged:
      return Status::Changed(std::move(message));
    default:
      return Status::Permanent(std::move(message));
  }
}

// A 429: too_many_requests, unless a JSON body says too_many_write_operations (a non-JSON body
// means too_many_requests, reference §2.3); a JSON retry_after longer than the header wins.
void ReadRateLimit(const HttpResponse& response, ApiError& out) {
  out.rate_reason = RateReason::kTooManyRequests;
  if (IsJson(response) && out.error.is_object()) {
    if (auto reason = out.error.find("reason"); reason != out.error.end()) {
      out.tags = UnionTags(*reason);
      if (!out.tags.empty() && out.tags.front() == "too_many_write_operations") {
        out.rate_reason = RateReason::kTooManyWriteOperations;
      }
    }
    if (auto ra = out.error.find("retry_after");
        ra != out.error.end() && ra->is_number_integer() && ra->get<std::int64_t>() >= 0) {
      const auto json_ms = std::chrono::milliseconds(ra->get<std::int64_t>() * 1000);
      if (!out.retry_after || json_ms > *out.retry_after) out.retry_after = json_ms;
    }
  }
  if (out.tags.empty()) out.tags = {"too_many_requests"};
}

// The Status of a non-2xx answer (the table in docs/dropbox.md), with the tags it carries.
// `message` words a failure with the route, status, summary and request id.
template <typename Message>
Status StatusOf(const HttpResponse& response, ApiError& out, const Message& message) {
  const long code = response.status;
  if (code == 400) {
    out.unknown_route = response.body.find("Unknown API function") != std::string::npos ||
                        response.body.find("Unknown API endpoint") != std::string::npos;
    return Status::InvalidArgument(message("bad request: " + Shorten(response.body)));
  }
  if (code == 401 || code == 403 || code == 422 || code == 409) out.tags = UnionTags(out.error);
  if (code == 401) {
    out.expired_token = out.Has("expired_access_token");
    return Status::Auth(message(out.tags.empty() ? "unauthorized" : out.TagPath()));
  }
  if (code == 403 || code == 422)
    return Status::Permanent(message(out.tags.empty() ? "forbidden" : out.TagPath()));
  if (code == 409) {
    Status s = StatusFromErrorUnion(out.error, message("endpoint error"));
    if (s.kind() == Status::Kind::kRateLimited)
      out.rate_reason = RateReason::kTooManyWriteOperations;
    return s;
  }
  if (code == 429) {
    ReadRateLimit(response, out);
    return Status::RateLimited(message(out.TagPath()),
                               out.retry_after.value_or(std::chrono::milliseconds(0)));
  }
  if (code >= 500 && code <= 599) {
    Status s = Status::Transient(message("server error: " + Shorten(response.body)));
    if (out.retry_after) s.set_retry_after(*out.retry_after);
    return s;
  }
  out.unknown_route = code == 404;
  return Status::Permanent(message("unexpected response: " + Shorten(response.body)));
}

}  // namespace

bool ApiError::Has(std::string_view tag) const {
  for (const auto& t : tags) {
    if (t == tag) return true;
  }
  return false;
}

std::string ApiError::TagPath() const { return JoinTags(tags); }

std::vector<std::string> UnionTags(const nlohmann::json& value) {
  std::vector<std::string> tags;
  const nlohmann::json* node = &value;
  while (node != nullptr && tags.size() < 8) {
    if (node->is_string()) {  // a Void member sent in short form
      tags.push_back(node->get<std::string>());
      break;
    }
    if (!node->is_object()) break;
    auto tag = node->find(".tag");
    if (tag == node->end() || !tag->is_string()) break;
    const std::string name = tag->get<std::string>();
    tags.push_back(name);
    const nlohmann::json* next = nullptr;
    if (auto member = node->find(name);
        member != node->end() && (member->is_object() || member->is_string())) {
      next = &*member;
    } else {
      for (auto it = node->begin(); it != node->end(); ++it) {
        if (it.key() != ".tag" && it->is_object() && it->contains(".tag")) {
          next = &*it;
          break;
        }
      }
    }
    node = next;
  }
  return tags;
}

Status StatusFromErrorUnion(const nlohmann::json& value, std::string_view context) {
  const std::vector<std::string> tags = UnionTags(value);
  Status::Kind kind = Status::Kind::kPermanent;
  for (auto it = tags.rbegin(); it != tags.rend(); ++it) {
    if (const Status::Kind k = KindForTag(*it); k != Status::Kind::kOk) {
      kind = k;
      break;
    }
  }
  return MakeStatus(
      kind, std::string(context) + ": " + (tags.empty() ? "unknown error" : JoinTags(tags)));
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view header) {
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  long long seconds = 0;
  const auto [end, ec] = std::from_chars(header.data(), header.data() + header.size(), seconds);
  if (ec != std::errc() || end != header.data() + header.size() || seconds < 0) return std::nullopt;
  return std::chrono::milliseconds(seconds * 1000);
}

std::optional<std::uint64_t> CorrectOffset(const nlohmann::json& value) {
  if (!value.is_object()) return std::nullopt;
  if (auto it = value.find("correct_offset");
      it != value.end() && it->is_number_integer() && it->get<std::int64_t>() >= 0) {
    return it->get<std::uint64_t>();
  }
  for (const auto& member : value) {
    if (member.is_object()) {
      if (auto found = CorrectOffset(member)) return found;
    }
  }
  return std::nullopt;
}

ApiError ClassifyResponse(const HttpResponse& response, std::string_view route) {
  ApiError out;
  out.http_status = response.status;
  if (auto id = response.headers.Get("X-Dropbox-Request-Id")) out.request_id = std::string(*id);

  nlohmann::json body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  std::string summary;
  if (body.is_object()) {
    if (auto it = body.find("error"); it != body.end()) out.error = *it;
    if (auto it = body.find("error_summary"); it != body.end() && it->is_string())
      summary = it->get<std::string>();
  }
  auto message = [&](std::string_view what) {
    std::string m =
        std::string(route) + ": HTTP " + std::to_string(response.status) + " " + std::string(what);
    if (!summary.empty()) m += " (" + summary + ")";
    if (!out.request_id.empty()) m += " [request id " + out.request_id + "]";
    return m;
  };
  if (auto header = response.headers.Get("Retry-After")) out.retry_after = ParseRetryAfter(*header);
  out.status = StatusOf(response, out, message);
  return out;
}

}  // namespace filesync::dropbox
