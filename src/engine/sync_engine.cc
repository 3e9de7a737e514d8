#include "engine/sync_engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>

#include "core/folder_identity.h"
#include "core/rel_path.h"
#include "engine/cloud_view.h"
#include "engine/hash_cache.h"
#include "engine/outcome_recorder.h"
#include "engine/root_state.h"
#include "pipeline/event_consumer.h"
#include "pipeline/event_processor.h"
#include "pipeline/event_producer.h"
#include "scan/scanner.h"
#include "util/log.h"
#include "util/unicode.h"

namespace filesync::engine {
namespace {

using core::EntryKind;
using std::chrono::milliseconds;

constexpr std::size_t kQueueCapacity = 4096;
// Global keys (root id 0): the identity of the backend's storage (Cloud::BeginPass); the last
// pass's report (PassReport::ToJson); the start time (unix ms) of a pass that has not recorded
// its report yet.
constexpr const char* kStorageKey = "cloud_storage";
constexpr const char* kLastPassKey = "last_pass";
constexpr const char* kPassUnderWayKey = "pass_under_way";

std::int64_t UnixNs(core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.WallNow().time_since_epoch())
      .count();
}

std::int64_t UnixMs(core::Clock& clock) { return UnixNs(clock) / 1'000'000; }

// Why the sync dir at `local_dir` could not be opened (errno `err`), as the dir's error.
std::string OpenFailure(const std::string& local_dir, int err) {
  struct stat st {};
  if (err == ELOOP ||
      (err == ENOTDIR && lstat(local_dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode))) {
    std::error_code ec;
    const auto target = std::filesystem::canonical(local_dir, ec);
    return "sync dir " + local_dir +
           " is a symlink; filesync does not follow a symlinked sync dir (it could be "
           "swapped to lead elsewhere): set client_sync_dirs to its target" +
           (ec ? std::string() : " " + target.string()) + "; nothing is deleted";
  }
  if (err == ENOTDIR) return "sync dir " + local_dir + " is not a directory; nothing is deleted";
  return "sync dir " + local_dir + " is missing or unreachable (" + std::strerror(err) +
         "); nothing is deleted in the cloud until it is back";
}

std::vector<plan::RemoteItem> RemoteItems(const RemoteMap& remote) {
  std::vector<plan::RemoteItem> items;
  items.reserve(remote.size());
  for (const auto& [key, r] : remote) {
    items.push_back({.path = r.path,
                     .kind = r.kind,
                     .size = r.size,
                     .digest = r.digest,
                     .digest_known = r.kind == EntryKind::kFile && r.has_digest});
  }
  return items;
}

std::vector<plan::PreviousItem> PreviousItems(const FileMap& files) {
  std::vector<plan::PreviousItem> items;
  items.reserve(files.size());
  for (const auto& [p, f] : files) {
    items.push_back({.path = f.path,
                     .kind = f.kind,
                     .identity = f.identity,
                     .digest = f.digest,
                     .digest_known = f.has_digest});
  }
  return items;
}

}  // namespace

struct SyncEngine::Impl {
  Impl(EngineOptions o, cloud::Cloud& cl, store::StateStore& s, core::Clock& c,
       std::atomic<bool>& stop)
      : options(std::move(o)),
        cloud(cl),
        store(s),
        clock(c),
        stop_flag(stop),
        caps(cl.capabilities()),
        logger(log::Get("monitor")),
        recorder(roots, cl, s, caps.case_insensitive, c) {
    for (const auto& dir : options.dirs) {
      RootState root;
      root.local_dir = dir.local_dir;
      root.cloud_path = dir.cloud_path;
      roots.push_back(std::move(root));
    }
  }

  // Checks the backend's storage once per pass (Cloud::BeginPass). Storage not recorded before
  // (a first pass, or another folder accepted with --allow-mass-delete) is walked in full by
  // every dir before a stored view of it is trusted. Returns why no dir can be synced.
  std::optional<std::string> BeginPass(const PassOptions& pass) {
    auto recorded = store.Get(0, kStorageKey);
    if (!recorded.ok()) return "cannot read the state store: " + recorded.status().ToString();
    const std::string before = recorded->value_or("");
    auto identity = cloud.BeginPass(
        {.recorded = before, .dry_run = pass.dry_run, .accept_replaced = pass.allow_mass_delete});
    if (!identity.ok()) return identity.status().message();
    if (identity->empty() || *identity == before) return std::nullopt;
    for (RootState& root : roots) {
      root.verify_next = true;
      if (!pass.dry_run && root.Load(store).ok()) (void)store.Put(root.id, kVerifyNextKey, "1");
    }
    if (pass.dry_run) return std::nullopt;
    if (Status s = store.Put(0, kStorageKey, *identity); !s.ok())
      return "cannot record the cloud storage in the state store: " + s.ToString();
    return std::nullopt;
  }

  // Safety checks before anything may be deleted. Returns why the dir must not be synced.
  // On success the dir is open in root.dir_fd.
  std::optional<std::string> CheckRoot(RootState& root, const PassOptions& pass,
                                       std::string* identity) {
    root.dir_fd = core::UniqueFd(
        open(root.local_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (root.dir_fd.get() < 0) return OpenFailure(root.local_dir, errno);
    auto folder = core::FolderIdentity(root.dir_fd.get());
    if (!folder.ok()) {
      return "cannot stat sync dir " + root.local_dir + " (" + folder.status().message() +
             "); nothing is deleted";
    }
    *identity = *folder;
    auto stored = store.Get(root.id, "root_identity");
    if (stored.ok() && stored->has_value() && !core::SameFolder(**stored, *identity) &&
        !pass.allow_mass_delete) {
      return "sync dir " + root.local_dir +
             " is not the directory synced before (another folder at its path: unmounted, or "
             "deleted and made again?); "
             "nothing is deleted. If it was replaced on purpose, run: filesync sync "
             "--allow-mass-delete";
    }
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
    const bool changed = missing ? !root.recorded_folder.empty() || root.RemoteCount() > 0
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

  // Lists the root's cloud folder: in full, or the changes since root.cursor.
  Result<cloud::ListResult> ListRoot(const RootState& root, bool full, bool dry_run) {
    auto listing = cloud.List(root.cloud_path, full ? "" : root.cursor);
    if (!listing.ok()) return listing;
    if (!listing->complete &&
        CloudView::DeletesRoot(*listing, root.cloud_path, caps.case_insensitive)) {
      // Perhaps made again since (the changes would say so after the delete): a full listing
      // tells what is there now.
      logger->warn("{} was deleted or moved away in the cloud; listing it again to restore it",
                   root.cloud_path);
      listing = cloud.List(root.cloud_path, "");
      if (!listing.ok()) return listing;
    }
    if (caps.incremental_listing && listing->complete && listing->cursor.empty() &&
        listing->changes.empty() && !dry_run) {
      // The root does not exist yet, and a missing path has no cursor: create it and list again,
      // so the next pass can ask for changes only. (A dry run changes nothing: it plans against
      // the empty listing.)
      if (Status s = cloud.CreateFolder(root.cloud_path); !s.ok()) return s;
      listing = cloud.List(root.cloud_path, "");
    }
    return listing;
  }

  Status LoadCloudState(RootState& root, const PassOptions& pass) {
    if (Status s = CheckMirrorFolder(root); !s.ok()) return s;
    // A full listing now and then, on every backend: no stored view is trusted forever (a
    // backend's change feed could miss something; the local backend has none).
    const bool verify_due =
        UnixMs(clock) - root.last_verify_ms >
        std::chrono::duration_cast<milliseconds>(options.cloud_verify_interval).count();
    const bool full = pass.verify || root.cursor.empty() || verify_due ||
                      (!caps.incremental_listing && root.verify_next);
    if (!caps.incremental_listing && !full) return Status::Ok();
    auto listing = ListRoot(root, full, pass.dry_run);
    if (!listing.ok()) return listing.status();
    if (listing->complete || !listing->changes.empty()) {
      if (Status s = root.EnsureRecords(store, caps.case_insensitive); !s.ok()) return s;
      recorder.Update([&](store::StateStore::Batch& batch) {
        CloudView(root.remote, batch, caps.case_insensitive).Apply(*listing, root.cloud_path);
      });
    }
    root.cursor = listing->cursor;
    if (listing->complete) {
      root.last_verify_ms = UnixMs(clock);
      root.verify_next = false;
    }
    return Status::Ok();
  }

  // Paths the plan must leave alone in the cloud: below a folder whose content is unknown, or
  // excluded (and everything below an excluded folder).
  std::function<bool(std::string_view)> MakeProtect(
      const std::vector<std::string>& unknown_dirs) const {
    return [exclude = options.exclude, unknown_dirs](std::string_view path) {
      for (const auto& dir : unknown_dirs) {
        if (core::UnderOrEqual(path, dir)) return true;
      }
      if (!exclude) return false;
      for (std::size_t slash = path.find('/');; slash = path.find('/', slash + 1)) {
        const std::string_view prefix = path.substr(0, slash);
        const bool is_dir = slash != std::string_view::npos;
        if (exclude->Excluded(prefix, is_dir) || (!is_dir && exclude->Excluded(prefix, true)))
          return true;
        if (slash == std::string_view::npos) return false;
      }
    };
  }

  // A failure to reach a root's cloud folder that only the configuration can fix, as one line
  // naming the key: refused credentials (the backend names its keys), or a cloud folder the
  // service refuses (a name it does not allow, found only by asking it).
  std::optional<std::string> ConfigProblem(const RootState& root, const Status& s) const {
    if (s.kind() == Status::Kind::kAuth) return s.message();
    if (s.kind() != Status::Kind::kInvalidArgument) return std::nullopt;
    return options.cloud_root_setting + ": " + std::string(cloud.name()) + " refuses the folder " +
           root.cloud_path + " (" + s.message() + "); choose another cloud_root, or rename the " +
           "sync dir " + root.local_dir;
  }

  // A folder the scan could not read: what is below it is unknown, so nothing there is synced or
  // deleted, and every pass is incomplete until it is readable again (an error in `status`).
  // Warned about once per process (then at debug), like the other scan issues: the pass
  // summary says so each time it changes.
  void RecordUnreadable(RootState& root, RootReport& rr, const scan::Issue& issue,
                        const PassOptions& pass) {
    ++rr.unreadable;
    root.failed_paths.insert(issue.path);
    const std::string message = issue.message + "; nothing below it is synced or deleted";
    logger->log(root.warned.insert(issue.path).second ? spdlog::level::warn : spdlog::level::debug,
                "{}/{}: {}", root.local_dir, issue.path, message);
    if (!pass.dry_run) {
      if (Status s = store.RecordError(root.id, issue.path, message); !s.ok())
        logger->error("cannot record an error for status: {}", s.ToString());
    }
  }

  // Scans the dir; its issues go to the report, and the folders whose content is unknown to
  // `unknown_dirs`. Nullopt (and rr.stopped) if the scan failed.
  std::optional<scan::ScanResult> ScanRoot(RootState& root, RootReport& rr, const PassOptions& pass,
                                           std::vector<std::string>* unknown_dirs) {
    scan::ScanOptions scan_options;
    scan_options.exclude = options.exclude.get();
    scan_options.threads = std::min(options.workers, 2);
    scan_options.expected_entries = root.FileCount();
    auto scanned = scan::Scan(root.dir_fd.get(), root.local_dir, scan_options);
    if (!scanned.ok()) {
      rr.stopped = "cannot scan " + root.local_dir + ": " + scanned.status().ToString() +
                   "; nothing is deleted";
      return std::nullopt;
    }
    for (const scan::Issue& issue : scanned->issues) {
      rr.issues.push_back({issue.path, issue.message});
      if (issue.kind == scan::IssueKind::kUnreadable || issue.kind == scan::IssueKind::kVanished ||
          issue.kind == scan::IssueKind::kTooDeep ||
          issue.kind == scan::IssueKind::kOtherFilesystem) {
        unknown_dirs->push_back(issue.path);
      }
      if (issue.kind == scan::IssueKind::kUnreadable) {
        RecordUnreadable(root, rr, issue, pass);
      } else {
        // A vanished entry is looked at again next pass; the others are policy (skipped).
        if (issue.kind == scan::IssueKind::kVanished) ++rr.deferred;
        if (root.warned.insert(issue.path).second)
          logger->warn("{}/{}: {}", root.local_dir, issue.path, issue.message);
      }
    }
    rr.local_entries = scanned->entries.size();
    return std::move(scanned.value());
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
      if (caps.case_insensitive) key = core::CloudKey(item.path, true);
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
    recorder.CommitWith(root, [&](store::StateStore::Batch& batch) {
      if (items) HashCache(root.files, batch, UnixNs(clock)).Reconcile(*items);
    });
    Status marker = root.verify_next || recorder.commit_failures() > 0
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

  void FinishRootAndCompact(RootState& root, const std::vector<plan::LocalItem>& items,
                            const std::string& root_identity, const RootReport& rr) {
    FinishRoot(root, &items, root_identity);
    if (rr.failed == 0 && rr.deferred == 0 && recorder.commit_failures() == 0 &&
        !root.verify_next && !stop_flag.load()) {
      root.Compact(caps.case_insensitive);
    }
  }

  // Pushes the actions phase by phase; each phase is waited for and its outcomes committed
  // before the next starts.
  void FeedPhases(std::size_t index, const std::vector<plan::Action>& actions,
                  pipeline::EventProcessor& processor, pipeline::EventProducer& producer) {
    auto stopping = [&] { return stop_flag.load() || recorder.config_failed(); };
    for (int phase = 0; phase < plan::kPhaseCount && !stopping(); ++phase) {
      producer.BeginFill();
      for (std::size_t i = 0; i < actions.size(); ++i) {
        const plan::Action& a = actions[i];
        if (a.phase != phase || stopping()) continue;
        pipeline::Event event{static_cast<int>(index), a, i};
        if (phase == plan::kPhaseReplace) {
          // Strictly in order: a folder must be moved before what is moved into it.
          processor.Process({event});
        } else {
          producer.Push(std::move(event));
        }
      }
      producer.WaitIdle();
      recorder.CommitWith(roots[index]);
    }
    if (stopping()) producer.Cancel();
  }

  void Execute(std::size_t index, const std::vector<plan::Action>& actions,
               PassProgress* progress) {
    if (actions.empty()) return;
    // Until FinishRoot records the outcome, a crash may leave cloud changes the store does not
    // know about; the marker makes the next pass walk the cloud instead of trusting the store.
    if (Status s = store.Put(roots[index].id, kVerifyNextKey, "1"); !s.ok())
      logger->error("cannot record the verify marker: {}", s.ToString());
    if (progress) {
      for (const auto& a : actions) {
        ++progress->files_total;
        if (a.kind == plan::ActionKind::kUpload) progress->bytes_total += a.identity.size;
      }
    }
    std::vector<pipeline::RootContext> contexts;
    for (const auto& r : roots) contexts.push_back({r.local_dir, r.dir_fd.get(), r.cloud_path});
    pipeline::EventProcessor processor(cloud, contexts, pipeline::RetryPolicy{}, recorder,
                                       stop_flag, [progress](std::uint64_t n) {
                                         if (progress) progress->bytes_done += n;
                                       });
    pipeline::EventProducer producer(kQueueCapacity, progress ? &progress->queued : nullptr);
    // A stop drops what is queued at once (it counts as pending), rather than have the workers
    // take each queued event only to cancel it.
    {
      core::MutexLock lock(&producer_mu);
      active_producer = &producer;
    }
    if (stop_flag.load()) producer.Cancel();
    const pipeline::BatchLimits limits{.max_files = std::max<std::size_t>(1, caps.max_batch_files),
                                       .max_bytes = caps.max_batch_bytes,
                                       .small_file_limit = caps.small_file_limit,
                                       .case_insensitive = caps.case_insensitive};
    pipeline::EventConsumer consumer(producer, processor, options.workers, limits);
    consumer.Start();
    FeedPhases(index, actions, processor, producer);
    producer.Close();
    consumer.Join();
    core::MutexLock lock(&producer_mu);
    active_producer = nullptr;
  }

  // From RequestStop (any thread): drops the events queued in the running pass, if any.
  void CancelQueued() {
    core::MutexLock lock(&producer_mu);
    if (active_producer != nullptr) active_producer->Cancel();
  }

  // The plan for a dir whose records are loaded: hashes what must be compared, then plans.
  // Nullopt when there is nothing to execute (stopped, blocked or a dry run: rr says which).
  std::optional<plan::Plan> PlanRoot(RootState& root, std::vector<plan::LocalItem>& items,
                                     const std::vector<std::string>& unknown_dirs,
                                     const PassOptions& pass, PassReport& report, RootReport& rr,
                                     PassProgress* progress) {
    std::vector<plan::RemoteItem> remote = RemoteItems(root.remote);
    const HashTotals hashed = HashFiles(root.dir_fd.get(), root.local_dir, items,
                                        plan::FilesToHash(items, remote, caps.case_insensitive),
                                        options.workers, stop_flag, progress);
    report.bytes_hashed += hashed.bytes;
    report.files_hashed += hashed.files;
    if (stop_flag.load()) {
      rr.interrupted = true;  // some digests may be missing: no plan from them
      return std::nullopt;
    }
    plan::PlanOptions plan_options;
    plan_options.case_insensitive = caps.case_insensitive;
    plan_options.name_rules = caps.name_rules == cloud::NameRules::kDropbox
                                  ? plan::NameRules::kDropbox
                                  : plan::NameRules::kPlain;
    plan_options.max_delete_count = options.max_delete_count;
    plan_options.max_delete_percent = options.max_delete_percent;
    plan_options.allow_mass_delete = pass.allow_mass_delete;
    plan_options.protect = MakeProtect(unknown_dirs);
    plan::Plan plan = plan::MakePlan(items, remote, PreviousItems(root.files), plan_options);
    for (auto& issue : plan.issues) {
      if (root.warned.insert(issue.path).second)
        logger->warn("{}/{}: {}; skipped", root.local_dir, issue.path, issue.message);
      rr.issues.push_back(std::move(issue));
    }
    if (plan.blocked) {
      rr.stopped = "sync dir " + root.local_dir + ": " + *plan.blocked;
      return std::nullopt;
    }
    rr.actions = plan.actions;
    if (pass.dry_run) {
      rr.pending = rr.actions.size();
      return std::nullopt;
    }
    return plan;
  }

  // Loads what the dir's pass starts from and checks it is safe to sync. False (rr.stopped
  // says why) if it is not.
  bool PrepareRoot(RootState& root, const PassOptions& pass, RootReport& rr,
                   std::string* root_identity) {
    if (Status s = root.Load(store); !s.ok()) {
      rr.stopped = "cannot load state: " + s.ToString();
      return false;
    }
    if (storage_problem) {
      rr.stopped = *storage_problem;
      return false;
    }
    if (Status s = root.EnsureIndex(store, caps.case_insensitive); !s.ok()) {
      rr.stopped = "cannot load state: " + s.ToString();
      return false;
    }
    if (auto why = CheckRoot(root, pass, root_identity)) {
      rr.stopped = *why;
      return false;
    }
    return true;
  }

  // The steps of one dir's pass: prepare, scan, cloud view, (nothing to do?), plan, execute.
  void RunRoot(std::size_t index, const PassOptions& pass, PassReport& report,
               PassProgress* progress) {
    RootState& root = roots[index];
    RootReport& rr = report.roots[index];
    std::string root_identity;
    if (!PrepareRoot(root, pass, rr, &root_identity)) return;
    std::vector<std::string> unknown_dirs;
    auto scanned = ScanRoot(root, rr, pass, &unknown_dirs);
    if (!scanned) return;
    if (Status s = LoadCloudState(root, pass); !s.ok()) {
      report.config_error = ConfigProblem(root, s);
      rr.stopped = report.config_error
                       ? *report.config_error
                       : "cannot read the cloud state of " + root.cloud_path + ": " + s.ToString();
      return;
    }
    if (scanned->entries.empty() && root.RemoteCount() > 0 && !pass.allow_mass_delete) {
      rr.stopped = "sync dir " + root.local_dir + " is suddenly empty while the cloud has " +
                   std::to_string(root.RemoteCount()) +
                   " entries; nothing is deleted. If you emptied it on purpose, run: filesync sync "
                   "--allow-mass-delete";
      return;
    }
    if (!root.records_loaded && root.index->Matches(scanned->entries)) {
      // The common daemon case: nothing changed on either side, and the compact index can tell.
      if (!pass.dry_run) FinishRoot(root, nullptr, root_identity);
      return;
    }
    if (Status s = root.EnsureRecords(store, caps.case_insensitive); !s.ok()) {
      rr.stopped = "cannot load state: " + s.ToString();
      return;
    }
    std::vector<plan::LocalItem> items = HashCache::LookUp(root.files, scanned->entries);
    scanned->entries = {};
    if (InSync(root, items)) {
      // Nothing to do, but perhaps records to update (a touched file whose content is the same):
      // the planner would return an empty plan; skip building its inputs. Activity has stopped,
      // so the records give way to the compact index until the next change (while changes keep
      // coming, they stay loaded rather than be reloaded from the store every pass).
      if (!pass.dry_run) FinishRootAndCompact(root, items, root_identity, rr);
      return;
    }
    auto plan = PlanRoot(root, items, unknown_dirs, pass, report, rr, progress);
    if (!plan) return;
    rr.action_done.assign(rr.actions.size(), false);
    Execute(index, plan->actions, progress);
    rr.pending = rr.actions.size() - std::min<std::uint64_t>(root.outcomes, rr.actions.size());
    rr.interrupted = rr.pending > 0 && stop_flag.load();
    FinishRoot(root, &items, root_identity);
  }

  // Why a dir was not synced is its error in `status` (and logged once per change, not every
  // poll_interval while it lasts); a dir synced again has none.
  void RecordRootOutcome(RootState& root, const RootReport& rr, const PassReport& report,
                         const PassOptions& pass) {
    if (rr.stopped) {
      // A configuration problem is said once, by the caller.
      const bool said_by_caller =
          report.config_error && rr.stopped->ends_with(*report.config_error);
      logger->log(*rr.stopped != root.last_stopped && !said_by_caller ? spdlog::level::err
                                                                      : spdlog::level::debug,
                  "{}", *rr.stopped);
      root.last_stopped = *rr.stopped;
      if (root.id != 0 && !pass.dry_run) (void)store.RecordError(root.id, "", *rr.stopped);
    } else {
      root.last_stopped.clear();
      if (root.id != 0 && !pass.dry_run) (void)store.ClearError(root.id, "");
    }
  }

  // Stores the report as the last pass, which ends the "pass under way" marker.
  void RecordPass(PassReport& report) {
    if (Status s = store.Put(0, kLastPassKey, report.ToJson(kStoredReportItems)); !s.ok()) {
      logger->error("cannot record the pass in the state store: {}", s.ToString());
      ++report.state_errors;
    } else {
      (void)store.Erase(0, kPassUnderWayKey);
    }
  }

  PassReport Run(const PassOptions& pass, PassProgress* progress) {
    PassReport report;
    report.started_unix_ms = UnixMs(clock);
    report.roots.resize(roots.size());
    for (std::size_t i = 0; i < roots.size(); ++i) {
      report.roots[i].local_dir = roots[i].local_dir;
      report.roots[i].cloud_path = roots[i].cloud_path;
      roots[i].failed_paths.clear();
      roots[i].outcomes = 0;
    }
    recorder.BeginPass(&report, progress);
    // Until the pass records its outcome, the store says one is under way: a pass that cannot
    // (killed, or the state disk full) is not mistaken by `status` for the last one recorded.
    // A store that cannot take even that cannot record what a pass does: nothing is synced.
    Status marker = pass.dry_run
                        ? Status::Ok()
                        : store.Put(0, kPassUnderWayKey, std::to_string(report.started_unix_ms));
    storage_problem = marker.ok() ? BeginPass(pass) : std::nullopt;
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
        RunRoot(i, pass, report, progress);
      }
      roots[i].dir_fd = core::UniqueFd();
      RecordRootOutcome(roots[i], rr, report, pass);
    }
    report.interrupted = stop_flag.load();
    report.state_errors = recorder.commit_failures();
    report.finished_unix_ms = UnixMs(clock);
    recorder.EndPass();
    if (!pass.dry_run && marker.ok()) RecordPass(report);
    return report;
  }

  const EngineOptions options;
  cloud::Cloud& cloud;
  store::StateStore& store;
  core::Clock& clock;
  std::atomic<bool>& stop_flag;
  const cloud::Capabilities caps;
  std::shared_ptr<spdlog::logger> logger;
  std::vector<RootState> roots;
  OutcomeRecorder recorder;                    // after roots, which it refers to
  std::optional<std::string> storage_problem;  // this pass's, from BeginPass

  core::Mutex producer_mu;
  pipeline::EventProducer* active_producer GUARDED_BY(producer_mu) = nullptr;
};

SyncEngine::SyncEngine(EngineOptions options, cloud::Cloud& cloud, store::StateStore& store,
                       core::Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), cloud, store, clock, stop_)) {}

SyncEngine::~SyncEngine() = default;

PassReport SyncEngine::RunPass(const PassOptions& options, PassProgress* progress) {
  return impl_->Run(options, progress);
}

void SyncEngine::RequestStop() {
  stop_.store(true);
  impl_->CancelQueued();
}

OutcomeRecorder& SyncEngine::TEST_recorder() { return impl_->recorder; }

}  // namespace filesync::engine
