// How: one key table (kKeys) maps every key to a converter (TOML node or environment string ->
// Config field) and a formatter (Config field -> TOML text). Conversion rejects values of the
// wrong shape (types, syntax); validate.cc checks ranges and the relations between keys, so a
// Config built by hand is held to the same rules.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>
#include <variant>

#include "config/internal.h"

namespace filesync::config::internal {

namespace fs = std::filesystem;

std::string Example(const KeySpec& spec, std::string_view origin) {
  if (IsEnvOrigin(origin))
    return "e.g. " + EnvName(spec.name) + "=" + std::string(spec.env_example);
  return "e.g. " + std::string(spec.example);
}

namespace {

// Beyond this a duration is a typo, and it keeps every seconds value far from overflow.
constexpr std::int64_t kMaxDurationSeconds = std::int64_t{100} * 365 * 24 * 3600;

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
// One comma-separated part of a max_delete string: "<count>" or "<percent>%"; nullopt when it
// is neither.
std::optional<std::variant<std::uint64_t, double>> ParseMaxDeletePart(std::string part) {
  part.erase(0, part.find_first_not_of(' '));
  part.erase(part.find_last_not_of(' ') + 1);
  if (part.empty()) return std::nullopt;
  if (part.back() == '%') {
    double percent = 0;
    const char* last = part.data() + part.size() - 1;
    const auto [end, ec] = std::from_chars(part.data(), last, percent);
    if (ec != std::errc() || end != last || !std::isfinite(percent)) return std::nullopt;
    return percent;
  }
  std::uint64_t count = 0;
  const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), count);
  if (ec != std::errc() || end != part.data() + part.size()) return std::nullopt;
  return count;
}

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
  for (std::size_t start = 0;;) {
    const std::size_t comma = text.find(',', start);
    const auto part =
        ParseMaxDeletePart(text.substr(start, comma == std::string::npos ? comma : comma - start));
    if (!part) Bad(spec, raw, kShape);
    if (const auto* percent = std::get_if<double>(&*part)) {
      if (std::exchange(have_percent, true)) Bad(spec, raw, kShape);
      out.percent = *percent;
    } else {
      if (std::exchange(have_count, true)) Bad(spec, raw, kShape);
      out.count = std::get<std::uint64_t>(*part);
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

}  // namespace

std::span<const KeySpec> AllKeys() { return kKeys; }

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

}  // namespace filesync::config::internal

namespace filesync::config {

std::string Describe(const Config& config) {
  std::string out = "# filesync effective configuration";
  if (!config.source.empty()) out += " (from " + internal::SingleLine(config.source) + ")";
  out += "\n";
  for (const internal::KeySpec& spec : internal::AllKeys()) {
    std::string value = spec.format(config);
    if (spec.secret && value != "\"\"") value = internal::Quote(internal::kRedacted);
    out += std::string(spec.name) + " = " + value + "\n";
  }
  return out;
}

bool HoldsSecret(const Config& config) {
  return !config.dbx_token.empty() || !config.dbx_refresh_token.empty() ||
         !config.dbx_app_secret.empty();
}

}  // namespace filesync::config
