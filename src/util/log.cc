#include "util/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <mutex>
#include <nlohmann/json.hpp>

namespace filesync::log {
namespace {

std::mutex g_mu;
Format g_format = Format::kText;
spdlog::level::level_enum g_level = spdlog::level::info;

// Writes the message as a JSON string value: spdlog's pattern language cannot escape it.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string text = nlohmann::json(std::string(msg.payload.data(), msg.payload.size()))
                                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<JsonMessageFlag>();
  }
};

std::unique_ptr<spdlog::formatter> MakeFormatter() {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (g_format == Format::kJson) {
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n","msg":%*})");
  } else {
    formatter->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
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

}  // namespace

void Setup(Format format, const std::string& level) {
  std::lock_guard lock(g_mu);
  g_format = format;
  g_level = spdlog::level::from_str(level);
  if (level == "warn") g_level = spdlog::level::warn;
  spdlog::drop_all();
}

std::shared_ptr<spdlog::logger> Get(const std::string& module) {
  std::lock_guard lock(g_mu);
  const std::string name = "filesync." + module;
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = MakeLogger(name);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace filesync::log
