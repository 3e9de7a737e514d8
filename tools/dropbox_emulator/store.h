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
// Thread safety: one mutex guards all state; every public method takes it for its whole
// duration (SQLite writes included). Longpoll waits on a condition variable tied to it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

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

  Outcome<nlohmann::json> GetMetadata(const std::string& path, bool include_deleted);
  // The file at `path` (for download).
  Outcome<Entry> GetFile(const std::string& path);
  Outcome<Entry> CreateFolder(const std::string& path, bool autorename);
  // Returns the item as it was before deletion.
  Outcome<Entry> Delete(const std::string& path, const std::optional<std::string>& parent_rev);
  // Deletes several paths in one transaction (delete_batch).
  std::vector<Outcome<Entry>> DeleteMany(
      const std::vector<std::pair<std::string, std::optional<std::string>>>& items);
  Outcome<Entry> Relocate(const std::string& from, const std::string& to, bool autorename,
                          bool copy);
  // Commits files in one transaction; results in request order.
  std::vector<Outcome<Entry>> Commit(const std::vector<CommitRequest>& requests);
  // Resolves a write path to its display form without changing anything (for validation).
  Outcome<std::string> CheckWritePath(const std::string& path);

  Outcome<ListPage> List(const std::string& path, bool recursive, bool include_deleted,
                         std::optional<std::uint32_t> limit);
  Outcome<ListPage> Continue(const std::string& cursor);
  Outcome<std::string> LatestCursor(const std::string& path, bool recursive, bool include_deleted);
  // Waits up to `wait` for a change in the cursor's scope. Value: whether there are changes.
  Outcome<bool> Longpoll(const std::string& cursor, std::chrono::milliseconds wait);
  // Makes every cursor issued so far answer `reset`.
  void ResetCursors();
  // Wakes longpolls so the server can stop.
  void Shutdown();

  [[nodiscard]] std::uint64_t UsedBytes();

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
  Status Load();
  Status Prepare();

  // Parses a path of any alias into key + display; error is a LookupError/WriteError value.
  bool ResolveLocked(const std::string& path, bool for_write, Resolved* out, nlohmann::json* error);
  const Entry* FindLocked(const std::string& key) const;
  // Checks ancestors of `key` (file in the way -> conflict/file_ancestor) and creates missing
  // folders. Returns the display of the parent folder.
  bool EnsureParentsLocked(const Resolved& target, bool create, std::string* parent_display,
                           nlohmann::json* error);
  std::string AutorenameLocked(const Resolved& target, bool is_folder, bool conflicted_copy);
  Outcome<Entry> CommitOneLocked(const CommitRequest& request);
  Outcome<Entry> DeleteOneLocked(const std::string& path,
                                 const std::optional<std::string>& parent_rev);

  void PutLocked(Entry e, bool journal);
  void RemoveSubtreeLocked(const std::string& key);
  void JournalLocked(bool deleted, const Entry& e);
  std::string NewIdLocked();
  std::string NewRevLocked();
  void SaveMetaLocked();
  void ExecLocked(const char* sql);

  Outcome<ListPage> PageLocked(Cursor c);
  std::string EncodeCursor(const Cursor& c) const;
  Outcome<Cursor> DecodeCursorLocked(const std::string& s) const;

  std::mutex mu_;
  std::condition_variable changed_;
  bool shutting_down_ = false;
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> stmts_;

  std::map<std::string, Entry> entries_;
  std::unordered_map<std::string, std::set<std::string>> children_;  // parent key -> keys
  std::unordered_map<std::string, std::string> by_id_;
  std::unordered_map<std::string, std::string> by_rev_;
  std::map<std::string, std::string> tombstones_;  // key -> last display
  std::vector<Change> journal_;                    // journal_[i] has sequence i + 1
  std::uint64_t next_id_ = 1;
  std::uint64_t next_rev_ = 1;
  std::uint64_t epoch_ = 1;
  std::uint64_t used_bytes_ = 0;
};

}  // namespace filesync::emulator
