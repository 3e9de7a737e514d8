#include "pipeline/event_monitor.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/folder_identity.h"
#include "core/parallel_for.h"
#include "core/rel_path.h"
#include "core/stable_file.h"
#include "hash/content_hash.h"
#include "pipeline/event_consumer.h"
#include "pipeline/event_processor.h"
#include "pipeline/event_producer.h"
#include "scan/exclude.h"
#include "scan/scanner.h"
#include "store/root_index.h"
#include "util/log.h"
#include "util/unicode.h"

namespace filesync::pipeline {
namespace {

using core::EntryKind;
using core::RelativeTo;
using core::UnderOrEqual;
using std::chrono::milliseconds;

// A file whose mtime is this close to the moment it was hashed may still be written to within
// the same timestamp tick ("racily clean", as git calls it); its cache entry is smudged so the
// next pass hashes it again.
constexpr std::int64_t kRacyWindowNs = 2'000'000'000;
constexpr std::size_t kQueueCapacity = 4096;
constexpr std::size_t kCommitEvery = 10000;
// Present in the state store while a pass may have changed the cloud without recording it.
constexpr const char* kVerifyNextKey = "verify_next";
// The identity of the backend's storage (Cloud::BeginPass), for all roots (root id 0); and per
// root, the identity of its mirror folder (Cloud::FolderIdentity).
constexpr const char* kStorageKey = "cloud_storage";
constexpr const char* kMirrorFolderKey = "cloud_folder";
constexpr std::chrono::seconds kCommitInterval{2};
// Global keys: the last pass's report (PassReport::ToJson), and the start time (unix ms) of a
// pass that has not recorded its report yet.
constexpr const char* kLastPassKey = "last_pass";
constexpr const char* kPassUnderWayKey = "pass_under_way";

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t NowMs() { return NowNs() / 1'000'000; }

struct RootState {
  std::int64_t id = 0;
  std::string local_dir;
  std::string cloud_path;
  // Between clean passes only `index` is kept; a pass with something to do loads the full
  // records (`files` and `remote`) from the store, and drops them again once it ends clean.
  std::optional<store::RootIndex> index;
  bool records_loaded = false;
  std::unordered_map<std::string, store::FileRecord> files;  // by local path
  // By Key(path); std::less<> allows lookups by string_view without a copy.
  std::map<std::string, store::RemoteRecord, std::less<>> remote;
  std::string cursor;
  std::int64_t last_verify_ms = 0;
  // The cloud may differ from the state store (an unclean exit mid-pass, or a cloud operation
  // that found something unexpected): walk it fully next time instead of trusting the store.
  bool verify_next = false;
  // The mirror folder's identity as recorded by the last pass, and as this pass found it.
  std::string recorded_folder;
  std::string folder_at_start;
  // The sync dir, opened (without following a symlink) and checked once per pass: everything
  // the pass reads is reached below this descriptor, whatever the path leads to meanwhile.
  core::UniqueFd dir_fd;
  std::unordered_set<std::string> failed_paths;  // this pass's failures (for status)
  std::uint64_t outcomes = 0;                    // this pass's actions with an outcome
  std::string last_stopped;                      // why the last pass did not sync it, if so
  std::unordered_set<std::string> warned;        // scan issues already logged by this process
};

}  // namespace

struct EventMonitor::Impl final : public ActionSink {
  Impl(const config::Config& c, cloud::Cloud& cl, store::StateStore& s, std::atomic<bool>& stop)
      : config(c),
        cloud(cl),
        store(s),
        stop_flag(stop),
        caps(cl.capabilities()),
        logger(log::Get("monitor")) {
    for (const auto& dir : config.client_sync_dirs) {
      RootState root;
      root.local_dir = dir.string();
      root.cloud_path = config.CloudPathFor(dir);
      roots.push_back(std::move(root));
    }
    auto matcher = scan::ExcludeMatcher::Compile(config.exclude);
    if (!matcher.ok()) {
      const auto origin = config.origins.find("exclude");
      throw config::ConfigError((origin != config.origins.end() ? origin->second : config.source) +
                                ": key 'exclude': " + matcher.status().message() +
                                "; fix or remove that pattern");
    }
    exclude = std::make_unique<scan::ExcludeMatcher>(std::move(matcher.value()));
  }

  std::string Key(std::string_view path) const {
    return core::CloudKey(path, caps.case_insensitive);
  }

  // The root's id and key/values, once per process.
  Status Load(RootState& root) {
    if (root.id != 0) return Status::Ok();
    auto id = store.RootId(root.local_dir, root.cloud_path);
    if (!id.ok()) return id.status();
    if (auto cursor = store.Get(*id, "cursor"); cursor.ok() && cursor->has_value())
      root.cursor = **cursor;
    if (auto v = store.Get(*id, "last_verify_ms"); v.ok() && v->has_value()) {
      root.last_verify_ms = std::stoll(**v);
    }
    if (auto v = store.Get(*id, kVerifyNextKey); v.ok() && v->has_value()) root.verify_next = true;
    if (auto v = store.Get(*id, kMirrorFolderKey); v.ok() && v->has_value())
      root.recorded_folder = **v;
    root.id = *id;
    return Status::Ok();
  }

  // The compact index, built from the store on a process's first pass.
  Status EnsureIndex(RootState& root) {
    if (root.records_loaded || root.index) return Status::Ok();
    store::RootIndex::Builder builder(caps.case_insensitive);
    if (auto stored = store.Roots(); stored.ok()) {
      for (const store::RootInfo& info : *stored) {
        if (info.id == root.id) builder.Reserve(info.file_records);
      }
    }
    Status s = store.LoadFiles(root.id, [&](store::FileRecord&& r) { builder.AddFile(r); });
    if (!s.ok()) return s;
    s = store.LoadRemote(root.id, [&](store::RemoteRecord&& r) { builder.AddRemote(r); });
    if (!s.ok()) return s;
    root.index = std::move(builder).Build();
    return Status::Ok();
  }

  // The full records, which every pass with something to do works on. The store holds exactly
  // what the index summarises: the index is only kept after a pass that committed everything.
  Status EnsureRecords(RootState& root) {
    if (root.records_loaded) return Status::Ok();
    root.index.reset();
    Status s = store.LoadFiles(root.id, [&](store::FileRecord&& r) {
      std::string path = r.path;
      root.files.emplace(std::move(path), std::move(r));
    });
    if (!s.ok()) return s;
    s = store.LoadRemote(root.id, [&](store::RemoteRecord&& r) {
      std::string key = Key(r.path);
      root.remote.insert_or_assign(std::move(key), std::move(r));
    });
    if (!s.ok()) {
      root.files.clear();
      root.remote.clear();
      return s;
    }
    root.records_loaded = true;
    return Status::Ok();
  }

  // After a clean pass: summarise the records in the index and give their memory back.
  void Compact(RootState& root) {
    store::RootIndex::Builder builder(caps.case_insensitive);
    builder.Reserve(root.files.size());
    for (const auto& [path, f] : root.files) builder.AddFile(f);
    for (const auto& [key, r] : root.remote) builder.AddRemote(r);
    root.index = std::move(builder).Build();
    root.files = {};
    root.remote = {};
    root.records_loaded = false;
    malloc_trim(0);
  }

  std::uint64_t RemoteCount(const RootState& root) const {
    return root.records_loaded ? root.remote.size() : root.index->remote_count();
  }

  // Safety checks before anything may be deleted. Returns why the dir must not be synced.
  // On success the dir is open in root.dir_fd.
  std::optional<std::string> CheckRoot(RootState& root, const PassOptions& options,
                                       std::string* identity) {
    root.dir_fd = core::UniqueFd(
        open(root.local_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (root.dir_fd.get() < 0) {
      const int err = errno;
      struct stat st {};
      if (err == ELOOP ||
          (err == ENOTDIR && lstat(root.local_dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode))) {
        std::error_code ec;
        const auto target = std::filesystem::canonical(root.local_dir, ec);
        return "sync dir " + root.local_dir +
               " is a symlink; filesync does not follow a symlinked sync dir (it could be "
               "swapped to lead elsewhere): set client_sync_dirs to its target" +
               (ec ? std::string() : " " + target.string()) + "; nothing is deleted";
      }
      if (err == ENOTDIR)
        return "sync dir " + root.local_dir + " is not a directory; nothing is deleted";
      return "sync dir " + root.local_dir + " is missing or unreachable (" + std::strerror(err) +
             "); nothing is deleted in the cloud until it is back";
    }
    auto folder = core::FolderIdentity(root.dir_fd.get());
    if (!folder.ok()) {
      return "cannot stat sync dir " + root.local_dir + " (" + folder.status().message() +
             "); nothing is deleted";
    }
    *identity = *folder;
    auto stored = store.Get(root.id, "root_identity");
    if (stored.ok() && stored->has_value() && !core::SameFolder(**stored, *identity) &&
        !options.allow_mass_delete) {
      return "sync dir " + root.local_dir +
             " is not the directory synced before (another folder at its path: unmounted, or "
             "deleted and made again?); "
             "nothing is deleted. If it was replaced on purpose, run: filesync sync "
             "--allow-mass-delete";
    }
    return std::nullopt;
  }

  void ApplyListing(RootState& root, cloud::ListResult& listing) {
    if (listing.complete) {
      std::map<std::string, store::RemoteRecord, std::less<>> fresh;
      for (auto& change : listing.changes) {
        if (change.type != cloud::ListChange::Type::kUpsert) continue;
        auto rel = RelativeTo(change.entry.path, root.cloud_path, caps.case_insensitive);
        if (!rel || rel->empty()) continue;
        store::RemoteRecord r;
        r.path = *rel;
        r.kind = change.entry.kind;
        r.size = change.entry.size;
        r.rev = change.entry.rev;
        const std::string key = Key(r.path);
        if (change.entry.has_content_hash) {
          r.digest = change.entry.content_hash;
        } else if (auto old = root.remote.find(key);
                   old != root.remote.end() && old->second.rev == r.rev &&
                   old->second.kind == r.kind && old->second.has_digest) {
          r.digest = old->second.digest;  // unchanged since we wrote it
        } else {
          r.has_digest = false;  // changed by someone else, or never hashed: compare by upload
        }
        fresh.insert_or_assign(key, std::move(r));
      }
      root.remote = std::move(fresh);
      pending_batch.ClearRemote();
      for (const auto& [key, r] : root.remote) pending_batch.PutRemote(r);
      return;
    }
    for (auto& change : listing.changes) {
      auto rel = RelativeTo(change.entry.path, root.cloud_path, caps.case_insensitive);
      if (!rel || rel->empty()) continue;
      const std::string key = Key(*rel);
      if (change.type == cloud::ListChange::Type::kDelete) {
        EraseRemoteUnder(root, key);
        pending_batch.DeleteRemoteUnder(*rel);  // rows the map never had, spelt as listed
        continue;
      }
      if (change.entry.kind == EntryKind::kFile) {
        EraseRemoteUnder(root, key);  // a file replaces whatever was there, children included
        pending_batch.DeleteRemoteUnder(*rel);
      }
      store::RemoteRecord r;
      r.path = *rel;
      r.kind = change.entry.kind;
      r.size = change.entry.size;
      r.digest = change.entry.content_hash;
      r.rev = change.entry.rev;
      r.has_digest = change.entry.has_content_hash;
      PutRemoteRecord(root, std::move(r));
    }
  }

  // The store's remote rows are keyed by the path as spelt, the map by cloud key: a listing, or
  // the local side, may spell a path in another case or Unicode form than its row was stored
  // under. So rows are always written and deleted by the spelling the map's record carries.

  // Erases the record at `key` and everything below it, in the map and in the store.
  // Returns the erased records.
  std::vector<store::RemoteRecord> EraseRemoteUnder(RootState& root, const std::string& key) {
    std::vector<store::RemoteRecord> erased;
    std::string covered;  // the last row range deleted: a folder and its children spelt alike
    for (auto it = root.remote.lower_bound(key);
         it != root.remote.end() && UnderOrEqual(it->first, key); it = root.remote.erase(it)) {
      if (covered.empty() || !UnderOrEqual(it->second.path, covered)) {
        covered = it->second.path;
        pending_batch.DeleteRemoteUnder(covered);
      }
      erased.push_back(std::move(it->second));
    }
    return erased;
  }

  // Records `r` at its key, replacing (in the store too) a record spelt differently.
  void PutRemoteRecord(RootState& root, store::RemoteRecord r) {
    std::string key = Key(r.path);
    if (auto it = root.remote.find(key); it != root.remote.end() && it->second.path != r.path)
      pending_batch.DeleteRemote(it->second.path);
    pending_batch.PutRemote(r);
    root.remote.insert_or_assign(std::move(key), std::move(r));
  }

  // Checks the backend's storage once per pass (Cloud::BeginPass). Storage not recorded before
  // (a first pass, or another folder accepted with --allow-mass-delete) is walked in full by
  // every dir before a stored view of it is trusted. Returns why no dir can be synced.
  std::optional<std::string> BeginPass(const PassOptions& options) {
    auto recorded = store.Get(0, kStorageKey);
    if (!recorded.ok()) return "cannot read the state store: " + recorded.status().ToString();
    const std::string before = recorded->value_or("");
    auto identity = cloud.BeginPass({.recorded = before,
                                     .dry_run = options.dry_run,
                                     .accept_replaced = options.allow_mass_delete});
    if (!identity.ok()) return identity.status().message();
    if (identity->empty() || *identity == before) return std::nullopt;
    for (RootState& root : roots) {
      root.verify_next = true;
      if (!options.dry_run && Load(root).ok()) (void)store.Put(root.id, kVerifyNextKey, "1");
    }
    if (options.dry_run) return std::nullopt;
    if (Status s = store.Put(0, kStorageKey, *identity); !s.ok())
      return "cannot record the cloud storage in the state store: " + s.ToString();
    return std::nullopt;
  }

  // A mirror folder deleted or replaced since the last pass (its identity changed, or it is gone
  // while the stored view has entries) makes the stored view wrong: walk it in full. Cheap: one
  // lookup of the folder itself.
  Status CheckMirrorFolder(RootState& root) {
    auto identity = cloud.FolderIdentity(root.cloud_path);
    const bool missing = !identity.ok() && identity.status().kind() == Status::Kind::kNotFound;
    if (!identity.ok() && !missing) return identity.status();
    root.folder_at_start = missing ? "" : *identity;
    const bool changed = missing ? !root.recorded_folder.empty() || RemoteCount(root) > 0
                                 : !core::SameFolder(*identity, root.recorded_folder);
    if (changed && (missing || !root.recorded_folder.empty())) {
      logger->warn("cloud folder {} was deleted or replaced since the last pass; reading it again",
                   root.cloud_path);
    }
    if (changed) root.verify_next = true;
    return Status::Ok();
  }

  // What to record as the mirror folder's identity: as the pass found it, or as the pass made it.
  std::string MirrorFolderToRecord(RootState& root) {
    if (root.folder_at_start.empty()) {
      auto now = cloud.FolderIdentity(root.cloud_path);
      root.folder_at_start = now.ok() ? *now : "";
    }
    root.recorded_folder = root.folder_at_start;
    return root.recorded_folder;
  }

  // True when `listing` deletes the root's cloud folder itself or a folder above it (deleted or
  // moved away in the cloud): nothing of the stored view is left there.
  bool DeletesRoot(const RootState& root, const cloud::ListResult& listing) const {
    return std::any_of(listing.changes.begin(), listing.changes.end(), [&](const auto& change) {
      return change.type == cloud::ListChange::Type::kDelete &&
             RelativeTo(root.cloud_path, change.entry.path, caps.case_insensitive).has_value();
    });
  }

  Status LoadCloudState(RootState& root, const PassOptions& options) {
    if (Status s = CheckMirrorFolder(root); !s.ok()) return s;
    // A full listing now and then, on every backend: no stored view is trusted forever (a
    // backend's change feed could miss something; the local backend has none).
    const bool verify_due =
        NowMs() - root.last_verify_ms >
        std::chrono::duration_cast<milliseconds>(config.cloud_verify_interval).count();
    const bool full = options.verify || root.cursor.empty() || verify_due ||
                      (!caps.incremental_listing && root.verify_next);
    if (!caps.incremental_listing && !full) return Status::Ok();
    auto listing = cloud.List(root.cloud_path, full ? "" : root.cursor);
    if (!listing.ok()) return listing.status();
    if (!listing->complete && DeletesRoot(root, *listing)) {
      // Perhaps made again since (the changes would say so after the delete): a full listing
      // tells what is there now.
      logger->warn("{} was deleted or moved away in the cloud; listing it again to restore it",
                   root.cloud_path);
      listing = cloud.List(root.cloud_path, "");
      if (!listing.ok()) return listing.status();
    }
    if (caps.incremental_listing && listing->complete && listing->cursor.empty() &&
        listing->changes.empty() && !options.dry_run) {
      // The root does not exist yet, and a missing path has no cursor: create it and list again,
      // so the next pass can ask for changes only. (A dry run changes nothing: it plans against
      // the empty listing.)
      if (Status s = cloud.CreateFolder(root.cloud_path); !s.ok()) return s;
      listing = cloud.List(root.cloud_path, "");
      if (!listing.ok()) return listing.status();
    }
    if (listing->complete || !listing->changes.empty()) {
      if (Status s = EnsureRecords(root); !s.ok()) return s;
      ApplyListing(root, *listing);
    }
    root.cursor = listing->cursor;
    if (listing->complete) {
      root.last_verify_ms = NowMs();
      root.verify_next = false;
    }
    return Status::Ok();
  }

  // Digests from the cache: by path when the identity is unchanged, else by inode (a rename).
  std::vector<plan::LocalItem> ToLocalItems(RootState& root, std::vector<scan::Entry>& entries) {
    std::unordered_map<std::uint64_t, const store::FileRecord*> by_inode;
    std::vector<plan::LocalItem> items;
    items.reserve(entries.size());
    for (auto& e : entries) {
      plan::LocalItem item;
      item.path = std::move(e.path);
      item.kind = e.kind;
      item.identity = e.identity;
      if (item.kind == EntryKind::kFile) {
        auto it = root.files.find(item.path);
        if (it != root.files.end() && it->second.has_digest &&
            it->second.kind == EntryKind::kFile &&
            core::SameContent(it->second.identity, item.identity)) {
          item.digest = it->second.digest;
          item.digest_known = true;
        } else if (it == root.files.end()) {
          // No record at this path: perhaps a rename (same inode, size and mtime; a rename
          // changes ctime, so ctime cannot be compared). A path that has a record whose identity
          // changed is an edit and is hashed again, even if its mtime was put back.
          if (by_inode.empty()) {
            for (const auto& [p, r] : root.files) by_inode.emplace(r.identity.inode, &r);
          }
          auto hit = by_inode.find(item.identity.inode);
          if (hit != by_inode.end() && hit->second->has_digest &&
              hit->second->kind == EntryKind::kFile &&
              hit->second->identity.size == item.identity.size &&
              hit->second->identity.mtime_ns == item.identity.mtime_ns &&
              item.identity.inode != 0) {
            item.digest = hit->second->digest;
            item.digest_known = true;
          }
        }
      }
      items.push_back(std::move(item));
    }
    return items;
  }

  void HashFiles(const RootState& root, std::vector<plan::LocalItem>& items,
                 const std::vector<std::size_t>& which, PassReport& report,
                 PassProgress* progress) {
    if (which.empty()) return;
    std::atomic<std::uint64_t> bytes{0}, files{0};
    core::ParallelFor(which.size(), config.workers, [&](std::size_t i) {
      if (stop_flag.load()) return;
      plan::LocalItem& item = items[which[i]];
      // Changed or unreadable: not hashed here; the upload reports it.
      auto file = core::StableFile::Open(root.dir_fd.get(), item.path,
                                         root.local_dir + "/" + item.path, item.identity);
      if (!file.ok()) return;
      auto hashed = hash::HashFd(file->fd(), 0, &stop_flag);
      if (!hashed.ok() || !file->CheckUnchanged("hashed").ok()) return;
      bytes += hashed->bytes_read;
      ++files;
      if (progress) progress->bytes_hashed += hashed->bytes_read;
      item.digest = hashed->digest;
      item.digest_known = true;
    });
    report.bytes_hashed += bytes.load();
    report.files_hashed += files.load();
  }

  std::function<bool(std::string_view)> MakeProtect(
      const std::vector<std::string>& unknown_dirs) const {
    return [this, unknown_dirs](std::string_view path) {
      for (const auto& dir : unknown_dirs) {
        if (UnderOrEqual(path, dir)) return true;
      }
      if (!exclude) return false;
      // Excluded paths (and everything below an excluded folder) are left alone in the cloud.
      for (std::size_t slash = path.find('/');; slash = path.find('/', slash + 1)) {
        const std::string_view prefix = path.substr(0, slash);
        const bool is_dir = slash != std::string_view::npos;
        if (exclude->Excluded(prefix, is_dir) || (!is_dir && exclude->Excluded(prefix, true)))
          return true;
        if (slash == std::string_view::npos) return false;
      }
    };
  }

  // Copies the queue's depth into the pass's progress (the queue_depth metric).
  void SampleQueue() {
    std::lock_guard lock(producer_mu);
    if (active_producer != nullptr) current_progress->queued = active_producer->queued();
  }

  // ---- recording outcomes (called from worker threads) ----
  void OnDone(const Event& event, const ActionOutcome& outcome) override {
    std::unique_lock lock(mu);
    RootState& root = roots[static_cast<std::size_t>(event.root)];
    RootReport& rr = current->roots[static_cast<std::size_t>(event.root)];
    const plan::Action& a = event.action;
    ++root.outcomes;
    if (event.index < rr.action_done.size()) rr.action_done[event.index] = true;
    if (current_progress) {
      ++current_progress->files_done;
      SampleQueue();
      current_progress->SetCurrent(a.path);
    }
    if (!outcome.status.ok()) {
      if (outcome.status.kind() != Status::Kind::kChanged &&
          outcome.status.kind() != Status::Kind::kCancelled)
        ++current->errors_by_kind[Status::KindName(outcome.status.kind())];
      if (outcome.status.kind() == Status::Kind::kAuth) {
        // Every other action would be refused too: the pass stops, and the CLI says what to fix.
        ++rr.failed;
        if (!current->config_error) current->config_error = outcome.status.message();
        if (!rr.stopped) rr.stopped = outcome.status.message();
        config_failed = true;
        return;
      }
      if (outcome.status.kind() == Status::Kind::kChanged ||
          outcome.status.kind() == Status::Kind::kCancelled) {
        ++rr.deferred;
        // A stop cancels every transfer in flight at once: the pass summary counts them.
        logger->log(outcome.status.kind() == Status::Kind::kCancelled ? spdlog::level::debug
                                                                      : spdlog::level::info,
                    "{} {}: {}; it goes again next pass", plan::ActionKindName(a.kind), a.path,
                    outcome.status.message());
        return;
      }
      ++rr.failed;
      logger->warn("{} {} failed after {} attempt(s): {}", plan::ActionKindName(a.kind), a.path,
                   outcome.attempts, outcome.status.ToString());
      (void)store.RecordError(root.id, a.path, outcome.status.ToString());
      root.failed_paths.insert(a.path);
      const auto kind = outcome.status.kind();
      if (kind == Status::Kind::kNotFound || kind == Status::Kind::kConflict)
        root.verify_next = true;
      return;
    }
    switch (a.kind) {
      case plan::ActionKind::kUpload: {
        const cloud::UploadedFile& up = *outcome.uploaded;
        ++rr.uploaded;
        rr.bytes_uploaded += up.bytes_transferred;
        // The upload hashed what it read, on the way.
        current->bytes_hashed += up.identity.size;
        ++current->files_hashed;
        if (current_progress) current_progress->bytes_hashed += up.identity.size;
        store::RemoteRecord r;
        r.path = a.path;
        r.kind = EntryKind::kFile;
        r.size = up.entry.size;
        r.digest = up.digest;
        r.rev = up.entry.rev;
        RecordAncestorsAsFolders(root, a.path);
        PutRemoteRecord(root, std::move(r));
        RecordFile(root, a.path, up.identity, up.digest);
        break;
      }
      case plan::ActionKind::kCreateFolder: {
        ++rr.created;
        RecordAncestorsAsFolders(root, a.path);
        store::RemoteRecord r;
        r.path = a.path;
        r.kind = EntryKind::kFolder;
        PutRemoteRecord(root, std::move(r));
        break;
      }
      case plan::ActionKind::kDelete: {
        ++rr.deleted;
        EraseRemoteUnder(root, Key(a.path));
        pending_batch.DeleteRemoteUnder(a.path);
        break;
      }
      case plan::ActionKind::kMove: {
        ++rr.moved;
        std::vector<store::RemoteRecord> moved = EraseRemoteUnder(root, Key(a.from));
        pending_batch.DeleteRemoteUnder(a.from);
        RecordAncestorsAsFolders(root, a.path);
        // The records' own spelling of the moved part may differ from a.from's (case, Unicode
        // form; not even the same length): keep what lies below it, component-wise.
        const std::size_t components = core::Components(a.from);
        for (auto& r : moved) {
          r.path = core::Rebase(r.path, components, a.path);
          if (outcome.moved && r.path == a.path && !outcome.moved->rev.empty() &&
              r.kind == EntryKind::kFile) {
            r.rev = outcome.moved->rev;  // the local backend's rev follows the file's identity
          }
          PutRemoteRecord(root, std::move(r));
        }
        if (a.entry_kind == EntryKind::kFile && a.digest_known)
          RecordFile(root, a.path, a.identity, a.digest);
        break;
      }
    }
    // A syncfs per commit: batch them by count and time, not per file.
    if (++batch_ops >= kCommitEvery ||
        std::chrono::steady_clock::now() - last_commit > kCommitInterval) {
      CommitLocked(root, lock);
    }
  }

  void RecordAncestorsAsFolders(RootState& root, std::string_view path) {
    core::ForEachAncestor(path, [&](std::string_view parent) {
      std::string key = Key(parent);
      if (root.remote.contains(key)) return false;
      store::RemoteRecord r;
      r.path = parent;
      r.kind = EntryKind::kFolder;
      pending_batch.PutRemote(r);
      root.remote.emplace(std::move(key), std::move(r));
      return true;
    });
  }

  void RecordFile(RootState& root, const std::string& path, core::FileIdentity identity,
                  const hash::Digest& digest) {
    if (identity.mtime_ns > NowNs() - kRacyWindowNs)
      identity.mtime_ns = 0;  // smudge: re-hash next pass
    store::FileRecord f;
    f.path = path;
    f.kind = EntryKind::kFile;
    f.identity = identity;
    f.digest = digest;
    f.has_digest = true;
    pending_batch.PutFile(f);
    root.files.insert_or_assign(path, std::move(f));
  }

  // Makes the cloud's writes durable, then records them. Called with `lock` held on mu; releases
  // it while syncing and committing so workers keep recording outcomes meanwhile.
  void CommitLocked(RootState& root, std::unique_lock<std::mutex>& lock) {
    if (pending_batch.empty()) return;
    store::StateStore::Batch batch = std::move(pending_batch);
    pending_batch = store::StateStore::Batch();
    batch_ops = 0;
    last_commit = std::chrono::steady_clock::now();
    const std::uint64_t ticket = batches_taken++;
    lock.unlock();
    if (commit_hook) commit_hook(ticket);
    {
      // Batches land in the order they were taken from pending_batch: another thread may take
      // the next one and reach commit_mu first, and a later batch applied before an earlier one
      // could have its records undone by the earlier one's deletes or ClearRemote.
      std::unique_lock commit_lock(commit_mu);
      commit_turn.wait(commit_lock, [&] { return batches_applied == ticket; });
      if (Status s = cloud.Flush(); !s.ok()) {
        logger->error("cannot make cloud writes durable, not recording them: {}", s.ToString());
        ++commit_failures;
      } else if (Status c = store.Commit(root.id, batch); !c.ok()) {
        logger->error("cannot record progress in the state store: {}", c.ToString());
        ++commit_failures;
      }
      ++batches_applied;
    }
    commit_turn.notify_all();
    lock.lock();
  }

  // Brings the file cache in line with what this scan saw (renames, deletions, folders).
  void SyncFileRecords(RootState& root, const std::vector<plan::LocalItem>& items) {
    std::size_t known = 0;  // items that already had a record at their path
    for (const plan::LocalItem& item : items) {
      auto it = root.files.find(item.path);
      if (it != root.files.end()) ++known;
      if (item.kind == EntryKind::kFolder) {
        if (it == root.files.end() || it->second.identity.inode != item.identity.inode ||
            it->second.kind != item.kind) {
          store::FileRecord f;
          f.path = item.path;
          f.kind = EntryKind::kFolder;
          f.identity = item.identity;
          pending_batch.PutFile(f);
          root.files.insert_or_assign(item.path, std::move(f));
        }
        continue;
      }
      if (!item.digest_known) continue;
      if (it != root.files.end() && it->second.has_digest && it->second.digest == item.digest &&
          it->second.identity == item.identity) {
        continue;
      }
      RecordFile(root, item.path, item.identity, item.digest);
    }
    if (known == root.files.size()) return;  // every record is still a local path: none to drop
    std::unordered_set<std::string_view> present;
    present.reserve(items.size());
    for (const plan::LocalItem& item : items) present.insert(item.path);
    for (auto it = root.files.begin(); it != root.files.end();) {
      if (!present.contains(it->first)) {
        pending_batch.DeleteFile(it->first);
        it = root.files.erase(it);
      } else {
        ++it;
      }
    }
  }

  void RunRoot(std::size_t index, const PassOptions& options, PassReport& report,
               PassProgress* progress) {
    RootState& root = roots[index];
    RootReport& rr = report.roots[index];
    if (Status s = Load(root); !s.ok()) {
      rr.stopped = "cannot load state: " + s.ToString();
      return;
    }
    if (storage_problem) {
      rr.stopped = *storage_problem;
      return;
    }
    if (Status s = EnsureIndex(root); !s.ok()) {
      rr.stopped = "cannot load state: " + s.ToString();
      return;
    }
    std::string root_identity;
    if (auto why = CheckRoot(root, options, &root_identity)) {
      rr.stopped = *why;
      return;
    }
    scan::ScanOptions scan_options;
    scan_options.exclude = exclude.get();
    scan_options.threads = std::min(config.workers, 2);
    scan_options.expected_entries =
        root.records_loaded ? root.files.size() : root.index->file_count();
    auto scanned = scan::Scan(root.dir_fd.get(), root.local_dir, scan_options);
    if (!scanned.ok()) {
      rr.stopped = "cannot scan " + root.local_dir + ": " + scanned.status().ToString() +
                   "; nothing is deleted";
      return;
    }
    std::vector<std::string> unknown_dirs;
    for (const scan::Issue& issue : scanned->issues) {
      rr.issues.push_back({issue.path, issue.message});
      if (issue.kind == scan::IssueKind::kUnreadable || issue.kind == scan::IssueKind::kVanished ||
          issue.kind == scan::IssueKind::kTooDeep ||
          issue.kind == scan::IssueKind::kOtherFilesystem) {
        unknown_dirs.push_back(issue.path);
      }
      if (issue.kind == scan::IssueKind::kUnreadable) {
        RecordUnreadable(root, rr, issue, options);
      } else {
        // A vanished entry is looked at again next pass; the others are policy (skipped).
        if (issue.kind == scan::IssueKind::kVanished) ++rr.deferred;
        if (root.warned.insert(issue.path).second)
          logger->warn("{}/{}: {}", root.local_dir, issue.path, issue.message);
      }
    }
    rr.local_entries = scanned->entries.size();
    if (Status s = LoadCloudState(root, options); !s.ok()) {
      report.config_error = ConfigProblem(root, s);
      rr.stopped = report.config_error
                       ? *report.config_error
                       : "cannot read the cloud state of " + root.cloud_path + ": " + s.ToString();
      return;
    }
    if (scanned->entries.empty() && RemoteCount(root) > 0 && !options.allow_mass_delete) {
      rr.stopped = "sync dir " + root.local_dir + " is suddenly empty while the cloud has " +
                   std::to_string(RemoteCount(root)) +
                   " entries; nothing is deleted. If you emptied it on purpose, run: filesync sync "
                   "--allow-mass-delete";
      return;
    }
    if (!root.records_loaded && root.index->Matches(scanned->entries)) {
      // The common daemon case: nothing changed on either side, and the compact index can tell.
      if (!options.dry_run) FinishRoot(root, nullptr, root_identity);
      return;
    }
    if (Status s = EnsureRecords(root); !s.ok()) {
      rr.stopped = "cannot load state: " + s.ToString();
      return;
    }
    std::vector<plan::LocalItem> items = ToLocalItems(root, scanned->entries);
    scanned->entries = {};
    if (InSync(root, items)) {
      // Nothing to do, but perhaps records to update (a touched file whose content is the same):
      // the planner would return an empty plan; skip building its inputs. Activity has stopped,
      // so the records give way to the compact index until the next change (while changes keep
      // coming, they stay loaded rather than be reloaded from the store every pass).
      if (!options.dry_run) FinishRootAndCompact(root, items, root_identity, rr);
      return;
    }
    std::vector<plan::RemoteItem> remote;
    remote.reserve(root.remote.size());
    for (const auto& [key, r] : root.remote) {
      remote.push_back({.path = r.path,
                        .kind = r.kind,
                        .size = r.size,
                        .digest = r.digest,
                        .digest_known = r.kind == EntryKind::kFile && r.has_digest});
    }
    HashFiles(root, items, plan::FilesToHash(items, remote, caps.case_insensitive), report,
              progress);
    if (stop_flag.load()) {
      rr.interrupted = true;  // some digests may be missing: no plan from them
      return;
    }
    std::vector<plan::PreviousItem> previous;
    previous.reserve(root.files.size());
    for (const auto& [p, f] : root.files) {
      previous.push_back({.path = f.path,
                          .kind = f.kind,
                          .identity = f.identity,
                          .digest = f.digest,
                          .digest_known = f.has_digest});
    }
    plan::PlanOptions plan_options;
    plan_options.case_insensitive = caps.case_insensitive;
    plan_options.name_rules = caps.name_rules == cloud::NameRules::kDropbox
                                  ? plan::NameRules::kDropbox
                                  : plan::NameRules::kPlain;
    plan_options.max_delete_count = config.max_delete.count;
    plan_options.max_delete_percent = config.max_delete.percent;
    plan_options.allow_mass_delete = options.allow_mass_delete;
    plan_options.protect = MakeProtect(unknown_dirs);
    plan::Plan plan = plan::MakePlan(items, remote, previous, plan_options);
    previous.clear();
    remote.clear();
    for (auto& issue : plan.issues) {
      if (root.warned.insert(issue.path).second)
        logger->warn("{}/{}: {}; skipped", root.local_dir, issue.path, issue.message);
      rr.issues.push_back(std::move(issue));
    }
    if (plan.blocked) {
      rr.stopped = "sync dir " + root.local_dir + ": " + *plan.blocked;
      return;
    }
    rr.actions = plan.actions;
    if (options.dry_run) {
      rr.pending = rr.actions.size();
      return;
    }

    rr.action_done.assign(rr.actions.size(), false);
    Execute(index, plan.actions, progress);
    rr.pending = rr.actions.size() - std::min<std::uint64_t>(root.outcomes, rr.actions.size());
    rr.interrupted = rr.pending > 0 && stop_flag.load();
    FinishRoot(root, &items, root_identity);
  }

  // A failure to reach a root's cloud folder that only the configuration can fix, as one line
  // naming the key: refused credentials (the backend names its keys), or a cloud folder the
  // service refuses (a name it does not allow, found only by asking it).
  std::optional<std::string> ConfigProblem(const RootState& root, const Status& s) const {
    if (s.kind() == Status::Kind::kAuth) return s.message();
    if (s.kind() != Status::Kind::kInvalidArgument) return std::nullopt;
    const auto origin = config.origins.find("cloud_root");
    return (origin != config.origins.end() ? origin->second : config.source) +
           ": key 'cloud_root' = \"" + config.cloud_root + "\": " + std::string(cloud.name()) +
           " refuses the folder " + root.cloud_path + " (" + s.message() +
           "); choose another cloud_root, or rename the sync dir " + root.local_dir;
  }

  // A folder the scan could not read: what is below it is unknown, so nothing there is synced or
  // deleted, and every pass is incomplete until it is readable again (an error in `status`).
  // Warned about once per process (then at debug), like the other scan issues: the pass
  // summary says so each time it changes.
  void RecordUnreadable(RootState& root, RootReport& rr, const scan::Issue& issue,
                        const PassOptions& options) {
    ++rr.unreadable;
    root.failed_paths.insert(issue.path);
    const std::string message = issue.message + "; nothing below it is synced or deleted";
    logger->log(root.warned.insert(issue.path).second ? spdlog::level::warn : spdlog::level::debug,
                "{}/{}: {}", root.local_dir, issue.path, message);
    if (!options.dry_run) {
      if (Status s = store.RecordError(root.id, issue.path, message); !s.ok())
        logger->error("cannot record an error for status: {}", s.ToString());
    }
  }

  void FinishRootAndCompact(RootState& root, const std::vector<plan::LocalItem>& items,
                            const std::string& root_identity, const RootReport& rr) {
    FinishRoot(root, &items, root_identity);
    if (rr.failed == 0 && rr.deferred == 0 && commit_failures.load() == 0 && !root.verify_next &&
        !stop_flag.load()) {
      Compact(root);
    }
  }

  // Errors of earlier passes on paths that did not fail this time are resolved: the pass either
  // synced them or found nothing left to do. (The root's own "" entry is handled by Run.)
  void ClearResolvedErrors(RootState& root) {
    auto errors = store.Errors();
    if (!errors.ok()) return;
    for (const store::ErrorRecord& e : *errors) {
      if (e.root_id == root.id && !e.path.empty() && !root.failed_paths.contains(e.path)) {
        (void)store.ClearError(root.id, e.path);
      }
    }
  }

  // True when every local entry has its counterpart in the cloud state (same kind; files with
  // the same content hash) and the cloud has nothing else: then there is nothing to do.
  bool InSync(const RootState& root, const std::vector<plan::LocalItem>& items) const {
    if (items.size() != root.remote.size()) return false;
    std::string key;
    for (const plan::LocalItem& item : items) {
      if (caps.case_insensitive) key = Key(item.path);
      auto it = root.remote.find(caps.case_insensitive ? std::string_view(key)
                                                       : std::string_view(item.path));
      if (it == root.remote.end() || it->second.kind != item.kind) return false;
      if (caps.case_insensitive &&
          core::BaseName(it->second.path) != unicode::ToNfc(core::BaseName(item.path))) {
        return false;  // a case-only rename
      }
      if (item.kind == EntryKind::kFile &&
          (!item.digest_known || !it->second.has_digest || it->second.digest != item.digest)) {
        return false;
      }
    }
    return true;
  }

  // Records what this pass learnt about the local files (none to record: items is null) and the
  // cloud cursor.
  void FinishRoot(RootState& root, const std::vector<plan::LocalItem>* items,
                  const std::string& root_identity) {
    std::unique_lock lock(mu);
    if (items) SyncFileRecords(root, *items);
    CommitLocked(root, lock);
    Status marker = root.verify_next || commit_failures.load() > 0
                        ? store.Put(root.id, kVerifyNextKey, "1")
                        : store.Erase(root.id, kVerifyNextKey);
    if (!marker.ok()) logger->error("cannot record the verify marker: {}", marker.ToString());
    ClearResolvedErrors(root);
    // After the commit: a cursor must never get ahead of the records it describes.
    for (const auto& [key, value] : {std::pair<const char*, std::string>{"cursor", root.cursor},
                                     {"last_verify_ms", std::to_string(root.last_verify_ms)},
                                     {"root_identity", root_identity},
                                     {kMirrorFolderKey, MirrorFolderToRecord(root)}}) {
      if (Status s = store.Put(root.id, key, value); !s.ok())
        logger->error("cannot record {}: {}", key, s.ToString());
    }
  }

  void Execute(std::size_t index, const std::vector<plan::Action>& actions,
               PassProgress* progress) {
    if (actions.empty()) return;
    // Until FinishRoot records the outcome, a crash may leave cloud changes the store does not
    // know about; the marker makes the next pass walk the cloud instead of trusting the store.
    if (Status s = store.Put(roots[index].id, kVerifyNextKey, "1"); !s.ok()) {
      logger->error("cannot record the verify marker: {}", s.ToString());
    }
    if (progress) {
      for (const auto& a : actions) {
        ++progress->files_total;
        if (a.kind == plan::ActionKind::kUpload) progress->bytes_total += a.identity.size;
      }
    }
    std::vector<RootContext> contexts;
    for (const auto& r : roots) contexts.push_back({r.local_dir, r.dir_fd.get(), r.cloud_path});
    RetryPolicy retry;
    EventProcessor processor(cloud, contexts, retry, *this, stop_flag, [progress](std::uint64_t n) {
      if (progress) progress->bytes_done += n;
    });
    EventProducer producer(kQueueCapacity);
    // A stop drops what is queued at once (it counts as pending), rather than have the workers
    // take each queued event only to cancel it.
    {
      std::lock_guard lock(producer_mu);
      active_producer = &producer;
    }
    if (stop_flag.load()) producer.Cancel();
    const BatchLimits limits{.max_files = std::max<std::size_t>(1, caps.max_batch_files),
                             .max_bytes = caps.max_batch_bytes,
                             .small_file_limit = caps.small_file_limit,
                             .case_insensitive = caps.case_insensitive};
    EventConsumer consumer(producer, processor, config.workers, limits);
    consumer.Start();
    auto stopping = [&] { return stop_flag.load() || config_failed.load(); };
    for (int phase = 0; phase < plan::kPhaseCount && !stopping(); ++phase) {
      producer.BeginFill();
      for (std::size_t i = 0; i < actions.size(); ++i) {
        const plan::Action& a = actions[i];
        if (a.phase != phase || stopping()) continue;
        Event event{static_cast<int>(index), a, i};
        if (phase == plan::kPhaseReplace) {
          // Strictly in order: a folder must be moved before what is moved into it.
          processor.Process({event});
        } else {
          producer.Push(std::move(event));
          if (progress) progress->queued = producer.queued();
        }
      }
      producer.WaitIdle();
      std::unique_lock lock(mu);
      CommitLocked(roots[index], lock);
    }
    if (stopping()) producer.Cancel();
    producer.Close();
    consumer.Join();
    std::lock_guard lock(producer_mu);
    active_producer = nullptr;
  }

  // From RequestStop (any thread): drops the events queued in the running pass, if any.
  void CancelQueued() {
    std::lock_guard lock(producer_mu);
    if (active_producer != nullptr) active_producer->Cancel();
  }

  // Why a dir was not synced is its error in `status` (and logged once per change, not every
  // poll_interval while it lasts); a dir synced again has none.
  void RecordRootOutcome(RootState& root, const RootReport& rr, const PassOptions& options) {
    if (rr.stopped) {
      // A configuration problem is said once, by the caller.
      const bool said_by_caller =
          current->config_error && rr.stopped->ends_with(*current->config_error);
      logger->log(*rr.stopped != root.last_stopped && !said_by_caller ? spdlog::level::err
                                                                      : spdlog::level::debug,
                  "{}", *rr.stopped);
      root.last_stopped = *rr.stopped;
      if (root.id != 0 && !options.dry_run) (void)store.RecordError(root.id, "", *rr.stopped);
    } else {
      root.last_stopped.clear();
      if (root.id != 0 && !options.dry_run) (void)store.ClearError(root.id, "");
    }
  }

  PassReport Run(const PassOptions& options, PassProgress* progress) {
    PassReport report;
    report.started_unix_ms = NowMs();
    report.roots.resize(roots.size());
    for (std::size_t i = 0; i < roots.size(); ++i) {
      report.roots[i].local_dir = roots[i].local_dir;
      report.roots[i].cloud_path = roots[i].cloud_path;
    }
    current = &report;
    current_progress = progress;
    commit_failures = 0;
    config_failed = false;
    for (RootState& r : roots) {
      r.failed_paths.clear();
      r.outcomes = 0;
    }
    // Until the pass records its outcome, the store says one is under way: a pass that cannot
    // (killed, or the state disk full) is not mistaken by `status` for the last one recorded.
    // A store that cannot take even that cannot record what a pass does: nothing is synced.
    Status marker = options.dry_run
                        ? Status::Ok()
                        : store.Put(0, kPassUnderWayKey, std::to_string(report.started_unix_ms));
    storage_problem = marker.ok() ? BeginPass(options) : std::nullopt;
    for (std::size_t i = 0; i < roots.size(); ++i) {
      RootReport& rr = report.roots[i];
      if (!marker.ok()) {
        rr.stopped = "cannot write to the state store (" + marker.ToString() +
                     "); nothing is synced until it can record what it does";
      } else if (stop_flag.load()) {
        rr.interrupted = true;  // never reached
        continue;
      } else if (report.config_error) {
        rr.stopped = "not tried: " + *report.config_error;
      } else {
        RunRoot(i, options, report, progress);
      }
      roots[i].dir_fd = core::UniqueFd();
      RecordRootOutcome(roots[i], rr, options);
    }
    report.interrupted = stop_flag.load();
    report.state_errors = commit_failures.load();
    report.finished_unix_ms = NowMs();
    current = nullptr;
    current_progress = nullptr;
    if (!options.dry_run && marker.ok()) {
      if (Status s = store.Put(0, kLastPassKey, report.ToJson(kStoredReportItems)); !s.ok()) {
        logger->error("cannot record the pass in the state store: {}", s.ToString());
        ++report.state_errors;
      } else {
        (void)store.Erase(0, kPassUnderWayKey);
      }
    }
    return report;
  }

  const config::Config& config;
  cloud::Cloud& cloud;
  store::StateStore& store;
  std::atomic<bool>& stop_flag;
  const cloud::Capabilities caps;
  std::shared_ptr<spdlog::logger> logger;
  std::unique_ptr<scan::ExcludeMatcher> exclude;
  std::vector<RootState> roots;
  std::optional<std::string> storage_problem;  // this pass's, from BeginPass

  std::mutex mu;  // guards everything below and the RootStates during a pass
  PassReport* current = nullptr;
  PassProgress* current_progress = nullptr;
  store::StateStore::Batch pending_batch;
  std::size_t batch_ops = 0;
  std::chrono::steady_clock::time_point last_commit = std::chrono::steady_clock::now();
  std::uint64_t batches_taken = 0;      // guarded by mu: the next batch's place in commit order
  std::mutex commit_mu;                 // serialises Flush()+Commit() pairs; taken without mu held
  std::condition_variable commit_turn;  // with commit_mu: a batch waits for its predecessors
  std::uint64_t batches_applied = 0;    // guarded by commit_mu
  std::atomic<int> commit_failures{0};  // this pass; a failed commit means the pass is incomplete
  std::atomic<bool> config_failed{false};          // this pass: an action met a refused credential
  std::function<void(std::uint64_t)> commit_hook;  // test seam; set before a pass
  std::mutex producer_mu;                          // guards active_producer
  EventProducer* active_producer = nullptr;        // the queue of the pass's Execute, if any
};

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
  nlohmann::json j;
  j["started_unix_ms"] = started_unix_ms;
  j["finished_unix_ms"] = finished_unix_ms;
  j["duration_ms"] = finished_unix_ms - started_unix_ms;
  j["bytes_hashed"] = bytes_hashed;
  j["files_hashed"] = files_hashed;
  j["converged"] = converged();
  j["interrupted"] = interrupted;
  j["state_errors"] = state_errors;
  if (config_error) j["config_error"] = *config_error;
  auto action_json = [](const RootReport& r, const plan::Action& a) {
    nlohmann::json aj{{"action", plan::ActionKindName(a.kind)},
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
  };
  nlohmann::json actions = nlohmann::json::array();
  nlohmann::json roots_json = nlohmann::json::array();
  std::size_t actions_total = 0;
  for (const RootReport& r : roots) {
    nlohmann::json rj{{"local_dir", r.local_dir},
                      {"cloud_path", r.cloud_path},
                      {"local_entries", r.local_entries},
                      {"planned", r.actions.size()},
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
    nlohmann::json issues = nlohmann::json::array();
    for (std::size_t n = 0; n < r.issues.size() && n < max_items; ++n)
      issues.push_back({{"path", r.issues[n].path}, {"message", r.issues[n].message}});
    rj["issues"] = std::move(issues);
    rj["issues_omitted"] = r.issues.size() - std::min(r.issues.size(), max_items);
    // Executed, but not all of it (a stop): which actions did not run.
    if (r.pending > 0 && r.action_done.size() == r.actions.size()) {
      nlohmann::json pending = nlohmann::json::array();
      for (std::size_t i = 0; i < r.actions.size() && pending.size() < max_items; ++i) {
        if (!r.action_done[i]) pending.push_back(action_json(r, r.actions[i]));
      }
      rj["pending_actions"] = std::move(pending);
    }
    roots_json.push_back(std::move(rj));
    actions_total += r.actions.size();
    for (const plan::Action& a : r.actions) {
      if (actions.size() >= max_items) break;
      actions.push_back(action_json(r, a));
    }
  }
  j["roots"] = std::move(roots_json);
  j["actions_omitted"] = actions_total - actions.size();
  j["actions"] = std::move(actions);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

EventMonitor::EventMonitor(const config::Config& config, cloud::Cloud& cloud,
                           store::StateStore& store)
    : impl_(std::make_unique<Impl>(config, cloud, store, stop_)) {}

EventMonitor::~EventMonitor() = default;

PassReport EventMonitor::RunPass(const PassOptions& options, PassProgress* progress) {
  return impl_->Run(options, progress);
}

void EventMonitor::RequestStop() {
  stop_.store(true);
  impl_->CancelQueued();
}

void EventMonitor::SetCommitHookForTesting(std::function<void(std::uint64_t batch)> hook) {
  impl_->commit_hook = std::move(hook);
}

}  // namespace filesync::pipeline
