#include "cli/common.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "scan/exclude.h"
#include "util/log.h"

namespace filesync::cli {

config::Config LoadConfig(const GlobalOptions& global) {
  config::Config config = config::Load(global.load);
  if (auto matcher = scan::ExcludeMatcher::Compile(config.exclude); !matcher.ok()) {
    const auto origin = config.origins.find("exclude");
    throw config::ConfigError((origin != config.origins.end() ? origin->second : config.source) +
                              ": key 'exclude': " + matcher.status().message() +
                              "; fix or remove that pattern");
  }
  return config;
}

void SetupLogging(const GlobalOptions& global, const config::Config& config) {
  // Both were checked already (--log-level by the command line, log_level by config::Load).
  const auto level =
      log::ParseLevel(global.log_level.empty() ? config.log_level : global.log_level);
  log::Setup(global.log_format == "json" ? log::Format::kJson : log::Format::kText,
             level.value_or(spdlog::level::info));
  for (const std::string& warning : config::PermissionWarnings(config))
    log::Get("config")->warn("{}", warning);
}

std::unique_ptr<store::StateStore> OpenStore(const config::Config& config,
                                             std::string_view command) {
  std::string warning;
  auto store = store::StateStore::Open(config.state_dir, &warning, command);
  if (!store.ok() && store.status().kind() == Status::Kind::kInvalidArgument) {
    const auto origin = config.origins.find("state_dir");
    throw config::ConfigError((origin != config.origins.end() ? origin->second : config.source) +
                              ": key 'state_dir' = \"" + config.state_dir.string() +
                              "\": " + store.status().message() +
                              "; point state_dir at a folder filesync can create and write");
  }
  if (!store.ok()) throw std::runtime_error(store.status().message());
  if (!warning.empty()) log::Get("cache")->warn("{}", warning);
  return std::move(store.value());
}

void WriteSnapshot(const std::filesystem::path& state_dir, std::string_view command,
                   const nlohmann::json& current_pass, const nlohmann::json& last_pass) {
  const nlohmann::json j{
      {"pid", getpid()},
      {"command", command},
      {"updated_unix_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count()},
      {"current_pass", current_pass},
      {"last_pass", last_pass}};
  const auto path = state_dir / kSnapshotName;
  const auto temp = state_dir / (std::string(kSnapshotName) + ".tmp");
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  const std::string text = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) unlink(temp.c_str());
}

void ReportFatal(const GlobalOptions& global, const std::string& message) {
  if (global.log_format != "json") {
    std::fprintf(stderr, "filesync: %s\n", log::Printable(message).c_str());
    return;
  }
  // Logging may not be set up yet (a configuration error): errors show at every level.
  log::Setup(log::Format::kJson, spdlog::level::err);
  log::Get("cli")->error("{}", message);
}

std::string LocalTime(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

}  // namespace filesync::cli
