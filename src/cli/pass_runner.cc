#include "cli/pass_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/common.h"
#include "cli/progress.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

// How often a running pass refreshes status.json.
constexpr std::chrono::milliseconds kSnapshotEvery{2000};

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string Count(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

engine::PassReport RunObservedPass(engine::SyncEngine& sync_engine,
                                   const engine::PassOptions& options, const config::Config& config,
                                   std::string_view command, nlohmann::json& last_pass,
                                   DaemonObserver* observer) {
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

namespace {

std::uint64_t NotDone(const engine::PassReport& report) {
  std::uint64_t n = 0;
  for (const auto& r : report.roots) n += r.pending;
  return n;
}

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

}  // namespace

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

void LogSummary(const std::vector<SummaryRecord>& records, bool routine) {
  auto logger = log::Get("pass");
  for (const SummaryRecord& r : records)
    log::Structured(*logger, routine ? spdlog::level::debug : r.level, r.text, r.fields);
}

bool AnythingPlanned(const engine::PassReport& report) {
  return std::any_of(report.roots.begin(), report.roots.end(),
                     [](const auto& r) { return !r.actions.empty(); });
}

}  // namespace filesync::cli
