// `filesync run`, the daemon: pipeline::EventMonitor's poll loop around the engine's passes,
// with systemd notifications and the status endpoint (DaemonObserver); SIGHUP reloads the
// configuration, keeping the old one if the new one fails.
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/daemon_observer.h"
#include "cli/engine_options.h"
#include "cli/pass_runner.h"
#include "cli/signal_watcher.h"
#include "engine/sync_engine.h"
#include "ops/systemd_notify.h"
#include "pipeline/event_monitor.h"
#include "store/state_store.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

// A reload (SIGHUP): the new configuration, store and backend are all set up before the old ones
// are let go, so any failure leaves the daemon running as it was.
bool Reload(const GlobalOptions& global, config::Config& config,
            std::unique_ptr<store::StateStore>& store, std::unique_ptr<Backend>& backend,
            DaemonObserver& observer) {
  try {
    config::Config fresh = LoadConfig(global);
    std::unique_ptr<store::StateStore> fresh_store;
    std::error_code ec;
    if (!std::filesystem::equivalent(fresh.state_dir, config.state_dir, ec))
      fresh_store = OpenStore(fresh, "run");
    std::unique_ptr<Backend> fresh_backend =
        MakeBackend(fresh, fresh_store ? *fresh_store : *store, observer.hooks());
    backend = std::move(fresh_backend);
    if (fresh_store) store = std::move(fresh_store);
    config = std::move(fresh);
    SetupLogging(global, config);
    observer.Reload(config, *store);
    log::Get("cli")->info("configuration reloaded");
    return true;
  } catch (const std::exception& e) {
    log::Get("cli")->error("reload failed, keeping the previous configuration: {}", e.what());
    return false;
  }
}

// Checks the backend's credentials once, at start-up or after a reload, and logs whose account
// they belong to. A refused credential is a configuration error at start-up (exit 2); after a
// reload it is logged and the passes back off. Other failures wait for the first pass.
void CheckAccount(Backend& backend, bool starting) {
  auto account = backend.Account();
  if (account.ok()) {
    if (!account->empty()) log::Get("cli")->info("linked account: {}", *account);
    return;
  }
  if (account.status().kind() != Status::Kind::kAuth) {
    log::Get("cli")->warn("cannot check the account yet: {}", account.status().message());
    return;
  }
  if (starting) throw config::ConfigError(account.status().message());
  log::Get("cli")->error("{}", account.status().message());
}

// Between the daemon's passes: says when a pass that met a configuration problem is tried again,
// then waits; true if a reload (SIGHUP) came meanwhile.
bool WaitForNextPass(SignalWatcher& signals, std::chrono::seconds wait,
                     const pipeline::PassVerdict& last) {
  if (last.config_error) {
    log::Get("cli")->error("{}; next try in {} s, or at once on SIGHUP after the fix",
                           *last.config_error, wait.count());
  }
  return signals.WaitFor(wait);
}

void LogStart(const config::Config& config) {
  log::Get("cli")->info("filesync daemon started: {} dir(s), backend {}, every {} s",
                        config.client_sync_dirs.size(),
                        config.backend == config::Backend::kLocal ? "local" : "dropbox",
                        config.poll_interval.count());
}

}  // namespace

int RunDaemon(const GlobalOptions& global) {
  SignalWatcher signals;  // first: threads started later inherit its blocked signals
  ops::SystemdNotifier systemd;
  config::Config config = LoadConfig(global);
  SetupLogging(global, config);
  auto store = OpenStore(config, "run");
  DaemonObserver observer(config);
  auto backend = MakeBackend(config, *store, observer.hooks());
  if (Status s = observer.Start(config, *store); !s.ok()) throw config::ConfigError(s.message());
  LogStart(config);
  std::string last_summary;
  nlohmann::json last_pass;
  CheckAccount(*backend, true);
  while (!signals.stop()) {
    engine::SyncEngine sync_engine(EngineOptionsFor(config), backend->cloud(), *store);
    signals.OnStop([&sync_engine, &systemd] {
      systemd.Stopping();
      sync_engine.RequestStop();
    });
    // The poll loop (pipeline::EventMonitor): a pass, then poll_interval (backing off after a
    // configuration problem such as a refused token), until a stop or a reload.
    pipeline::EventMonitor poll_loop(
        config.poll_interval,
        {.stop_requested = [&] { return signals.stop(); },
         .run_pass = [&]() -> std::optional<pipeline::PassVerdict> {
           if (Status s = store->CheckLocation(); !s.ok()) {
             log::Get("cli")->error("{}; stopping (start filesync again to rebuild its state)",
                                    s.message());
             return std::nullopt;
           }
           systemd.PassStarting();
           const auto report =
               RunObservedPass(sync_engine, {}, config, "run", last_pass, &observer);
           systemd.PassFinished(report);
           // A pass that planned nothing and ended as the one before is routine: logged at
           // debug, so a short poll_interval does not fill the log; any change is logged at info
           // (or warn).
           std::string summary;
           const auto records = Summarise(report, "run", &summary);
           LogSummary(records, !AnythingPlanned(report) && summary == last_summary);
           last_summary = std::move(summary);
           return pipeline::PassVerdict{report.config_error};
         },
         .wait =
             [&](std::chrono::seconds wait, const pipeline::PassVerdict& last) {
               return WaitForNextPass(signals, wait, last);
             }});
    const pipeline::EventMonitor::End end = poll_loop.Run();
    if (end == pipeline::EventMonitor::End::kFailed) return 1;
    const bool reload = end == pipeline::EventMonitor::End::kReload;
    signals.OnStop(nullptr);
    if (!reload) break;
    systemd.Reloading();
    if (Reload(global, config, store, backend, observer)) CheckAccount(*backend, false);
    systemd.Reloaded();
  }
  systemd.Stopping();
  log::Get("cli")->info("filesync daemon stopped");
  return 0;
}

}  // namespace filesync::cli
