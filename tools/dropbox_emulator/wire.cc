// Error summaries follow the tag chain: a member's value under its own tag name, or (for
// struct members such as UploadWriteFailed) the first nested field that is itself a union.
#include "dropbox_emulator/wire.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdio>

#include "util/unicode.h"

namespace filesync::emulator {
namespace {

void AppendTags(const nlohmann::json& u, std::string* out) {
  if (!u.is_object()) return;
  auto tag = u.find(".tag");
  if (tag == u.end() || !tag->is_string()) return;
  const std::string name = tag->get<std::string>();
  *out += name;
  *out += '/';
  auto same = u.find(name);
  if (same != u.end() && same->is_object() && same->contains(".tag")) {
    AppendTags(*same, out);
    return;
  }
  for (auto it = u.begin(); it != u.end(); ++it) {
    if (it.key() != ".tag" && it->is_object() && it->contains(".tag")) {
      AppendTags(*it, out);
      return;
    }
  }
}

std::string TypeName(const nlohmann::json& v) { return v.type_name(); }

}  // namespace

Reply Reply::Json(const nlohmann::json& value, int status) {
  Reply r;
  r.status = status;
  r.body = value.dump();
  return r;
}

Reply Reply::Text(int status, std::string text) {
  Reply r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(text);
  return r;
}

Reply Reply::RouteError(const nlohmann::json& error) {
  return Json({{"error_summary", ErrorSummary(error)}, {"error", error}}, 409);
}

Reply Reply::Auth(const std::string& tag) {
  const nlohmann::json error = Tag(tag);
  return Json({{"error_summary", ErrorSummary(error)}, {"error", error}}, 401);
}

Reply Reply::RateLimited(const std::string& reason, int retry_after_header,
                         std::optional<int> retry_after_json) {
  nlohmann::json error = {{"reason", Tag(reason)}};
  if (retry_after_json) error["retry_after"] = *retry_after_json;
  Reply r = Json({{"error_summary", reason + "/" + std::string(1, '.')}, {"error", error}}, 429);
  r.headers.emplace_back("Retry-After", std::to_string(retry_after_header));
  return r;
}

std::string ErrorSummary(const nlohmann::json& error) {
  static std::atomic<unsigned> counter{0};
  std::string out;
  AppendTags(error, &out);
  out.append(1 + counter.fetch_add(1) % 3, '.');
  return out;
}

nlohmann::json Tag(const std::string& tag) { return {{".tag", tag}}; }

nlohmann::json Tagged(const std::string& tag, nlohmann::json value) {
  nlohmann::json j = {{".tag", tag}};
  j[tag] = std::move(value);
  return j;
}

ArgReader::ArgReader(const nlohmann::json& value, std::string where)
    : value_(value), where_(std::move(where)) {
  if (!value_.is_object()) Fail("expected an object, got " + TypeName(value_));
}

void ArgReader::Fail(const std::string& message) {
  if (error_.empty()) error_ = where_ + ": " + message;
}

void ArgReader::Merge(const ArgReader& nested) {
  if (error_.empty() && !nested.error_.empty()) error_ = nested.error_;
}

const nlohmann::json* ArgReader::Find(const char* name, bool required) {
  known_.emplace_back(name);
  if (!value_.is_object()) return nullptr;
  auto it = value_.find(name);
  if (it == value_.end() || it->is_null()) {
    if (required) Fail(std::string("missing required field '") + name + "'");
    return nullptr;
  }
  return &*it;
}

std::optional<std::string> ArgReader::String(const char* name, bool required) {
  const nlohmann::json* v = Find(name, required);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) {
    Fail(std::string("'") + name + "': expected string, got " + TypeName(*v));
    return std::nullopt;
  }
  return v->get<std::string>();
}

bool ArgReader::Bool(const char* name, bool default_value) {
  const nlohmann::json* v = Find(name, false);
  if (v == nullptr) return default_value;
  if (!v->is_boolean()) {
    Fail(std::string("'") + name + "': expected boolean, got " + TypeName(*v));
    return default_value;
  }
  return v->get<bool>();
}

std::optional<std::uint64_t> ArgReader::UInt(const char* name, bool required,
                                             std::uint64_t min_value, std::uint64_t max_value) {
  const nlohmann::json* v = Find(name, required);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<std::int64_t>() >= 0)) {
    Fail(std::string("'") + name + "': expected unsigned integer, got " + v->dump());
    return std::nullopt;
  }
  const auto n = v->get<std::uint64_t>();
  if (n < min_value || n > max_value) {
    Fail(std::string("'") + name + "': " + std::to_string(n) + " is out of range [" +
         std::to_string(min_value) + ", " + std::to_string(max_value) + "]");
    return std::nullopt;
  }
  return n;
}

const nlohmann::json* ArgReader::Raw(const char* name, bool required) {
  return Find(name, required);
}

std::optional<std::string> ArgReader::VoidUnion(const char* name, bool required,
                                                const std::vector<std::string>& tags) {
  const nlohmann::json* v = Find(name, required);
  if (v == nullptr) return std::nullopt;
  std::string tag;
  if (v->is_string()) {
    tag = v->get<std::string>();
  } else if (v->is_object() && v->size() == 1 && v->contains(".tag") && (*v)[".tag"].is_string()) {
    tag = (*v)[".tag"].get<std::string>();
  } else {
    Fail(std::string("'") + name + "': expected a union tag, got " + v->dump());
    return std::nullopt;
  }
  if (std::find(tags.begin(), tags.end(), tag) == tags.end()) {
    Fail(std::string("'") + name + "': unknown tag '" + tag + "'");
    return std::nullopt;
  }
  return tag;
}

bool ArgReader::Finish() {
  if (!error_.empty() || !value_.is_object()) return error_.empty();
  for (auto it = value_.begin(); it != value_.end(); ++it) {
    if (std::find(known_.begin(), known_.end(), it.key()) == known_.end()) {
      Fail("unknown field '" + it.key() + "'");
      break;
    }
  }
  return error_.empty();
}

namespace {

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Decimal digits only, saturating at the largest uint64 (a huge position is still past any end).
std::optional<std::uint64_t> ParseDigits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  return v;
}

}  // namespace

ByteRange ResolveRange(std::string_view header, std::uint64_t size) {
  const ByteRange whole{ByteRange::Kind::kWhole, 0, size};
  const ByteRange unsatisfiable{ByteRange::Kind::kUnsatisfiable, 0, 0};
  header = TrimOws(header);
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() < kUnit.size() ||
      !std::equal(kUnit.begin(), kUnit.end(), header.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return whole;
  }
  const std::string_view spec = TrimOws(header.substr(kUnit.size()));
  const auto dash = spec.find('-');
  if (spec.find(',') != std::string_view::npos || dash == std::string_view::npos) return whole;
  const std::string_view a = spec.substr(0, dash);
  const std::string_view b = spec.substr(dash + 1);
  const auto first = ParseDigits(a);
  const auto last = ParseDigits(b);
  if ((!a.empty() && !first) || (!b.empty() && !last) || (!first && !last)) return whole;
  if (!first) {  // "-n": the last n bytes
    if (*last == 0 || size == 0) return unsatisfiable;
    const std::uint64_t n = std::min(*last, size);
    return {ByteRange::Kind::kPartial, size - n, n};
  }
  if (last && *last < *first) return whole;  // syntactically invalid: ignored (§2.1)
  if (*first >= size) return unsatisfiable;
  const std::uint64_t end = last ? std::min(*last, size - 1) : size - 1;
  return {ByteRange::Kind::kPartial, *first, end - *first + 1};
}

std::string FormatTimestamp(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  // Not strftime: its %Y does not pad years before 1000 to the four digits the format has.
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<std::time_t> ParseTimestamp(std::string_view s) {
  // Exactly YYYY-MM-DDTHH:MM:SSZ.
  if (s.size() != 20) return std::nullopt;
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:ddZ";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (kShape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != kShape[i]) return std::nullopt;
  }
  auto num = [&](std::size_t pos, std::size_t len) {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(14, 2);
  tm.tm_sec = num(17, 2);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 59) {  // no leap seconds: ":60" would come back as the next minute
    return std::nullopt;
  }
  const std::tm in = tm;
  const std::time_t t = timegm(&tm);
  if (tm.tm_mday != in.tm_mday || tm.tm_mon != in.tm_mon) return std::nullopt;  // Feb 30 etc.
  return t;
}

bool MatchesPathPattern(std::string_view path, PathAlias alias) {
  auto starts = [&](std::string_view p) { return path.substr(0, p.size()) == p; };
  auto ns_ok = [&] {
    if (!starts("ns:")) return false;
    std::size_t i = 3;
    const std::size_t digits_start = i;
    while (i < path.size() && path[i] >= '0' && path[i] <= '9') ++i;
    if (i == digits_start) return false;
    return i == path.size() || path[i] == '/';
  };
  const bool slash = starts("/");
  switch (alias) {
    case PathAlias::kReadPath: {
      if (slash || starts("id:") || ns_ok()) return true;
      if (!starts("rev:") || path.size() < 4 + 9) return false;
      return std::all_of(path.begin() + 4, path.end(),
                         [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    }
    case PathAlias::kPathROrId:
      return path.empty() || slash || starts("id:") || ns_ok();
    case PathAlias::kWritePath:
      return slash || ns_ok();
    case PathAlias::kWritePathOrId:
      return slash || ns_ok() || starts("id:");
  }
  return false;
}

std::string WithoutExtraLeadingSlashes(std::string_view path) {
  const auto first = path.find_first_not_of('/');
  if (first == std::string_view::npos || first < 2) return std::string(path);
  return std::string(path.substr(first - 1));
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::optional<std::string> DecodeWith(std::string_view data, bool url) {
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : data) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == (url ? '-' : '+'))
      v = 62;
    else if (c == (url ? '_' : '/'))
      v = 63;
    else if (c == '=')
      break;
    else
      return std::nullopt;
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFFu));
    }
  }
  return out;
}
}  // namespace

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : data) {
    buf = (buf << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64[(buf >> bits) & 0x3Fu]);
    }
  }
  if (bits > 0) out.push_back(kB64[(buf << (6 - bits)) & 0x3Fu]);
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view data) { return DecodeWith(data, true); }
std::optional<std::string> Base64Decode(std::string_view data) { return DecodeWith(data, false); }

bool IsUtf8HeaderValue(std::string_view s) {
  const bool no_controls = std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7F);
  });
  return no_controls && unicode::IsValidUtf8(s);
}

bool IsHeaderSafe(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u < 0x7F);
  });
}

}  // namespace filesync::emulator
