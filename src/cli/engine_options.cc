#include "cli/engine_options.h"

namespace filesync::cli {
namespace {

// Where `key` was set: its file (or environment variable), else every source.
std::string OriginOf(const config::Config& config, const std::string& key) {
  const auto origin = config.origins.find(key);
  return origin != config.origins.end() ? origin->second : config.source;
}

}  // namespace

engine::EngineOptions EngineOptionsFor(const config::Config& config) {
  engine::EngineOptions options;
  for (const auto& dir : config.client_sync_dirs)
    options.dirs.push_back({dir.string(), config.CloudPathFor(dir)});
  auto matcher = scan::ExcludeMatcher::Compile(config.exclude);
  if (!matcher.ok()) {
    throw config::ConfigError(OriginOf(config, "exclude") + ": key 'exclude': " +
                              matcher.status().message() + "; fix or remove that pattern");
  }
  options.exclude = std::make_shared<const scan::ExcludeMatcher>(std::move(matcher.value()));
  options.workers = config.workers;
  options.cloud_verify_interval = config.cloud_verify_interval;
  options.max_delete_count = config.max_delete.count;
  options.max_delete_percent = config.max_delete.percent;
  options.cloud_root_setting =
      OriginOf(config, "cloud_root") + ": key 'cloud_root' = \"" + config.cloud_root + "\"";
  return options;
}

}  // namespace filesync::cli
