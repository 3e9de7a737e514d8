// The filesync commands, each a function returning the process exit code:
//   0  success (for sync: the cloud matches the client; for run: stopped on request)
//   1  the work did not complete (sync errors, an unreadable folder, a dir skipped for safety,
//      a pass stopped by SIGINT/SIGTERM, state store failure; status: no state to show)
//   2  bad usage or configuration (one line on stderr naming file, key and fix)
// A second SIGINT/SIGTERM during sync or run ends the process at once with 128 + the signal.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config/config.h"

namespace filesync::cli {

struct GlobalOptions {
  config::LoadOptions load;
  std::string log_level;  // overrides the config's log_level when set
  std::string log_format = "text";
};

struct SyncOptions {
  bool verify = false;
  bool allow_mass_delete = false;
  bool json = false;
};

int RunDaemon(const GlobalOptions& global);
int RunSync(const GlobalOptions& global, const SyncOptions& options);
int RunPlan(const GlobalOptions& global, const SyncOptions& options);
int RunStatus(const GlobalOptions& global, bool json);
int RunHash(const std::vector<std::string>& files);
struct AuthOptions {
  std::string app_key;        // default: dbx_app_key from the configuration
  std::string api_url;        // default: dbx_api_url
  std::filesystem::path out;  // default: <state_dir>/dropbox-refresh-token
};
int RunAuth(const GlobalOptions& global, const AuthOptions& options);

// Prints an error that ends the command: one line "filesync: <message>", or with
// --log-format json one log record at level error (so the output stays one object per line).
void ReportFatal(const GlobalOptions& global, const std::string& message);

}  // namespace filesync::cli
