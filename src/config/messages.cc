// How: the building blocks of config's one-line messages: quoting (TOML syntax), shortening,
// rendering a TOML node, environment names, and the edit distance behind "did you mean".
#include <cstdlib>
#include <sstream>

#include "config/internal.h"

namespace filesync::config::internal {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxShownValue = 160;
constexpr std::string_view kEnvPrefix = "FILESYNC_";

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

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

}  // namespace filesync::config::internal
