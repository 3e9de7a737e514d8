// Wire format helpers for the Dropbox API emulator: replies (JSON, plain-text 400, 409 route
// errors with error_summary, 401, 429), strict argument reading (unknown fields and wrong types
// are 400s, as on Dropbox), Void-union parsing, timestamps, path-pattern checks, base64url.
//
// Everything here is stateless apart from ArgReader, which is a per-request value.
// Thread-safe.
#pragma once

#include <cstdint>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace filesync::emulator {

// What a handler answers. A download sets file_path (streamed from disk) instead of body.
struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string file_path;
  std::uint64_t file_size = 0;

  static Reply Json(const nlohmann::json& value, int status = 200);
  // Plain-text reply (400 bad input, 500/503 faults).
  static Reply Text(int status, std::string text);
  // 409 {error_summary, error} for a value of the route's error union.
  static Reply RouteError(const nlohmann::json& error);
  // 401 {error_summary, error:{".tag":tag}} (an AuthError).
  static Reply Auth(const std::string& tag);
  // 429 RateLimitError with a Retry-After header. retry_after_json adds "retry_after" to the
  // JSON (Dropbox leaves it out for too_many_write_operations).
  static Reply RateLimited(const std::string& reason, int retry_after_header,
                           std::optional<int> retry_after_json);
};

// "path/conflict/file/" followed by 1-3 dots: the union's tag path, as Dropbox builds it.
std::string ErrorSummary(const nlohmann::json& error);

// {".tag": tag}
nlohmann::json Tag(const std::string& tag);
// {".tag": tag, tag: value} (a union member whose type is a union, primitive or list).
nlohmann::json Tagged(const std::string& tag, nlohmann::json value);

// Reads the fields of one JSON object argument. Every accessor records the field as known;
// Finish() then rejects any field that was never asked for. The first problem is kept in
// error() (the accessors return defaults afterwards), so a handler reads all fields and checks
// once. A null optional field counts as absent.
class ArgReader {
 public:
  // `where` prefixes messages ("request body", "entries[3].commit", ...). `value` must
  // outlive the reader.
  ArgReader(const nlohmann::json& value, std::string where);
  ArgReader(nlohmann::json&&, std::string) = delete;

  std::optional<std::string> String(const char* name, bool required);
  bool Bool(const char* name, bool default_value);
  std::optional<std::uint64_t> UInt(const char* name, bool required, std::uint64_t min_value,
                                    std::uint64_t max_value);
  // Raw member (any JSON type) for unions and nested structs; nullptr if absent.
  const nlohmann::json* Raw(const char* name, bool required);
  // A Void-only union given as "tag" or {".tag":"tag"}; must be one of `tags`.
  std::optional<std::string> VoidUnion(const char* name, bool required,
                                       const std::vector<std::string>& tags);

  void Fail(const std::string& message);
  // Adopts another reader's error (for nested structs).
  void Merge(const ArgReader& nested);
  // Checks for unknown fields; true if the argument was acceptable.
  bool Finish();
  [[nodiscard]] bool ok() const { return error_.empty(); }
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  const nlohmann::json* Find(const char* name, bool required);

  const nlohmann::json& value_;
  std::string where_;
  std::vector<std::string> known_;
  std::string error_;
};

// "%Y-%m-%dT%H:%M:%SZ" in UTC.
std::string FormatTimestamp(std::time_t t);
// Strict parse of the same format; nullopt when it does not match exactly.
std::optional<std::time_t> ParseTimestamp(std::string_view s);

// The .stone path aliases, checked against their patterns (a mismatch is a 400).
enum class PathAlias { kReadPath, kPathROrId, kWritePath, kWritePathOrId };
bool MatchesPathPattern(std::string_view path, PathAlias alias);

std::string Base64UrlEncode(std::string_view data);
std::optional<std::string> Base64UrlDecode(std::string_view data);
// Standard base64 (for HTTP Basic auth).
std::optional<std::string> Base64Decode(std::string_view data);

// True if every byte is printable ASCII or tab (what Dropbox accepts in Dropbox-API-Arg).
bool IsHeaderSafe(std::string_view s);

}  // namespace filesync::emulator
