#include "plan/planner.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/rel_path.h"
#include "util/unicode.h"

namespace filesync::plan {
namespace {

using core::EntryKind;
using core::ForEachAncestor;
using core::UnderOrEqual;

struct InodeKey {
  std::uint64_t device;
  std::uint64_t inode;
  friend bool operator==(const InodeKey&, const InodeKey&) = default;
};
struct InodeKeyHash {
  std::size_t operator()(const InodeKey& k) const {
    return std::hash<std::uint64_t>()(k.inode * 1000003u ^ k.device);
  }
};

Action MakeAction(ActionKind kind, Phase phase, std::string path, EntryKind entry_kind,
                  std::string reason) {
  Action a;
  a.kind = kind;
  a.phase = phase;
  a.path = std::move(path);
  a.entry_kind = entry_kind;
  a.reason = std::move(reason);
  return a;
}

class Planner {
 public:
  Planner(const std::vector<LocalItem>& local, const std::vector<RemoteItem>& remote,
          const std::vector<PreviousItem>& previous, const PlanOptions& options)
      : local_(local), previous_(previous), options_(options) {
    for (const RemoteItem& r : remote) remote_.emplace(Key(r.path), r);
  }

  Plan Run() {
    AcceptLocalItems();
    DetectFolderMoves();
    DetectFileMovesByInode();
    DetectFileMovesByContent();
    DetectCaseRenames();
    Diff();
    PlanDeletes();
    PruneFolderCreates();
    return Finish();
  }

 private:
  std::string Key(std::string_view path) const {
    return core::CloudKey(path, options_.case_insensitive);
  }

  // The path a case-insensitive cloud will display once an action has put `path` there (the
  // backends send NFC), so that a later rule does not see a spelling difference that is not one.
  std::string CloudSpelling(const std::string& path) const {
    return options_.case_insensitive ? unicode::ToNfc(path) : path;
  }

  // Names and collisions; fills accepted_ (sorted by path) and local_by_key_.
  void AcceptLocalItems() {
    std::vector<const LocalItem*> sorted;
    sorted.reserve(local_.size());
    for (const LocalItem& item : local_) sorted.push_back(&item);
    const auto by_path = [](auto* a, auto* b) { return a->path < b->path; };
    // The scanner's order already; sorting is for other callers.
    if (!std::is_sorted(sorted.begin(), sorted.end(), by_path))
      std::sort(sorted.begin(), sorted.end(), by_path);
    std::unordered_set<std::string> skipped_dirs;
    for (const LocalItem* item : sorted) {
      bool under_skipped = false;
      if (!skipped_dirs.empty()) {
        ForEachAncestor(item->path, [&](std::string_view a) {
          if (!under_skipped && skipped_dirs.contains(std::string(a))) under_skipped = true;
        });
      }
      if (under_skipped) continue;
      std::optional<std::string> why = CheckName(item->path, options_.name_rules);
      std::string key = Key(item->path);
      if (!why) {
        if (auto it = local_by_key_.find(key); it != local_by_key_.end()) {
          why = "collides in the cloud with '" + accepted_[it->second].path +
                "' (names differ only by case or Unicode form); only that one is synced";
        }
      }
      if (why) {
        plan_.issues.push_back({item->path, *why});
        if (item->kind == EntryKind::kFolder) skipped_dirs.insert(item->path);
        // The colliding twin is synced; never delete its cloud copy because of this one.
        skipped_keys_.insert(key);
        continue;
      }
      local_by_key_.emplace(std::move(key), accepted_.size());
      accepted_.push_back(*item);
    }
  }

  bool IsVanishedSource(const std::string& key, EntryKind kind) const {
    auto it = remote_.find(key);
    return it != remote_.end() && it->second.kind == kind && !local_by_key_.contains(key);
  }

  // Maps a previous path through the folder moves found so far ("a/x" after a->b is "b/x").
  std::string TranslatedKey(std::string key) const {
    for (const auto& [from, to] : folder_moves_) {
      if (UnderOrEqual(key, from)) key = to + key.substr(from.size());
    }
    return key;
  }

  const PreviousItem* PreviousByInode(const core::FileIdentity& id, EntryKind kind) {
    if (previous_by_inode_.empty()) {
      for (const PreviousItem& p : previous_) {
        previous_by_inode_.emplace(InodeKey{p.identity.device, p.identity.inode}, &p);
      }
    }
    auto it = previous_by_inode_.find(InodeKey{id.device, id.inode});
    if (it == previous_by_inode_.end() || it->second->kind != kind || id.inode == 0) return nullptr;
    return it->second;
  }

  // Moves every remote entry at or under `from_key` to under `to_key` / `to_path`.
  void RekeyRemote(const std::string& from_key, const std::string& to_key,
                   const std::string& to_path, std::size_t from_components) {
    std::vector<RemoteItem> moved;
    auto begin = remote_.lower_bound(from_key);
    auto it = begin;
    while (it != remote_.end() && UnderOrEqual(it->first, from_key)) {
      RemoteItem item = std::move(it->second);
      item.path = core::Rebase(item.path, from_components, to_path);
      moved.push_back(std::move(item));
      it = remote_.erase(it);
    }
    for (RemoteItem& item : moved) {
      std::string key = item.path == to_path ? to_key : Key(item.path);
      remote_.insert_or_assign(std::move(key), std::move(item));
    }
  }

  Action MoveAction(const RemoteItem& source, const LocalItem& target, Phase phase,
                    std::string reason) {
    Action a = MakeAction(ActionKind::kMove, phase, target.path, target.kind, std::move(reason));
    a.from = source.path;
    a.identity = target.identity;
    a.digest = source.digest;
    a.digest_known = source.digest_known;
    return a;
  }

  void DetectFolderMoves() {
    for (const LocalItem& item : accepted_) {
      if (item.kind != EntryKind::kFolder) continue;
      const std::string key = Key(item.path);
      if (remote_.contains(key)) continue;
      const PreviousItem* prev = PreviousByInode(item.identity, EntryKind::kFolder);
      if (prev == nullptr) continue;
      const std::string source_key = TranslatedKey(Key(prev->path));
      if (!IsVanishedSource(source_key, EntryKind::kFolder) || UnderOrEqual(key, source_key))
        continue;
      const RemoteItem& source = remote_.at(source_key);
      replace_.push_back(MoveAction(source, item, kPhaseReplace, "folder renamed or moved"));
      RekeyRemote(source_key, key, CloudSpelling(item.path), core::Components(source.path));
      folder_moves_.emplace_back(source_key, key);
    }
  }

  void CommitFileMove(const std::string& source_key, const LocalItem& item, std::string reason) {
    RemoteItem moved = remote_.at(source_key);
    file_moves_.push_back(MoveAction(moved, item, kPhaseFileMoves, std::move(reason)));
    remote_.erase(source_key);
    moved.path = CloudSpelling(item.path);
    remote_.insert_or_assign(Key(item.path), std::move(moved));
  }

  void DetectFileMovesByInode() {
    for (const LocalItem& item : accepted_) {
      if (item.kind != EntryKind::kFile) continue;
      const std::string key = Key(item.path);
      if (remote_.contains(key)) continue;
      const PreviousItem* prev = PreviousByInode(item.identity, EntryKind::kFile);
      if (prev == nullptr) continue;
      const std::string source_key = TranslatedKey(Key(prev->path));
      if (!IsVanishedSource(source_key, EntryKind::kFile)) continue;
      CommitFileMove(source_key, item, "file renamed or moved");
    }
  }

  void DetectFileMovesByContent() {
    std::map<hash::Digest, std::vector<std::string>> vanished;  // digest -> keys, sorted
    for (const auto& [key, r] : remote_) {
      if (r.kind == EntryKind::kFile && r.digest_known && !local_by_key_.contains(key)) {
        vanished[r.digest].push_back(key);
      }
    }
    if (vanished.empty()) return;
    for (const LocalItem& item : accepted_) {
      if (item.kind != EntryKind::kFile || !item.digest_known) continue;
      const std::string key = Key(item.path);
      if (remote_.contains(key)) continue;
      auto it = vanished.find(item.digest);
      if (it == vanished.end() || it->second.empty()) continue;
      const std::string source_key = it->second.front();
      it->second.erase(it->second.begin());
      if (!IsVanishedSource(source_key, EntryKind::kFile)) continue;
      CommitFileMove(source_key, item, "same content as a vanished file");
    }
  }

  void DetectCaseRenames() {
    if (!options_.case_insensitive) return;
    for (const LocalItem& item : accepted_) {
      auto it = remote_.find(Key(item.path));
      if (it == remote_.end() || it->second.kind != item.kind) continue;
      const std::string wanted = unicode::ToNfc(core::BaseName(item.path));
      if (core::BaseName(it->second.path) == wanted) continue;
      Action a = MoveAction(it->second, item,
                            item.kind == EntryKind::kFolder ? kPhaseReplace : kPhaseFileMoves,
                            "case-only rename");
      (item.kind == EntryKind::kFolder ? replace_ : file_moves_).push_back(std::move(a));
      it->second.path = CloudSpelling(item.path);
    }
  }

  void Diff() {
    for (const LocalItem& item : accepted_) {
      const std::string key = Key(item.path);
      seen_.insert(key);
      auto it = remote_.find(key);
      const bool absent = it == remote_.end();
      if (!absent && it->second.kind != item.kind) {
        Action del = MakeAction(
            ActionKind::kDelete, kPhaseReplace, it->second.path, it->second.kind,
            item.kind == EntryKind::kFolder ? "a file became a folder" : "a folder became a file");
        del.entries_affected = CountUnder(key);
        type_deletes_.push_back(std::move(del));
        MarkUnderAsHandled(key);
      }
      const bool replaced = !absent && it->second.kind != item.kind;
      if (item.kind == EntryKind::kFolder) {
        if (absent || replaced) {
          folder_creates_.push_back(MakeAction(ActionKind::kCreateFolder, kPhaseFolders, item.path,
                                               EntryKind::kFolder,
                                               absent ? "new folder" : "type change"));
        }
        continue;
      }
      std::string reason;
      bool cloud_differs = false;  // by a recorded hash: nothing to compare at upload time
      if (absent) {
        reason = "new file";
      } else if (replaced) {
        reason = "type change";
      } else if (it->second.size != item.identity.size) {
        reason = "size changed";
      } else if (!item.digest_known || !it->second.digest_known) {
        reason = "content not verified";
      } else if (item.digest != it->second.digest) {
        reason = "content changed";
        cloud_differs = true;
      }
      if (reason.empty()) continue;
      Action up = MakeAction(ActionKind::kUpload, kPhaseUploads, item.path, EntryKind::kFile,
                             std::move(reason));
      up.identity = item.identity;
      up.digest = item.digest;
      up.digest_known = item.digest_known;
      up.cloud_differs = cloud_differs;
      uploads_.push_back(std::move(up));
    }
  }

  std::uint64_t CountUnder(const std::string& key) const {
    std::uint64_t n = 0;
    for (auto it = remote_.lower_bound(key); it != remote_.end() && UnderOrEqual(it->first, key);
         ++it)
      ++n;
    return n;
  }

  void MarkUnderAsHandled(const std::string& key) {
    for (auto it = remote_.lower_bound(key); it != remote_.end() && UnderOrEqual(it->first, key);
         ++it) {
      handled_.insert(it->first);
    }
  }

  bool Protected(const RemoteItem& r) const { return options_.protect && options_.protect(r.path); }

  void PlanDeletes() {
    std::set<std::string> protected_keys;
    for (const auto& [key, r] : remote_) {
      if (!seen_.contains(key) && (Protected(r) || skipped_keys_.contains(key)))
        protected_keys.insert(key);
    }
    std::unordered_set<std::string> deleted_dirs;
    for (const auto& [key, r] : remote_) {
      if (seen_.contains(key) || handled_.contains(key) || protected_keys.contains(key)) continue;
      bool covered = false;
      ForEachAncestor(key, [&](std::string_view a) {
        if (!covered && deleted_dirs.contains(std::string(a))) covered = true;
      });
      if (covered) continue;
      if (r.kind == EntryKind::kFolder) {
        auto p = protected_keys.lower_bound(key + "/");
        if (p != protected_keys.end() && UnderOrEqual(*p, key))
          continue;  // keep the folder: something protected inside
        deleted_dirs.insert(key);
      }
      Action del =
          MakeAction(ActionKind::kDelete, kPhaseDeletes, r.path, r.kind, "gone from the client");
      del.entries_affected = r.kind == EntryKind::kFolder ? CountUnder(key) : 1;
      deletes_.push_back(std::move(del));
    }
  }

  // Uploads create their parent folders; only create folders nothing else will create.
  void PruneFolderCreates() {
    std::unordered_set<std::string> covered;
    auto cover_ancestors = [&](const std::string& path) {
      ForEachAncestor(path, [&](std::string_view a) { covered.insert(std::string(a)); });
    };
    for (const Action& a : uploads_) cover_ancestors(a.path);
    for (const Action& a : file_moves_) cover_ancestors(a.path);
    std::vector<Action> kept;
    for (auto it = folder_creates_.rbegin(); it != folder_creates_.rend(); ++it) {
      if (covered.contains(it->path)) continue;
      cover_ancestors(it->path);
      kept.push_back(std::move(*it));
    }
    std::reverse(kept.begin(), kept.end());
    folder_creates_ = std::move(kept);
  }

  // 12.5 as "12.5", 50 as "50": as the user wrote it in max_delete.
  static std::string FormatPercent(double percent) {
    std::ostringstream out;
    out << percent;
    return out.str();
  }

  Plan Finish() {
    for (const Action& a : type_deletes_) plan_.entries_deleted += a.entries_affected;
    for (const Action& a : deletes_) plan_.entries_deleted += a.entries_affected;
    const auto total = static_cast<double>(remote_.size());
    const auto deleted = static_cast<double>(plan_.entries_deleted);
    const bool over_count = plan_.entries_deleted > options_.max_delete_count;
    const bool over_percent = plan_.entries_deleted > 10 && total > 0 &&
                              deleted * 100.0 > options_.max_delete_percent * total;
    if ((over_count || over_percent) && !options_.allow_mass_delete) {
      plan_.blocked = "would delete " + std::to_string(plan_.entries_deleted) + " of " +
                      std::to_string(remote_.size()) + " cloud entries, over max_delete (" +
                      std::to_string(options_.max_delete_count) + " entries, or " +
                      FormatPercent(options_.max_delete_percent) +
                      "% of them when more than 10 are deleted); nothing was changed: check the "
                      "sync dir, or rerun with --allow-mass-delete";
      return std::move(plan_);
    }
    auto append = [&](std::vector<Action>& from) {
      for (Action& a : from) plan_.actions.push_back(std::move(a));
    };
    append(type_deletes_);
    append(replace_);
    append(file_moves_);
    append(folder_creates_);
    append(uploads_);
    append(deletes_);
    return std::move(plan_);
  }

  const std::vector<LocalItem>& local_;
  const std::vector<PreviousItem>& previous_;
  const PlanOptions& options_;

  Plan plan_;
  std::vector<LocalItem> accepted_;  // sorted by path
  std::unordered_map<std::string, std::size_t> local_by_key_;
  std::unordered_set<std::string> skipped_keys_;
  std::map<std::string, RemoteItem> remote_;  // by key; ordered for prefix ranges
  std::unordered_map<InodeKey, const PreviousItem*, InodeKeyHash> previous_by_inode_;
  std::vector<std::pair<std::string, std::string>> folder_moves_;  // source key -> target key
  std::unordered_set<std::string> seen_;
  std::unordered_set<std::string> handled_;
  std::vector<Action> type_deletes_, replace_, file_moves_, folder_creates_, uploads_, deletes_;
};

}  // namespace

Plan MakePlan(const std::vector<LocalItem>& local, const std::vector<RemoteItem>& remote,
              const std::vector<PreviousItem>& previous, const PlanOptions& options) {
  return Planner(local, remote, previous, options).Run();
}

std::vector<std::size_t> FilesToHash(const std::vector<LocalItem>& local,
                                     const std::vector<RemoteItem>& remote, bool case_insensitive) {
  std::unordered_map<std::string, const RemoteItem*> by_key;
  by_key.reserve(remote.size());
  for (const RemoteItem& r : remote) by_key.emplace(core::CloudKey(r.path, case_insensitive), &r);
  std::unordered_set<std::string> local_keys;
  local_keys.reserve(local.size());
  for (const LocalItem& l : local) local_keys.insert(core::CloudKey(l.path, case_insensitive));
  std::unordered_set<std::uint64_t> vanished_sizes;
  for (const auto& [key, r] : by_key) {
    if (r->kind == core::EntryKind::kFile && r->digest_known && !local_keys.contains(key)) {
      vanished_sizes.insert(r->size);
    }
  }
  std::vector<std::size_t> result;
  for (std::size_t i = 0; i < local.size(); ++i) {
    const LocalItem& l = local[i];
    if (l.kind != core::EntryKind::kFile || l.digest_known) continue;
    auto it = by_key.find(core::CloudKey(l.path, case_insensitive));
    const bool same_size_there = it != by_key.end() && it->second->kind == core::EntryKind::kFile &&
                                 it->second->size == l.identity.size;
    if (same_size_there || vanished_sizes.contains(l.identity.size)) result.push_back(i);
  }
  return result;
}

}  // namespace filesync::plan
