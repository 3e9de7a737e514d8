// How: one key table (kKeys) maps every key to a converter (TOML node or environment string ->
// Config field) and a formatter (Config field -> TOML text). Load() parses each file with toml++,
// applies its entries in file order through the table, then the FILESYNC_<KEY> variables, fills
// the path defaults and runs Validate(). Conversion rejects values of the wrong shape (types,
// syntax); Validate() checks ranges and the relations between keys, so a Config built by hand is
// held to the same rules. Every message is assembled by Fail(), which forces a single line.
#include "config/config.h"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include "core/rel_path.h"
#include "plan/names.h"
#include "util/unicode.h"

namespace filesync::config {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kChunkQuantum = 4 * kMiB;
// Dropbox refuses upload requests over 150 MiB; 148 MiB is the largest multiple of 4 MiB that,
// with headers, stays under it.
constexpr std::uint64_t kMaxChunkSize = 148 * kMiB;
constexpr int kMaxWorkers = 64;
// Beyond this a duration is a typo, and it keeps every seconds value far from overflow.
constexpr std::int64_t kMaxDurationSeconds = std::int64_t{100} * 365 * 24 * 3600;
constexpr std::size_t kMaxShownValue = 160;
constexpr std::string_view kRedacted = "<redacted>";
constexpr std::string_view kEnvPrefix = "FILESYNC_";
constexpr std::string_view kEnvOriginPrefix = "environment ";
constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};

// ---------------------------------------------------------------------------------------------
// Message helpers

// Replaces anything that could break the one-line promise (newlines, other control bytes).
std::string SingleLine(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return s;
}

[[noreturn]] void FailFile(std::string_view where, std::string_view problem, std::string_view fix) {
  throw ConfigError(
      SingleLine(std::string(where) + ": " + std::string(problem) + "; " + std::string(fix)));
}

[[noreturn]] void Fail(std::string_view where, std::string_view key, std::string_view value,
                       std::string_view problem, std::string_view fix) {
  throw ConfigError(SingleLine(std::string(where) + ": key '" + std::string(key) +
                               "' = " + std::string(value) + ": " + std::string(problem) + "; " +
                               std::string(fix)));
}

// A TOML basic string: quotes, with backslash escapes for quotes, backslashes and control bytes.
std::string Quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string Shorten(std::string s) {
  if (s.size() > kMaxShownValue) {
    s.resize(kMaxShownValue - 3);
    s += "...";
  }
  return s;
}

std::string QuoteList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += Quote(items[i]);
  }
  return out + "]";
}

std::string QuotePaths(const std::vector<fs::path>& paths) {
  std::vector<std::string> items;
  items.reserve(paths.size());
  for (const fs::path& p : paths) items.push_back(p.string());
  return QuoteList(items);
}

std::string RenderNode(const toml::node& node) {
  if (const auto* s = node.as_string()) return Quote(s->get());
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* a = node.as_array()) {
    std::string out = "[";
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (i > 0) out += ", ";
      out += RenderNode(*a->get(i));
    }
    return out + "]";
  }
  if (node.is_table()) return "{...}";
  std::ostringstream out;  // floats, dates and times: toml++ prints them as TOML
  node.visit([&out](const auto& v) { out << v; });
  return out.str();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string EnvName(std::string_view key) { return std::string(kEnvPrefix) + Upper(key); }

bool IsEnvOrigin(std::string_view origin) { return origin.starts_with(kEnvOriginPrefix); }

std::optional<std::string> GetEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// ---------------------------------------------------------------------------------------------
// Paths

// Lexically normal, without a trailing slash ("/a/b/" and "/a/./b" -> "/a/b"); "/" stays "/".
fs::path Normal(const fs::path& p) {
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return fs::path(s);
}

// Follows symlinks where the path exists, so that aliases of one directory compare equal.
fs::path Resolved(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(p, ec);
  return ec ? Normal(p) : Normal(r);
}

// True if `inner` equals `outer` or lies below it (both normal and absolute).
bool IsWithin(const fs::path& inner, const fs::path& outer) {
  auto o = outer.begin();
  auto i = inner.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

// Within either as written or after resolving symlinks.
bool IsWithinAnyway(const fs::path& inner, const fs::path& outer) {
  return IsWithin(Normal(inner), Normal(outer)) || IsWithin(Resolved(inner), Resolved(outer));
}

// "~" and "~/x" -> $HOME and $HOME/x, so paths in a shared config can stay user-neutral.
fs::path ExpandHome(const std::string& s) {
  if (s == "~" || s.starts_with("~/")) {
    if (auto home = GetEnv("HOME"); home && !home->empty()) return fs::path(*home + s.substr(1));
  }
  return fs::path(s);
}

// ---------------------------------------------------------------------------------------------
// The key table

// One value from one source before conversion: a TOML node or the text of an environment
// variable, plus where it came from ("config/dev.toml", "environment FILESYNC_WORKERS").
struct Raw {
  const toml::node* node = nullptr;
  std::string text;
  std::string origin;
};

struct KeySpec {
  std::string_view name;
  bool secret;
  std::string_view example;      // a good TOML line, for fix hints
  std::string_view env_example;  // a good environment value, for fix hints
  void (*apply)(const KeySpec& spec, Config& config, const Raw& raw);
  std::string (*format)(const Config& config);  // the field as a TOML value, unredacted
};

std::string Example(const KeySpec& spec, std::string_view origin) {
  if (IsEnvOrigin(origin))
    return "e.g. " + EnvName(spec.name) + "=" + std::string(spec.env_example);
  return "e.g. " + std::string(spec.example);
}

std::string Shown(const KeySpec& spec, const Raw& raw) {
  if (spec.secret) return std::string(kRedacted);
  return Shorten(raw.node != nullptr ? RenderNode(*raw.node) : Quote(raw.text));
}

[[noreturn]] void Bad(const KeySpec& spec, const Raw& raw, std::string_view problem) {
  Fail(raw.origin, spec.name, Shown(spec, raw), problem, Example(spec, raw.origin));
}

std::optional<std::int64_t> ParseInt(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string AsString(const KeySpec& spec, const Raw& raw) {
  if (raw.node == nullptr) return raw.text;
  if (const auto* s = raw.node->as_string()) return s->get();
  Bad(spec, raw, "must be a string");
}

std::int64_t AsInteger(const KeySpec& spec, const Raw& raw, std::string_view what) {
  if (raw.node == nullptr) {
    if (auto v = ParseInt(raw.text)) return *v;
    Bad(spec, raw, what);
  }
  if (const auto* i = raw.node->as_integer()) return i->get();
  Bad(spec, raw, what);
}

bool AsBool(const KeySpec& spec, const Raw& raw) {
  if (raw.node == nullptr) {
    const std::string t = Lower(raw.text);
    if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
    if (t == "false" || t == "0" || t == "no" || t == "off") return false;
    Bad(spec, raw, "must be true or false");
  }
  if (const auto* b = raw.node->as_boolean()) return b->get();
  Bad(spec, raw, "must be true or false (a TOML boolean, without quotes)");
}

// TOML: an array of strings. Environment: colon-separated, "" meaning the empty list.
std::vector<std::string> AsStringList(const KeySpec& spec, const Raw& raw) {
  std::vector<std::string> out;
  if (raw.node == nullptr) {
    if (raw.text.empty()) return out;
    std::size_t start = 0;
    while (true) {
      const std::size_t colon = raw.text.find(':', start);
      out.push_back(raw.text.substr(start, colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    return out;
  }
  const auto* array = raw.node->as_array();
  if (array == nullptr) Bad(spec, raw, "must be an array of strings");
  for (std::size_t i = 0; i < array->size(); ++i) {
    const auto* s = array->get(i)->as_string();
    if (s == nullptr) {
      Bad(spec, raw,
          "entry " + std::to_string(i + 1) + " is not a string (must be an array of strings)");
    }
    out.push_back(s->get());
  }
  return out;
}

fs::path AsPath(const KeySpec& spec, const Raw& raw) {
  const std::string s = AsString(spec, raw);
  if (s.empty()) return {};
  return Normal(ExpandHome(s));
}

std::vector<fs::path> AsPathList(const KeySpec& spec, const Raw& raw) {
  std::vector<fs::path> out;
  for (const std::string& s : AsStringList(spec, raw)) {
    out.push_back(s.empty() ? fs::path() : Normal(ExpandHome(s)));
  }
  return out;
}

// Whole seconds, or a string of <number><unit> groups: "45", "30s", "5m", "1h", "1h30m", "2d".
// Range (>= 1) is Validate()'s job; here only the shape.
std::chrono::seconds AsDuration(const KeySpec& spec, const Raw& raw) {
  static constexpr std::string_view kShape =
      "must be whole seconds or a string like \"30s\", \"5m\", \"1h\"";
  std::string text;
  if (raw.node != nullptr) {
    if (const auto* i = raw.node->as_integer()) {
      if (i->get() > kMaxDurationSeconds || i->get() < -kMaxDurationSeconds) {
        Bad(spec, raw, "is out of range (at most 100 years)");
      }
      return std::chrono::seconds(i->get());
    }
    const auto* s = raw.node->as_string();
    if (s == nullptr) Bad(spec, raw, kShape);
    text = s->get();
  } else {
    text = raw.text;
  }
  if (auto plain = ParseInt(text)) {
    if (*plain > kMaxDurationSeconds || *plain < -kMaxDurationSeconds) {
      Bad(spec, raw, "is out of range (at most 100 years)");
    }
    return std::chrono::seconds(*plain);
  }
  std::int64_t total = 0;
  std::size_t pos = 0;
  if (text.empty()) Bad(spec, raw, kShape);
  while (pos < text.size()) {
    const std::size_t digits_end = text.find_first_not_of("0123456789", pos);
    if (digits_end == pos || digits_end == std::string::npos || digits_end - pos > 12) {
      Bad(spec, raw, kShape);
    }
    const std::int64_t n = std::stoll(text.substr(pos, digits_end - pos));
    std::int64_t unit = 0;
    switch (text[digits_end]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        Bad(spec, raw, kShape);
    }
    total += n * unit;
    if (total > kMaxDurationSeconds) Bad(spec, raw, "is out of range (at most 100 years)");
    pos = digits_end + 1;
  }
  return std::chrono::seconds(total);
}

// "1000,50%", "1000", "50%", "50%,1000" or a TOML integer; an omitted part keeps its default.
MaxDelete AsMaxDelete(const KeySpec& spec, const Raw& raw) {
  static constexpr std::string_view kShape =
      "must be a count, a percentage or both, like \"1000,50%\", \"1000\" or \"50%\"";
  MaxDelete out;
  if (raw.node != nullptr) {
    if (const auto* i = raw.node->as_integer()) {
      if (i->get() < 0) Bad(spec, raw, "must not be negative");
      out.count = static_cast<std::uint64_t>(i->get());
      return out;
    }
    if (!raw.node->is_string()) Bad(spec, raw, kShape);
  }
  const std::string text = AsString(spec, raw);
  bool have_count = false;
  bool have_percent = false;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    std::string part =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    part.erase(0, part.find_first_not_of(' '));
    part.erase(part.find_last_not_of(' ') + 1);
    if (part.empty()) Bad(spec, raw, kShape);
    if (part.back() == '%') {
      double percent = 0;
      const char* first = part.data();
      const char* last = part.data() + part.size() - 1;
      const auto [end, ec] = std::from_chars(first, last, percent);
      if (have_percent || ec != std::errc() || end != last || !std::isfinite(percent)) {
        Bad(spec, raw, kShape);
      }
      out.percent = percent;
      have_percent = true;
    } else {
      std::uint64_t count = 0;
      const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), count);
      if (have_count || ec != std::errc() || end != part.data() + part.size())
        Bad(spec, raw, kShape);
      out.count = count;
      have_count = true;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string FormatMaxDelete(const MaxDelete& m) {
  std::ostringstream percent;
  percent << m.percent;
  return Quote(std::to_string(m.count) + "," + percent.str() + "%");
}

// Bytes as an integer, or a string "<n>MiB".
std::uint64_t AsChunkSize(const KeySpec& spec, const Raw& raw) {
  static constexpr std::string_view kShape =
      "must be a byte count (a multiple of 4 MiB = 4194304) or a string like \"16MiB\"";
  std::string text;
  if (raw.node != nullptr) {
    if (const auto* i = raw.node->as_integer()) {
      if (i->get() < 0) Bad(spec, raw, "must not be negative");
      return static_cast<std::uint64_t>(i->get());
    }
    if (!raw.node->is_string()) Bad(spec, raw, kShape);
  }
  text = AsString(spec, raw);
  std::uint64_t multiplier = 1;
  if (text.ends_with("MiB")) {
    text.resize(text.size() - 3);
    multiplier = kMiB;
  }
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      n > std::numeric_limits<std::uint64_t>::max() / multiplier) {
    Bad(spec, raw, kShape);
  }
  return n * multiplier;
}

std::string FormatSeconds(std::chrono::seconds s) { return std::to_string(s.count()); }

// A parser's "<problem>; <fix>" message as this key's one-line error.
[[noreturn]] void BadParse(const KeySpec& spec, const Raw& raw, const std::string& message) {
  const std::size_t split = message.find("; ");
  if (split == std::string::npos) Bad(spec, raw, message);
  Fail(raw.origin, spec.name, Shown(spec, raw), message.substr(0, split),
       message.substr(split + 2));
}

// "host:port" (ops/listen_address.h); "" means no endpoint.
std::optional<ops::ListenAddress> AsListenAddress(const KeySpec& spec, const Raw& raw) {
  const std::string text = AsString(spec, raw);
  if (text.empty()) return std::nullopt;
  auto address = ops::ListenAddress::Parse(text);
  if (!address.ok()) BadParse(spec, raw, address.status().message());
  return *address;
}

// A rate or timetable string (ops/bandwidth.h), or a TOML integer of bytes per second.
ops::BandwidthSchedule AsBandwidth(const KeySpec& spec, const Raw& raw) {
  std::string text;
  if (raw.node != nullptr && raw.node->as_integer() != nullptr) {
    text = std::to_string(raw.node->as_integer()->get());
  } else if (raw.node != nullptr && !raw.node->is_string()) {
    Bad(spec, raw, "must be a string like \"8MiB\", \"off\" or \"08:00,1MiB 19:00,off\"");
  } else {
    text = AsString(spec, raw);
  }
  auto schedule = ops::BandwidthSchedule::Parse(text);
  if (!schedule.ok()) BadParse(spec, raw, schedule.status().message());
  return *schedule;
}

const std::array<KeySpec, 25> kKeys = {{
    {"dbx_token", true, "dbx_token = \"sl.xxxx\" in config/instance.toml", "sl.xxxx",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_token = AsString(k, r); },
     [](const Config& c) { return Quote(c.dbx_token); }},
    {"client_sync_dirs", false, "client_sync_dirs = [\"/home/me/Documents\", \"/home/me/Photos\"]",
     "/home/me/Documents:/home/me/Photos",
     [](const KeySpec& k, Config& c, const Raw& r) { c.client_sync_dirs = AsPathList(k, r); },
     [](const Config& c) { return QuotePaths(c.client_sync_dirs); }},
    {"cloud_root", false, "cloud_root = \"/filesync\"", "/filesync",
     [](const KeySpec& k, Config& c, const Raw& r) {
       c.cloud_root = AsString(k, r);
       if (c.cloud_root == "/") c.cloud_root.clear();  // "/" means the cloud root itself
     },
     [](const Config& c) { return Quote(c.cloud_root); }},
    {"poll_interval", false, "poll_interval = 30", "30",
     [](const KeySpec& k, Config& c, const Raw& r) { c.poll_interval = AsDuration(k, r); },
     [](const Config& c) { return FormatSeconds(c.poll_interval); }},
    {"backend", false, "backend = \"local\" (or \"dropbox\")", "local",
     [](const KeySpec& k, Config& c, const Raw& r) {
       const std::string v = AsString(k, r);
       if (v == "local") {
         c.backend = Backend::kLocal;
       } else if (v == "dropbox") {
         c.backend = Backend::kDropbox;
       } else {
         Bad(k, r, "must be \"local\" or \"dropbox\"");
       }
     },
     [](const Config& c) { return Quote(c.backend == Backend::kDropbox ? "dropbox" : "local"); }},
    {"local_cloud_dir", false, "local_cloud_dir = \"/srv/filesync-cloud\"", "/srv/filesync-cloud",
     [](const KeySpec& k, Config& c, const Raw& r) { c.local_cloud_dir = AsPath(k, r); },
     [](const Config& c) { return Quote(c.local_cloud_dir.string()); }},
    {"workers", false, "workers = 4", "4",
     [](const KeySpec& k, Config& c, const Raw& r) {
       const std::int64_t v = AsInteger(k, r, "must be a whole number from 1 to 64");
       if (v < 1 || v > kMaxWorkers) Bad(k, r, "must be a whole number from 1 to 64");
       c.workers = static_cast<int>(v);
     },
     [](const Config& c) { return std::to_string(c.workers); }},
    {"state_dir", false, "state_dir = \"/var/lib/filesync\"", "/var/lib/filesync",
     [](const KeySpec& k, Config& c, const Raw& r) { c.state_dir = AsPath(k, r); },
     [](const Config& c) { return Quote(c.state_dir.string()); }},
    {"exclude", false, "exclude = [\"*.tmp\", \".git\"]", "*.tmp:.git",
     [](const KeySpec& k, Config& c, const Raw& r) { c.exclude = AsStringList(k, r); },
     [](const Config& c) { return QuoteList(c.exclude); }},
    {"max_delete", false, "max_delete = \"1000,50%\"", "1000,50%",
     [](const KeySpec& k, Config& c, const Raw& r) { c.max_delete = AsMaxDelete(k, r); },
     [](const Config& c) { return FormatMaxDelete(c.max_delete); }},
    {"log_level", false, "log_level = \"info\" (trace, debug, info, warn or error)", "info",
     [](const KeySpec& k, Config& c, const Raw& r) {
       // Levels are names, not spellings: "TRACE" is trace, as with --log-level.
       c.log_level = AsString(k, r);
       for (char& ch : c.log_level)
         ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
     },
     [](const Config& c) { return Quote(c.log_level); }},
    {"cloud_verify_interval", false, "cloud_verify_interval = 3600", "3600",
     [](const KeySpec& k, Config& c, const Raw& r) { c.cloud_verify_interval = AsDuration(k, r); },
     [](const Config& c) { return FormatSeconds(c.cloud_verify_interval); }},
    {"dbx_refresh_token", true, "dbx_refresh_token = \"...\" in config/instance.toml", "...",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_refresh_token = AsString(k, r); },
     [](const Config& c) { return Quote(c.dbx_refresh_token); }},
    {"dbx_refresh_token_file", false,
     "dbx_refresh_token_file = \"/var/lib/filesync/dropbox-refresh-token\"",
     "/var/lib/filesync/dropbox-refresh-token",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_refresh_token_file = AsPath(k, r); },
     [](const Config& c) { return Quote(c.dbx_refresh_token_file.string()); }},
    {"dbx_app_key", false, "dbx_app_key = \"abcd1234\"", "abcd1234",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_app_key = AsString(k, r); },
     [](const Config& c) { return Quote(c.dbx_app_key); }},
    {"dbx_app_secret", true, "dbx_app_secret = \"...\" in config/instance.toml", "...",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_app_secret = AsString(k, r); },
     [](const Config& c) { return Quote(c.dbx_app_secret); }},
    {"dbx_ca_file", false, "dbx_ca_file = \"/etc/filesync/test-ca.pem\"",
     "/etc/filesync/test-ca.pem",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_ca_file = AsPath(k, r); },
     [](const Config& c) { return Quote(c.dbx_ca_file.string()); }},
    {"dbx_api_url", false, "dbx_api_url = \"https://api.dropboxapi.com\"",
     "https://api.dropboxapi.com",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_api_url = AsString(k, r); },
     [](const Config& c) { return Quote(c.dbx_api_url); }},
    {"dbx_content_url", false, "dbx_content_url = \"https://content.dropboxapi.com\"",
     "https://content.dropboxapi.com",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_content_url = AsString(k, r); },
     [](const Config& c) { return Quote(c.dbx_content_url); }},
    {"dbx_notify_url", false, "dbx_notify_url = \"https://notify.dropboxapi.com\"",
     "https://notify.dropboxapi.com",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_notify_url = AsString(k, r); },
     [](const Config& c) { return Quote(c.dbx_notify_url); }},
    {"dbx_append_batch", false, "dbx_append_batch = true", "true",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_append_batch = AsBool(k, r); },
     [](const Config& c) { return std::string(c.dbx_append_batch ? "true" : "false"); }},
    {"dbx_chunk_size", false, "dbx_chunk_size = 16777216 (16 MiB)", "16777216",
     [](const KeySpec& k, Config& c, const Raw& r) { c.dbx_chunk_size = AsChunkSize(k, r); },
     [](const Config& c) { return std::to_string(c.dbx_chunk_size); }},
    {"status_listen", false, "status_listen = \"127.0.0.1:9184\"", "127.0.0.1:9184",
     [](const KeySpec& k, Config& c, const Raw& r) { c.status_listen = AsListenAddress(k, r); },
     [](const Config& c) { return Quote(c.status_listen ? c.status_listen->ToString() : ""); }},
    {"status_token_file", false, "status_token_file = \"/etc/filesync/status-token\"",
     "/etc/filesync/status-token",
     [](const KeySpec& k, Config& c, const Raw& r) { c.status_token_file = AsPath(k, r); },
     [](const Config& c) { return Quote(c.status_token_file.string()); }},
    {"bwlimit", false, "bwlimit = \"8MiB\" (or \"off\", or \"08:00,1MiB 19:00,off\")", "8MiB",
     [](const KeySpec& k, Config& c, const Raw& r) { c.bwlimit = AsBandwidth(k, r); },
     [](const Config& c) { return Quote(c.bwlimit.ToString()); }},
}};

const KeySpec* FindKey(std::string_view name) {
  for (const KeySpec& k : kKeys) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

const KeySpec& Key(std::string_view name) { return *FindKey(name); }

std::optional<std::string_view> NearestKey(std::string_view name) {
  std::optional<std::string_view> best;
  std::size_t best_distance = std::max<std::size_t>(3, name.size() / 3) + 1;
  for (const KeySpec& k : kKeys) {
    const std::size_t d = EditDistance(Lower(name), k.name);
    if (d < best_distance) {
      best_distance = d;
      best = k.name;
    }
  }
  return best;
}

bool LooksSecret(std::string_view name) {
  const std::string n = Lower(name);
  return n.find("token") != std::string::npos || n.find("secret") != std::string::npos ||
         n.find("pass") != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

std::string Where(const Config& c, std::string_view key) {
  if (auto it = c.origins.find(std::string(key)); it != c.origins.end()) return it->second;
  return c.source.empty() ? std::string("configuration") : c.source;
}

std::string Shown(const Config& c, const KeySpec& spec) {
  return spec.secret ? std::string(kRedacted) : Shorten(spec.format(c));
}

[[noreturn]] void Invalid(const Config& c, std::string_view key, std::string_view problem,
                          std::optional<std::string> fix = std::nullopt) {
  const KeySpec& spec = Key(key);
  const std::string where = Where(c, key);
  Fail(where, key, Shown(c, spec), problem, fix ? *fix : Example(spec, where));
}

// The fix for a relative path that holds a '$': it was probably meant as a variable.
constexpr std::string_view kNoVariables =
    "environment variables such as $HOME are not expanded in paths: write the path from the "
    "root, or start it with ~/ for your home directory";

void ValidateSyncDirs(const Config& c) {
  constexpr std::string_view kKey = "client_sync_dirs";
  if (c.client_sync_dirs.empty()) {
    Invalid(c, kKey, "no directories to sync (the list is empty)",
            "set client_sync_dirs = [\"/home/me/Documents\"] in config/instance.toml, or "
            "FILESYNC_CLIENT_SYNC_DIRS=/home/me/Documents:/home/me/Photos");
  }
  for (const fs::path& dir : c.client_sync_dirs) {
    const std::string shown = Quote(dir.string());
    if (dir.empty()) Invalid(c, kKey, "contains an empty entry");
    if (!dir.is_absolute()) {
      Invalid(c, kKey, shown + " is not an absolute path",
              dir.string().find('$') != std::string::npos
                  ? std::string(kNoVariables)
                  : "write it from the root, e.g. " +
                        Quote((fs::path("/home/me") / dir).lexically_normal().string()));
    }
    if (Normal(dir) == "/") {
      Invalid(c, kKey, "\"/\" cannot be synced (it contains the state and every other dir)",
              "list the directories under / that you want synced");
    }
    if (!unicode::IsValidUtf8(Normal(dir).filename().string())) {
      Invalid(c, kKey, shown + " has a name that is not valid UTF-8 (the cloud stores UTF-8 names)",
              "rename the directory or sync its parent");
    }
  }
  for (std::size_t i = 0; i < c.client_sync_dirs.size(); ++i) {
    for (std::size_t j = 0; j < c.client_sync_dirs.size(); ++j) {
      if (i == j) continue;
      const fs::path& a = c.client_sync_dirs[i];
      const fs::path& b = c.client_sync_dirs[j];
      if (i < j && IsWithinAnyway(a, b) && IsWithinAnyway(b, a)) {
        Invalid(c, kKey,
                Quote(a.string()) + " and " + Quote(b.string()) + " are the same directory",
                "list each directory once");
      }
      if (IsWithinAnyway(a, b)) {
        Invalid(c, kKey,
                Quote(a.string()) + " is inside " + Quote(b.string()) +
                    " (sync dirs must not be nested)",
                "keep only " + Quote(b.string()) + " or list sibling directories instead");
      }
      if (i < j && core::CloudKey(Normal(a).filename().string()) ==
                       core::CloudKey(Normal(b).filename().string())) {
        Invalid(c, kKey,
                Quote(a.string()) + " and " + Quote(b.string()) +
                    " have the same name, so both would map to cloud path " + c.CloudPathFor(a) +
                    " (names compare case-insensitively)",
                "rename one of them, or sync their common parent instead");
      }
    }
  }
}

// The local backend's staging folder at the top of local_cloud_dir
// (cloud::LocalCloud::kStagingName; config_test checks they agree: config cannot include a
// backend).
constexpr std::string_view kLocalStagingName = ".filesync-staging";

void ValidateCloudRoot(const Config& c) {
  constexpr std::string_view kKey = "cloud_root";
  const std::string& r = c.cloud_root;
  if (r.empty()) return;
  const std::string fix = "use \"\" for the cloud root itself or a path like \"/filesync\"";
  if (r.find('\0') != std::string::npos) Invalid(c, kKey, "contains a NUL byte", fix);
  if (r.find('\\') != std::string::npos) {
    Invalid(c, kKey, "contains a backslash (cloud paths use \"/\")", fix);
  }
  if (!unicode::IsValidUtf8(r)) Invalid(c, kKey, "is not valid UTF-8", fix);
  if (r.front() != '/') Invalid(c, kKey, "must start with \"/\" (or be \"\")", fix);
  if (r == "/") Invalid(c, kKey, "\"/\" is not normalised (Load() turns it into \"\")", fix);
  if (r.back() == '/') Invalid(c, kKey, "must not end with \"/\"", fix);
  std::size_t start = 1;
  while (start <= r.size()) {
    std::size_t slash = r.find('/', start);
    if (slash == std::string::npos) slash = r.size();
    const std::string_view part(r.data() + start, slash - start);
    if (part.empty()) Invalid(c, kKey, "has an empty component (\"//\")", fix);
    if (part == ".") Invalid(c, kKey, "has a \".\" component", fix);
    if (part == "..") Invalid(c, kKey, "has a \"..\" component", fix);
    if (start == 1 && part == kLocalStagingName && c.backend == Backend::kLocal) {
      Invalid(c, kKey, "is the local backend's staging folder", fix);
    }
    start = slash + 1;
  }
}

// With cloud_root "", a sync dir's name is the first component of its cloud folder: the local
// backend keeps its staging folder there.
void ValidateLocalNames(const Config& c) {
  if (c.backend != Backend::kLocal || !c.cloud_root.empty()) return;
  for (const fs::path& dir : c.client_sync_dirs) {
    if (Normal(dir).filename() == kLocalStagingName) {
      Invalid(c, "client_sync_dirs",
              Quote(dir.string()) + " would be mirrored to the local backend's staging folder /" +
                  std::string(kLocalStagingName),
              "set a cloud_root such as \"/filesync\", or sync a directory with another name");
    }
  }
}

// Names Dropbox refuses (plan/names.h) in the folders a Dropbox mirror lives in: each component
// of cloud_root, and each sync dir's name (the last component of its cloud folder). Found here
// instead of as a refused request at the first pass.
void ValidateDropboxNames(const Config& c) {
  if (c.backend != Backend::kDropbox) return;
  const std::string& r = c.cloud_root;
  for (std::size_t start = 1; start < r.size();) {
    std::size_t slash = r.find('/', start);
    if (slash == std::string::npos) slash = r.size();
    const std::string part = r.substr(start, slash - start);
    if (auto why = plan::CheckName("/" + part, plan::NameRules::kDropbox)) {
      Invalid(c, "cloud_root", "Dropbox refuses the folder name " + Quote(part) + ": " + *why,
              "choose another cloud_root, e.g. cloud_root = \"/filesync\"");
    }
    start = slash + 1;
  }
  for (const fs::path& dir : c.client_sync_dirs) {
    const std::string name = Normal(dir).filename().string();
    if (auto why = plan::CheckName("/" + name, plan::NameRules::kDropbox)) {
      Invalid(c, "client_sync_dirs",
              Quote(dir.string()) + " would be mirrored to " + c.CloudPathFor(dir) +
                  ", a name Dropbox refuses (" + *why + ")",
              "sync a directory with another name, or its parent");
    }
  }
}

void ValidatePositive(const Config& c, std::string_view key, std::chrono::seconds value) {
  if (value.count() < 1) Invalid(c, key, "must be a whole number of seconds >= 1");
}

// `dir` may not be inside a sync dir; with `disjoint`, no sync dir may be inside `dir` either.
void ValidateOwnDir(const Config& c, std::string_view key, const fs::path& dir, bool disjoint) {
  if (dir.empty()) Invalid(c, key, "must be set");
  if (!dir.is_absolute()) {
    Invalid(c, key, "must be an absolute path",
            dir.string().find('$') != std::string::npos ? std::optional<std::string>(kNoVariables)
                                                        : std::nullopt);
  }
  for (const fs::path& sync : c.client_sync_dirs) {
    if (IsWithinAnyway(dir, sync)) {
      Invalid(c, key,
              "is inside sync dir " + Quote(sync.string()) + " (filesync would sync its own files)",
              "move it outside every client_sync_dirs entry");
    }
    if (disjoint && IsWithinAnyway(sync, dir)) {
      Invalid(c, key, "contains sync dir " + Quote(sync.string()),
              "move it outside every client_sync_dirs entry");
    }
  }
}

void ValidateUrl(const Config& c, std::string_view key, const std::string& url) {
  const bool https = url.starts_with("https://");
  const std::size_t scheme = https ? 8 : url.starts_with("http://") ? 7 : 0;
  if (scheme == 0) Invalid(c, key, "must start with http:// or https://");
  if (url.size() == scheme || url[scheme] == '/') Invalid(c, key, "has no host");
  for (char ch : url) {
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) {
      Invalid(c, key, "contains a space or control character");
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

std::string Config::CloudPathFor(const std::filesystem::path& client_dir) const {
  return cloud_root + "/" + Normal(client_dir).filename().string();
}

namespace {

// Validate(), optionally without requiring Dropbox credentials (see LoadOptions).
void ValidateAll(const Config& c, bool need_credentials) {
  ValidateSyncDirs(c);
  ValidateCloudRoot(c);
  ValidateDropboxNames(c);
  ValidateLocalNames(c);
  ValidatePositive(c, "poll_interval", c.poll_interval);
  if (c.workers < 1 || c.workers > kMaxWorkers) {
    Invalid(c, "workers", "must be a whole number from 1 to 64");
  }
  ValidateOwnDir(c, "state_dir", c.state_dir, false);
  if (c.backend == Backend::kLocal || !c.local_cloud_dir.empty()) {
    ValidateOwnDir(c, "local_cloud_dir", c.local_cloud_dir, true);
    if (IsWithinAnyway(c.state_dir, c.local_cloud_dir)) {
      Invalid(
          c, "local_cloud_dir", "contains state_dir " + Quote(c.state_dir.string()),
          "keep the local cloud and the state directory apart, e.g. the default <state_dir>/cloud");
    }
  }
  for (const std::string& pattern : c.exclude) {
    if (pattern.empty()) Invalid(c, "exclude", "contains an empty pattern");
    if (pattern == "/") Invalid(c, "exclude", "pattern \"/\" would exclude the whole sync dir");
    if (pattern.find('\0') != std::string::npos) Invalid(c, "exclude", "contains a NUL byte");
  }
  if (!(c.max_delete.percent >= 0.0 && c.max_delete.percent <= 100.0)) {
    Invalid(c, "max_delete", "the percentage must be between 0% and 100%");
  }
  if (std::find(kLogLevels.begin(), kLogLevels.end(), c.log_level) == kLogLevels.end()) {
    Invalid(c, "log_level", "must be one of trace, debug, info, warn, error (in any case)");
  }
  ValidatePositive(c, "cloud_verify_interval", c.cloud_verify_interval);
  ValidateUrl(c, "dbx_api_url", c.dbx_api_url);
  ValidateUrl(c, "dbx_content_url", c.dbx_content_url);
  ValidateUrl(c, "dbx_notify_url", c.dbx_notify_url);
  if (!c.dbx_ca_file.empty()) {
    std::error_code ec;
    const auto status = fs::status(c.dbx_ca_file, ec);
    if (ec || !fs::exists(status)) {
      Invalid(c, "dbx_ca_file", "does not exist", "point it at a PEM CA bundle, or remove the key");
    }
    if (!fs::is_regular_file(status)) {
      Invalid(c, "dbx_ca_file", "is not a regular file",
              "point it at a PEM CA bundle, or remove the key");
    }
    std::ifstream in(c.dbx_ca_file);
    if (!in) {
      Invalid(c, "dbx_ca_file", "cannot be read by this user", "fix its permissions (chmod 644)");
    }
  }
  if (c.dbx_chunk_size < kChunkQuantum || c.dbx_chunk_size > kMaxChunkSize ||
      c.dbx_chunk_size % kChunkQuantum != 0) {
    Invalid(c, "dbx_chunk_size",
            "must be a multiple of 4 MiB (4194304 bytes) from 4 MiB to 148 MiB (Dropbox limits a "
            "request to 150 MiB)");
  }
  if (c.status_listen && !c.status_listen->loopback && c.status_token_file.empty()) {
    Invalid(c, "status_listen",
            "is reachable from other machines (not a loopback address) but status_token_file is "
            "not set",
            "set status_token_file to a file holding a token (e.g. openssl rand -hex 32 > "
            "/etc/filesync/status-token; chmod 600 it), or listen on 127.0.0.1 only");
  }
  if (need_credentials && c.backend == Backend::kDropbox && c.dbx_token.empty()) {
    if (c.dbx_refresh_token.empty()) {
      Invalid(c, "backend", "the dropbox backend needs credentials",
              "set dbx_token, or dbx_refresh_token and dbx_app_key, in config/instance.toml "
              "(or FILESYNC_DBX_TOKEN)");
    }
    if (c.dbx_app_key.empty()) {
      Invalid(c, "dbx_app_key", "is empty but dbx_refresh_token needs it to refresh tokens",
              "set dbx_app_key = \"<your app key>\" in config/instance.toml");
    }
  }
}

}  // namespace

void Validate(const Config& c) { ValidateAll(c, true); }

namespace {

// ---------------------------------------------------------------------------------------------
// Loading

std::string ReadFile(const fs::path& path, std::string_view missing_fix) {
  const std::string name = path.string();
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) {
    FailFile(name, "cannot read: " + (ec ? ec.message() : std::string("no such file")),
             missing_fix);
  }
  if (fs::is_directory(status)) {
    FailFile(name, "cannot read: is a directory, not a file", "point to a TOML file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    FailFile(name, "cannot read: " + std::generic_category().message(err),
             "make it readable by the user running filesync, e.g. chmod 600 " + name);
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) FailFile(name, "cannot read: I/O error", "check the file and the disk");
  return content.str();
}

std::string LineOf(const std::string& content, std::size_t line) {
  std::istringstream in(content);
  std::string text;
  for (std::size_t i = 0; i < line && std::getline(in, text); ++i) {
  }
  return text;
}

toml::table ParseToml(const fs::path& path, const std::string& content) {
  const std::string name = path.string();
  try {
    return toml::parse(content, name);
  } catch (const toml::parse_error& e) {
    const auto line = e.source().begin.line;
    const auto column = e.source().begin.column;
    // toml++ may quote part of the offending text; on a line that names a secret, it must not.
    std::string description(e.description());
    if (LooksSecret(LineOf(content, line))) {
      description = "syntax error (details hidden: the line holds a secret)";
    } else if (const auto saw = description.find(", saw '");
               saw != std::string::npos && LooksSecret(content)) {
      description.resize(saw);  // the quoted character may belong to a secret on an earlier line
    }
    FailFile(
        name + ":" + std::to_string(line) + ":" + std::to_string(column),
        "invalid TOML: " + description,
        "fix the syntax at line " + std::to_string(line) + ", column " + std::to_string(column));
  }
}

void ApplyTable(const fs::path& path, const toml::table& table, Config& config) {
  const std::string origin = path.string();
  // toml::table is sorted by key; apply in file order so the first error is the first in the file.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (const auto& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& sa = a.first->source().begin;
    const auto& sb = b.first->source().begin;
    return std::pair(sa.line, sa.column) < std::pair(sb.line, sb.column);
  });
  for (const auto& [key, node] : entries) {
    const std::string name(key->str());
    const KeySpec* spec = FindKey(name);
    if (spec == nullptr) {
      const auto nearest = NearestKey(name);
      const bool hide = LooksSecret(name) || (nearest && Key(*nearest).secret);
      Fail(origin, name, hide ? std::string(kRedacted) : Shorten(RenderNode(*node)),
           "unknown key '" + name + "'",
           nearest ? "did you mean '" + std::string(*nearest) + "'?"
                   : std::string("see docs/configuration.md for the list of keys"));
    }
    spec->apply(*spec, config, Raw{.node = node, .text = {}, .origin = origin});
    config.origins[name] = origin;
  }
}

void LoadFile(const fs::path& path, std::string_view missing_fix, Config& config) {
  const std::string content = ReadFile(path, missing_fix);
  const toml::table table = ParseToml(path, content);
  config.files.push_back(path);
  ApplyTable(path, table, config);
}

// Environment variables override every file. Unknown FILESYNC_* names are left alone: other
// tools (tests, the emulator) use that prefix too.
bool ApplyEnvironment(Config& config) {
  bool any = false;
  for (const KeySpec& spec : kKeys) {
    const std::string name = EnvName(spec.name);
    auto value = GetEnv(name);
    if (!value) continue;
    const std::string origin = std::string(kEnvOriginPrefix) + name;
    spec.apply(spec, config, Raw{.node = nullptr, .text = *value, .origin = origin});
    config.origins[std::string(spec.name)] = origin;
    any = true;
  }
  return any;
}

fs::path DefaultStateDir() {
  if (auto xdg = GetEnv("XDG_STATE_HOME"); xdg && !xdg->empty() && fs::path(*xdg).is_absolute()) {
    return Normal(fs::path(*xdg) / "filesync");
  }
  if (auto home = GetEnv("HOME"); home && !home->empty()) {
    return Normal(fs::path(*home) / ".local/state/filesync");
  }
  return {};
}

bool IsValidEnvName(std::string_view env) {
  return !env.empty() && std::all_of(env.begin(), env.end(), [](char ch) {
    return std::islower(static_cast<unsigned char>(ch)) ||
           std::isdigit(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
}

}  // namespace

namespace {

// The token file holds one line, the refresh token (surrounding whitespace ignored).
void ReadRefreshTokenFile(Config& c) {
  std::ifstream in(c.dbx_refresh_token_file);
  std::string token;
  if (!in || !(in >> token) || token.empty()) {
    Invalid(c, "dbx_refresh_token_file", "cannot be read, or is empty",
            "run `filesync auth` to create it, or point the key at the file it wrote");
  }
  c.dbx_refresh_token = std::move(token);
}

// The status token file holds the token (surrounding whitespace ignored): visible ASCII, at
// least 16 characters. Its content never appears in a message.
void ReadStatusTokenFile(Config& c) {
  constexpr std::string_view kKey = "status_token_file";
  constexpr std::size_t kMinToken = 16;
  const std::string file = c.status_token_file.string();
  const std::string fix =
      "put a token in it, e.g. openssl rand -hex 32 > " + file + "; chmod 600 " + file;
  std::error_code ec;
  const auto status = fs::status(c.status_token_file, ec);
  if (ec || !fs::exists(status)) Invalid(c, kKey, "does not exist", fix);
  if (!fs::is_regular_file(status)) Invalid(c, kKey, "is not a regular file", fix);
  constexpr std::size_t kMaxFile = 4096;  // a token file, not e.g. a /proc file to read forever
  std::ifstream in(c.status_token_file, std::ios::binary);
  std::string token(kMaxFile + 1, '\0');
  in.read(token.data(), static_cast<std::streamsize>(token.size()));
  if (!in && !in.eof()) {
    Invalid(c, kKey, "cannot be read by this user",
            "make it readable by the user running filesync (and no one else: chmod 600)");
  }
  token.resize(static_cast<std::size_t>(in.gcount()));
  if (token.size() > kMaxFile) Invalid(c, kKey, "is larger than 4 KiB, so not a token file", fix);
  token.erase(0, token.find_first_not_of(" \t\r\n"));
  token.erase(token.find_last_not_of(" \t\r\n") + 1);
  if (token.empty()) Invalid(c, kKey, "is empty", fix);
  if (!std::all_of(token.begin(), token.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; })) {
    Invalid(c, kKey, "holds more than one word, or characters other than visible ASCII", fix);
  }
  if (token.size() < kMinToken) {
    Invalid(c, kKey, "holds a token shorter than 16 characters (too easy to guess)", fix);
  }
  c.status_token = std::move(token);
}

}  // namespace

Config Load(const LoadOptions& options) {
  Config config;
  std::vector<std::string> sources;
  if (options.config_file) {
    LoadFile(*options.config_file, "check the --config path", config);
    sources.push_back(options.config_file->string());
  } else {
    std::string env = "dev";
    std::string env_origin = "default";
    if (options.env) {
      env = *options.env;
      env_origin = "--env";
    } else if (auto from_env = GetEnv("FILESYNC_ENV"); from_env && !from_env->empty()) {
      env = *from_env;
      env_origin = std::string(kEnvOriginPrefix) + "FILESYNC_ENV";
    }
    if (!IsValidEnvName(env)) {
      Fail(env_origin, "env", Quote(env),
           "not an environment name (lower-case letters, digits, _ and -)",
           "use test, dev or prod");
    }
    const fs::path env_file = options.config_dir / (env + ".toml");
    LoadFile(env_file,
             "env '" + env + "' (from " + env_origin +
                 ") needs this file; use test, dev or prod, or run "
                 "from the directory that holds config/",
             config);
    sources.push_back(env_file.string());
    const fs::path instance = options.config_dir / "instance.toml";
    std::error_code ec;
    const bool instance_exists = fs::exists(fs::symlink_status(instance, ec));
    if (instance_exists) {
      LoadFile(instance, "fix or remove the dangling link", config);
      sources.push_back(instance.string());
    } else if (env == "prod") {
      FailFile(instance.string(), "missing, and env 'prod' requires it (the secrets live there)",
               "copy " + (options.config_dir / "instance.example.toml").string() + " to " +
                   instance.string() + ", fill it in and chmod 600 it");
    }
  }
  if (ApplyEnvironment(config)) sources.emplace_back("environment");
  if (config.state_dir.empty() && !config.origins.contains("state_dir")) {
    config.state_dir = DefaultStateDir();
  }
  if (config.local_cloud_dir.empty() && !config.origins.contains("local_cloud_dir") &&
      !config.state_dir.empty()) {
    config.local_cloud_dir = config.state_dir / "cloud";
  }
  for (std::size_t i = 0; i < sources.size(); ++i) {
    config.source += (i == 0 ? "" : " + ") + sources[i];
  }
  if (options.need_credentials && config.dbx_refresh_token.empty() &&
      !config.dbx_refresh_token_file.empty()) {
    ReadRefreshTokenFile(config);
  }
  if (config.status_listen && !config.status_token_file.empty()) ReadStatusTokenFile(config);
  ValidateAll(config, options.need_credentials);
  return config;
}

std::string Describe(const Config& config) {
  std::string out = "# filesync effective configuration";
  if (!config.source.empty()) out += " (from " + SingleLine(config.source) + ")";
  out += "\n";
  for (const KeySpec& spec : kKeys) {
    std::string value = spec.format(config);
    if (spec.secret && value != "\"\"") value = Quote(kRedacted);
    out += std::string(spec.name) + " = " + value + "\n";
  }
  return out;
}

bool HoldsSecret(const Config& config) {
  return !config.dbx_token.empty() || !config.dbx_refresh_token.empty() ||
         !config.dbx_app_secret.empty();
}

namespace {

// "<file>: holds <what> but is readable by group/others (mode 0644); run chmod 600 <file>", or ""
// when `file` is owner-only (or cannot be looked at).
std::string ReadableByOthers(const fs::path& file, const std::string& what) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return "";
  if ((st.st_mode & (S_IRGRP | S_IROTH)) == 0) return "";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return SingleLine(file.string() + ": holds " + what + " but is readable by group/others (mode " +
                    mode + "); run chmod 600 " + file.string());
}

}  // namespace

std::vector<std::string> PermissionWarnings(const Config& config) {
  std::vector<std::string> warnings;
  for (const fs::path& file : config.files) {
    std::vector<std::string> secrets;
    try {
      std::ifstream in(file, std::ios::binary);
      std::ostringstream content;
      content << in.rdbuf();
      const toml::table table = toml::parse(content.str(), file.string());
      for (const KeySpec& spec : kKeys) {
        if (!spec.secret) continue;
        const auto* value = table.get_as<std::string>(spec.name);
        if (value != nullptr && !value->get().empty()) secrets.emplace_back(spec.name);
      }
    } catch (const toml::parse_error&) {
      continue;  // changed since Load(); the next Load() reports it
    }
    if (secrets.empty()) continue;
    std::string names;
    for (const std::string& s : secrets) names += (names.empty() ? "" : ", ") + s;
    if (auto warning = ReadableByOthers(file, names); !warning.empty())
      warnings.push_back(std::move(warning));
  }
  // The refresh-token file is a secrets file too, whether or not a config file also sets the
  // token.
  if (!config.dbx_refresh_token_file.empty()) {
    if (auto warning = ReadableByOthers(config.dbx_refresh_token_file, "the Dropbox refresh token");
        !warning.empty())
      warnings.push_back(std::move(warning));
  }
  if (!config.status_token_file.empty()) {
    if (auto warning = ReadableByOthers(config.status_token_file, "the status endpoint's token");
        !warning.empty())
      warnings.push_back(std::move(warning));
  }
  return warnings;
}

}  // namespace filesync::config
