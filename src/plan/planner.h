// Planner: the diff between the client (local scan) and the cloud (as the state store and the
// backend's listing describe it), turned into an ordered list of Actions. Pure: no I/O, so every
// rule below is unit-tested.
//
// Rules:
//  - Content decides, never mtime alone: a file is uploaded when the cloud has nothing there, a
//    folder there, or a file whose content hash differs from (or cannot be compared with) the
//    local one.
//  - Renames and moves become cloud moves: a new local path whose (device, inode) was, in the
//    previous state, a path that is now gone locally but still in the cloud, is a move of that
//    path (folders first, so a whole folder moved is ONE move and its children follow it); then
//    remaining new files are matched to vanished cloud files of the same size and content hash.
//    A case-only rename on a case-insensitive cloud is a move too.
//  - Type changes (file <-> folder) delete the old entry first.
//  - Deletes under a deleted folder collapse into that folder's delete.
//  - Names the cloud would refuse, and local paths that collide in the cloud's namespace (case
//    and Unicode folding on Dropbox), are reported as issues; of colliding paths the byte-wise
//    smallest is synced, so the choice is the same on every pass.
//  - Paths for which `protect` returns true (excluded, unreadable or vanished subtrees) are never
//    deleted from the cloud.
//  - max_delete is counted after rename matching, in entries that would disappear: more than
//    `count`, or (beyond 10 entries) more than `percent` of the cloud entries, blocks the plan
//    unless allow_mass_delete.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/entry.h"
#include "hash/content_hash.h"
#include "plan/action.h"
#include "plan/names.h"

namespace filesync::plan {

struct LocalItem {
  std::string path;  // relative to the sync dir
  core::EntryKind kind = core::EntryKind::kFile;
  core::FileIdentity identity;
  hash::Digest digest{};
  bool digest_known = false;
};

struct RemoteItem {
  std::string path;  // relative to the sync dir's cloud path, as the cloud displays it
  core::EntryKind kind = core::EntryKind::kFile;
  std::uint64_t size = 0;
  hash::Digest digest{};
  bool digest_known = false;
};

// The local state recorded at the end of the previous pass (the hash cache), for move detection.
struct PreviousItem {
  std::string path;
  core::EntryKind kind = core::EntryKind::kFile;
  core::FileIdentity identity;
  hash::Digest digest{};
  bool digest_known = false;
};

struct PlanOptions {
  bool case_insensitive = false;
  NameRules name_rules = NameRules::kPlain;
  std::uint64_t max_delete_count = 1000;
  double max_delete_percent = 50.0;
  bool allow_mass_delete = false;
  // True for relative paths that must never be deleted from the cloud.
  std::function<bool(std::string_view path)> protect;
};

struct NameIssue {
  std::string path;
  std::string message;
};

struct Plan {
  std::vector<Action> actions;  // in execution order (by phase)
  std::vector<NameIssue> issues;
  std::uint64_t entries_deleted = 0;   // after collapse, counting everything under deleted folders
  std::optional<std::string> blocked;  // set when max_delete stops the plan (actions is empty)
};

// REQUIRES: local and remote are free of duplicate paths.
Plan MakePlan(const std::vector<LocalItem>& local, const std::vector<RemoteItem>& remote,
              const std::vector<PreviousItem>& previous, const PlanOptions& options);

// Local files worth hashing before planning: digest unknown, and either the cloud has a file of
// the same size at the same key (to compare contents), or a cloud file that vanished locally has
// that size (a possible rename). Returns indexes into `local`.
std::vector<std::size_t> FilesToHash(const std::vector<LocalItem>& local,
                                     const std::vector<RemoteItem>& remote, bool case_insensitive);

}  // namespace filesync::plan
