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

// What a handler answers. A download sets file_path instead of body: file_size bytes from
// file_offset are streamed from disk.
struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string file_path;
  std::uint64_t file_offset = 0;
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

// What a Range request header asks of a `size`-byte file (RFC 7233 §2.1, §3.1, §4.4). One
// byte-range-spec ("bytes=a-b", "bytes=a-", "bytes=-n") selects [first, first+length), the end
// clamped to the file; one that starts at or past the end (or a zero suffix, or any range of an
// empty file) is unsatisfiable. No header, another unit, a syntactically invalid set, or more
// than one range selects the whole file (a server may ignore Range; the emulator does not send
// multipart/byteranges).
struct ByteRange {
  enum class Kind { kWhole, kPartial, kUnsatisfiable };
  Kind kind = Kind::kWhole;
  std::uint64_t first = 0;
  std::uint64_t length = 0;
};
ByteRange ResolveRange(std::string_view header, std::uint64_t size);

// "%Y-%m-%dT%H:%M:%SZ" in UTC.
std::string FormatTimestamp(std::time_t t);
// Strict parse of the same format; nullopt when it does not match exactly.
std::optional<std::time_t> ParseTimestamp(std::string_view s);

// The .stone path aliases, checked against their patterns (a mismatch is a 400).
enum class PathAlias { kReadPath, kPathROrId, kWritePath, kWritePathOrId };
bool MatchesPathPattern(std::string_view path, PathAlias alias);

// "//a/b" -> "/a/b": a run of slashes at the start counts as one. The .stone patterns allow it
// and Dropbox serves it (rclone sends "//dir" to list_folder for every folder below a remote
// rooted at "/"). Slashes further in are left alone, so "/a//b" stays malformed_path. A path of
// slashes only is returned unchanged (it ends with '/', so it is malformed).
std::string WithoutExtraLeadingSlashes(std::string_view path);

std::string Base64UrlEncode(std::string_view data);
std::optional<std::string> Base64UrlDecode(std::string_view data);
// Standard base64 (for HTTP Basic auth).
std::optional<std::string> Base64Decode(std::string_view data);

// True if every byte is printable ASCII or tab: Dropbox-API-Arg as the JSON-encoding page asks
// clients to send it (reference §1.4).
bool IsHeaderSafe(std::string_view s);
// True if `s` is valid UTF-8 with no control character but tab and no DEL: raw UTF-8 in
// Dropbox-API-Arg, which Dropbox accepts (rclone 1.60 sends it) although §1.4 asks for escapes.
bool IsUtf8HeaderValue(std::string_view s);

}  // namespace filesync::emulator
