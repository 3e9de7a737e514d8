// How the store works:
//  - One SQLite connection, opened without SQLite's own mutex: StateStore::mu_ serialises every
//    call, and statements are prepared once and cached (keyed by their SQL constant).
//  - Paths are TEXT with the default BINARY collation, i.e. compared like memcmp, which is the
//    byte order the scanner sorts by. "dir and everything below" is `path = 'a'` plus the range
//    'a/' <= path < 'a0' ('0' is the byte after '/'), both answered from the (root, path)
//    primary key; "ab" or "a.txt" are outside both.
//  - MoveUnder goes through a temp table (copy renamed rows out, delete the source and target
//    ranges, copy back), which stays correct however the two ranges overlap.
//  - Numbers that SQLite stores as signed 64-bit (inode, device, size) are cast bit-for-bit.
//  - The instance lock is a flock on the state directory (see Open()); readers take it shared
//    for a moment, so a writer retries a busy lock for a while before reporting a conflict.
//  - Whether an existing state.db can be trusted is decided before anything is written to it:
//    SQLITE_NOTADB / SQLITE_CORRUPT, a missing schema marker, an unknown user_version or a
//    failed quick_check set it aside; other errors (busy, permission, I/O) are reported, never
//    treated as corruption, so a transient problem cannot throw the cache away.
#include "store/state_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <system_error>

namespace filesync::store {
namespace {

constexpr const char* kDbName = "state.db";
constexpr const char* kOwnerName = "lock";  // pid and command of the holder (not the lock)
// A busy state dir lock is tried this often, this far apart (a reader holds it for a moment).
constexpr int kLockAttempts = 40;
constexpr useconds_t kLockRetryMicros = 50'000;
constexpr const char* kMarkerKey = "application";
constexpr const char* kMarkerValue = "filesync-state";

// Schema version 1. The integer columns `kind` hold core::EntryKind values (kFile = 1,
// kFolder = 2): they are persisted and must never be renumbered. Digests are 32-byte BLOBs (NULL
// when unknown). Bump StateStore::kSchemaVersion and add a migration for any change here.
constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE roots(
  id INTEGER PRIMARY KEY,
  local_dir TEXT NOT NULL,
  cloud_path TEXT NOT NULL,
  UNIQUE(local_dir, cloud_path));
CREATE TABLE files(
  root INTEGER NOT NULL,
  path TEXT NOT NULL,
  kind INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  inode INTEGER NOT NULL,
  device INTEGER NOT NULL,
  digest BLOB,
  PRIMARY KEY(root, path)) WITHOUT ROWID;
CREATE TABLE remote(
  root INTEGER NOT NULL,
  path TEXT NOT NULL,
  kind INTEGER NOT NULL,
  size INTEGER NOT NULL,
  digest BLOB,
  rev TEXT NOT NULL,
  PRIMARY KEY(root, path)) WITHOUT ROWID;
CREATE TABLE kv(
  root INTEGER NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY(root, key)) WITHOUT ROWID;
CREATE TABLE errors(
  root INTEGER NOT NULL,
  path TEXT NOT NULL,
  message TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  PRIMARY KEY(root, path)) WITHOUT ROWID;
)sql";

// Scratch tables of the connection (never on disk), used by MoveUnder.
constexpr const char* kTempSchema = R"sql(
CREATE TEMP TABLE move_files(
  path TEXT PRIMARY KEY, kind INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER,
  inode INTEGER, device INTEGER, digest BLOB) WITHOUT ROWID;
CREATE TEMP TABLE move_remote(
  path TEXT PRIMARY KEY, kind INTEGER, size INTEGER, digest BLOB, rev TEXT) WITHOUT ROWID;
)sql";

// "dir and everything below" is two index searches: ?1 root, ?2 the path itself, and the range
// ?3 = path + "/" <= path < ?4 = path + "0". (SQLite does not use the primary key for the two
// ORed together on a WITHOUT ROWID table; it would scan the whole root.)
#define FS_EXACT " root = ?1 AND path = ?2"
#define FS_RANGE " root = ?1 AND path >= ?3 AND path < ?4"

constexpr const char* kPutFile =
    "INSERT OR REPLACE INTO files(root, path, kind, size, mtime_ns, ctime_ns, inode, device, "
    "digest)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr const char* kDeleteFile = "DELETE FROM files WHERE root = ?1 AND path = ?2";
constexpr const char* kDeleteFilesRange = "DELETE FROM files WHERE" FS_RANGE;
constexpr const char* kDeleteFilesAll = "DELETE FROM files WHERE root = ?1";
constexpr const char* kPutRemote =
    "INSERT OR REPLACE INTO remote(root, path, kind, size, digest, rev) VALUES (?1, ?2, ?3, ?4, "
    "?5, ?6)";
constexpr const char* kDeleteRemote = "DELETE FROM remote WHERE root = ?1 AND path = ?2";
constexpr const char* kDeleteRemoteRange = "DELETE FROM remote WHERE" FS_RANGE;
constexpr const char* kDeleteRemoteAll = "DELETE FROM remote WHERE root = ?1";
// ?5 is the new prefix; substr() and length() count characters, consistently, on valid UTF-8.
#define FS_MOVED_FILE                                                                          \
  " SELECT ?5 || substr(path, length(?2) + 1), kind, size, mtime_ns, ctime_ns, inode, device," \
  " digest FROM files WHERE"
constexpr const char* kMoveFilesOut =
    "INSERT INTO temp.move_files" FS_MOVED_FILE FS_EXACT " UNION ALL" FS_MOVED_FILE FS_RANGE;
constexpr const char* kMoveFilesIn =
    "INSERT OR REPLACE INTO files SELECT ?1, path, kind, size, mtime_ns, ctime_ns, inode, device,"
    " digest FROM temp.move_files";
constexpr const char* kMoveFilesClear = "DELETE FROM temp.move_files";
#define FS_MOVED_REMOTE \
  " SELECT ?5 || substr(path, length(?2) + 1), kind, size, digest, rev FROM remote WHERE"
constexpr const char* kMoveRemoteOut =
    "INSERT INTO temp.move_remote" FS_MOVED_REMOTE FS_EXACT " UNION ALL" FS_MOVED_REMOTE FS_RANGE;
constexpr const char* kMoveRemoteIn =
    "INSERT OR REPLACE INTO remote SELECT ?1, path, kind, size, digest, rev FROM temp.move_remote";
constexpr const char* kMoveRemoteClear = "DELETE FROM temp.move_remote";
constexpr const char* kLoadFiles =
    "SELECT path, kind, size, mtime_ns, ctime_ns, inode, device, digest FROM files"
    " WHERE root = ?1 ORDER BY path";
constexpr const char* kLoadRemote =
    "SELECT path, kind, size, digest, rev FROM remote WHERE root = ?1 ORDER BY path";
constexpr const char* kFindRoot = "SELECT id FROM roots WHERE local_dir = ?1 AND cloud_path = ?2";
constexpr const char* kInsertRoot = "INSERT INTO roots(local_dir, cloud_path) VALUES (?1, ?2)";
constexpr const char* kListRoots =
    "SELECT id, local_dir, cloud_path, (SELECT count(*) FROM files WHERE files.root = roots.id)"
    " FROM roots ORDER BY id";
constexpr const char* kGet = "SELECT value FROM kv WHERE root = ?1 AND key = ?2";
constexpr const char* kPut = "INSERT OR REPLACE INTO kv(root, key, value) VALUES (?1, ?2, ?3)";
constexpr const char* kErase = "DELETE FROM kv WHERE root = ?1 AND key = ?2";
constexpr const char* kRecordError =
    "INSERT INTO errors(root, path, message, first_seen, last_seen, attempts)"
    " VALUES (?1, ?2, ?3, ?4, ?4, 1) ON CONFLICT(root, path) DO UPDATE SET"
    " message = excluded.message, last_seen = excluded.last_seen, attempts = attempts + 1";
constexpr const char* kClearError = "DELETE FROM errors WHERE root = ?1 AND path = ?2";
constexpr const char* kClearErrorsRange = "DELETE FROM errors WHERE" FS_RANGE;
constexpr const char* kClearErrorsAll = "DELETE FROM errors WHERE root = ?1";
constexpr const char* kListErrors =
    "SELECT coalesce(roots.local_dir, ''), errors.path, message, first_seen, last_seen, attempts,"
    " errors.root FROM errors LEFT JOIN roots ON roots.id = errors.root"
    " ORDER BY errors.root, errors.path";
constexpr const char* kForgetRoot[] = {
    "DELETE FROM files WHERE root = ?1", "DELETE FROM remote WHERE root = ?1",
    "DELETE FROM kv WHERE root = ?1", "DELETE FROM errors WHERE root = ?1",
    "DELETE FROM roots WHERE id = ?1"};

#undef FS_EXACT
#undef FS_RANGE
#undef FS_MOVED_FILE
#undef FS_MOVED_REMOTE

struct StmtDeleter {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

std::string ErrnoText(int err) { return std::strerror(err); }

// Unsigned values (sizes, inodes, devices) round-trip through SQLite's signed integers.
std::int64_t ToDb(std::uint64_t v) { return static_cast<std::int64_t>(v); }
std::uint64_t FromDb(std::int64_t v) { return static_cast<std::uint64_t>(v); }

void BindText(sqlite3_stmt* stmt, int index, std::string_view text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

void BindBlob(sqlite3_stmt* stmt, int index, std::string_view bytes) {
  sqlite3_bind_blob(stmt, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
}

void BindDigest(sqlite3_stmt* stmt, int index, const hash::Digest& digest, bool present) {
  if (present) {
    sqlite3_bind_blob(stmt, index, digest.data(), static_cast<int>(digest.size()), SQLITE_STATIC);
  } else {
    sqlite3_bind_null(stmt, index);
  }
}

std::string ColumnText(sqlite3_stmt* stmt, int col) {
  const auto* text = sqlite3_column_text(stmt, col);
  const int bytes = sqlite3_column_bytes(stmt, col);
  return text == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(bytes));
}

std::string ColumnBlob(sqlite3_stmt* stmt, int col) {
  const void* blob = sqlite3_column_blob(stmt, col);
  const int bytes = sqlite3_column_bytes(stmt, col);
  return blob == nullptr
             ? std::string()
             : std::string(static_cast<const char*>(blob), static_cast<std::size_t>(bytes));
}

// True (and the digest filled) when the column holds a 32-byte digest.
bool ColumnDigest(sqlite3_stmt* stmt, int col, hash::Digest* digest) {
  const void* blob = sqlite3_column_blob(stmt, col);
  if (blob == nullptr || sqlite3_column_bytes(stmt, col) != static_cast<int>(digest->size()))
    return false;
  std::memcpy(digest->data(), blob, digest->size());
  return true;
}

bool ColumnKind(sqlite3_stmt* stmt, int col, core::EntryKind* kind) {
  const int value = sqlite3_column_int(stmt, col);
  if (value != static_cast<int>(core::EntryKind::kFile) &&
      value != static_cast<int>(core::EntryKind::kFolder)) {
    return false;
  }
  *kind = static_cast<core::EntryKind>(value);
  return true;
}

int KindToDb(core::EntryKind kind) { return static_cast<int>(kind); }

// What Check() concluded about an existing database file.
struct Verdict {
  enum class Kind { kUsable, kFresh, kSetAside, kError } kind;
  std::string reason;  // kSetAside: why; kError: the message
};

}  // namespace

struct StateStore::Impl {
  std::filesystem::path dir;
  std::string db_path;
  int lock_fd = -1;
  sqlite3* db = nullptr;
  std::map<const char*, Stmt> statements;

  ~Impl() {
    statements.clear();
    if (db != nullptr) sqlite3_close_v2(db);
    if (lock_fd >= 0) close(lock_fd);  // releases the flock
  }

  Status Error(std::string_view what) const {
    return Status::Io("state store " + db_path + ": " + std::string(what) + ": " +
                      sqlite3_errmsg(db));
  }

  Status Exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) == SQLITE_OK) return Status::Ok();
    std::string text = message != nullptr ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    return Status::Io("state store " + db_path + ": " + text);
  }

  // The cached statement for one of the SQL constants above, reset and ready to bind; null on
  // failure (see Error()).
  sqlite3_stmt* Get(const char* sql) {
    auto it = statements.find(sql);
    if (it == statements.end()) {
      sqlite3_stmt* raw = nullptr;
      if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) != SQLITE_OK) {
        return nullptr;
      }
      it = statements.emplace(sql, Stmt(raw)).first;
    }
    sqlite3_reset(it->second.get());
    return it->second.get();
  }

  // Runs a statement that returns no rows.
  Status Run(sqlite3_stmt* stmt, std::string_view what) {
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) return Error(what);
    return Status::Ok();
  }

  // Runs a statement over dir_path and everything below it (both searches for a delete, the
  // UNION ALL statements in one go); new_prefix binds ?5 where the statement has it.
  Status RunUnder(const char* exact_sql, const char* range_sql, std::int64_t root,
                  std::string_view dir_path, std::string_view what,
                  std::string_view new_prefix = {}) {
    if (exact_sql != nullptr) {
      if (Status s = RunForPath(exact_sql, root, dir_path, what); !s.ok()) return s;
    }
    sqlite3_stmt* stmt = Get(range_sql);
    if (stmt == nullptr) return Error(what);
    const std::string slash = std::string(dir_path) + "/";
    const std::string after = std::string(dir_path) + "0";
    sqlite3_bind_int64(stmt, 1, root);
    BindText(stmt, 2, dir_path);
    BindText(stmt, 3, slash);
    BindText(stmt, 4, after);
    if (sqlite3_bind_parameter_count(stmt) >= 5) BindText(stmt, 5, new_prefix);
    return Run(stmt, what);
  }

  Status RunPlain(const char* sql, std::string_view what) {
    sqlite3_stmt* stmt = Get(sql);
    if (stmt == nullptr) return Error(what);
    return Run(stmt, what);
  }

  Status RunForRoot(const char* sql, std::int64_t root, std::string_view what) {
    sqlite3_stmt* stmt = Get(sql);
    if (stmt == nullptr) return Error(what);
    sqlite3_bind_int64(stmt, 1, root);
    return Run(stmt, what);
  }

  Status RunForPath(const char* sql, std::int64_t root, std::string_view path,
                    std::string_view what) {
    sqlite3_stmt* stmt = Get(sql);
    if (stmt == nullptr) return Error(what);
    sqlite3_bind_int64(stmt, 1, root);
    BindText(stmt, 2, path);
    return Run(stmt, what);
  }

  Status PutFile(std::int64_t root, const FileRecord& f) {
    sqlite3_stmt* stmt = Get(kPutFile);
    if (stmt == nullptr) return Error("put file");
    sqlite3_bind_int64(stmt, 1, root);
    BindText(stmt, 2, f.path);
    sqlite3_bind_int(stmt, 3, KindToDb(f.kind));
    sqlite3_bind_int64(stmt, 4, ToDb(f.identity.size));
    sqlite3_bind_int64(stmt, 5, f.identity.mtime_ns);
    sqlite3_bind_int64(stmt, 6, f.identity.ctime_ns);
    sqlite3_bind_int64(stmt, 7, ToDb(f.identity.inode));
    sqlite3_bind_int64(stmt, 8, ToDb(f.identity.device));
    BindDigest(stmt, 9, f.digest, f.has_digest);
    return Run(stmt, "put file");
  }

  Status PutRemote(std::int64_t root, const RemoteRecord& r) {
    sqlite3_stmt* stmt = Get(kPutRemote);
    if (stmt == nullptr) return Error("put remote");
    sqlite3_bind_int64(stmt, 1, root);
    BindText(stmt, 2, r.path);
    sqlite3_bind_int(stmt, 3, KindToDb(r.kind));
    sqlite3_bind_int64(stmt, 4, ToDb(r.size));
    BindDigest(stmt, 5, r.digest, r.has_digest);
    BindText(stmt, 6, r.rev);
    return Run(stmt, "put remote");
  }

  Status Move(std::int64_t root, std::string_view from, std::string_view to) {
    if (from.empty() || to.empty()) {
      return Status::InvalidArgument("state store: MoveUnder needs two non-empty paths");
    }
    if (from == to) return Status::Ok();
    struct Table {
      const char* out;
      const char* clear;
      const char* delete_exact;
      const char* delete_range;
      const char* in;
    };
    for (const Table& t :
         {Table{kMoveFilesOut, kMoveFilesClear, kDeleteFile, kDeleteFilesRange, kMoveFilesIn},
          Table{kMoveRemoteOut, kMoveRemoteClear, kDeleteRemote, kDeleteRemoteRange,
                kMoveRemoteIn}}) {
      if (Status s = RunPlain(t.clear, "move"); !s.ok()) return s;
      if (Status s = RunUnder(nullptr, t.out, root, from, "move", to); !s.ok()) return s;
      if (Status s = RunUnder(t.delete_exact, t.delete_range, root, from, "move"); !s.ok())
        return s;
      if (Status s = RunUnder(t.delete_exact, t.delete_range, root, to, "move"); !s.ok()) return s;
      if (Status s = RunForRoot(t.in, root, "move"); !s.ok()) return s;
      if (Status s = RunPlain(t.clear, "move"); !s.ok()) return s;
    }
    return Status::Ok();
  }

  Status Apply(std::int64_t root, const Batch::Op& op);

  // With quick_check, also reads every page (slow on a big store; Open() only).
  Verdict Check(bool quick_check);
  Status Configure();
};

Status StateStore::Impl::Apply(std::int64_t root, const Batch::Op& op) {
  if (const auto* file = std::get_if<FileRecord>(&op)) return PutFile(root, *file);
  if (const auto* remote = std::get_if<RemoteRecord>(&op)) return PutRemote(root, *remote);
  if (const auto* move = std::get_if<Batch::MoveOp>(&op)) return Move(root, move->from, move->to);
  const auto& del = std::get<Batch::DeleteOp>(op);
  const bool files = del.table == Batch::Table::kFiles;
  if (!del.under) return RunForPath(files ? kDeleteFile : kDeleteRemote, root, del.path, "delete");
  if (del.path.empty())
    return RunForRoot(files ? kDeleteFilesAll : kDeleteRemoteAll, root, "delete all");
  return RunUnder(files ? kDeleteFile : kDeleteRemote,
                  files ? kDeleteFilesRange : kDeleteRemoteRange, root, del.path, "delete under");
}

// Decides whether the open database is ours (or empty) before anything is written to it.
Verdict StateStore::Impl::Check(bool quick_check) {
  sqlite3_busy_timeout(db, 5000);
  auto fail = [this](int rc, const char* what) -> Verdict {
    if (rc == SQLITE_NOTADB) return {Verdict::Kind::kSetAside, "not a SQLite database"};
    if (rc == SQLITE_CORRUPT) return {Verdict::Kind::kSetAside, "corrupt database"};
    return {Verdict::Kind::kError, Error(what).message()};
  };
  // Reading any page tells a non-database or a mangled header apart.
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return fail(sqlite3_extended_errcode(db) & 0xff, "read schema");
  Stmt count_stmt(raw);
  rc = sqlite3_step(count_stmt.get());
  if (rc != SQLITE_ROW) return fail(rc & 0xff, "read schema");
  const std::int64_t objects = sqlite3_column_int64(count_stmt.get(), 0);
  count_stmt.reset();

  rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return fail(rc & 0xff, "read user_version");
  Stmt version_stmt(raw);
  if ((rc = sqlite3_step(version_stmt.get())) != SQLITE_ROW)
    return fail(rc & 0xff, "read user_version");
  const std::int64_t version = sqlite3_column_int64(version_stmt.get(), 0);
  version_stmt.reset();

  if (objects == 0 && version == 0) return {Verdict::Kind::kFresh, ""};
  if (version > kSchemaVersion) {
    return {Verdict::Kind::kSetAside,
            "written by a newer filesync (schema version " + std::to_string(version) + ")"};
  }
  if (version != kSchemaVersion) return {Verdict::Kind::kSetAside, "not a filesync state database"};

  rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &raw, nullptr);
  if (rc != SQLITE_OK) {
    // No meta table: some other program's database that happens to use user_version.
    if ((sqlite3_extended_errcode(db) & 0xff) == SQLITE_ERROR) {
      return {Verdict::Kind::kSetAside, "not a filesync state database"};
    }
    return fail(rc & 0xff, "read marker");
  }
  Stmt marker_stmt(raw);
  sqlite3_bind_text(marker_stmt.get(), 1, kMarkerKey, -1, SQLITE_STATIC);
  rc = sqlite3_step(marker_stmt.get());
  if (rc == SQLITE_DONE || (rc == SQLITE_ROW && ColumnText(marker_stmt.get(), 0) != kMarkerValue)) {
    return {Verdict::Kind::kSetAside, "not a filesync state database"};
  }
  if (rc != SQLITE_ROW) return fail(rc & 0xff, "read marker");
  marker_stmt.reset();
  if (!quick_check) return {Verdict::Kind::kUsable, ""};

  rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return fail(rc & 0xff, "quick_check");
  Stmt check_stmt(raw);
  rc = sqlite3_step(check_stmt.get());
  if (rc != SQLITE_ROW) return fail(rc & 0xff, "quick_check");
  const std::string result = ColumnText(check_stmt.get(), 0);
  if (result != "ok") return {Verdict::Kind::kSetAside, "corrupt database (" + result + ")"};
  return {Verdict::Kind::kUsable, ""};
}

Status StateStore::Impl::Configure() {
  if (Status s =
          Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;");
      !s.ok()) {
    return s;
  }
  return Exec(kTempSchema);
}

namespace {

// Creates the database file with mode 0600 before SQLite opens it (SQLite gives -wal and -shm
// the database file's mode), and tightens the mode of an existing one.
Status EnsurePrivateFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::Io("cannot create " + path + ": " + ErrnoText(errno));
  const int rc = fchmod(fd, 0600);
  const int err = errno;
  close(fd);
  if (rc != 0) return Status::Io("cannot chmod " + path + ": " + ErrnoText(err));
  return Status::Ok();
}

// False if the file is neither empty nor starts with SQLite's magic header. Checked before
// SQLite opens it: SQLite would otherwise discard a -wal it cannot use when the connection
// closes, and the set-aside copy would lose it.
Result<bool> HasSqliteHeader(const std::string& path) {
  static constexpr char kMagic[] = "SQLite format 3";  // 16 bytes with the NUL
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::Io("cannot open " + path + ": " + ErrnoText(errno));
  char header[sizeof(kMagic)] = {};
  const ssize_t n = pread(fd, header, sizeof(header), 0);
  const int err = errno;
  close(fd);
  if (n < 0) return Status::Io("cannot read " + path + ": " + ErrnoText(err));
  return n == 0 || (n == static_cast<ssize_t>(sizeof(header)) &&
                    std::memcmp(header, kMagic, sizeof(kMagic)) == 0);
}

Status OpenDb(const std::string& path, sqlite3** db) {
  *db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string message = *db != nullptr ? sqlite3_errmsg(*db) : sqlite3_errstr(rc);
  sqlite3_close_v2(*db);
  *db = nullptr;
  return Status::Io("cannot open state store " + path + ": " + message);
}

// Renames path and its -wal/-shm to path.corrupt-<unix time>[...]; returns the new name.
Result<std::string> SetAside(const std::string& path) {
  const std::string base = path + ".corrupt-" + std::to_string(std::time(nullptr));
  std::string target = base;
  for (int n = 1; access(target.c_str(), F_OK) == 0; ++n) target = base + "." + std::to_string(n);
  if (rename(path.c_str(), target.c_str()) != 0) {
    return Status::Io("cannot move aside " + path + ": " + ErrnoText(errno));
  }
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string from = path + suffix;
    if (rename(from.c_str(), (target + suffix).c_str()) != 0 && errno != ENOENT) {
      return Status::Io("cannot move aside " + from + ": " + ErrnoText(errno));
    }
  }
  return target;
}

// The owner file's text: "<pid>\n<command>\n" ("<pid>\n" without a command).
std::string OwnerText(std::string_view command) {
  return std::to_string(getpid()) + "\n" + (command.empty() ? "" : std::string(command) + "\n");
}

Owner ParseOwner(const std::string& text) {
  Owner owner;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9' && i < 9; ++i)
    owner.pid = owner.pid * 10 + (text[i] - '0');
  if (i < text.size() && text[i] == '\n') {
    const std::size_t end = text.find('\n', i + 1);
    owner.command = text.substr(i + 1, end == std::string::npos ? end : end - i - 1);
  }
  return owner;
}

std::string ReadOwnerFile(const std::filesystem::path& dir) {
  const int fd = open((dir / kOwnerName).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return {};
  char buf[128] = {};
  const ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Takes the exclusive lock of the state dir: a flock on the directory itself, which cannot be
// deleted from under a running filesync the way a lock file could. A reader (Holder(),
// OpenReadOnly()) holds a shared lock for a moment, so a busy lock is tried again for a while
// before it counts as another filesync's. Then records our pid and command in the owner file,
// for messages and `filesync status`.
Result<int> Lock(const std::filesystem::path& dir, std::string_view command) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Io("cannot open state dir " + dir.string() + ": " + ErrnoText(errno));
  int rc = 0;
  for (int attempt = 0;
       (rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EWOULDBLOCK && attempt < kLockAttempts;
       ++attempt) {
    usleep(kLockRetryMicros);
  }
  if (rc != 0) {
    const int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      const Owner owner = ParseOwner(ReadOwnerFile(dir));
      return Status::Conflict(
          "state dir " + dir.string() + " is in use by another filesync (" +
          (owner.pid > 0 ? "pid " + std::to_string(owner.pid) : std::string("pid unknown")) +
          (owner.command.empty() ? "" : ", filesync " + owner.command) + ")");
    }
    return Status::Io("cannot lock state dir " + dir.string() + ": " + ErrnoText(err));
  }
  const std::string path = (dir / kOwnerName).string();
  const int owner_fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  const std::string text = OwnerText(command);
  const bool written =
      owner_fd >= 0 && fchmod(owner_fd, 0600) == 0 && ftruncate(owner_fd, 0) == 0 &&
      pwrite(owner_fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
  const int err = errno;
  if (owner_fd >= 0) close(owner_fd);
  if (!written) {
    close(fd);
    return Status::Io("cannot write " + path + ": " + ErrnoText(err));
  }
  return fd;
}

// "file:" URI of `path` for sqlite3_open_v2 with SQLITE_OPEN_URI, and the query `query`.
std::string FileUri(const std::string& path, std::string_view query) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string uri = "file:";
  for (const char c : path) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '?' || c == '#' || c == '%' || b < 0x20 || b >= 0x7F) {
      uri += '%';
      uri += kHex[b >> 4];
      uri += kHex[b & 0xFu];
    } else {
      uri += c;
    }
  }
  return uri + "?" + std::string(query);
}

}  // namespace

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StateStore::~StateStore() = default;

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::filesystem::path& state_dir,
                                                     std::string* warning,
                                                     std::string_view command) {
  if (warning != nullptr) warning->clear();
  std::error_code ec;
  const bool created = std::filesystem::create_directories(state_dir, ec);
  // The folder cannot be made where the configuration says (a missing parent on another
  // device, no permission, a file in the way): the caller's configuration is wrong.
  if (ec)
    return Status::InvalidArgument("cannot create state dir " + state_dir.string() + ": " +
                                   ec.message());
  if (created && chmod(state_dir.c_str(), 0700) != 0) {
    return Status::Io("cannot chmod state dir " + state_dir.string() + ": " + ErrnoText(errno));
  }

  auto impl = std::make_unique<Impl>();
  impl->dir = state_dir;
  impl->db_path = (state_dir / kDbName).string();
  auto lock = Lock(state_dir, command);
  if (!lock.ok()) return lock.status();
  impl->lock_fd = *lock;

  if (Status s = EnsurePrivateFile(impl->db_path); !s.ok()) return s;
  auto is_sqlite = HasSqliteHeader(impl->db_path);
  if (!is_sqlite.ok()) return is_sqlite.status();
  Verdict verdict{Verdict::Kind::kSetAside, "not a SQLite database"};
  if (*is_sqlite) {
    if (Status s = OpenDb(impl->db_path, &impl->db); !s.ok()) return s;
    verdict = impl->Check(true);
  }
  if (verdict.kind == Verdict::Kind::kError) return Status::Io(verdict.reason);
  if (verdict.kind == Verdict::Kind::kSetAside) {
    if (impl->db != nullptr) sqlite3_close_v2(impl->db);
    impl->db = nullptr;
    auto moved = SetAside(impl->db_path);
    if (!moved.ok()) return moved.status();
    if (warning != nullptr) {
      *warning = "state file " + impl->db_path + " was unusable (" + verdict.reason +
                 "); moved it to " + *moved +
                 " and started a fresh state (files will be re-hashed)";
    }
    if (Status s = EnsurePrivateFile(impl->db_path); !s.ok()) return s;
    if (Status s = OpenDb(impl->db_path, &impl->db); !s.ok()) return s;
    verdict = impl->Check(true);
    if (verdict.kind != Verdict::Kind::kFresh) {
      return Status::Io("state store " + impl->db_path +
                        ": fresh database unusable: " + verdict.reason);
    }
  }
  if (Status s = impl->Configure(); !s.ok()) return s;
  if (verdict.kind == Verdict::Kind::kFresh) {
    const std::string create =
        std::string("BEGIN IMMEDIATE;") + kSchema + "INSERT INTO meta(key, value) VALUES ('" +
        kMarkerKey + "', '" + kMarkerValue + "');" +
        "PRAGMA user_version = " + std::to_string(kSchemaVersion) + ";COMMIT;";
    if (Status s = impl->Exec(create.c_str()); !s.ok()) {
      impl->Exec("ROLLBACK");
      return s;
    }
  }
  return std::unique_ptr<StateStore>(new StateStore(std::move(impl)));
}

Result<std::unique_ptr<StateStore>> StateStore::OpenReadOnly(const std::filesystem::path& state_dir,
                                                             ReadOnly mode) {
  auto impl = std::make_unique<Impl>();
  impl->dir = state_dir;
  impl->db_path = (state_dir / kDbName).string();
  const std::string no_state = "no state at " + state_dir.string();
  impl->lock_fd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (impl->lock_fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Status::NotFound(no_state);
    return Status::Io("cannot open state dir " + state_dir.string() + ": " + ErrnoText(errno));
  }
  // With the shared lock no writer can start until this store is done with the file (kDirect)
  // or has copied it (kCopy). Without it, a writer is running: read through its WAL.
  const bool no_writer = flock(impl->lock_fd, LOCK_SH | LOCK_NB) == 0;
  struct stat st {};
  if (stat(impl->db_path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound(no_state + " (no " + kDbName + ")");
    return Status::Io("cannot stat " + impl->db_path + ": " + ErrnoText(errno));
  }
  const std::string unusable = "state file " + impl->db_path + " is unusable (";
  const std::string next_run =
      "); the next `filesync sync` or `filesync run` sets it aside and starts afresh";
  auto is_sqlite = HasSqliteHeader(impl->db_path);
  if (!is_sqlite.ok()) return is_sqlite.status();
  if (!*is_sqlite) return Status::Permanent(unusable + "not a SQLite database" + next_run);
  // Immutable (no -wal, -shm or lock taken) when nothing can change the file meanwhile and no
  // write-ahead log holds what the file does not; read-only through the WAL otherwise.
  struct stat wal {};
  const bool wal_empty = stat((impl->db_path + "-wal").c_str(), &wal) != 0 || wal.st_size == 0;
  const std::string uri =
      FileUri(impl->db_path, no_writer && wal_empty ? "immutable=1" : "mode=ro");
  if (sqlite3_open_v2(uri.c_str(), &impl->db,
                      SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return Status::Io("cannot open state store " + impl->db_path + ": " +
                      (impl->db != nullptr ? sqlite3_errmsg(impl->db) : "out of memory"));
  }
  const Verdict verdict = impl->Check(false);
  if (verdict.kind == Verdict::Kind::kFresh)
    return Status::NotFound(no_state + " (" + kDbName + " is empty)");
  if (verdict.kind == Verdict::Kind::kSetAside)
    return Status::Permanent(unusable + verdict.reason + next_run);
  if (verdict.kind == Verdict::Kind::kError) return Status::Io(verdict.reason);
  if (mode == ReadOnly::kDirect)
    return std::unique_ptr<StateStore>(new StateStore(std::move(impl)));

  sqlite3* memory = nullptr;
  if (sqlite3_open_v2(":memory:", &memory, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    sqlite3_close_v2(memory);
    return Status::Io("cannot open an in-memory copy of " + impl->db_path);
  }
  sqlite3_backup* backup = sqlite3_backup_init(memory, "main", impl->db, "main");
  const int rc = backup != nullptr ? sqlite3_backup_step(backup, -1) : sqlite3_errcode(memory);
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    const std::string message = sqlite3_errmsg(memory);
    sqlite3_close_v2(memory);
    return Status::Io("cannot copy state store " + impl->db_path + ": " + message);
  }
  impl->statements.clear();
  sqlite3_close_v2(impl->db);
  impl->db = memory;
  close(impl->lock_fd);
  impl->lock_fd = -1;
  if (Status s = impl->Exec(kTempSchema); !s.ok()) return s;
  return std::unique_ptr<StateStore>(new StateStore(std::move(impl)));
}

Result<std::unique_ptr<StateStore>> StateStore::OpenEmpty() {
  auto impl = std::make_unique<Impl>();
  impl->db_path = ":memory:";
  if (sqlite3_open_v2(":memory:", &impl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return Status::Io("cannot open an in-memory state store");
  }
  const std::string create = std::string("BEGIN;") + kSchema + kTempSchema +
                             "PRAGMA user_version = " + std::to_string(kSchemaVersion) + ";COMMIT;";
  if (Status s = impl->Exec(create.c_str()); !s.ok()) return s;
  return std::unique_ptr<StateStore>(new StateStore(std::move(impl)));
}

std::optional<Owner> StateStore::Holder(const std::filesystem::path& state_dir) {
  const int fd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  const bool free = flock(fd, LOCK_SH | LOCK_NB) == 0;
  close(fd);  // releases the shared lock at once
  if (free) return std::nullopt;
  return ParseOwner(ReadOwnerFile(state_dir));
}

Status StateStore::CheckLocation() const {
  core::MutexLock lock(&mu_);
  if (impl_->lock_fd < 0 || impl_->dir.empty()) return Status::Ok();
  struct stat held {};
  struct stat now {};
  if (fstat(impl_->lock_fd, &held) != 0 || stat(impl_->dir.c_str(), &now) != 0 ||
      held.st_dev != now.st_dev || held.st_ino != now.st_ino) {
    return Status::NotFound("state dir " + impl_->dir.string() +
                            " was removed or replaced while filesync was using it");
  }
  return Status::Ok();
}

std::string StateStore::path() const {
  core::MutexLock lock(&mu_);
  return impl_->db_path;
}

Result<std::int64_t> StateStore::RootId(const std::string& local_dir,
                                        const std::string& cloud_path) {
  core::MutexLock lock(&mu_);
  sqlite3_stmt* find = impl_->Get(kFindRoot);
  if (find == nullptr) return impl_->Error("find root");
  BindText(find, 1, local_dir);
  BindText(find, 2, cloud_path);
  const int rc = sqlite3_step(find);
  if (rc == SQLITE_ROW) {
    const std::int64_t id = sqlite3_column_int64(find, 0);
    sqlite3_reset(find);
    return id;
  }
  sqlite3_reset(find);
  if (rc != SQLITE_DONE) return impl_->Error("find root");
  sqlite3_stmt* insert = impl_->Get(kInsertRoot);
  if (insert == nullptr) return impl_->Error("add root");
  BindText(insert, 1, local_dir);
  BindText(insert, 2, cloud_path);
  if (Status s = impl_->Run(insert, "add root"); !s.ok()) return s;
  return static_cast<std::int64_t>(sqlite3_last_insert_rowid(impl_->db));
}

Result<std::vector<RootInfo>> StateStore::Roots() {
  core::MutexLock lock(&mu_);
  sqlite3_stmt* stmt = impl_->Get(kListRoots);
  if (stmt == nullptr) return impl_->Error("list roots");
  std::vector<RootInfo> roots;
  int rc = 0;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    roots.push_back({.id = sqlite3_column_int64(stmt, 0),
                     .local_dir = ColumnText(stmt, 1),
                     .cloud_path = ColumnText(stmt, 2),
                     .file_records = FromDb(sqlite3_column_int64(stmt, 3))});
  }
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) return impl_->Error("list roots");
  return roots;
}

Status StateStore::ForgetRoot(std::int64_t root) {
  core::MutexLock lock(&mu_);
  if (Status s = impl_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  for (const char* sql : kForgetRoot) {
    if (Status s = impl_->RunForRoot(sql, root, "forget root"); !s.ok()) {
      impl_->Exec("ROLLBACK");
      return s;
    }
  }
  return impl_->Exec("COMMIT");
}

Status StateStore::LoadFiles(std::int64_t root, const std::function<void(FileRecord&&)>& fn) {
  core::MutexLock lock(&mu_);
  sqlite3_stmt* stmt = impl_->Get(kLoadFiles);
  if (stmt == nullptr) return impl_->Error("load files");
  sqlite3_bind_int64(stmt, 1, root);
  int rc = 0;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    FileRecord f;
    f.path = ColumnText(stmt, 0);
    if (!ColumnKind(stmt, 1, &f.kind)) {
      sqlite3_reset(stmt);
      return Status::Io("state store " + impl_->db_path + ": unknown entry kind at " + f.path);
    }
    f.identity.size = FromDb(sqlite3_column_int64(stmt, 2));
    f.identity.mtime_ns = sqlite3_column_int64(stmt, 3);
    f.identity.ctime_ns = sqlite3_column_int64(stmt, 4);
    f.identity.inode = FromDb(sqlite3_column_int64(stmt, 5));
    f.identity.device = FromDb(sqlite3_column_int64(stmt, 6));
    f.has_digest = ColumnDigest(stmt, 7, &f.digest);
    fn(std::move(f));
  }
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) return impl_->Error("load files");
  return Status::Ok();
}

Status StateStore::LoadRemote(std::int64_t root, const std::function<void(RemoteRecord&&)>& fn) {
  core::MutexLock lock(&mu_);
  sqlite3_stmt* stmt = impl_->Get(kLoadRemote);
  if (stmt == nullptr) return impl_->Error("load remote");
  sqlite3_bind_int64(stmt, 1, root);
  int rc = 0;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    RemoteRecord r;
    r.path = ColumnText(stmt, 0);
    if (!ColumnKind(stmt, 1, &r.kind)) {
      sqlite3_reset(stmt);
      return Status::Io("state store " + impl_->db_path + ": unknown entry kind at " + r.path);
    }
    r.size = FromDb(sqlite3_column_int64(stmt, 2));
    r.has_digest = ColumnDigest(stmt, 3, &r.digest);
    r.rev = ColumnText(stmt, 4);
    fn(std::move(r));
  }
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) return impl_->Error("load remote");
  return Status::Ok();
}

Status StateStore::Commit(std::int64_t root, const Batch& batch) {
  if (batch.empty()) return Status::Ok();
  core::MutexLock lock(&mu_);
  if (Status s = impl_->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  for (const Batch::Op& op : batch.ops_) {
    if (Status s = impl_->Apply(root, op); !s.ok()) {
      impl_->Exec("ROLLBACK");
      return s;
    }
  }
  if (Status s = impl_->Exec("COMMIT"); !s.ok()) {
    impl_->Exec("ROLLBACK");
    return s;
  }
  return Status::Ok();
}

Result<std::optional<std::string>> StateStore::Get(std::int64_t root, std::string_view key) {
  core::MutexLock lock(&mu_);
  sqlite3_stmt* stmt = impl_->Get(kGet);
  if (stmt == nullptr) return impl_->Error("get");
  sqlite3_bind_int64(stmt, 1, root);
  BindText(stmt, 2, key);
  const int rc = sqlite3_step(stmt);
  std::optional<std::string> value;
  if (rc == SQLITE_ROW) value = ColumnBlob(stmt, 0);
  sqlite3_reset(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return impl_->Error("get");
  return value;
}

Status StateStore::Put(std::int64_t root, std::string_view key, std::string_view value) {
  core::MutexLock lock(&mu_);
  sqlite3_stmt* stmt = impl_->Get(kPut);
  if (stmt == nullptr) return impl_->Error("put");
  sqlite3_bind_int64(stmt, 1, root);
  BindText(stmt, 2, key);
  BindBlob(stmt, 3, value);
  if (value.empty()) sqlite3_bind_zeroblob(stmt, 3, 0);  // an empty value is not NULL
  return impl_->Run(stmt, "put");
}

Status StateStore::Erase(std::int64_t root, std::string_view key) {
  core::MutexLock lock(&mu_);
  return impl_->RunForPath(kErase, root, key, "erase");
}

Status StateStore::RecordError(std::int64_t root, std::string_view path, std::string_view message) {
  core::MutexLock lock(&mu_);
  sqlite3_stmt* stmt = impl_->Get(kRecordError);
  if (stmt == nullptr) return impl_->Error("record error");
  sqlite3_bind_int64(stmt, 1, root);
  BindText(stmt, 2, path);
  BindText(stmt, 3, message);
  sqlite3_bind_int64(stmt, 4, static_cast<std::int64_t>(std::time(nullptr)));
  return impl_->Run(stmt, "record error");
}

Status StateStore::ClearError(std::int64_t root, std::string_view path) {
  core::MutexLock lock(&mu_);
  return impl_->RunForPath(kClearError, root, path, "clear error");
}

Status StateStore::ClearErrorsUnder(std::int64_t root, std::string_view dir_path) {
  core::MutexLock lock(&mu_);
  if (dir_path.empty()) return impl_->RunForRoot(kClearErrorsAll, root, "clear errors");
  return impl_->RunUnder(kClearError, kClearErrorsRange, root, dir_path, "clear errors");
}

Result<std::vector<ErrorRecord>> StateStore::Errors() {
  core::MutexLock lock(&mu_);
  sqlite3_stmt* stmt = impl_->Get(kListErrors);
  if (stmt == nullptr) return impl_->Error("list errors");
  std::vector<ErrorRecord> errors;
  int rc = 0;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    errors.push_back({.root = ColumnText(stmt, 0),
                      .path = ColumnText(stmt, 1),
                      .message = ColumnText(stmt, 2),
                      .first_seen_unix = sqlite3_column_int64(stmt, 3),
                      .last_seen_unix = sqlite3_column_int64(stmt, 4),
                      .attempts = sqlite3_column_int(stmt, 5),
                      .root_id = sqlite3_column_int64(stmt, 6)});
  }
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) return impl_->Error("list errors");
  return errors;
}

void StateStore::Batch::PutFile(const FileRecord& file) { ops_.emplace_back(file); }

void StateStore::Batch::DeleteFile(std::string_view path) {
  ops_.emplace_back(DeleteOp{Table::kFiles, std::string(path), false});
}

void StateStore::Batch::DeleteFilesUnder(std::string_view dir_path) {
  ops_.emplace_back(DeleteOp{Table::kFiles, std::string(dir_path), true});
}

void StateStore::Batch::PutRemote(const RemoteRecord& remote) { ops_.emplace_back(remote); }

void StateStore::Batch::DeleteRemote(std::string_view path) {
  ops_.emplace_back(DeleteOp{Table::kRemote, std::string(path), false});
}

void StateStore::Batch::DeleteRemoteUnder(std::string_view dir_path) {
  ops_.emplace_back(DeleteOp{Table::kRemote, std::string(dir_path), true});
}

void StateStore::Batch::ClearRemote() {
  ops_.emplace_back(DeleteOp{Table::kRemote, std::string(), true});
}

void StateStore::Batch::MoveUnder(std::string_view from, std::string_view to) {
  ops_.emplace_back(MoveOp{std::string(from), std::string(to)});
}

}  // namespace filesync::store
