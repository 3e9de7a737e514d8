// StateStore: everything filesync remembers between runs, in one SQLite file
// <state_dir>/state.db (WAL journal, synchronous=NORMAL: a crash loses at most the last commits,
// never the file's consistency).
//
// Per sync root (a local dir paired with a cloud path, with a stable numeric id):
//  - files:  each local file or dir as last hashed/synced, with its identity and content hash;
//            this is the persistent hash cache (same identity -> same digest, no re-read).
//  - remote: the cloud side as filesync believes it to be (display-case paths relative to the
//            root's cloud path).
//  - key/value pairs (listing cursor, root identity, upload sessions...); root 0 is global.
//  - errors shown by `filesync status`, one row per (root, path).
// Paths are relative, '/'-separated, valid UTF-8, compared byte-wise. Prefix operations
// ("...Under") are exact: "a" covers "a" and "a/x", never "ab" or "a.txt".
//
// Open() refuses a state dir another process (or another StateStore) holds, and sets aside a
// state.db it cannot trust (not SQLite, not ours, a newer schema) rather than fail.
// OpenReadOnly() (status, plan) changes nothing: it creates no folder or file, takes no lock a
// writer would have to wait long for, and never sets a file aside.
// Thread safety: every public method may be called from several threads; one internal mutex
// serialises them. Load callbacks run under that mutex and must not call back into the store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/entry.h"
#include "core/thread_annotations.h"
#include "hash/content_hash.h"
#include "util/status.h"

namespace filesync::store {

// Local file (or dir) as last hashed/synced.
struct FileRecord {
  std::string path;
  core::EntryKind kind = core::EntryKind::kFile;
  core::FileIdentity identity;
  hash::Digest digest{};
  bool has_digest = false;
};

// The cloud entry as filesync believes it to be; path relative to the root's cloud path, in
// display case.
struct RemoteRecord {
  std::string path;
  core::EntryKind kind = core::EntryKind::kFile;
  std::uint64_t size = 0;
  hash::Digest digest{};  // files, when has_digest
  std::string rev;
  bool has_digest = true;  // false: the backend listed the file without a hash (stored as NULL)
};

struct ErrorRecord {
  std::string root;  // the root's local dir
  std::string path;
  std::string message;
  std::int64_t first_seen_unix = 0;
  std::int64_t last_seen_unix = 0;
  int attempts = 0;
  std::int64_t root_id = 0;
};

// Who holds a state dir: the pid and command ("run", "sync") its owner file names.
struct Owner {
  int pid = 0;          // 0: unknown
  std::string command;  // "" unknown
};

struct RootInfo {
  std::int64_t id = 0;
  std::string local_dir;
  std::string cloud_path;
  std::uint64_t file_records = 0;
};

class StateStore {
 public:
  // Schema version stored in PRAGMA user_version.
  static constexpr int kSchemaVersion = 1;

  // Writes recorded in memory and applied, in order, by Commit() in one transaction.
  // Not thread-safe (build a batch on one thread).
  class Batch {
   public:
    // Inserts or replaces the record at file.path.
    void PutFile(const FileRecord& file);
    void DeleteFile(std::string_view path);
    // Deletes dir_path and everything below it ("" deletes every file record of the root).
    void DeleteFilesUnder(std::string_view dir_path);
    void PutRemote(const RemoteRecord& remote);
    void DeleteRemote(std::string_view path);
    // Deletes dir_path and everything below it ("" deletes every remote record of the root).
    void DeleteRemoteUnder(std::string_view dir_path);
    // Deletes every remote record of the root (before replaying a complete listing).
    void ClearRemote();
    // Renames `from` and every path below it to the same path under `to`, in BOTH tables.
    // Whatever was at or below `to` before is replaced. REQUIRES: from and to non-empty.
    void MoveUnder(std::string_view from, std::string_view to);

    [[nodiscard]] bool empty() const { return ops_.empty(); }
    [[nodiscard]] std::size_t size() const { return ops_.size(); }
    void Clear() { ops_.clear(); }

   private:
    friend class StateStore;
    enum class Table : std::uint8_t { kFiles, kRemote };
    struct DeleteOp {
      Table table;
      std::string path;
      bool under;
    };
    struct MoveOp {
      std::string from;
      std::string to;
    };
    using Op = std::variant<FileRecord, RemoteRecord, DeleteOp, MoveOp>;
    std::vector<Op> ops_;
  };

  // Opens (creating state_dir with mode 0700 and state.db with 0600 if missing). A state.db that
  // is not SQLite, is SQLite without our schema, or has a newer schema version is renamed to
  // state.db.corrupt-<unix time> (with its -wal/-shm) and a fresh store is created; *warning
  // (may be null) then says so, else it is cleared. The store holds an exclusive flock on the
  // state dir itself (a directory cannot be deleted while it holds files, unlike a lock file)
  // and writes its pid and `command` to <state_dir>/lock, the owner file, for messages. A state
  // dir in use by another store is kConflict "state dir X is in use by another filesync (pid N,
  // filesync run)", after up to 2 s of retries (readers take the lock shared for a moment).
  // A state dir that cannot be created is kInvalidArgument; other failures are kIo.
  static Result<std::unique_ptr<StateStore>> Open(const std::filesystem::path& state_dir,
                                                  std::string* warning,
                                                  std::string_view command = "");

  // How OpenReadOnly() reads: kDirect reads the file (writes fail); kCopy copies it into memory
  // first, so the store can be written to, and the writes are lost when it closes.
  enum class ReadOnly { kDirect, kCopy };
  // Opens the store at state_dir without changing anything there. Missing state dir, state.db,
  // or an empty state.db: kNotFound "no state at DIR ...". A state.db Open() would set aside:
  // kPermanent "state file X is unusable (why); the next `filesync sync` or `filesync run` sets
  // it aside ...". While no writer holds the state dir, a kDirect store keeps a shared lock on
  // it (a starting writer waits) and reads the file as immutable, so SQLite creates no -wal or
  // -shm file; while a writer runs, it reads through the writer's WAL (read-only).
  static Result<std::unique_ptr<StateStore>> OpenReadOnly(const std::filesystem::path& state_dir,
                                                          ReadOnly mode);
  // A fresh, empty store in memory (a dry run with no state yet).
  static Result<std::unique_ptr<StateStore>> OpenEmpty();
  // Who holds the state dir, or nullopt when nobody does (or it does not exist). Does not wait.
  static std::optional<Owner> Holder(const std::filesystem::path& state_dir);
  // kNotFound when the state dir this store locked is no longer at its path (removed or
  // replaced: another filesync could now lock a new one there). Ok for other stores.
  [[nodiscard]] Status CheckLocation() const;
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Path of state.db.
  [[nodiscard]] std::string path() const;

  // Id of the root (local_dir, cloud_path), created on first use; stable across runs. Never 0.
  Result<std::int64_t> RootId(const std::string& local_dir, const std::string& cloud_path);
  // Every root with its number of file records, by id.
  Result<std::vector<RootInfo>> Roots();
  // Deletes a root and everything recorded for it (files, remote, key/values, errors).
  Status ForgetRoot(std::int64_t root);

  // Calls fn for every record of the root, in path byte order.
  Status LoadFiles(std::int64_t root, const std::function<void(FileRecord&&)>& fn);
  Status LoadRemote(std::int64_t root, const std::function<void(RemoteRecord&&)>& fn);

  // Applies the batch in one transaction: all of it or (on error) none of it.
  Status Commit(std::int64_t root, const Batch& batch);

  // Key/value per root; root 0 holds global values. Values are arbitrary bytes.
  Result<std::optional<std::string>> Get(std::int64_t root, std::string_view key);
  Status Put(std::int64_t root, std::string_view key, std::string_view value);
  Status Erase(std::int64_t root, std::string_view key);

  // Records a failure at path: the first call creates the row, later ones update the message
  // and last-seen time and add one to attempts.
  Status RecordError(std::int64_t root, std::string_view path, std::string_view message);
  Status ClearError(std::int64_t root, std::string_view path);
  // Clears dir_path and everything below it ("" clears the whole root).
  Status ClearErrorsUnder(std::int64_t root, std::string_view dir_path);
  // Every error of every root, by root id then path.
  Result<std::vector<ErrorRecord>> Errors();

 private:
  struct Impl;
  explicit StateStore(std::unique_ptr<Impl> impl);

  mutable core::Mutex mu_;
  std::unique_ptr<Impl> impl_ PT_GUARDED_BY(mu_);
};

}  // namespace filesync::store
