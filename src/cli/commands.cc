// sync, plan, run and hash (status is in status.cc). `run` is the daemon: pipeline::EventMonitor's
// poll loop around the engine's passes. Signals are handled on one thread with
// sigwait(); a pass runs under a ProgressDisplay that also refreshes status.json; the summary of
// a pass is logged as records (structured in JSON), so it follows --log-format and log_level.
#include "cli/commands.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/backend.h"
#include "cli/common.h"
#include "cli/daemon_observer.h"
#include "cli/engine_options.h"
#include "cli/progress.h"
#include "core/rel_path.h"
#include "engine/sync_engine.h"
#include "hash/content_hash.h"
#include "ops/systemd_notify.h"
#include "pipeline/event_monitor.h"
#include "store/state_store.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

// How often a running pass refreshes status.json.
constexpr std::chrono::milliseconds kSnapshotEvery{2000};

// Blocks SIGINT, SIGTERM and SIGHUP in every thread and handles them on one thread with
// sigwait(), so no work happens in a signal handler. The first SIGINT/SIGTERM asks for a stop
// (in-flight work finishes, nothing more starts); a second one ends the process at once with
// 128 + the signal number: uploads go through staging or upload sessions and the state store
// commits in transactions, so nothing half-done is ever taken for done.
class SignalWatcher {
 public:
  SignalWatcher() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    sigaddset(&set_, SIGUSR1);  // used only to wake the thread at shutdown
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] { Run(); });
  }
  ~SignalWatcher() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  void OnStop(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    on_stop_ = std::move(fn);
  }
  [[nodiscard]] bool stop() const { return stop_.load(); }
  // Waits up to `timeout`; returns true if a reload (SIGHUP) was requested.
  bool WaitFor(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return stop_.load() || reload_; });
    const bool reload = reload_;
    reload_ = false;
    return reload;
  }

 private:
  void Run() {
    for (;;) {
      int sig = 0;
      if (sigwait(&set_, &sig) != 0) continue;
      std::lock_guard lock(mu_);
      if (closing_) return;
      const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
      if (sig == SIGHUP) {
        reload_ = true;
      } else if ((sig == SIGINT || sig == SIGTERM) && stop_.load()) {
        log::Get("cli")->warn("second {}: exiting now", name);
        std::fflush(stderr);
        _exit(128 + sig);
      } else if (sig == SIGINT || sig == SIGTERM) {
        stop_.store(true);
        log::Get("cli")->info(
            "{}: stopping: starting nothing more, abandoning transfers in flight (send it again to "
            "stop at once)",
            name);
        if (on_stop_) on_stop_();
      }
      cv_.notify_all();
    }
  }

  sigset_t set_{};
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> on_stop_;
  std::atomic<bool> stop_{false};
  bool reload_ = false;
  bool closing_ = false;
  std::thread thread_;
};

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "1 folder", "2 folders".
std::string Count(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Runs one pass with the progress display, keeping status.json up to date meanwhile;
// `last_pass` is the previous pass's stored report on the way in, this one's on the way out.
engine::PassReport RunObservedPass(engine::SyncEngine& sync_engine,
                                   const engine::PassOptions& options, const config::Config& config,
                                   std::string_view command, nlohmann::json& last_pass,
                                   DaemonObserver* observer = nullptr) {
  engine::PassProgress progress;
  const std::int64_t started = NowMs();
  if (observer) observer->PassStarting(progress, started);
  auto snapshot = [&] {
    WriteSnapshot(config.state_dir, command, CurrentPassJson(progress, started), last_pass);
  };
  snapshot();
  engine::PassReport report;
  {
    ProgressDisplay display(progress, snapshot, kSnapshotEvery);
    report = sync_engine.RunPass(options, &progress);
  }
  if (observer) observer->PassFinished(report);
  last_pass = nlohmann::json::parse(report.ToJson(engine::kStoredReportItems));
  WriteSnapshot(config.state_dir, command, nullptr, last_pass);
  return report;
}

std::uint64_t NotDone(const engine::PassReport& report) {
  std::uint64_t n = 0;
  for (const auto& r : report.roots) n += r.pending;
  return n;
}

struct SummaryRecord {
  spdlog::level::level_enum level;
  std::string text;
  nlohmann::json fields;  // its structured form, for JSON logs
};

SummaryRecord RootSummary(const engine::RootReport& r) {
  nlohmann::json fields{{"local_dir", r.local_dir}, {"cloud_path", r.cloud_path}};
  std::string line;
  if (r.stopped) {
    fields["stopped"] = *r.stopped;
    line = r.local_dir + ": NOT SYNCED: " + *r.stopped;
  } else if (r.interrupted && r.actions.empty()) {
    line = r.local_dir + ": NOT SYNCED: stopped before it was planned";
  } else {
    line = r.local_dir + " -> " + r.cloud_path + ": " + Count(r.local_entries, "entry", "entries") +
           "; " + std::to_string(r.uploaded) + " uploaded (" + HumanBytes(r.bytes_uploaded) +
           "), " + std::to_string(r.moved) + " moved, " + std::to_string(r.deleted) + " deleted, " +
           Count(r.created, "folder", "folders") + " created, " + std::to_string(r.failed) +
           " failed, " + std::to_string(r.deferred) + " deferred, " +
           std::to_string(r.issues.size()) + " skipped";
    if (r.unreadable > 0) line += ", " + Count(r.unreadable, "folder", "folders") + " unreadable";
    if (r.pending > 0) line += ", " + std::to_string(r.pending) + " not done (stopped)";
  }
  fields.update({{"entries", r.local_entries},
                 {"planned", r.actions.size()},
                 {"uploaded", r.uploaded},
                 {"bytes_uploaded", r.bytes_uploaded},
                 {"moved", r.moved},
                 {"deleted", r.deleted},
                 {"created", r.created},
                 {"failed", r.failed},
                 {"deferred", r.deferred},
                 {"skipped", r.issues.size()},
                 {"unreadable", r.unreadable},
                 {"pending", r.pending},
                 {"interrupted", r.interrupted}});
  const bool bad = r.stopped || r.interrupted || r.failed > 0 || r.deferred > 0 || r.pending > 0 ||
                   r.unreadable > 0;
  return {bad ? spdlog::level::warn : spdlog::level::info, std::move(line), std::move(fields)};
}

// The summary of a pass: one record per sync dir, then one for the pass. *key is their text
// without timings, so a daemon can tell a pass that ended as the one before from a new state.
std::vector<SummaryRecord> Summarise(const engine::PassReport& report, std::string_view command,
                                     std::string* key) {
  std::vector<SummaryRecord> records;
  key->clear();
  for (const auto& r : report.roots) {
    records.push_back(RootSummary(r));
    *key += records.back().text + "\n";
  }
  const bool converged = report.converged();
  std::string outcome = converged ? "pass complete" : "pass INCOMPLETE";
  if (report.interrupted && !converged) {
    outcome = "pass INTERRUPTED: " + Count(NotDone(report), "action", "actions") + " not done" +
              (command == "run" ? "" : "; run filesync sync again to finish");
  }
  if (report.state_errors > 0) {
    outcome += "; " +
               Count(static_cast<std::uint64_t>(report.state_errors), "state store write",
                     "state store writes") +
               " failed";
  }
  *key += outcome;
  const std::int64_t duration_ms = report.finished_unix_ms - report.started_unix_ms;
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.2f s", static_cast<double>(duration_ms) / 1000.0);
  records.push_back(
      {converged ? spdlog::level::info : spdlog::level::warn,
       outcome + " in " + seconds + " (hashed " + HumanBytes(report.bytes_hashed) + ")",
       {{"converged", converged},
        {"interrupted", report.interrupted},
        {"pending", NotDone(report)},
        {"state_errors", report.state_errors},
        {"duration_ms", duration_ms},
        {"bytes_hashed", report.bytes_hashed},
        {"files_hashed", report.files_hashed}}});
  return records;
}

// Logs the records on "filesync.pass"; a routine pass's at debug.
void LogSummary(const std::vector<SummaryRecord>& records, bool routine) {
  auto logger = log::Get("pass");
  for (const SummaryRecord& r : records)
    log::Structured(*logger, routine ? spdlog::level::debug : r.level, r.text, r.fields);
}

bool AnythingPlanned(const engine::PassReport& report) {
  return std::any_of(report.roots.begin(), report.roots.end(),
                     [](const auto& r) { return !r.actions.empty(); });
}

// The state `plan` reads: a copy of the store in memory (a dry run changes nothing, and may run
// while a daemon holds the state dir), or an empty one when there is no usable state yet.
std::unique_ptr<store::StateStore> OpenPlanStore(const config::Config& config) {
  auto copy = store::StateStore::OpenReadOnly(config.state_dir, store::StateStore::ReadOnly::kCopy);
  if (copy.ok()) return std::move(copy.value());
  if (copy.status().kind() == Status::Kind::kPermanent) {
    log::Get("cache")->warn("{}; planning from an empty state", copy.status().message());
  } else if (copy.status().kind() != Status::Kind::kNotFound) {
    throw std::runtime_error(copy.status().message());
  }
  auto empty = store::StateStore::OpenEmpty();
  if (!empty.ok()) throw std::runtime_error(empty.status().message());
  return std::move(empty.value());
}

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

}  // namespace

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

int RunPlan(const GlobalOptions& global, const SyncOptions& options) {
  const config::Config config = LoadConfig(global);
  SetupLogging(global, config);
  auto store = OpenPlanStore(config);
  auto backend = MakeBackend(config, *store);
  engine::SyncEngine sync_engine(EngineOptionsFor(config), backend->cloud(), *store);
  const auto report = sync_engine.RunPass(
      {.dry_run = true, .verify = options.verify, .allow_mass_delete = options.allow_mass_delete});
  if (report.config_error) throw config::ConfigError(*report.config_error);
  if (options.json) {
    std::cout << report.ToJson() << "\n";
  } else {
    std::size_t total = 0;
    bool all_synced = true;
    for (const auto& r : report.roots) {
      if (r.stopped) {
        std::cout << log::Printable(r.local_dir) << ": NOT SYNCED: " << log::Printable(*r.stopped)
                  << "\n";
        all_synced = false;
      }
      for (const auto& issue : r.issues)
        std::cout << "skip    " << log::Printable(r.local_dir + "/" + issue.path) << ": "
                  << log::Printable(issue.message) << "\n";
      for (const auto& a : r.actions) {
        std::cout << plan::ActionKindName(a.kind) << "  "
                  << log::Printable((a.kind == plan::ActionKind::kMove
                                         ? core::JoinPath(r.cloud_path, a.from) + " -> "
                                         : "") +
                                    core::JoinPath(r.cloud_path, a.path))
                  << "  (" << log::Printable(a.reason)
                  << (a.kind == plan::ActionKind::kUpload ? ", " + HumanBytes(a.identity.size) : "")
                  << ")\n";
        ++total;
      }
      all_synced = all_synced && r.unreadable == 0;
    }
    if (total > 0) std::cout << Count(total, "action", "actions") << "\n";
    if (total == 0 && all_synced) std::cout << "in sync: nothing to do\n";
    if (!all_synced) std::cout << "NOT in sync: see above\n";
  }
  for (const auto& r : report.roots) {
    if (r.stopped) return 1;
  }
  return 0;
}

int RunDaemon(const GlobalOptions& global) {
  SignalWatcher signals;  // first: threads started later inherit its blocked signals
  ops::SystemdNotifier systemd;
  config::Config config = LoadConfig(global);
  SetupLogging(global, config);
  auto store = OpenStore(config, "run");
  DaemonObserver observer(config);
  auto backend = MakeBackend(config, *store, observer.hooks());
  if (Status s = observer.Start(config, *store); !s.ok()) throw config::ConfigError(s.message());
  log::Get("cli")->info("filesync daemon started: {} dir(s), backend {}, every {} s",
                        config.client_sync_dirs.size(),
                        config.backend == config::Backend::kLocal ? "local" : "dropbox",
                        config.poll_interval.count());
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

int RunHash(const std::vector<std::string>& files) {
  int code = 0;
  // Several files at once, one per core (a large file alone uses every core by itself).
  const auto results = hash::HashFiles(files, std::max(1u, std::thread::hardware_concurrency()));
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string& file = files[i];
    const auto& result = results[i];
    if (!result.ok()) {
      std::fprintf(stderr, "filesync: cannot hash %s\n",
                   log::Printable(result.status().message()).c_str());
      code = 1;
      continue;
    }
    // Like Dropbox's reference hasher: the hex digest; with several files, "digest  path" lines.
    if (files.size() == 1) {
      std::printf("%s\n", hash::ToHex(result->digest).c_str());
    } else {
      std::printf("%s  %s\n", hash::ToHex(result->digest).c_str(), log::Printable(file).c_str());
    }
  }
  return code;
}

}  // namespace filesync::cli
