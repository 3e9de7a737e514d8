// `filesync status`: read-only. When status_listen is set it first asks the running daemon
// (GET /status), which answers live, the pass in progress included. Otherwise it opens the state
// store with StateStore::OpenReadOnly (no folder, file or lock created, nothing set aside), asks
// who holds the state dir without taking it, and reads the pass under way from the holder's
// status.json. The JSON has one shape whoever runs (see docs/configuration.md, "filesync status").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "cli/common.h"
#include "cli/progress.h"
#include "core/rel_path.h"
#include "engine/pass_report.h"
#include "ops/status_server.h"
#include "store/state_store.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

// How long `status` waits for the daemon's answer before reading the state store.
constexpr std::chrono::milliseconds kAskDaemonTimeout{3000};

// The pass the holder reports in its status.json, or null (none under way, or not its file).
nlohmann::json CurrentPass(const std::filesystem::path& state_dir, const store::Owner& holder) {
  std::ifstream in(state_dir / kSnapshotName);
  const nlohmann::json snapshot = nlohmann::json::parse(in, nullptr, false);
  if (!snapshot.is_object() || snapshot.value("pid", 0) != holder.pid ||
      !snapshot.contains("current_pass") || !snapshot["current_pass"].is_object()) {
    return nullptr;
  }
  return snapshot["current_pass"];
}

// Planned actions of the last pass without an outcome (all of them, for a dir stopped early).
std::uint64_t Pending(const std::optional<engine::PassReport>& last_pass) {
  std::uint64_t pending = 0;
  if (!last_pass) return 0;
  for (const engine::RootReport& r : last_pass->roots) {
    const std::uint64_t done = r.uploaded + r.moved + r.deleted + r.created;
    pending += r.planned() > done ? r.planned() - done : 0;
  }
  return pending;
}

// `last_pass` is set to the stored last pass, if there is one.
nlohmann::json Gather(const config::Config& config, store::StateStore& store,
                      const std::optional<store::Owner>& holder,
                      std::optional<engine::PassReport>* last_pass) {
  nlohmann::json out;
  out["state_dir"] = config.state_dir.string();
  out["running"] = holder ? nlohmann::json{{"pid", holder->pid}, {"command", holder->command}}
                          : nlohmann::json();
  out["daemon_running"] = holder && holder->command == "run";
  auto last = store.Get(0, "last_pass");
  out["last_pass"] = last.ok() && last->has_value() ? nlohmann::json::parse(**last, nullptr, false)
                                                    : nlohmann::json();
  if (out["last_pass"].is_discarded()) out["last_pass"] = nullptr;
  if (last.ok() && last->has_value()) {
    if (auto report = engine::PassReport::FromJson(**last); report.ok())
      *last_pass = std::move(report.value());
  }
  // A pass that started and has not recorded its outcome: under way if someone holds the state
  // dir, else it ended without recording it (killed, or the state store could not be written).
  auto under_way = store.Get(0, "pass_under_way");
  const bool marker = under_way.ok() && under_way->has_value();
  const std::int64_t started = marker ? std::atoll((*under_way)->c_str()) : 0;
  out["current_pass"] = nullptr;
  if (holder) {
    out["current_pass"] = CurrentPass(config.state_dir, *holder);
    if (out["current_pass"].is_null() && marker)
      out["current_pass"] = {{"started_unix_ms", started}};
  }
  out["unrecorded_pass"] =
      !holder && marker ? nlohmann::json{{"started_unix_ms", started}} : nlohmann::json();
  out["converged"] = *last_pass && (*last_pass)->converged() && out["unrecorded_pass"].is_null();
  out["pending"] = Pending(*last_pass);
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
  out["errors"] = std::move(errors);
  nlohmann::json roots = nlohmann::json::array();
  if (auto list = store.Roots(); list.ok()) {
    for (const auto& r : *list) {
      roots.push_back(
          {{"local_dir", r.local_dir}, {"cloud_path", r.cloud_path}, {"tracked", r.file_records}});
    }
  }
  out["roots"] = std::move(roots);
  return out;
}

// The first actions a stopped pass left undone in one dir.
void PrintPending(const engine::RootReport& root) {
  constexpr std::size_t kShown = 10;
  const auto& list = root.pending_actions;
  for (std::size_t i = 0; i < list.size() && i < kShown; ++i) {
    const plan::Action& a = list[i];
    std::cout << "    not done: " << plan::ActionKindName(a.kind) << " "
              << (a.kind == plan::ActionKind::kMove
                      ? log::Printable(core::JoinPath(root.cloud_path, a.from)) + " -> "
                      : "")
              << log::Printable(core::JoinPath(root.cloud_path, a.path)) << "\n";
  }
  const std::uint64_t shown = std::min<std::uint64_t>(list.size(), kShown);
  if (!list.empty() && root.pending > shown)
    std::cout << "    ... and " << root.pending - shown << " more\n";
}

// The last pass, as `status` prints it.
void PrintLastPass(const engine::PassReport& p, bool unrecorded_after) {
  std::cout << (unrecorded_after ? "the pass before: " : "last pass: ")
            << (p.converged()   ? "complete"
                : p.interrupted ? "INTERRUPTED"
                                : "INCOMPLETE")
            << ", finished " << LocalTime(p.finished_unix_ms) << ", "
            << p.finished_unix_ms - p.started_unix_ms << " ms, hashed "
            << HumanBytes(p.bytes_hashed) << "\n";
  for (const engine::RootReport& r : p.roots) {
    std::cout << "  " << log::Printable(r.local_dir) << " -> " << log::Printable(r.cloud_path)
              << ": " << r.uploaded << " uploaded, " << r.moved << " moved, " << r.deleted
              << " deleted, " << r.failed << " failed";
    if (r.unreadable > 0) std::cout << ", " << r.unreadable << " unreadable";
    if (r.pending > 0) std::cout << ", " << r.pending << " not done";
    if (r.stopped) std::cout << "; NOT SYNCED: " << log::Printable(*r.stopped);
    std::cout << "\n";
    PrintPending(r);
  }
}

void PrintText(const nlohmann::json& out, const std::optional<engine::PassReport>& last_pass) {
  std::cout << "state dir: " << log::Printable(out["state_dir"].get<std::string>()) << "\n";
  if (out["running"].is_object()) {
    const std::string command = out["running"].value("command", "");
    std::cout << "running: filesync " << (command.empty() ? "(unknown command)" : command)
              << " (pid " << out["running"].value("pid", 0) << ")\n";
  } else {
    std::cout << "running: no\n";
  }
  if (const auto& c = out["current_pass"]; c.is_object()) {
    std::cout << "pass under way since " << LocalTime(c.value("started_unix_ms", 0LL));
    if (c.contains("actions_total")) {
      std::cout << ": " << c.value("actions_done", 0ULL) << " of " << c.value("actions_total", 0ULL)
                << " actions done (" << c.value("pending", 0ULL) << " pending), "
                << HumanBytes(c.value("bytes_done", 0ULL)) << " of "
                << HumanBytes(c.value("bytes_total", 0ULL)) << " sent, "
                << HumanBytes(c.value("bytes_hashed", 0ULL)) << " hashed";
    }
    std::cout << "\n";
  }
  if (const auto& u = out["unrecorded_pass"]; u.is_object()) {
    std::cout << "last pass: started " << LocalTime(u.value("started_unix_ms", 0LL))
              << " and never recorded its outcome (it was killed, or the state store could not "
                 "be written: see its log)\n";
  }
  if (last_pass) {
    PrintLastPass(*last_pass, out["unrecorded_pass"].is_object());
  } else if (!out["unrecorded_pass"].is_object()) {
    std::cout << "last pass: none recorded yet\n";
  }
  std::cout << "in sync: " << (out["converged"].get<bool>() ? "yes" : "no (as of the last pass)")
            << "\n";
  std::cout << "pending: " << out["pending"].get<std::uint64_t>() << "\n";
  std::cout << "errors: " << out["errors"].size() << "\n";
  for (const auto& e : out["errors"]) {
    std::cout << "  " << log::Printable(e.value("root", "") + "/" + e.value("path", "")) << ": "
              << log::Printable(e.value("message", "")) << " (" << e.value("attempts", 0)
              << " attempts)\n";
  }
}

// The running daemon's own answer (GET /status), when status_listen is set and it answers:
// live, with the pass in progress. Null otherwise (then the state store is read).
nlohmann::json AskDaemon(const config::Config& config) {
  if (!config.status_listen) return nullptr;
  auto body = ops::FetchDaemonStatus(*config.status_listen, config.status_token, kAskDaemonTimeout);
  if (!body.ok()) {
    if (body.status().kind() != Status::Kind::kNotFound)
      log::Get("cli")->warn(
          "the daemon at status_listen did not answer ({}); reading the state "
          "store instead",
          body.status().message());
    return nullptr;
  }
  nlohmann::json out = nlohmann::json::parse(*body, nullptr, false);
  return out.is_object() ? out : nlohmann::json();
}

// The last pass in a status object, parsed; none if it has none (or not one this version reads).
std::optional<engine::PassReport> LastPass(const nlohmann::json& out) {
  if (!out.contains("last_pass") || !out["last_pass"].is_object()) return std::nullopt;
  auto report = engine::PassReport::FromJson(out["last_pass"].dump());
  if (!report.ok()) return std::nullopt;
  return std::move(report.value());
}

void Print(const nlohmann::json& out, bool json) {
  if (json) {
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    PrintText(out, LastPass(out));
  }
}

}  // namespace

nlohmann::json GatherStatus(const config::Config& config, store::StateStore& store,
                            const std::optional<store::Owner>& holder) {
  std::optional<engine::PassReport> last_pass;
  return Gather(config, store, holder, &last_pass);
}

int RunStatus(const GlobalOptions& global, bool json) {
  const config::Config config = LoadConfig(global);
  SetupLogging(global, config);
  if (const nlohmann::json live = AskDaemon(config); !live.is_null()) {
    Print(live, json);
    return 0;
  }
  const std::optional<store::Owner> holder = store::StateStore::Holder(config.state_dir);
  auto store =
      store::StateStore::OpenReadOnly(config.state_dir, store::StateStore::ReadOnly::kDirect);
  if (!store.ok()) {
    std::string message = store.status().message();
    if (store.status().kind() == Status::Kind::kNotFound)
      message += ": no pass has been recorded with this state_dir (is state_dir right?)";
    ReportFatal(global, message);
    return 1;
  }
  Print(GatherStatus(config, **store, holder), json);
  return 0;
}

}  // namespace filesync::cli
