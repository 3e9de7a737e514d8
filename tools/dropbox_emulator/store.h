// The emulated Dropbox namespace: files and folders, their metadata, and the change journal
// behind list_folder cursors.
//
// Paths are case-insensitive and case-preserving: every item is keyed by
// core::CloudKey(path_display) (NFC, then lower-cased) and keeps the display form it was
// created with. Items carry a stable "id:" (kept across moves), files a hex rev (new on every
// content change), size and content hash; the bytes themselves live in the BlobStore under
// the content hash.
//
// Everything is held in memory (ordered map by key plus child, id and rev indexes, so lookups
// and listings never scan the namespace) and written through to SQLite (DIR/namespace.db, WAL)
// so a restart keeps the namespace, the journal and the cursor epoch.
//
// Errors come back as values of Dropbox's LookupError / WriteError unions together with where
// they belong (StoreError::Where); the route wraps them in its own error union.
//
// Thread safety: one mutex guards all state (annotated, so Clang checks it); every public
// method takes it for its whole duration (SQLite writes included). Longpoll waits on a
// condition variable tied to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/thread_annotations.h"
#include "util/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace filesync::emulator {

struct Entry {
  bool is_folder = false;
  std::string key;      // CloudKey(display); never empty (the root is not an entry)
  std::string display;  // path_display
  std::string id;
  // Files only.
  std::string rev;
  std::uint64_t size = 0;
  std::string content_hash;
  std::string client_modified;
  std::string server_modified;

  [[nodiscard]] std::string Name() const;
};

// FileMetadata / FolderMetadata JSON; with_tag adds ".tag".
nlohmann::json MetadataJson(const Entry& e, bool with_tag = true);
nlohmann::json DeletedJson(const std::string& key, const std::string& display);

struct StoreError {
  enum class Where {
    kLookup,      // a LookupError about the (only or source) path
    kWrite,       // a WriteError about the (only or target) path
    kIntoItself,  // RelocationError.cant_move_folder_into_itself
    kReset,       // the cursor predates /admin/reset_cursors
    kBadCursor,   // not a cursor this emulator issued (a 400)
  };
  Where where = Where::kLookup;
  nlohmann::json error;  // the LookupError / WriteError value (unset for the others)
};

template <typename T>
struct Outcome {
  std::optional<T> value;
  StoreError error;
  [[nodiscard]] bool ok() const { return value.has_value(); }
  static Outcome Fail(StoreError::Where where, nlohmann::json error = nullptr) {
    Outcome o;
    o.error = {where, std::move(error)};
    return o;
  }
};

// One file commit (upload, upload_session/finish, finish_batch entries).
struct CommitRequest {
  std::string path;          // WritePathOrId as sent
  std::string mode = "add";  // add | overwrite | update
  std::string update_rev;    // for mode update
  bool autorename = false;
  bool strict_conflict = false;
  std::optional<std::string> client_modified;
  std::string content_hash;
  std::uint64_t size = 0;
};

struct ListPage {
  nlohmann::json entries = nlohmann::json::array();
  std::string cursor;
  bool has_more = false;
};

class Namespace {
 public:
  // Opens (creating if needed) DIR/namespace.db and loads it.
  static Result<std::unique_ptr<Namespace>> Open(const std::string& dir);
  ~Namespace();
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;

  static constexpr const char* kRootNamespaceId = "3235641";

  Outcome<nlohmann::json> GetMetadata(const std::string& path, bool include_deleted) EXCLUDES(mu_);
  // The file at `path` (for download).
  Outcome<Entry> GetFile(const std::string& path) EXCLUDES(mu_);
  Outcome<Entry> CreateFolder(const std::string& path, bool autorename) EXCLUDES(mu_);
  // Returns the item as it was before deletion.
  Outcome<Entry> Delete(const std::string& path, const std::optional<std::string>& parent_rev)
      EXCLUDES(mu_);
  // Deletes several paths in one transaction (delete_batch).
  std::vector<Outcome<Entry>> DeleteMany(
      const std::vector<std::pair<std::string, std::optional<std::string>>>& items) EXCLUDES(mu_);
  Outcome<Entry> Relocate(const std::string& from, const std::string& to, bool autorename,
                          bool copy) EXCLUDES(mu_);
  // Commits files in one transaction; results in request order.
  std::vector<Outcome<Entry>> Commit(const std::vector<CommitRequest>& requests) EXCLUDES(mu_);
  // Resolves a write path to its display form without changing anything (for validation).
  Outcome<std::string> CheckWritePath(const std::string& path) EXCLUDES(mu_);

  Outcome<ListPage> List(const std::string& path, bool recursive, bool include_deleted,
                         std::optional<std::uint32_t> limit) EXCLUDES(mu_);
  Outcome<ListPage> Continue(const std::string& cursor) EXCLUDES(mu_);
  Outcome<std::string> LatestCursor(const std::string& path, bool recursive, bool include_deleted)
      EXCLUDES(mu_);
  // Waits up to `wait` for a change in the cursor's scope. Value: whether there are changes.
  Outcome<bool> Longpoll(const std::string& cursor, std::chrono::milliseconds wait) EXCLUDES(mu_);
  // Makes every cursor issued so far answer `reset`.
  void ResetCursors() EXCLUDES(mu_);
  // Wakes longpolls so the server can stop.
  void Shutdown() EXCLUDES(mu_);

  [[nodiscard]] std::uint64_t UsedBytes() EXCLUDES(mu_);

 private:
  struct Cursor;
  struct Change {
    bool deleted = false;
    Entry entry;
  };
  struct Resolved {
    std::string key;
    std::string display;
  };

  explicit Namespace(sqlite3* db);
  Status Load() EXCLUDES(mu_);
  Status Prepare() EXCLUDES(mu_);

  // Parses a path of any alias into key + display; error is a LookupError/WriteError value.
  bool ResolveLocked(const std::string& path, bool for_write, Resolved* out, nlohmann::json* error)
      REQUIRES(mu_);
  const Entry* FindLocked(const std::string& key) const REQUIRES(mu_);
  // Checks ancestors of `key` (file in the way -> conflict/file_ancestor) and creates missing
  // folders. Returns the display of the parent folder.
  bool EnsureParentsLocked(const Resolved& target, bool create, std::string* parent_display,
                           nlohmann::json* error) REQUIRES(mu_);
  std::string AutorenameLocked(const Resolved& target, bool is_folder, bool conflicted_copy)
      REQUIRES(mu_);
  Outcome<Entry> CommitOneLocked(const CommitRequest& request) REQUIRES(mu_);
  Outcome<Entry> DeleteOneLocked(const std::string& path,
                                 const std::optional<std::string>& parent_rev) REQUIRES(mu_);

  void PutLocked(Entry e, bool journal) REQUIRES(mu_);
  void RemoveSubtreeLocked(const std::string& key) REQUIRES(mu_);
  void JournalLocked(bool deleted, const Entry& e) REQUIRES(mu_);
  std::string NewIdLocked() REQUIRES(mu_);
  std::string NewRevLocked() REQUIRES(mu_);
  void SaveMetaLocked() REQUIRES(mu_);
  void ExecLocked(const char* sql) REQUIRES(mu_);

  Outcome<ListPage> PageLocked(Cursor c) REQUIRES(mu_);
  std::string EncodeCursor(const Cursor& c) const;
  Outcome<Cursor> DecodeCursorLocked(const std::string& s) const REQUIRES(mu_);

  core::Mutex mu_;
  core::CondVar changed_;  // signalled on every change, cursor reset and shutdown
  bool shutting_down_ GUARDED_BY(mu_) = false;
  sqlite3* const db_ PT_GUARDED_BY(mu_);
  std::unordered_map<std::string, sqlite3_stmt*> stmts_ GUARDED_BY(mu_);

  std::map<std::string, Entry> entries_ GUARDED_BY(mu_);
  std::unordered_map<std::string, std::set<std::string>> children_
      GUARDED_BY(mu_);  // parent key -> keys
  std::unordered_map<std::string, std::string> by_id_ GUARDED_BY(mu_);
  std::unordered_map<std::string, std::string> by_rev_ GUARDED_BY(mu_);
  std::map<std::string, std::string> tombstones_ GUARDED_BY(mu_);  // key -> last display
  std::vector<Change> journal_ GUARDED_BY(mu_);                    // journal_[i] has sequence i + 1
  std::uint64_t next_id_ GUARDED_BY(mu_) = 1;
  std::uint64_t next_rev_ GUARDED_BY(mu_) = 1;
  std::uint64_t epoch_ GUARDED_BY(mu_) = 1;
  std::uint64_t used_bytes_ GUARDED_BY(mu_) = 0;
};

}  // namespace filesync::emulator
