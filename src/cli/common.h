// What the commands share: loading the configuration and setting up logging from it, opening
// the state store, and the status snapshot a running `sync` or `run` keeps in
// <state_dir>/status.json for `filesync status` (who runs, and the pass under way).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cli/commands.h"
#include "config/config.h"
#include "store/state_store.h"

namespace filesync::cli {

inline constexpr const char* kSnapshotName = "status.json";

// Loads and checks the configuration (exclude patterns included). Throws config::ConfigError.
// Changes nothing, logging included (see SetupLogging).
config::Config LoadConfig(const GlobalOptions& global);

// Installs the log format and level (--log-level wins over log_level), then warns about
// config files that hold a secret and are readable by others.
void SetupLogging(const GlobalOptions& global, const config::Config& config);

// Opens the state store for writing, as `command` ("run", "sync"). Throws std::runtime_error
// (exit 1) when it cannot, e.g. another filesync holds it.
std::unique_ptr<store::StateStore> OpenStore(const config::Config& config,
                                             std::string_view command);

// Replaces status.json (mode 0600, atomically) with {pid, command, updated_unix_ms,
// current_pass, last_pass}: `current_pass` is the pass under way (null between passes),
// `last_pass` the last one this process finished (bounded, as stored; null before the first).
// Best effort: a failure is ignored (the state disk may be full); `status` reads the state
// store for everything but the pass under way.
void WriteSnapshot(const std::filesystem::path& state_dir, std::string_view command,
                   const nlohmann::json& current_pass, const nlohmann::json& last_pass);

// The object `filesync status --json` prints, from the state store and, for the pass under way,
// the holder's status.json (cli/status_command.cc). The daemon serves the same object on /status.
nlohmann::json GatherStatus(const config::Config& config, store::StateStore& store,
                            const std::optional<store::Owner>& holder);

// "2026-11-24 09:37:05" in local time.
std::string LocalTime(std::int64_t unix_ms);

}  // namespace filesync::cli
