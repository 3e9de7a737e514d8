// `filesync sync`: one pass, then exit 0 when the cloud matches the client (docs/configuration.md
// lists the exit codes); the first SIGINT/SIGTERM stops it, counted as not done.
#include "cli/backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/daemon_observer.h"
#include "cli/engine_options.h"
#include "cli/pass_runner.h"
#include "cli/signal_watcher.h"
#include "engine/sync_engine.h"

namespace filesync::cli {

int RunSync(const GlobalOptions& global, const SyncOptions& options) {
  SignalWatcher signals;
  const config::Config config = LoadConfig(global);
  SetupLogging(global, config);
  auto store = OpenStore(config, "sync");
  DaemonObserver observer(config);  // for the bwlimit
  auto backend = MakeBackend(config, *store, observer.hooks());
  engine::SyncEngine sync_engine(EngineOptionsFor(config), backend->cloud(), *store);
  signals.OnStop([&sync_engine] { sync_engine.RequestStop(); });
  nlohmann::json last_pass;
  const engine::PassReport report = RunObservedPass(
      sync_engine,
      {.dry_run = false, .verify = options.verify, .allow_mass_delete = options.allow_mass_delete},
      config, "sync", last_pass);
  signals.OnStop(nullptr);
  if (report.config_error) throw config::ConfigError(*report.config_error);
  std::string key;
  LogSummary(Summarise(report, "sync", &key), false);
  return report.converged() ? 0 : 1;
}

}  // namespace filesync::cli
