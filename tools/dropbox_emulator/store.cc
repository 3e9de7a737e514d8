// Write-through design: each public mutator runs inside one SQLite transaction and updates the
// in-memory indexes in step. Journal records carry a snapshot of the item, so list_folder/
// continue replays them in order without looking at the current state. A deleted folder is
// journalled as one deleted record (its descendants are only tombstoned), which is what
// Dropbox reports as well. Moves journal the source's deletion plus an upsert for every item
// at the destination, so a client can apply them with the §5.3 rules. A cursor on a folder whose
// ancestor is deleted or moved away reports that folder's own deletion.
#include "dropbox_emulator/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <functional>

#include "core/rel_path.h"
#include "dropbox_emulator/wire.h"
#include "util/unicode.h"

namespace filesync::emulator {
namespace {

constexpr std::uint32_t kDefaultPageSize = 2000;
constexpr std::size_t kMaxComponentChars = 255;

std::string ParentKey(const std::string& key) {
  const auto pos = key.rfind('/');
  return pos == std::string::npos ? std::string() : key.substr(0, pos);
}

bool HasPrefixDir(const std::string& key, const std::string& dir) {
  // key lies strictly under dir ("" is the root).
  if (dir.empty()) return !key.empty();
  return key.size() > dir.size() && key.compare(0, dir.size(), dir) == 0 && key[dir.size()] == '/';
}

bool InScope(const std::string& key, const std::string& root, bool recursive) {
  if (key == root) return true;
  if (!HasPrefixDir(key, root)) return false;
  return recursive || key.find('/', root.size() + 1) == std::string::npos;
}

// Whether a cursor on `root` reports a change of `key`: one in its scope, or the deletion of a
// folder above `root`, which takes the listed folder with it (reported as the root's deletion).
bool Reported(bool deleted, const std::string& key, const std::string& root, bool recursive) {
  return InScope(key, root, recursive) || (deleted && HasPrefixDir(root, key));
}

nlohmann::json Conflict(const std::string& what) {
  return {{".tag", "conflict"}, {"conflict", {{".tag", what}}}};
}

nlohmann::json Malformed() { return Tag("malformed_path"); }

bool IsDisallowedName(const std::string& name_key) {
  static const std::array<std::string, 7> kNames = {"desktop.ini",   "thumbs.db", ".ds_store",
                                                    "icon\r",        ".dropbox",  ".dropbox.attr",
                                                    ".dropbox.cache"};
  return std::find(kNames.begin(), kNames.end(), name_key) != kNames.end();
}

std::string NowTimestamp() { return FormatTimestamp(std::time(nullptr)); }

std::string Col(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));
}

}  // namespace

struct Namespace::Cursor {
  std::string root;
  bool recursive = false;
  bool include_deleted = false;
  std::uint64_t epoch = 0;
  std::uint64_t seq = 0;
  char mode = 'c';  // 'l' live listing, 't' tombstones (include_deleted), 'c' changes
  std::string after;
  std::uint32_t limit = 0;  // 0 = default page size
};

std::string Entry::Name() const {
  const auto pos = display.rfind('/');
  return pos == std::string::npos ? display : display.substr(pos + 1);
}

nlohmann::json MetadataJson(const Entry& e, bool with_tag) {
  nlohmann::json j;
  if (with_tag) j[".tag"] = e.is_folder ? "folder" : "file";
  j["name"] = e.Name();
  j["path_lower"] = e.key;
  j["path_display"] = e.display;
  j["id"] = e.id;
  if (!e.is_folder) {
    j["client_modified"] = e.client_modified;
    j["server_modified"] = e.server_modified;
    j["rev"] = e.rev;
    j["size"] = e.size;
    j["is_downloadable"] = true;
    j["content_hash"] = e.content_hash;
  }
  return j;
}

nlohmann::json DeletedJson(const std::string& key, const std::string& display) {
  const auto pos = display.rfind('/');
  return {{".tag", "deleted"},
          {"name", pos == std::string::npos ? display : display.substr(pos + 1)},
          {"path_lower", key},
          {"path_display", display}};
}

Namespace::Namespace(sqlite3* db) : db_(db) {}

Namespace::~Namespace() {
  for (auto& [name, stmt] : stmts_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Result<std::unique_ptr<Namespace>> Namespace::Open(const std::string& dir) {
  sqlite3* db = nullptr;
  const std::string path = dir + "/namespace.db";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Status::Io("open " + path + ": " + msg);
  }
  std::unique_ptr<Namespace> ns(new Namespace(db));
  const char* schema =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS entries(key TEXT PRIMARY KEY, display TEXT, is_folder INT,"
      " id TEXT, rev TEXT, size INT, hash TEXT, cm TEXT, sm TEXT);"
      "CREATE TABLE IF NOT EXISTS tombstones(key TEXT PRIMARY KEY, display TEXT);"
      "CREATE TABLE IF NOT EXISTS journal(seq INTEGER PRIMARY KEY, deleted INT, key TEXT,"
      " display TEXT, is_folder INT, id TEXT, rev TEXT, size INT, hash TEXT, cm TEXT, sm TEXT);"
      "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INT);";
  char* err = nullptr;
  if (sqlite3_exec(db, schema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "?";
    sqlite3_free(err);
    return Status::Io("create schema: " + msg);
  }
  if (Status s = ns->Prepare(); !s.ok()) return s;
  if (Status s = ns->Load(); !s.ok()) return s;
  return ns;
}

Status Namespace::Prepare() {
  // Uncontended (the namespace is not shared yet); taken so stmts_ is written as guarded.
  core::MutexLock lock(&mu_);
  const std::pair<const char*, const char*> sql[] = {
      {"put", "INSERT OR REPLACE INTO entries VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)"},
      {"del", "DELETE FROM entries WHERE key=?1"},
      {"tomb_put", "INSERT OR REPLACE INTO tombstones VALUES(?1,?2)"},
      {"tomb_del", "DELETE FROM tombstones WHERE key=?1"},
      {"journal", "INSERT INTO journal VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"},
      {"meta", "INSERT OR REPLACE INTO meta VALUES(?1,?2)"},
  };
  for (const auto& [name, text] : sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, text, -1, &stmt, nullptr) != SQLITE_OK) {
      return Status::Io(std::string("prepare: ") + sqlite3_errmsg(db_));
    }
    stmts_[name] = stmt;
  }
  return Status::Ok();
}

Status Namespace::Load() {
  core::MutexLock lock(&mu_);
  auto query = [&](const char* sql, const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return false;
    while (sqlite3_step(s) == SQLITE_ROW) row(s);
    sqlite3_finalize(s);
    return true;
  };
  auto read_entry = [](sqlite3_stmt* s, int first) {
    Entry e;
    e.key = Col(s, first);
    e.display = Col(s, first + 1);
    e.is_folder = sqlite3_column_int(s, first + 2) != 0;
    e.id = Col(s, first + 3);
    e.rev = Col(s, first + 4);
    e.size = static_cast<std::uint64_t>(sqlite3_column_int64(s, first + 5));
    e.content_hash = Col(s, first + 6);
    e.client_modified = Col(s, first + 7);
    e.server_modified = Col(s, first + 8);
    return e;
  };
  // The row callbacks are analysed as functions of their own, without mu_ held: they fill
  // locals, which this function (holding it) moves into the members.
  std::map<std::string, std::uint64_t> meta;
  std::vector<Entry> entries;
  std::map<std::string, std::string> tombstones;
  std::vector<Change> journal;
  bool ok = query("SELECT name, value FROM meta", [&](sqlite3_stmt* s) {
    meta[Col(s, 0)] = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
  });
  ok = ok && query("SELECT * FROM entries",
                   [&](sqlite3_stmt* s) { entries.push_back(read_entry(s, 0)); });
  ok = ok && query("SELECT key, display FROM tombstones",
                   [&](sqlite3_stmt* s) { tombstones[Col(s, 0)] = Col(s, 1); });
  ok = ok && query("SELECT * FROM journal ORDER BY seq", [&](sqlite3_stmt* s) {
         Change c;
         c.deleted = sqlite3_column_int(s, 1) != 0;
         c.entry = read_entry(s, 2);
         journal.push_back(std::move(c));
       });
  if (!ok) return Status::Io(std::string("load namespace: ") + sqlite3_errmsg(db_));
  if (auto it = meta.find("next_id"); it != meta.end()) next_id_ = it->second;
  if (auto it = meta.find("next_rev"); it != meta.end()) next_rev_ = it->second;
  if (auto it = meta.find("epoch"); it != meta.end()) epoch_ = it->second;
  for (Entry& e : entries) {
    children_[ParentKey(e.key)].insert(e.key);
    by_id_[e.id] = e.key;
    if (!e.is_folder) {
      by_rev_[e.rev] = e.key;
      used_bytes_ += e.size;
    }
    entries_[e.key] = std::move(e);
  }
  tombstones_ = std::move(tombstones);
  journal_ = std::move(journal);
  return Status::Ok();
}

void Namespace::ExecLocked(const char* sql) { sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }

void Namespace::SaveMetaLocked() {
  sqlite3_stmt* s = stmts_["meta"];
  const std::pair<const char*, std::uint64_t> values[] = {
      {"next_id", next_id_}, {"next_rev", next_rev_}, {"epoch", epoch_}};
  for (const auto& [name, value] : values) {
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(value));
    sqlite3_step(s);
    sqlite3_reset(s);
  }
}

std::string Namespace::NewIdLocked() {
  std::string raw = "emuldbx1";
  const std::uint64_t n = next_id_++;
  for (int i = 7; i >= 0; --i) raw.push_back(static_cast<char>((n >> (i * 8)) & 0xFFu));
  return "id:" + Base64UrlEncode(raw);
}

std::string Namespace::NewRevLocked() {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%015" PRIx64,
                static_cast<std::uint64_t>(0x5e0000000ULL + next_rev_++));
  return buf;
}

const Entry* Namespace::FindLocked(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

bool Namespace::ResolveLocked(const std::string& path, bool for_write, Resolved* out,
                              nlohmann::json* error) {
  std::string display = path;
  if (path.rfind("id:", 0) == 0) {
    const auto slash = path.find('/');
    const std::string id = path.substr(0, slash);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) {
      *error = for_write ? Malformed() : Tag("not_found");
      return false;
    }
    display = entries_.at(it->second).display +
              (slash == std::string::npos ? std::string() : path.substr(slash));
  } else if (path.rfind("ns:", 0) == 0) {
    const auto slash = path.find('/');
    if (path.substr(3, slash == std::string::npos ? std::string::npos : slash - 3) !=
        kRootNamespaceId) {
      *error = for_write ? Malformed() : Tag("not_found");
      return false;
    }
    display = slash == std::string::npos ? std::string() : path.substr(slash);
  } else if (path.rfind("rev:", 0) == 0) {
    auto it = by_rev_.find(path.substr(4));
    if (it == by_rev_.end()) {
      *error = Tag("not_found");
      return false;
    }
    display = entries_.at(it->second).display;
  }
  display = WithoutExtraLeadingSlashes(display);
  if (display.empty()) {  // the root
    out->key.clear();
    out->display.clear();
    return true;
  }
  if (!unicode::IsValidUtf8(display) || display[0] != '/' || display.back() == '/' ||
      display.back() == ' ' || display.back() == '\t' || display.back() == '\n' ||
      display.back() == '\r') {
    *error = Malformed();
    return false;
  }
  display = unicode::ToNfc(display);
  std::size_t start = 1;
  while (start <= display.size()) {
    auto end = display.find('/', start);
    if (end == std::string::npos) end = display.size();
    const std::string comp = display.substr(start, end - start);
    if (comp.empty() || comp == "." || comp == ".." ||
        unicode::CodePoints(comp) > kMaxComponentChars) {
      *error = Malformed();
      return false;
    }
    if (for_write && IsDisallowedName(unicode::Lower(comp))) {
      *error = Tag("disallowed_name");
      return false;
    }
    start = end + 1;
  }
  out->display = display;
  out->key = core::CloudKey(display);
  return true;
}

bool Namespace::EnsureParentsLocked(const Resolved& target, bool create,
                                    std::string* parent_display, nlohmann::json* error) {
  std::string parent;  // display of the deepest existing/created ancestor
  std::size_t pos = 0;
  while (true) {
    const auto next = target.display.find('/', pos + 1);
    if (next == std::string::npos) break;
    const std::string prefix = target.display.substr(0, next);
    const std::string comp = target.display.substr(pos + 1, next - pos - 1);
    const std::string key = core::CloudKey(prefix);
    const Entry* e = FindLocked(key);
    if (e != nullptr) {
      if (!e->is_folder) {
        *error = Conflict("file_ancestor");
        return false;
      }
      parent = e->display;
    } else {
      parent += "/" + comp;
      if (create) {
        Entry folder;
        folder.is_folder = true;
        folder.key = key;
        folder.display = parent;
        folder.id = NewIdLocked();
        PutLocked(std::move(folder), true);
      }
    }
    pos = next;
  }
  *parent_display = parent;
  return true;
}

std::string Namespace::AutorenameLocked(const Resolved& target, bool is_folder,
                                        bool conflicted_copy) {
  const auto slash = target.display.rfind('/');
  const std::string dir = target.display.substr(0, slash + 1);
  const std::string name = target.display.substr(slash + 1);
  std::string stem = name;
  std::string ext;
  const auto dot = name.rfind('.');
  if (!is_folder && dot != std::string::npos && dot > 0) {
    stem = name.substr(0, dot);
    ext = name.substr(dot);
  }
  for (int n = 1;; ++n) {
    std::string suffix;
    if (conflicted_copy) {
      suffix = n == 1 ? " (conflicted copy)" : " (conflicted copy " + std::to_string(n) + ")";
    } else {
      suffix = " (" + std::to_string(n) + ")";
    }
    const std::string candidate = dir + stem + suffix + ext;
    if (FindLocked(core::CloudKey(candidate)) == nullptr) return candidate;
  }
}

// Binds an entry's nine columns (key, display, is_folder, id, rev, size, content_hash,
// client_modified, server_modified) starting at parameter `first`; the entries and journal
// tables share that column order.
static void BindEntry(sqlite3_stmt* s, int first, const Entry& e) {
  sqlite3_bind_text(s, first, e.key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, first + 1, e.display.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(s, first + 2, e.is_folder ? 1 : 0);
  sqlite3_bind_text(s, first + 3, e.id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, first + 4, e.rev.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, first + 5, static_cast<sqlite3_int64>(e.size));
  sqlite3_bind_text(s, first + 6, e.content_hash.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, first + 7, e.client_modified.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, first + 8, e.server_modified.c_str(), -1, SQLITE_TRANSIENT);
}

void Namespace::JournalLocked(bool deleted, const Entry& e) {
  Change c;
  c.deleted = deleted;
  c.entry = e;
  journal_.push_back(c);
  sqlite3_stmt* s = stmts_["journal"];
  sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(journal_.size()));
  sqlite3_bind_int(s, 2, deleted ? 1 : 0);
  BindEntry(s, 3, e);
  sqlite3_step(s);
  sqlite3_reset(s);
  changed_.SignalAll();
}

void Namespace::PutLocked(Entry e, bool journal) {
  auto old = entries_.find(e.key);
  if (old != entries_.end() && !old->second.is_folder) {
    by_rev_.erase(old->second.rev);
    used_bytes_ -= old->second.size;
  }
  children_[ParentKey(e.key)].insert(e.key);
  by_id_[e.id] = e.key;
  if (!e.is_folder) {
    by_rev_[e.rev] = e.key;
    used_bytes_ += e.size;
  }
  if (tombstones_.erase(e.key) > 0) {
    sqlite3_stmt* s = stmts_["tomb_del"];
    sqlite3_bind_text(s, 1, e.key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(s);
    sqlite3_reset(s);
  }
  sqlite3_stmt* s = stmts_["put"];
  BindEntry(s, 1, e);
  sqlite3_step(s);
  sqlite3_reset(s);
  if (journal) JournalLocked(false, e);
  entries_[e.key] = std::move(e);
}

void Namespace::RemoveSubtreeLocked(const std::string& key) {
  std::vector<std::string> keys = {key};
  for (auto it = entries_.lower_bound(key + "/");
       it != entries_.end() && HasPrefixDir(it->first, key); ++it) {
    keys.push_back(it->first);
  }
  for (const auto& k : keys) {
    auto it = entries_.find(k);
    if (it == entries_.end()) continue;
    const Entry& e = it->second;
    if (!e.is_folder) {
      by_rev_.erase(e.rev);
      used_bytes_ -= e.size;
    }
    by_id_.erase(e.id);
    auto parent = children_.find(ParentKey(k));
    if (parent != children_.end()) {
      parent->second.erase(k);
      if (parent->second.empty()) children_.erase(parent);
    }
    children_.erase(k);
    tombstones_[k] = e.display;
    sqlite3_stmt* t = stmts_["tomb_put"];
    sqlite3_bind_text(t, 1, k.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(t, 2, e.display.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(t);
    sqlite3_reset(t);
    sqlite3_stmt* d = stmts_["del"];
    sqlite3_bind_text(d, 1, k.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(d);
    sqlite3_reset(d);
    entries_.erase(it);
  }
}

Outcome<nlohmann::json> Namespace::GetMetadata(const std::string& path, bool include_deleted) {
  core::MutexLock lock(&mu_);
  Resolved r;
  nlohmann::json error;
  if (!ResolveLocked(path, false, &r, &error)) {
    return Outcome<nlohmann::json>::Fail(StoreError::Where::kLookup, error);
  }
  if (r.key.empty()) return Outcome<nlohmann::json>::Fail(StoreError::Where::kLookup, Malformed());
  if (const Entry* e = FindLocked(r.key)) return {MetadataJson(*e), {}};
  if (include_deleted) {
    auto t = tombstones_.find(r.key);
    if (t != tombstones_.end()) return {DeletedJson(t->first, t->second), {}};
  }
  return Outcome<nlohmann::json>::Fail(StoreError::Where::kLookup, Tag("not_found"));
}

Outcome<Entry> Namespace::GetFile(const std::string& path) {
  core::MutexLock lock(&mu_);
  Resolved r;
  nlohmann::json error;
  if (!ResolveLocked(path, false, &r, &error)) {
    return Outcome<Entry>::Fail(StoreError::Where::kLookup, error);
  }
  const Entry* e = r.key.empty() ? nullptr : FindLocked(r.key);
  if (e == nullptr) return Outcome<Entry>::Fail(StoreError::Where::kLookup, Tag("not_found"));
  if (e->is_folder) return Outcome<Entry>::Fail(StoreError::Where::kLookup, Tag("not_file"));
  return {*e, {}};
}

Outcome<std::string> Namespace::CheckWritePath(const std::string& path) {
  core::MutexLock lock(&mu_);
  Resolved r;
  nlohmann::json error;
  if (!ResolveLocked(path, true, &r, &error)) {
    return Outcome<std::string>::Fail(StoreError::Where::kWrite, error);
  }
  if (r.key.empty()) return Outcome<std::string>::Fail(StoreError::Where::kWrite, Malformed());
  return {r.display, {}};
}

Outcome<Entry> Namespace::CreateFolder(const std::string& path, bool autorename) {
  core::MutexLock lock(&mu_);
  Resolved r;
  nlohmann::json error;
  std::string parent;
  if (!ResolveLocked(path, true, &r, &error) || (r.key.empty() && (error = Malformed(), true)) ||
      !EnsureParentsLocked(r, false, &parent, &error)) {
    return Outcome<Entry>::Fail(StoreError::Where::kWrite, error);
  }
  if (const Entry* existing = FindLocked(r.key)) {
    if (!autorename) {
      return Outcome<Entry>::Fail(StoreError::Where::kWrite,
                                  Conflict(existing->is_folder ? "folder" : "file"));
    }
    r.display = AutorenameLocked(r, true, false);
    r.key = core::CloudKey(r.display);
  }
  ExecLocked("BEGIN");
  EnsureParentsLocked(r, true, &parent, &error);
  Entry folder;
  folder.is_folder = true;
  folder.key = r.key;
  folder.display = parent + r.display.substr(r.display.rfind('/'));
  folder.id = NewIdLocked();
  PutLocked(folder, true);
  SaveMetaLocked();
  ExecLocked("COMMIT");
  return {folder, {}};
}

Outcome<Entry> Namespace::DeleteOneLocked(const std::string& path,
                                          const std::optional<std::string>& parent_rev) {
  Resolved r;
  nlohmann::json error;
  if (!ResolveLocked(path, false, &r, &error)) {
    return Outcome<Entry>::Fail(StoreError::Where::kLookup, error);
  }
  if (r.key.empty()) return Outcome<Entry>::Fail(StoreError::Where::kLookup, Malformed());
  const Entry* e = FindLocked(r.key);
  if (e == nullptr) return Outcome<Entry>::Fail(StoreError::Where::kLookup, Tag("not_found"));
  if (parent_rev && !e->is_folder && e->rev != *parent_rev) {
    return Outcome<Entry>::Fail(StoreError::Where::kWrite, Conflict("file"));
  }
  Entry before = *e;
  RemoveSubtreeLocked(before.key);
  JournalLocked(true, before);
  return {before, {}};
}

Outcome<Entry> Namespace::Delete(const std::string& path,
                                 const std::optional<std::string>& parent_rev) {
  core::MutexLock lock(&mu_);
  ExecLocked("BEGIN");
  auto out = DeleteOneLocked(path, parent_rev);
  ExecLocked("COMMIT");
  return out;
}

std::vector<Outcome<Entry>> Namespace::DeleteMany(
    const std::vector<std::pair<std::string, std::optional<std::string>>>& items) {
  core::MutexLock lock(&mu_);
  std::vector<Outcome<Entry>> out;
  out.reserve(items.size());
  ExecLocked("BEGIN");
  for (const auto& [path, rev] : items) out.push_back(DeleteOneLocked(path, rev));
  ExecLocked("COMMIT");
  return out;
}

Outcome<Entry> Namespace::Relocate(const std::string& from, const std::string& to, bool autorename,
                                   bool copy) {
  core::MutexLock lock(&mu_);
  Resolved src;
  Resolved dst;
  nlohmann::json error;
  if (!ResolveLocked(from, false, &src, &error)) {
    return Outcome<Entry>::Fail(StoreError::Where::kLookup, error);
  }
  if (src.key.empty()) return Outcome<Entry>::Fail(StoreError::Where::kLookup, Malformed());
  const Entry* source = FindLocked(src.key);
  if (source == nullptr) return Outcome<Entry>::Fail(StoreError::Where::kLookup, Tag("not_found"));
  std::string parent;
  if (!ResolveLocked(to, true, &dst, &error) || (dst.key.empty() && (error = Malformed(), true))) {
    return Outcome<Entry>::Fail(StoreError::Where::kWrite, error);
  }
  if (source->is_folder && HasPrefixDir(dst.key, src.key)) {
    return Outcome<Entry>::Fail(StoreError::Where::kIntoItself);
  }
  if (!EnsureParentsLocked(dst, false, &parent, &error)) {
    return Outcome<Entry>::Fail(StoreError::Where::kWrite, error);
  }
  if (const Entry* existing = FindLocked(dst.key)) {
    // Includes the case-only rename (same key): the spec says move_v2 cannot do it, so the
    // item itself is reported as being in the way.
    if (!autorename || existing == source) {
      return Outcome<Entry>::Fail(StoreError::Where::kWrite,
                                  Conflict(existing->is_folder ? "folder" : "file"));
    }
    dst.display = AutorenameLocked(dst, source->is_folder, false);
    dst.key = core::CloudKey(dst.display);
  }
  ExecLocked("BEGIN");
  EnsureParentsLocked(dst, true, &parent, &error);
  const std::string new_top = parent + dst.display.substr(dst.display.rfind('/'));
  std::vector<Entry> subtree = {*source};
  for (auto it = entries_.lower_bound(src.key + "/");
       it != entries_.end() && HasPrefixDir(it->first, src.key); ++it) {
    subtree.push_back(it->second);
  }
  const std::string old_top = source->display;
  const Entry before = *source;
  if (!copy) {
    RemoveSubtreeLocked(src.key);
    JournalLocked(true, before);
  }
  const std::string now = NowTimestamp();
  Entry top;
  for (std::size_t i = 0; i < subtree.size(); ++i) {
    Entry e = subtree[i];
    e.display = new_top + e.display.substr(old_top.size());
    e.key = core::CloudKey(e.display);
    if (copy) {
      e.id = NewIdLocked();
      if (!e.is_folder) {
        e.rev = NewRevLocked();
        e.server_modified = now;
      }
    }
    if (i == 0) top = e;
    PutLocked(std::move(e), true);
  }
  SaveMetaLocked();
  ExecLocked("COMMIT");
  return {top, {}};
}

Outcome<Entry> Namespace::CommitOneLocked(const CommitRequest& req) {
  Resolved r;
  nlohmann::json error;
  std::string parent;
  if (!ResolveLocked(req.path, true, &r, &error) ||
      (r.key.empty() && (error = Malformed(), true)) ||
      !EnsureParentsLocked(r, false, &parent, &error)) {
    return Outcome<Entry>::Fail(StoreError::Where::kWrite, error);
  }
  const Entry* existing = FindLocked(r.key);
  bool replace = false;
  bool conflicted_copy = false;
  std::string conflict;
  if (existing != nullptr && existing->is_folder) {
    conflict = "folder";
  } else if (existing != nullptr) {
    const bool strict = req.strict_conflict && req.mode != "overwrite";
    if (existing->content_hash == req.content_hash && existing->size == req.size && !strict) {
      return {*existing, {}};  // identical content: nothing written, rev unchanged
    }
    if (req.mode == "overwrite") {
      replace = true;
    } else if (req.mode == "update" && existing->rev == req.update_rev) {
      replace = true;
    } else {
      conflict = "file";
      conflicted_copy = req.mode == "update";
    }
  } else if (req.mode == "update" && req.strict_conflict) {
    conflict = "file";
    conflicted_copy = true;
  }
  if (!conflict.empty()) {
    if (!req.autorename) return Outcome<Entry>::Fail(StoreError::Where::kWrite, Conflict(conflict));
    r.display = AutorenameLocked(r, false, conflicted_copy);
    r.key = core::CloudKey(r.display);
    existing = nullptr;
  }
  EnsureParentsLocked(r, true, &parent, &error);
  Entry e;
  e.key = r.key;
  e.display = replace ? existing->display : parent + r.display.substr(r.display.rfind('/'));
  e.id = replace ? existing->id : NewIdLocked();
  e.rev = NewRevLocked();
  e.size = req.size;
  e.content_hash = req.content_hash;
  e.server_modified = NowTimestamp();
  e.client_modified = req.client_modified.value_or(e.server_modified);
  PutLocked(e, true);
  return {e, {}};
}

std::vector<Outcome<Entry>> Namespace::Commit(const std::vector<CommitRequest>& requests) {
  core::MutexLock lock(&mu_);
  std::vector<Outcome<Entry>> out;
  out.reserve(requests.size());
  ExecLocked("BEGIN");
  for (const auto& req : requests) out.push_back(CommitOneLocked(req));
  SaveMetaLocked();
  ExecLocked("COMMIT");
  return out;
}

std::string Namespace::EncodeCursor(const Cursor& c) const {
  const nlohmann::json j = {{"k", c.root},  {"r", c.recursive}, {"d", c.include_deleted},
                            {"e", c.epoch}, {"s", c.seq},       {"m", std::string(1, c.mode)},
                            {"a", c.after}, {"n", c.limit}};
  return "AAH" + Base64UrlEncode(j.dump());
}

Outcome<Namespace::Cursor> Namespace::DecodeCursorLocked(const std::string& s) const {
  auto bad = Outcome<Cursor>::Fail(StoreError::Where::kBadCursor);
  if (s.rfind("AAH", 0) != 0) return bad;
  auto raw = Base64UrlDecode(s.substr(3));
  if (!raw) return bad;
  auto j = nlohmann::json::parse(*raw, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad;
  Cursor c;
  try {
    c.root = j.at("k").get<std::string>();
    c.recursive = j.at("r").get<bool>();
    c.include_deleted = j.at("d").get<bool>();
    c.epoch = j.at("e").get<std::uint64_t>();
    c.seq = j.at("s").get<std::uint64_t>();
    const std::string m = j.at("m").get<std::string>();
    c.mode = m.empty() ? 'c' : m[0];
    c.after = j.at("a").get<std::string>();
    c.limit = j.at("n").get<std::uint32_t>();
  } catch (const nlohmann::json::exception&) {
    return bad;
  }
  if (c.seq > journal_.size() || (c.mode != 'l' && c.mode != 't' && c.mode != 'c')) return bad;
  if (c.epoch != epoch_) return Outcome<Cursor>::Fail(StoreError::Where::kReset);
  return {c, {}};
}

Outcome<ListPage> Namespace::PageLocked(Cursor c) {
  ListPage page;
  const std::size_t limit = c.limit == 0 ? kDefaultPageSize : c.limit;
  const std::string prefix = c.root + "/";
  auto full = [&] { return page.entries.size() >= limit; };

  if (c.mode == 'l') {
    bool done = false;
    if (c.recursive) {
      if (c.after.empty() && !c.root.empty()) {
        page.entries.push_back(MetadataJson(entries_.at(c.root)));
        c.after = c.root;
      }
      auto it = c.after < prefix ? entries_.lower_bound(prefix) : entries_.upper_bound(c.after);
      for (; it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0 && !full();
           ++it) {
        page.entries.push_back(MetadataJson(it->second));
        c.after = it->first;
      }
      done = it == entries_.end() || it->first.compare(0, prefix.size(), prefix) != 0;
    } else {
      auto kids = children_.find(c.root);
      if (kids == children_.end()) {
        done = true;
      } else {
        auto it = c.after.empty() ? kids->second.begin() : kids->second.upper_bound(c.after);
        for (; it != kids->second.end() && !full(); ++it) {
          page.entries.push_back(MetadataJson(entries_.at(*it)));
          c.after = *it;
        }
        done = it == kids->second.end();
      }
    }
    if (done) {
      c.mode = c.include_deleted ? 't' : 'c';
      c.after.clear();
    }
  }
  if (c.mode == 't') {
    auto it = c.after.empty() ? tombstones_.lower_bound(prefix) : tombstones_.upper_bound(c.after);
    for (; it != tombstones_.end() && it->first.compare(0, prefix.size(), prefix) == 0 && !full();
         ++it) {
      if (!InScope(it->first, c.root, c.recursive)) continue;
      page.entries.push_back(DeletedJson(it->first, it->second));
      c.after = it->first;
    }
    if (it == tombstones_.end() || it->first.compare(0, prefix.size(), prefix) != 0) {
      c.mode = 'c';
      c.after.clear();
    }
    page.has_more = c.mode == 't';
    page.cursor = EncodeCursor(c);
    return {page, {}};
  }
  if (c.mode == 'l') {
    page.has_more = true;
    page.cursor = EncodeCursor(c);
    return {page, {}};
  }
  // Changes mode. A listing that just finished hands over at its snapshot sequence; the
  // changes since then are reported by the next continue.
  if (page.entries.empty()) {
    std::size_t i = c.seq;
    for (; i < journal_.size() && !full(); ++i) {
      const Change& ch = journal_[i];
      if (!Reported(ch.deleted, ch.entry.key, c.root, c.recursive)) continue;
      if (!InScope(ch.entry.key, c.root, c.recursive)) {
        // The listed folder's last spelling, kept with its tombstone (unless made again since).
        const auto tomb = tombstones_.find(c.root);
        page.entries.push_back(
            DeletedJson(c.root, tomb != tombstones_.end()
                                    ? tomb->second
                                    : ch.entry.display + c.root.substr(ch.entry.key.size())));
        continue;
      }
      page.entries.push_back(ch.deleted ? DeletedJson(ch.entry.key, ch.entry.display)
                                        : MetadataJson(ch.entry));
    }
    while (i < journal_.size() &&
           !Reported(journal_[i].deleted, journal_[i].entry.key, c.root, c.recursive)) {
      ++i;
    }
    c.seq = i;
    page.has_more = i < journal_.size();
  }
  page.cursor = EncodeCursor(c);
  return {page, {}};
}

Outcome<ListPage> Namespace::List(const std::string& path, bool recursive, bool include_deleted,
                                  std::optional<std::uint32_t> limit) {
  core::MutexLock lock(&mu_);
  Resolved r;
  nlohmann::json error;
  if (!ResolveLocked(path, false, &r, &error)) {
    return Outcome<ListPage>::Fail(StoreError::Where::kLookup, error);
  }
  if (!r.key.empty()) {
    const Entry* e = FindLocked(r.key);
    if (e == nullptr) return Outcome<ListPage>::Fail(StoreError::Where::kLookup, Tag("not_found"));
    if (!e->is_folder) {
      return Outcome<ListPage>::Fail(StoreError::Where::kLookup, Tag("not_folder"));
    }
  }
  Cursor c;
  c.root = r.key;
  c.recursive = recursive;
  c.include_deleted = include_deleted;
  c.epoch = epoch_;
  c.seq = journal_.size();
  c.mode = 'l';
  c.limit = limit.value_or(0);
  return PageLocked(c);
}

Outcome<ListPage> Namespace::Continue(const std::string& cursor) {
  core::MutexLock lock(&mu_);
  auto c = DecodeCursorLocked(cursor);
  if (!c.ok()) return Outcome<ListPage>::Fail(c.error.where);
  if (!c.value->root.empty() && c.value->mode == 'l' && FindLocked(c.value->root) == nullptr) {
    return Outcome<ListPage>::Fail(StoreError::Where::kLookup, Tag("not_found"));
  }
  return PageLocked(*c.value);
}

Outcome<std::string> Namespace::LatestCursor(const std::string& path, bool recursive,
                                             bool include_deleted) {
  core::MutexLock lock(&mu_);
  Resolved r;
  nlohmann::json error;
  if (!ResolveLocked(path, false, &r, &error)) {
    return Outcome<std::string>::Fail(StoreError::Where::kLookup, error);
  }
  if (!r.key.empty()) {
    const Entry* e = FindLocked(r.key);
    if (e == nullptr)
      return Outcome<std::string>::Fail(StoreError::Where::kLookup, Tag("not_found"));
    if (!e->is_folder) {
      return Outcome<std::string>::Fail(StoreError::Where::kLookup, Tag("not_folder"));
    }
  }
  Cursor c;
  c.root = r.key;
  c.recursive = recursive;
  c.include_deleted = include_deleted;
  c.epoch = epoch_;
  c.seq = journal_.size();
  return {EncodeCursor(c), {}};
}

Outcome<bool> Namespace::Longpoll(const std::string& cursor, std::chrono::milliseconds wait) {
  core::MutexLock lock(&mu_);
  auto c = DecodeCursorLocked(cursor);
  if (!c.ok()) return Outcome<bool>::Fail(c.error.where);
  if (c.value->mode != 'c') return {true, {}};
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::size_t i = c.value->seq;
  while (true) {
    if (epoch_ != c.value->epoch) return Outcome<bool>::Fail(StoreError::Where::kReset);
    for (; i < journal_.size(); ++i) {
      const Change& ch = journal_[i];
      if (Reported(ch.deleted, ch.entry.key, c.value->root, c.value->recursive)) return {true, {}};
    }
    if (shutting_down_ || !changed_.WaitUntil(&mu_, deadline)) {
      return {false, {}};
    }
  }
}

void Namespace::ResetCursors() {
  core::MutexLock lock(&mu_);
  ++epoch_;
  SaveMetaLocked();
  changed_.SignalAll();
}

void Namespace::Shutdown() {
  core::MutexLock lock(&mu_);
  shutting_down_ = true;
  changed_.SignalAll();
}

std::uint64_t Namespace::UsedBytes() {
  core::MutexLock lock(&mu_);
  return used_bytes_;
}

}  // namespace filesync::emulator
