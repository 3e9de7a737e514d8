#include "util/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>

namespace filesync::log {
namespace {

// Guards g_format, g_level and the create-once of each logger. A plain std::mutex: util sits
// below core and its lock annotations; it is taken only in Setup, CurrentFormat and Get.
std::mutex g_mu;
Format g_format = Format::kText;
spdlog::level::level_enum g_level = spdlog::level::info;

// Extra members of the record being formatted on this thread (see Structured). spdlog's loggers
// here are synchronous: a record is formatted on the thread that logs it.
thread_local const nlohmann::json* t_fields = nullptr;

std::string Dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Writes the message as a JSON string value, then the record's extra members: spdlog's pattern
// language can do neither.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string text = Dump(nlohmann::json(std::string(msg.payload.data(), msg.payload.size())));
    if (t_fields != nullptr && t_fields->is_object()) {
      for (const auto& [key, value] : t_fields->items()) {
        if (key == "time" || key == "level" || key == "logger" || key == "msg") continue;
        text += "," + Dump(nlohmann::json(key)) + ":" + Dump(value);
      }
    }
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<JsonMessageFlag>();
  }
};

// The "<N>" prefix journald reads as a line's syslog priority.
const char* JournalPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return SD_DEBUG;
    case spdlog::level::warn:
      return SD_WARNING;
    case spdlog::level::err:
      return SD_ERR;
    case spdlog::level::critical:
      return SD_CRIT;
    default:
      return SD_INFO;
  }
}

class JournalPriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view prefix = JournalPriority(msg.level);
    dest.append(prefix.data(), prefix.data() + prefix.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<JournalPriorityFlag>();
  }
};

// The message made printable (see Printable).
class TextMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string text = Printable(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<TextMessageFlag>();
  }
};

std::unique_ptr<spdlog::formatter> MakeFormatter() {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (g_format == Format::kJournal) {
    formatter->add_flag<JournalPriorityFlag>('*').add_flag<TextMessageFlag>('&').set_pattern(
        "%*[%n] %&");
  } else if (g_format == Format::kJson) {
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n","msg":%*})");
  } else {
    formatter->add_flag<TextMessageFlag>('*').set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %*");
  }
  return formatter;
}

std::shared_ptr<spdlog::logger> MakeLogger(const std::string& name) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(MakeFormatter());
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_level(g_level);
  return logger;
}

// Length of the well-formed UTF-8 sequence at s[i], or 0.
std::size_t SequenceLength(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  char32_t cp = 0;
  if ((b0 & 0xE0u) == 0xC0u) {
    len = 2;
    cp = b0 & 0x1Fu;
  } else if ((b0 & 0xF0u) == 0xE0u) {
    len = 3;
    cp = b0 & 0x0Fu;
  } else if ((b0 & 0xF8u) == 0xF0u) {
    len = 4;
    cp = b0 & 0x07u;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    return 0;
  }
  return len;
}

char32_t DecodeValid(std::string_view s, std::size_t i, std::size_t len) {
  static constexpr std::array<unsigned, 5> kLeadMask = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t cp = static_cast<unsigned char>(s[i]) & kLeadMask[len];
  for (std::size_t k = 1; k < len; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
  return cp;
}

// Code points that move the cursor, reorder what follows or break the line on a terminal.
bool IsInvisibleControl(char32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 ||
         cp == 0x2029;
}

}  // namespace

std::optional<spdlog::level::level_enum> ParseLevel(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "trace") return spdlog::level::trace;
  if (lower == "debug") return spdlog::level::debug;
  if (lower == "info") return spdlog::level::info;
  if (lower == "warn") return spdlog::level::warn;
  if (lower == "error") return spdlog::level::err;
  return std::nullopt;
}

void Setup(Format format, spdlog::level::level_enum level) {
  std::lock_guard lock(g_mu);
  g_format = format == Format::kText && StderrIsJournal() ? Format::kJournal : format;
  g_level = level;
  spdlog::drop_all();
}

Format CurrentFormat() {
  std::lock_guard lock(g_mu);
  return g_format;
}

std::shared_ptr<spdlog::logger> Get(const std::string& module) {
  std::lock_guard lock(g_mu);
  const std::string name = "filesync." + module;
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = MakeLogger(name);
  spdlog::register_logger(logger);
  return logger;
}

bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  unsigned long long device = 0, inode = 0;
  if (stream == nullptr || std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat st {};
  return fstat(STDERR_FILENO, &st) == 0 && st.st_dev == device && st.st_ino == inode;
}

void Structured(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
                const nlohmann::json& fields) {
  t_fields = &fields;
  logger.log(level, "{}", message);
  t_fields = nullptr;
}

std::string Printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = SequenceLength(text, i);
    const auto b = static_cast<unsigned char>(text[i]);
    if (len == 0 || (len == 1 && (b < 0x20 || b == 0x7F))) {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xFu];
      ++i;
      continue;
    }
    if (len > 1) {
      if (const char32_t cp = DecodeValid(text, i, len); IsInvisibleControl(cp)) {
        out += "\\u";
        for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 0xFu];
        i += len;
        continue;
      }
    }
    out.append(text.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace filesync::log
