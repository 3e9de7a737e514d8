// Cloud: the one interface every storage backend implements (local folder, Dropbox, ...).
//
// Paths. A cloud path is absolute inside the backend's namespace, '/'-separated, NFC, with no
// trailing slash, e.g. "/Backups/photos/a.jpg"; the namespace root is "" (core/rel_path.h has
// the path helpers). Backends that fold case (Dropbox) compare with core::CloudKey(); callers
// never rely on the case a backend reports for lookups, only for display.
//
// Promises every backend keeps:
//  - Writes are atomic per file: a reader never sees a partial file at its destination.
//  - Upload() reads the local file itself (OpenForUpload: core/stable_file.h's rule), hashing it
//    on the way, and fails with kChanged if the file's identity (core::SameContent) differs
//    before and after the read, so a file that changed while it was copied is never recorded as
//    synced.
//  - Identical content is never transferred twice where the backend can tell (same hash).
//  - Creating an existing folder and deleting a missing path are successes (idempotent), so an
//    interrupted pass can simply be replayed.
//  - Expected failures come back as Status kinds (see util/status.h); nothing throws.
// Thread safety: all methods may be called concurrently from several worker threads; a backend
// shares one rate-limit pacer across them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/entry.h"
#include "core/stable_file.h"
#include "hash/content_hash.h"
#include "util/status.h"

namespace filesync::cloud {

struct RemoteEntry {
  std::string path;  // display path, as the backend stores it
  core::EntryKind kind = core::EntryKind::kFile;
  std::uint64_t size = 0;        // files only
  hash::Digest content_hash{};   // files only, valid when has_content_hash
  bool has_content_hash = true;  // false: the backend listed the file without hashing it
  std::string rev;               // opaque revision ("" when the backend has none)
};

// One change from a listing, applied in order (see reference §5.3): an upsert of a file replaces
// whatever was at its path and drops that thing's children; an upsert of a folder keeps
// children; a delete removes the path and everything under it.
struct ListChange {
  enum class Type : std::uint8_t { kUpsert, kDelete };
  Type type = Type::kUpsert;
  RemoteEntry entry;  // for kDelete only entry.path is meaningful
};

struct ListResult {
  std::vector<ListChange> changes;
  // Pass to the next List() call to get only what changed since; "" when the backend has no
  // incremental listing.
  std::string cursor;
  // True when `changes` is a complete listing of the subtree (first call, an expired or reset
  // cursor): the caller replaces its view of the subtree instead of patching it.
  bool complete = false;
};

struct UploadItem {
  std::string local_path;  // absolute local path, for messages (and opened when local_dir_fd < 0)
  // The sync dir, opened once by the engine for the pass: the backend opens `relative` below it
  // with OpenForUpload (no symlink followed, never outside it). -1: open local_path with
  // O_NOFOLLOW on its last component (callers that trust the whole path).
  int local_dir_fd = -1;
  std::string relative;
  std::string cloud_path;
  core::FileIdentity expected;  // identity seen by the scan; a mismatch at open time is kChanged
  std::int64_t mtime_ns = 0;    // becomes client_modified where the backend has one
  // The engine knows the cloud holds other bytes at cloud_path (a recorded content hash that is
  // not this file's). Otherwise (a new path, a listing without hashes, a lost state store) the
  // cloud may already hold these bytes, and a backend that can compare them cheaply does so and
  // transfers nothing when they are the same.
  bool cloud_differs = false;
};

// A folder to create for the local folder `relative` below the sync dir `local_dir_fd` (-1: no
// local folder, e.g. cloud_root), for backends that copy a folder's metadata.
struct FolderItem {
  int local_dir_fd = -1;
  std::string relative;
  std::string cloud_path;
};

// What the engine tells a backend at the start of a pass (see Cloud::BeginPass).
struct PassStart {
  std::string recorded;          // the identity an earlier pass recorded ("" if none)
  bool dry_run = false;          // change nothing in the cloud: create, clean and record nothing
  bool accept_replaced = false;  // --allow-mass-delete: accept storage other than `recorded`
};

struct UploadedFile {
  RemoteEntry entry;
  core::FileIdentity identity;  // stable identity of the bytes that were sent (before == after)
  hash::Digest digest{};        // content hash of those bytes
  std::uint64_t bytes_transferred = 0;  // 0 when the backend already had the content
};

// Which names a backend refuses or silently drops; the planner checks them (plan/names.h) so
// such a name is reported once instead of failing on every pass.
enum class NameRules : std::uint8_t {
  kPlain,    // only the 255-code-point component limit every backend has
  kDropbox,  // also the names Dropbox ignores or refuses (desktop.ini, "~$*", a trailing space)
};

struct Capabilities {
  bool incremental_listing = false;  // List() with a cursor returns only changes
  bool case_insensitive = false;     // "/A" and "/a" are the same path
  NameRules name_rules = NameRules::kPlain;
  // Who retries a transient failure (kTransient, kRateLimited). true: the backend already did,
  // to its own limit (Dropbox: its pacer), so one it returns is final for this pass and the
  // caller does not retry it. false: the backend tries once and the caller (EventProcessor)
  // retries with backoff.
  bool retries_transient = false;
  std::size_t max_batch_files = 1;     // how many UploadItems one Upload() call should carry
  std::uint64_t max_batch_bytes = 0;   // ... and how many bytes (0: no limit)
  std::uint64_t small_file_limit = 0;  // files above this go alone in an Upload() call
};

// One move of a MoveBatch() call.
struct MovePair {
  std::string from;
  std::string to;
};

// Called from worker threads with the number of bytes just transferred.
using ProgressFn = std::function<void(std::uint64_t bytes)>;

// What an Upload() call reports to and hears from its caller.
struct Transfer {
  ProgressFn progress;  // may be empty
  // Set (by a stop request) while transfers run: each one in flight is abandoned within about a
  // second, leaving nothing at its destination, and reported as kCancelled. May be null.
  const std::atomic<bool>* cancel = nullptr;
  [[nodiscard]] bool cancelled() const {
    return cancel != nullptr && cancel->load(std::memory_order_relaxed);
  }
  void Progress(std::uint64_t bytes) const {
    if (progress) progress(bytes);
  }
};

class Cloud {
 public:
  virtual ~Cloud() = default;

  [[nodiscard]] virtual std::string_view name() const = 0;
  [[nodiscard]] virtual Capabilities capabilities() const = 0;

  // Called once at the start of every pass, never concurrently with another call: checks that
  // the storage the backend writes to is there and is the one an earlier pass recorded, and
  // readies it. Returns the storage's identity for the engine to record ("" when the backend has
  // none), or an error with one line saying why no dir can be synced (the pass then touches
  // nothing). The default has no identity and nothing to check.
  virtual Result<std::string> BeginPass(const PassStart& start);

  // An opaque identity of the cloud folder at `path` that changes when the folder is deleted and
  // made again or replaced, so the engine notices a vanished mirror folder without a full
  // listing. "" when the backend has none; kNotFound when no folder is at `path`.
  virtual Result<std::string> FolderIdentity(const std::string& path);

  // Recursive listing of `root` (a cloud path) when `cursor` is empty, else the changes since
  // `cursor`. A missing root is an empty complete listing, not an error.
  virtual Result<ListResult> List(const std::string& root, const std::string& cursor) = 0;

  // Creates `path` and any missing parents. An existing folder is success; a file in the way is
  // kConflict.
  virtual Status CreateFolder(const std::string& path) = 0;
  // CreateFolder(item.cloud_path) for a local folder, whose metadata a backend may copy (the
  // local backend keeps its mode). The default calls CreateFolder.
  virtual Status CreateFolderFrom(const FolderItem& item);

  // Uploads the items, overwriting files at their paths and creating missing parents. Returns one
  // result per item, in order. A folder in the way is kConflict. Backends commit a batch at once
  // where the service allows it.
  virtual std::vector<Result<UploadedFile>> Upload(std::span<const UploadItem> items,
                                                   const Transfer& transfer) = 0;

  // Deletes each path (files, or folders with everything under them). Missing paths succeed.
  virtual std::vector<Status> Delete(std::span<const std::string> paths) = 0;

  // Moves a file or folder to `to` (parents created). `to` must not exist, except when it names
  // the same entry in another case (a case-only rename, which backends must support).
  virtual Result<RemoteEntry> Move(const std::string& from, const std::string& to) = 0;

  // Several independent moves, each with Move()'s contract; one result per move, in order.
  // REQUIRES: no move's `from` or `to` equals, contains or lies inside another move's `from`
  // or `to` (callers batch only independent moves; the outcome would depend on the order).
  // Backends commit a batch at once where the service allows it; the default calls Move() for
  // each pair in turn.
  virtual std::vector<Result<RemoteEntry>> MoveBatch(std::span<const MovePair> moves);

  // Makes every write acknowledged so far durable (local: syncfs; remote: no-op). Called before
  // the state store records a batch.
  virtual Status Flush() = 0;
};

// Opens the local file `item` names for reading and checks it is still the regular file the
// scan saw (core::StableFile::Open below item.local_dir_fd, or local_path when it is -1).
Result<core::StableFile> OpenForUpload(const UploadItem& item);

}  // namespace filesync::cloud
