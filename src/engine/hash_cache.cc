#include "engine/hash_cache.h"

#include <unordered_set>

#include "core/parallel_for.h"
#include "core/stable_file.h"
#include "hash/content_hash.h"

namespace filesync::engine {
namespace {

using core::EntryKind;

// The digest recorded for a path with no record of its own, found by inode (a rename).
const store::FileRecord* RenamedFrom(
    const FileMap& files, std::unordered_map<std::uint64_t, const store::FileRecord*>& by_inode,
    const core::FileIdentity& identity) {
  if (by_inode.empty()) {
    for (const auto& [p, r] : files) by_inode.emplace(r.identity.inode, &r);
  }
  auto hit = by_inode.find(identity.inode);
  if (hit == by_inode.end() || !hit->second->has_digest || hit->second->kind != EntryKind::kFile ||
      hit->second->identity.size != identity.size ||
      hit->second->identity.mtime_ns != identity.mtime_ns || identity.inode == 0) {
    return nullptr;
  }
  return hit->second;
}

}  // namespace

std::vector<plan::LocalItem> HashCache::LookUp(const FileMap& files,
                                               std::vector<scan::Entry>& entries) {
  std::unordered_map<std::uint64_t, const store::FileRecord*> by_inode;
  std::vector<plan::LocalItem> items;
  items.reserve(entries.size());
  for (auto& e : entries) {
    plan::LocalItem item;
    item.path = std::move(e.path);
    item.kind = e.kind;
    item.identity = e.identity;
    if (item.kind == EntryKind::kFile) {
      const store::FileRecord* known = nullptr;
      auto it = files.find(item.path);
      if (it == files.end()) {
        known = RenamedFrom(files, by_inode, item.identity);
      } else if (it->second.has_digest && it->second.kind == EntryKind::kFile &&
                 core::SameContent(it->second.identity, item.identity)) {
        known = &it->second;
      }
      if (known != nullptr) {
        item.digest = known->digest;
        item.digest_known = true;
      }
    }
    items.push_back(std::move(item));
  }
  return items;
}

void HashCache::Record(const std::string& path, core::FileIdentity identity,
                       const hash::Digest& digest) {
  if (identity.mtime_ns > now_ns_ - kRacyWindowNs) identity.mtime_ns = 0;  // re-hash next pass
  store::FileRecord f;
  f.path = path;
  f.kind = EntryKind::kFile;
  f.identity = identity;
  f.digest = digest;
  f.has_digest = true;
  batch_.PutFile(f);
  files_.insert_or_assign(path, std::move(f));
}

void HashCache::Reconcile(const std::vector<plan::LocalItem>& items) {
  std::size_t known = 0;  // items that already had a record at their path
  for (const plan::LocalItem& item : items) {
    auto it = files_.find(item.path);
    if (it != files_.end()) ++known;
    if (item.kind == EntryKind::kFolder) {
      if (it == files_.end() || it->second.identity.inode != item.identity.inode ||
          it->second.kind != item.kind) {
        store::FileRecord f;
        f.path = item.path;
        f.kind = EntryKind::kFolder;
        f.identity = item.identity;
        batch_.PutFile(f);
        files_.insert_or_assign(item.path, std::move(f));
      }
      continue;
    }
    if (!item.digest_known) continue;
    if (it != files_.end() && it->second.has_digest && it->second.digest == item.digest &&
        it->second.identity == item.identity) {
      continue;
    }
    Record(item.path, item.identity, item.digest);
  }
  if (known == files_.size()) return;  // every record is still a local path: none to drop
  std::unordered_set<std::string_view> present;
  present.reserve(items.size());
  for (const plan::LocalItem& item : items) present.insert(item.path);
  for (auto it = files_.begin(); it != files_.end();) {
    if (!present.contains(it->first)) {
      batch_.DeleteFile(it->first);
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
}

HashTotals HashFiles(int dir_fd, const std::string& local_dir, std::vector<plan::LocalItem>& items,
                     const std::vector<std::size_t>& which, int workers,
                     const std::atomic<bool>& stop, PassProgress* progress) {
  if (which.empty()) return {};
  std::atomic<std::uint64_t> bytes{0}, files{0};
  core::ParallelFor(which.size(), workers, [&](std::size_t i) {
    if (stop.load()) return;
    plan::LocalItem& item = items[which[i]];
    // Changed or unreadable: not hashed here; the upload reports it.
    auto file =
        core::StableFile::Open(dir_fd, item.path, local_dir + "/" + item.path, item.identity);
    if (!file.ok()) return;
    auto hashed = hash::HashFd(file->fd(), 0, &stop);
    if (!hashed.ok() || !file->CheckUnchanged("hashed").ok()) return;
    bytes += hashed->bytes_read;
    ++files;
    if (progress) progress->bytes_hashed += hashed->bytes_read;
    item.digest = hashed->digest;
    item.digest_known = true;
  });
  return {bytes.load(), files.load()};
}

}  // namespace filesync::engine
