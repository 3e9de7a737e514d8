// `filesync plan`: a dry run from a copy of the state (nothing changes; it may run while a daemon
// holds the state dir); prints the actions, or every action and issue as JSON.
#include <iostream>
#include <memory>

#include "cli/backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/engine_options.h"
#include "cli/pass_runner.h"
#include "cli/progress.h"
#include "core/rel_path.h"
#include "engine/sync_engine.h"
#include "store/state_store.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

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

// One planned action: "upload  /cloud/path  (reason, size)".
void PrintAction(const std::string& cloud_path, const plan::Action& a) {
  std::cout << plan::ActionKindName(a.kind) << "  "
            << log::Printable((a.kind == plan::ActionKind::kMove
                                   ? core::JoinPath(cloud_path, a.from) + " -> "
                                   : "") +
                              core::JoinPath(cloud_path, a.path))
            << "  (" << log::Printable(a.reason)
            << (a.kind == plan::ActionKind::kUpload ? ", " + HumanBytes(a.identity.size) : "")
            << ")\n";
}

// The plan as text: what would be skipped and done per dir, then a count or "in sync".
void PrintPlan(const engine::PassReport& report) {
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
    for (const auto& a : r.actions) PrintAction(r.cloud_path, a);
    total += r.actions.size();
    all_synced = all_synced && r.unreadable == 0;
  }
  if (total > 0) std::cout << Count(total, "action", "actions") << "\n";
  if (total == 0 && all_synced) std::cout << "in sync: nothing to do\n";
  if (!all_synced) std::cout << "NOT in sync: see above\n";
}

}  // namespace

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
    PrintPlan(report);
  }
  for (const auto& r : report.roots) {
    if (r.stopped) return 1;
  }
  return 0;
}

}  // namespace filesync::cli
