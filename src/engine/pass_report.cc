#include "engine/pass_report.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/rel_path.h"

namespace filesync::engine {
namespace {

using core::EntryKind;
using nlohmann::json;

json ActionJson(const RootReport& r, const plan::Action& a) {
  json aj{{"action", plan::ActionKindName(a.kind)},
          {"path", a.path},
          {"cloud_path", core::JoinPath(r.cloud_path, a.path)},
          {"reason", a.reason},
          {"kind", a.entry_kind == EntryKind::kFolder ? "folder" : "file"}};
  if (a.kind == plan::ActionKind::kMove) {
    aj["from"] = a.from;
    aj["from_cloud_path"] = core::JoinPath(r.cloud_path, a.from);
  }
  if (a.kind == plan::ActionKind::kUpload) aj["size"] = a.identity.size;
  if (a.kind == plan::ActionKind::kDelete) aj["entries"] = a.entries_affected;
  return aj;
}

// Executed, but not all of it (a stop): which actions did not run, at most `max_items`.
json PendingJson(const RootReport& r, std::size_t max_items) {
  json pending = json::array();
  if (r.action_done.size() == r.actions.size()) {
    for (std::size_t i = 0; i < r.actions.size() && pending.size() < max_items; ++i) {
      if (!r.action_done[i]) pending.push_back(ActionJson(r, r.actions[i]));
    }
  } else {
    for (std::size_t i = 0; i < r.pending_actions.size() && pending.size() < max_items; ++i)
      pending.push_back(ActionJson(r, r.pending_actions[i]));
  }
  return pending;
}

json RootJson(const RootReport& r, std::size_t max_items) {
  json rj{{"local_dir", r.local_dir},
          {"cloud_path", r.cloud_path},
          {"local_entries", r.local_entries},
          {"planned", r.planned()},
          {"uploaded", r.uploaded},
          {"bytes_uploaded", r.bytes_uploaded},
          {"moved", r.moved},
          {"deleted", r.deleted},
          {"created", r.created},
          {"failed", r.failed},
          {"deferred", r.deferred},
          {"pending", r.pending},
          {"unreadable", r.unreadable},
          {"interrupted", r.interrupted}};
  if (r.stopped) rj["stopped"] = *r.stopped;
  json issues = json::array();
  for (std::size_t n = 0; n < r.issues.size() && n < max_items; ++n)
    issues.push_back({{"path", r.issues[n].path}, {"message", r.issues[n].message}});
  rj["issues"] = std::move(issues);
  rj["issues_omitted"] = r.issues.size() - std::min(r.issues.size(), max_items) + r.issues_omitted;
  const bool executed = r.action_done.size() == r.actions.size() && !r.action_done.empty();
  if (r.pending > 0 && (executed || !r.pending_actions.empty()))
    rj["pending_actions"] = PendingJson(r, max_items);
  return rj;
}

std::optional<plan::ActionKind> ActionKindFromName(std::string_view name) {
  for (auto kind : {plan::ActionKind::kDelete, plan::ActionKind::kMove,
                    plan::ActionKind::kCreateFolder, plan::ActionKind::kUpload}) {
    if (name == plan::ActionKindName(kind)) return kind;
  }
  return std::nullopt;
}

// An action as ActionJson wrote it (its identity and digest are not stored; its size is).
plan::Action ActionFromJson(const json& aj) {
  plan::Action a;
  a.kind = ActionKindFromName(aj.value("action", "")).value_or(plan::ActionKind::kUpload);
  a.path = aj.value("path", "");
  a.from = aj.value("from", "");
  a.reason = aj.value("reason", "");
  a.entry_kind = aj.value("kind", "file") == "folder" ? EntryKind::kFolder : EntryKind::kFile;
  a.identity.size = aj.value("size", std::uint64_t{0});
  a.entries_affected = aj.value("entries", std::uint64_t{1});
  return a;
}

RootReport RootFromJson(const json& rj) {
  RootReport r;
  r.local_dir = rj.value("local_dir", "");
  r.cloud_path = rj.value("cloud_path", "");
  if (rj.contains("stopped") && rj["stopped"].is_string()) r.stopped = rj["stopped"];
  r.interrupted = rj.value("interrupted", false);
  r.local_entries = rj.value("local_entries", std::uint64_t{0});
  r.uploaded = rj.value("uploaded", std::uint64_t{0});
  r.moved = rj.value("moved", std::uint64_t{0});
  r.deleted = rj.value("deleted", std::uint64_t{0});
  r.created = rj.value("created", std::uint64_t{0});
  r.failed = rj.value("failed", std::uint64_t{0});
  r.deferred = rj.value("deferred", std::uint64_t{0});
  r.pending = rj.value("pending", std::uint64_t{0});
  r.unreadable = rj.value("unreadable", std::uint64_t{0});
  r.bytes_uploaded = rj.value("bytes_uploaded", std::uint64_t{0});
  r.actions_omitted = rj.value("planned", std::uint64_t{0});  // less those listed, by the caller
  r.issues_omitted = rj.value("issues_omitted", std::uint64_t{0});
  if (rj.contains("issues") && rj["issues"].is_array()) {
    for (const json& i : rj["issues"])
      r.issues.push_back({i.value("path", ""), i.value("message", "")});
  }
  if (rj.contains("pending_actions") && rj["pending_actions"].is_array()) {
    for (const json& aj : rj["pending_actions"]) r.pending_actions.push_back(ActionFromJson(aj));
  }
  return r;
}

}  // namespace

PassReport::Totals PassReport::totals() const {
  Totals t;
  for (const RootReport& r : roots) {
    t.uploaded += r.uploaded;
    t.bytes_uploaded += r.bytes_uploaded;
    t.moved += r.moved;
    t.deleted += r.deleted;
    t.failed += r.failed;
  }
  return t;
}

bool PassReport::converged() const {
  if (state_errors > 0 || config_error) return false;
  for (const RootReport& r : roots) {
    if (r.stopped || r.interrupted || r.failed > 0 || r.deferred > 0 || r.pending > 0 ||
        r.unreadable > 0) {
      return false;
    }
  }
  return true;
}

std::string PassReport::ToJson(std::size_t max_items) const {
  json j;
  j["started_unix_ms"] = started_unix_ms;
  j["finished_unix_ms"] = finished_unix_ms;
  j["duration_ms"] = finished_unix_ms - started_unix_ms;
  j["bytes_hashed"] = bytes_hashed;
  j["files_hashed"] = files_hashed;
  j["converged"] = converged();
  j["interrupted"] = interrupted;
  j["state_errors"] = state_errors;
  if (config_error) j["config_error"] = *config_error;
  json actions = json::array();
  json roots_json = json::array();
  std::uint64_t actions_total = 0;
  for (const RootReport& r : roots) {
    roots_json.push_back(RootJson(r, max_items));
    actions_total += r.planned();
    for (const plan::Action& a : r.actions) {
      if (actions.size() >= max_items) break;
      actions.push_back(ActionJson(r, a));
    }
  }
  j["roots"] = std::move(roots_json);
  j["actions_omitted"] = actions_total - actions.size();
  j["actions"] = std::move(actions);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<PassReport> PassReport::FromJson(std::string_view text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("roots") || !j["roots"].is_array())
    return Status::InvalidArgument("not a stored pass report");
  PassReport report;
  report.started_unix_ms = j.value("started_unix_ms", std::int64_t{0});
  report.finished_unix_ms = j.value("finished_unix_ms", std::int64_t{0});
  report.bytes_hashed = j.value("bytes_hashed", std::uint64_t{0});
  report.files_hashed = j.value("files_hashed", std::uint64_t{0});
  report.interrupted = j.value("interrupted", false);
  report.state_errors = j.value("state_errors", 0);
  if (j.contains("config_error") && j["config_error"].is_string())
    report.config_error = j["config_error"];
  for (const json& rj : j["roots"]) report.roots.push_back(RootFromJson(rj));
  // "actions" lists the roots' actions root by root, cut off after the first max_items.
  std::size_t next = 0;
  const json& actions = j.contains("actions") && j["actions"].is_array() ? j["actions"] : json();
  for (RootReport& r : report.roots) {
    const std::uint64_t planned = r.actions_omitted;
    while (r.actions.size() < planned && next < actions.size())
      r.actions.push_back(ActionFromJson(actions[next++]));
    r.actions_omitted = planned - r.actions.size();
  }
  return report;
}

}  // namespace filesync::engine
