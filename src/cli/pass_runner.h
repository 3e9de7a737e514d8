// What the sync, plan and run subcommands share about a pass: running one under the progress
// display (status.json kept up to date meanwhile) and its summary, logged as records (structured
// in JSON), so it follows --log-format and log_level.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cli/daemon_observer.h"
#include "config/config.h"
#include "engine/sync_engine.h"

namespace filesync::cli {

// "1 folder", "2 folders".
std::string Count(std::uint64_t n, const char* one, const char* many);

// Runs one pass with the progress display, keeping status.json up to date meanwhile;
// `last_pass` is the previous pass's stored report on the way in, this one's on the way out.
engine::PassReport RunObservedPass(engine::SyncEngine& sync_engine,
                                   const engine::PassOptions& options, const config::Config& config,
                                   std::string_view command, nlohmann::json& last_pass,
                                   DaemonObserver* observer = nullptr);

struct SummaryRecord {
  spdlog::level::level_enum level;
  std::string text;
  nlohmann::json fields;  // its structured form, for JSON logs
};

// The summary of a pass: one record per sync dir, then one for the pass. *key is their text
// without timings, so a daemon can tell a pass that ended as the one before from a new state.
std::vector<SummaryRecord> Summarise(const engine::PassReport& report, std::string_view command,
                                     std::string* key);

// Logs the records on "filesync.pass"; a routine pass's at debug.
void LogSummary(const std::vector<SummaryRecord>& records, bool routine);

bool AnythingPlanned(const engine::PassReport& report);

}  // namespace filesync::cli
