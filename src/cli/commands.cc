#include "cli/commands.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cache/state_store.h"
#include "cli/backend.h"
#include "cli/progress.h"
#include "hash/content_hash.h"
#include "ops/systemd_notify.h"
#include "pipeline/event_monitor.h"
#include "scan/exclude.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

constexpr const char* kSnapshotName = "status.json";

// Blocks SIGINT, SIGTERM and SIGHUP in every thread and handles them on one thread with
// sigwait(), so no work happens in a signal handler.
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
      if (sig == SIGHUP) {
        reload_ = true;
      } else if (sig == SIGINT || sig == SIGTERM) {
        stop_.store(true);
        log::Get("cli")->info("signal {}: finishing in-flight work, then exiting",
                              sig == SIGINT ? "SIGINT" : "SIGTERM");
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

struct Session {
  config::Config config;
  std::unique_ptr<cache::StateStore> store;
  std::unique_ptr<Backend> backend;
};

config::Config LoadConfig(const GlobalOptions& global) {
  config::Config config = config::Load(global.load);
  if (auto matcher = scan::ExcludeMatcher::Compile(config.exclude); !matcher.ok()) {
    const auto origin = config.origins.find("exclude");
    throw config::ConfigError((origin != config.origins.end() ? origin->second : config.source) +
                              ": key 'exclude': " + matcher.status().message() +
                              "; fix or remove that pattern");
  }
  log::Setup(global.log_format == "json" ? log::Format::kJson : log::Format::kText,
             global.log_level.empty() ? config.log_level : global.log_level);
  for (const std::string& warning : config::PermissionWarnings(config))
    log::Get("config")->warn("{}", warning);
  return config;
}

std::unique_ptr<cache::StateStore> OpenStore(const config::Config& config) {
  std::string warning;
  auto store = cache::StateStore::Open(config.state_dir, &warning);
  if (!store.ok()) throw std::runtime_error(store.status().message());
  if (!warning.empty()) log::Get("cache")->warn("{}", warning);
  return std::move(store.value());
}

Session OpenSession(const GlobalOptions& global) {
  Session s;
  s.config = LoadConfig(global);
  s.store = OpenStore(s.config);
  s.backend = MakeBackend(s.config, *s.store);
  return s;
}

void WriteSnapshot(const config::Config& config, cache::StateStore& store,
                   const pipeline::PassReport& report) {
  nlohmann::json j;
  j["last_pass"] = nlohmann::json::parse(report.ToJson());
  j["pid"] = getpid();
  nlohmann::json errors = nlohmann::json::array();
  if (auto list = store.Errors(); list.ok()) {
    for (const auto& e : *list) {
      errors.push_back({{"root", e.root},
                        {"path", e.path},
                        {"message", e.message},
                        {"attempts", e.attempts},
                        {"last_seen_unix", e.last_seen_unix}});
    }
  }
  j["errors"] = std::move(errors);
  const auto path = config.state_dir / kSnapshotName;
  const auto temp = config.state_dir / (std::string(kSnapshotName) + ".tmp");
  {
    const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    const std::string text = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    if (!ok) return;
  }
  std::rename(temp.c_str(), path.c_str());
}

void PrintSummary(const pipeline::PassReport& report) {
  const double seconds =
      static_cast<double>(report.finished_unix_ms - report.started_unix_ms) / 1000.0;
  for (const auto& r : report.roots) {
    if (r.stopped) {
      std::fprintf(stderr, "%s: NOT SYNCED: %s\n", r.local_dir.c_str(), r.stopped->c_str());
      continue;
    }
    std::fprintf(
        stderr,
        "%s -> %s: %zu entries; %llu uploaded (%s), %llu moved, %llu deleted, %llu folders "
        "created, "
        "%llu failed, %llu deferred, %zu skipped\n",
        r.local_dir.c_str(), r.cloud_path.c_str(), static_cast<std::size_t>(r.local_entries),
        static_cast<unsigned long long>(r.uploaded), HumanBytes(r.bytes_uploaded).c_str(),
        static_cast<unsigned long long>(r.moved), static_cast<unsigned long long>(r.deleted),
        static_cast<unsigned long long>(r.created), static_cast<unsigned long long>(r.failed),
        static_cast<unsigned long long>(r.deferred), r.issues.size());
  }
  std::fprintf(stderr, "pass %s in %.2f s (hashed %s)\n",
               report.converged() ? "complete" : "INCOMPLETE", seconds,
               HumanBytes(report.bytes_hashed).c_str());
}

// A configuration problem found only at run time (a refused token, a refused cloud_root): one
// line, exit 2, like a configuration error found at load time.
int ConfigErrorExit(const std::string& message) {
  std::fprintf(stderr, "filesync: %s\n", message.c_str());
  return 2;
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

}  // namespace

int RunSync(const GlobalOptions& global, const SyncOptions& options) {
  SignalWatcher signals;
  Session s = OpenSession(global);
  pipeline::EventMonitor monitor(s.config, s.backend->cloud(), *s.store);
  signals.OnStop([&monitor] { monitor.RequestStop(); });
  pipeline::PassProgress progress;
  pipeline::PassReport report;
  {
    ProgressDisplay display(progress, true);
    report = monitor.RunPass({.dry_run = false,
                              .verify = options.verify,
                              .allow_mass_delete = options.allow_mass_delete},
                             &progress);
  }
  WriteSnapshot(s.config, *s.store, report);
  if (report.config_error) return ConfigErrorExit(*report.config_error);
  PrintSummary(report);
  return report.converged() ? 0 : 1;
}

int RunPlan(const GlobalOptions& global, const SyncOptions& options) {
  Session s = OpenSession(global);
  pipeline::EventMonitor monitor(s.config, s.backend->cloud(), *s.store);
  const auto report = monitor.RunPass(
      {.dry_run = true, .verify = options.verify, .allow_mass_delete = options.allow_mass_delete});
  if (report.config_error) return ConfigErrorExit(*report.config_error);
  if (options.json) {
    std::cout << report.ToJson() << "\n";
  } else {
    std::size_t total = 0;
    for (const auto& r : report.roots) {
      if (r.stopped) std::cout << r.local_dir << ": NOT SYNCED: " << *r.stopped << "\n";
      for (const auto& issue : r.issues)
        std::cout << "skip    " << r.local_dir << "/" << issue.path << ": " << issue.message
                  << "\n";
      for (const auto& a : r.actions) {
        std::cout << plan::ActionKindName(a.kind) << "  "
                  << (a.kind == plan::ActionKind::kMove
                          ? cloud::JoinPath(r.cloud_path, a.from) + " -> "
                          : "")
                  << cloud::JoinPath(r.cloud_path, a.path) << "  (" << a.reason
                  << (a.kind == plan::ActionKind::kUpload ? ", " + HumanBytes(a.identity.size) : "")
                  << ")\n";
        ++total;
      }
    }
    std::cout << (total == 0 ? "in sync: nothing to do\n" : std::to_string(total) + " action(s)\n");
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
  auto store = OpenStore(config);
  log::Get("cli")->info("filesync daemon started: {} dir(s), backend {}, every {} s",
                        config.client_sync_dirs.size(),
                        config.backend == config::Backend::kLocal ? "local" : "dropbox",
                        config.poll_interval.count());
  bool starting = true;
  while (!signals.stop()) {
    auto backend = MakeBackend(config, *store);
    CheckAccount(*backend, starting);
    starting = false;
    pipeline::EventMonitor monitor(config, backend->cloud(), *store);
    signals.OnStop([&monitor, &systemd] {
      systemd.Stopping();
      monitor.RequestStop();
    });
    bool reload = false;
    // After a configuration problem (a refused token), passes back off from kConfigBackoff,
    // doubling up to kMaxConfigBackoff, instead of asking again every poll_interval.
    constexpr std::chrono::seconds kConfigBackoff{60}, kMaxConfigBackoff{3600};
    std::chrono::seconds backoff{0};
    while (!signals.stop() && !reload) {
      pipeline::PassProgress progress;
      pipeline::PassReport report;
      {
        ProgressDisplay display(progress, true);
        systemd.PassStarting();
        report = monitor.RunPass({}, &progress);
      }
      WriteSnapshot(config, *store, report);
      PrintSummary(report);
      systemd.PassFinished(report);
      if (signals.stop()) break;
      std::chrono::seconds wait = config.poll_interval;
      if (report.config_error) {
        backoff = backoff.count() == 0 ? kConfigBackoff : std::min(backoff * 2, kMaxConfigBackoff);
        wait = std::max(wait, backoff);
        log::Get("cli")->error("{}; next try in {} s, or at once on SIGHUP after the fix",
                               *report.config_error, wait.count());
      } else {
        backoff = std::chrono::seconds(0);
      }
      reload = signals.WaitFor(wait);
    }
    signals.OnStop(nullptr);
    if (!reload) break;
    systemd.Reloading();
    try {
      config::Config fresh = LoadConfig(global);
      if (fresh.state_dir != config.state_dir) {
        store.reset();
        store = OpenStore(fresh);
      }
      config = std::move(fresh);
      log::Get("cli")->info("configuration reloaded");
    } catch (const config::ConfigError& e) {
      log::Get("cli")->error("reload failed, keeping the previous configuration: {}", e.what());
    }
    systemd.Reloaded();
  }
  systemd.Stopping();
  log::Get("cli")->info("filesync daemon stopped");
  return 0;
}

int RunStatus(const GlobalOptions& global, bool json) {
  const config::Config config = LoadConfig(global);
  nlohmann::json out;
  out["state_dir"] = config.state_dir.string();
  std::string warning;
  auto store = cache::StateStore::Open(config.state_dir, &warning);
  if (store.ok()) {
    out["daemon_running"] = false;
    auto last = (*store)->Get(0, "last_pass");
    out["last_pass"] = last.ok() && last->has_value()
                           ? nlohmann::json::parse(**last, nullptr, false)
                           : nlohmann::json();
    nlohmann::json errors = nlohmann::json::array();
    if (auto list = (*store)->Errors(); list.ok()) {
      for (const auto& e : *list) {
        errors.push_back({{"root", e.root},
                          {"path", e.path},
                          {"message", e.message},
                          {"attempts", e.attempts},
                          {"last_seen_unix", e.last_seen_unix}});
      }
    }
    out["errors"] = std::move(errors);
    nlohmann::json roots = nlohmann::json::array();
    if (auto list = (*store)->Roots(); list.ok()) {
      for (const auto& r : *list) {
        roots.push_back({{"local_dir", r.local_dir},
                         {"cloud_path", r.cloud_path},
                         {"tracked", r.file_records}});
      }
    }
    out["roots"] = std::move(roots);
  } else if (store.status().kind() == Status::Kind::kConflict) {
    // A daemon holds the store: show the snapshot it writes after every pass.
    std::ifstream in(config.state_dir / kSnapshotName);
    nlohmann::json snapshot = nlohmann::json::parse(in, nullptr, false);
    out["daemon_running"] = true;
    out["last_pass"] = snapshot.is_object() ? snapshot["last_pass"] : nlohmann::json();
    out["errors"] = snapshot.is_object() ? snapshot["errors"] : nlohmann::json::array();
  } else {
    throw std::runtime_error(store.status().message());
  }
  std::uint64_t pending = 0;
  if (out["last_pass"].is_object()) {
    for (const auto& r : out["last_pass"]["roots"]) {
      const auto planned = r.value("planned", 0ULL);
      const auto done = r.value("uploaded", 0ULL) + r.value("moved", 0ULL) +
                        r.value("deleted", 0ULL) + r.value("created", 0ULL);
      pending += planned > done ? planned - done : 0;
    }
  }
  out["pending"] = pending;
  if (json) {
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << "state dir: " << config.state_dir.string()
            << (out["daemon_running"].get<bool>() ? " (daemon running)" : "") << "\n";
  if (out["last_pass"].is_object()) {
    const auto& p = out["last_pass"];
    std::cout << "last pass: " << (p.value("converged", false) ? "complete" : "INCOMPLETE") << ", "
              << p.value("duration_ms", 0LL) << " ms, hashed "
              << HumanBytes(p.value("bytes_hashed", 0ULL)) << "\n";
    for (const auto& r : p["roots"]) {
      std::cout << "  " << r.value("local_dir", "") << " -> " << r.value("cloud_path", "") << ": "
                << r.value("uploaded", 0) << " uploaded, " << r.value("moved", 0) << " moved, "
                << r.value("deleted", 0) << " deleted, " << r.value("failed", 0) << " failed";
      if (r.contains("stopped")) std::cout << "; NOT SYNCED: " << r["stopped"].get<std::string>();
      std::cout << "\n";
    }
  } else {
    std::cout << "last pass: none yet\n";
  }
  std::cout << "pending: " << pending << "\n";
  std::cout << "errors: " << out["errors"].size() << "\n";
  for (const auto& e : out["errors"]) {
    std::cout << "  " << e.value("root", "") << "/" << e.value("path", "") << ": "
              << e.value("message", "") << " (" << e.value("attempts", 0) << " attempts)\n";
  }
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
      std::fprintf(stderr, "filesync: cannot hash %s\n", result.status().message().c_str());
      code = 1;
      continue;
    }
    // Like Dropbox's reference hasher: the hex digest; with several files, "digest  path" lines.
    if (files.size() == 1) {
      std::printf("%s\n", hash::ToHex(result->digest).c_str());
    } else {
      std::printf("%s  %s\n", hash::ToHex(result->digest).c_str(), file.c_str());
    }
  }
  return code;
}

}  // namespace filesync::cli
