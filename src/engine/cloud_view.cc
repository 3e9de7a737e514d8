#include "engine/cloud_view.h"

#include <algorithm>

#include "core/rel_path.h"

namespace filesync::engine {

using core::EntryKind;
using core::RelativeTo;
using core::UnderOrEqual;

void CloudView::ApplyComplete(const cloud::ListResult& listing, const std::string& cloud_path) {
  RemoteMap fresh;
  for (const auto& change : listing.changes) {
    if (change.type != cloud::ListChange::Type::kUpsert) continue;
    auto rel = RelativeTo(change.entry.path, cloud_path, case_insensitive_);
    if (!rel || rel->empty()) continue;
    store::RemoteRecord r;
    r.path = *rel;
    r.kind = change.entry.kind;
    r.size = change.entry.size;
    r.rev = change.entry.rev;
    const std::string key = Key(r.path);
    if (change.entry.has_content_hash) {
      r.digest = change.entry.content_hash;
    } else if (auto old = remote_.find(key); old != remote_.end() && old->second.rev == r.rev &&
                                             old->second.kind == r.kind && old->second.has_digest) {
      r.digest = old->second.digest;  // unchanged since we wrote it
    } else {
      r.has_digest = false;  // changed by someone else, or never hashed: compare by upload
    }
    fresh.insert_or_assign(key, std::move(r));
  }
  remote_ = std::move(fresh);
  batch_.ClearRemote();
  for (const auto& [key, r] : remote_) batch_.PutRemote(r);
}

void CloudView::Apply(const cloud::ListResult& listing, const std::string& cloud_path) {
  if (listing.complete) {
    ApplyComplete(listing, cloud_path);
    return;
  }
  for (const auto& change : listing.changes) {
    auto rel = RelativeTo(change.entry.path, cloud_path, case_insensitive_);
    if (!rel || rel->empty()) continue;
    const std::string key = Key(*rel);
    if (change.type == cloud::ListChange::Type::kDelete) {
      EraseUnder(key);
      batch_.DeleteRemoteUnder(*rel);  // rows the map never had, spelt as listed
      continue;
    }
    if (change.entry.kind == EntryKind::kFile) {
      EraseUnder(key);  // a file replaces whatever was there, children included
      batch_.DeleteRemoteUnder(*rel);
    }
    store::RemoteRecord r;
    r.path = *rel;
    r.kind = change.entry.kind;
    r.size = change.entry.size;
    r.digest = change.entry.content_hash;
    r.rev = change.entry.rev;
    r.has_digest = change.entry.has_content_hash;
    Put(std::move(r));
  }
}

std::vector<store::RemoteRecord> CloudView::EraseUnder(const std::string& key) {
  std::vector<store::RemoteRecord> erased;
  std::string covered;  // the last row range deleted: a folder and its children spelt alike
  for (auto it = remote_.lower_bound(key); it != remote_.end() && UnderOrEqual(it->first, key);
       it = remote_.erase(it)) {
    if (covered.empty() || !UnderOrEqual(it->second.path, covered)) {
      covered = it->second.path;
      batch_.DeleteRemoteUnder(covered);
    }
    erased.push_back(std::move(it->second));
  }
  return erased;
}

void CloudView::Put(store::RemoteRecord r) {
  std::string key = Key(r.path);
  if (auto it = remote_.find(key); it != remote_.end() && it->second.path != r.path)
    batch_.DeleteRemote(it->second.path);
  batch_.PutRemote(r);
  remote_.insert_or_assign(std::move(key), std::move(r));
}

void CloudView::PutAncestorsAsFolders(std::string_view path) {
  core::ForEachAncestor(path, [&](std::string_view parent) {
    std::string key = Key(parent);
    if (remote_.contains(key)) return false;
    store::RemoteRecord r;
    r.path = parent;
    r.kind = EntryKind::kFolder;
    batch_.PutRemote(r);
    remote_.emplace(std::move(key), std::move(r));
    return true;
  });
}

void CloudView::Move(const std::string& from, const std::string& to, const std::string& moved_rev) {
  std::vector<store::RemoteRecord> moved = EraseUnder(Key(from));
  batch_.DeleteRemoteUnder(from);
  PutAncestorsAsFolders(to);
  // The records' own spelling of the moved part may differ from `from`'s (case, Unicode form;
  // not even the same length): keep what lies below it, component-wise.
  const std::size_t components = core::Components(from);
  for (auto& r : moved) {
    r.path = core::Rebase(r.path, components, to);
    if (r.path == to && !moved_rev.empty() && r.kind == EntryKind::kFile) r.rev = moved_rev;
    Put(std::move(r));
  }
}

bool CloudView::DeletesRoot(const cloud::ListResult& listing, const std::string& cloud_path,
                            bool case_insensitive) {
  return std::any_of(listing.changes.begin(), listing.changes.end(), [&](const auto& change) {
    return change.type == cloud::ListChange::Type::kDelete &&
           RelativeTo(cloud_path, change.entry.path, case_insensitive).has_value();
  });
}

}  // namespace filesync::engine
