#include "store/state_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace filesync::store {
namespace {

namespace fs = std::filesystem;
using core::EntryKind;

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "store_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    dir_ = base_ / "state";
  }
  void TearDown() override { fs::remove_all(base_); }

  std::unique_ptr<StateStore> MustOpen(std::string* warning = nullptr) {
    auto store = StateStore::Open(dir_, warning);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::vector<FileRecord> Files(StateStore& store, std::int64_t root) {
    std::vector<FileRecord> out;
    EXPECT_TRUE(store.LoadFiles(root, [&](FileRecord&& f) { out.push_back(std::move(f)); }).ok());
    return out;
  }
  std::vector<std::string> FilePaths(StateStore& store, std::int64_t root) {
    std::vector<std::string> out;
    for (const FileRecord& f : Files(store, root)) out.push_back(f.path);
    return out;
  }
  std::vector<RemoteRecord> Remote(StateStore& store, std::int64_t root) {
    std::vector<RemoteRecord> out;
    EXPECT_TRUE(
        store.LoadRemote(root, [&](RemoteRecord&& r) { out.push_back(std::move(r)); }).ok());
    return out;
  }
  std::vector<std::string> RemotePaths(StateStore& store, std::int64_t root) {
    std::vector<std::string> out;
    for (const RemoteRecord& r : Remote(store, root)) out.push_back(r.path);
    return out;
  }

  std::vector<fs::path> SetAsideFiles() {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename().string().starts_with("state.db.corrupt-")) out.push_back(e.path());
    }
    return out;
  }

  fs::path base_;
  fs::path dir_;
};

FileRecord MakeFile(std::string path, std::uint64_t seed, bool with_digest = true) {
  FileRecord f;
  f.path = std::move(path);
  f.kind = EntryKind::kFile;
  f.identity = {.size = seed * 10,
                .mtime_ns = static_cast<std::int64_t>(seed) * 1'000'000'007,
                .ctime_ns = static_cast<std::int64_t>(seed) + 3,
                .inode = seed + 100,
                .device = 42};
  if (with_digest) {
    f.digest = hash::HashBytes(f.path);
    f.has_digest = true;
  }
  return f;
}

RemoteRecord MakeRemote(std::string path, EntryKind kind = EntryKind::kFile) {
  RemoteRecord r;
  r.path = std::move(path);
  r.kind = kind;
  if (kind == EntryKind::kFile) {
    r.size = r.path.size();
    r.digest = hash::HashBytes(r.path);
    r.rev = "rev-" + r.path;
  } else {
    r.has_digest = false;
  }
  return r;
}

mode_t ModeOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::string ReadAll(const fs::path& p) {
  std::string data;
  const int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return data;
  char buf[65536];
  ssize_t n = 0;
  while ((n = read(fd, buf, sizeof(buf))) > 0) data.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return data;
}

void WriteAll(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

void RunSql(const fs::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

TEST_F(StateStoreTest, OpenCreatesPrivateDirAndFiles) {
  std::string warning = "stale";
  auto store = MustOpen(&warning);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(warning, "");
  EXPECT_EQ(store->path(), (dir_ / "state.db").string());
  EXPECT_EQ(ModeOf(dir_), 0700u);
  EXPECT_EQ(ModeOf(dir_ / "state.db"), 0600u);
  auto root = store->RootId("/home/u/docs", "/docs");
  ASSERT_TRUE(root.ok());
  StateStore::Batch batch;
  batch.PutFile(MakeFile("a", 1));
  ASSERT_TRUE(store->Commit(*root, batch).ok());
  ASSERT_TRUE(fs::exists(dir_ / "state.db-wal"));  // WAL mode
  EXPECT_EQ(ModeOf(dir_ / "state.db-wal"), 0600u);
  EXPECT_EQ(ModeOf(dir_ / "lock"), 0600u);
  EXPECT_EQ(ReadAll(dir_ / "lock"), std::to_string(getpid()) + "\n");
}

TEST_F(StateStoreTest, FilesRoundTripAndPersist) {
  std::int64_t root = 0;
  FileRecord big;
  big.path = "dir/\xc3\xa9t\xc3\xa9.txt";
  big.identity = {.size = (1ULL << 63) + 5,
                  .mtime_ns = -1'500'000'000,
                  .ctime_ns = 1,
                  .inode = ~0ULL,
                  .device = (1ULL << 40) + 1};
  big.digest = hash::HashBytes("content");
  big.has_digest = true;
  FileRecord folder;
  folder.path = "dir";
  folder.kind = EntryKind::kFolder;
  folder.identity.inode = 7;
  {
    auto store = MustOpen();
    ASSERT_NE(store, nullptr);
    auto id = store->RootId("/l", "/c");
    ASSERT_TRUE(id.ok());
    root = *id;
    StateStore::Batch batch;
    batch.PutFile(big);
    batch.PutFile(folder);
    batch.PutFile(MakeFile("z", 9, /*with_digest=*/false));
    EXPECT_FALSE(batch.empty());
    ASSERT_TRUE(store->Commit(root, batch).ok());
  }
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const auto files = Files(*store, root);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, "dir");
  EXPECT_EQ(files[0].kind, EntryKind::kFolder);
  EXPECT_EQ(files[0].identity, folder.identity);
  EXPECT_FALSE(files[0].has_digest);
  EXPECT_EQ(files[1].path, big.path);
  EXPECT_EQ(files[1].kind, EntryKind::kFile);
  EXPECT_EQ(files[1].identity, big.identity);
  EXPECT_TRUE(files[1].has_digest);
  EXPECT_EQ(files[1].digest, big.digest);
  EXPECT_EQ(files[2].path, "z");
  EXPECT_FALSE(files[2].has_digest);
  EXPECT_EQ(files[2].identity, MakeFile("z", 9).identity);
}

TEST_F(StateStoreTest, PutFileReplacesAndDeleteFileRemovesOnlyThatPath) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  StateStore::Batch batch;
  batch.PutFile(MakeFile("a", 1));
  batch.PutFile(MakeFile("a/x", 2));
  batch.PutFile(MakeFile("a", 5));
  ASSERT_TRUE(store->Commit(root, batch).ok());
  auto files = Files(*store, root);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].identity, MakeFile("a", 5).identity);
  batch.Clear();
  batch.DeleteFile("a");
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_EQ(FilePaths(*store, root), (std::vector<std::string>{"a/x"}));
}

TEST_F(StateStoreTest, RemoteRoundTrip) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  StateStore::Batch batch;
  RemoteRecord no_hash = MakeRemote("Docs/B.txt");
  no_hash.has_digest = false;
  batch.PutRemote(MakeRemote("Docs", EntryKind::kFolder));
  batch.PutRemote(MakeRemote("Docs/A.txt"));
  batch.PutRemote(no_hash);
  ASSERT_TRUE(store->Commit(root, batch).ok());
  const auto remote = Remote(*store, root);
  ASSERT_EQ(remote.size(), 3u);
  EXPECT_EQ(remote[0].path, "Docs");
  EXPECT_EQ(remote[0].kind, EntryKind::kFolder);
  EXPECT_EQ(remote[1].path, "Docs/A.txt");
  EXPECT_EQ(remote[1].size, 10u);
  EXPECT_EQ(remote[1].rev, "rev-Docs/A.txt");
  EXPECT_TRUE(remote[1].has_digest);
  EXPECT_EQ(remote[1].digest, hash::HashBytes("Docs/A.txt"));
  EXPECT_EQ(remote[2].path, "Docs/B.txt");
  EXPECT_FALSE(remote[2].has_digest);
  EXPECT_TRUE(FilePaths(*store, root).empty());  // the tables are separate
}

TEST_F(StateStoreTest, RootIdsAreStableDistinctAndListed) {
  std::int64_t a = 0;
  std::int64_t b = 0;
  {
    auto store = MustOpen();
    ASSERT_NE(store, nullptr);
    a = *store->RootId("/home/u/a", "/a");
    b = *store->RootId("/home/u/a", "/b");
    EXPECT_NE(a, 0);
    EXPECT_NE(b, 0);
    EXPECT_NE(a, b);
    EXPECT_EQ(*store->RootId("/home/u/a", "/a"), a);
    StateStore::Batch batch;
    batch.PutFile(MakeFile("x", 1));
    batch.PutFile(MakeFile("y", 2));
    ASSERT_TRUE(store->Commit(b, batch).ok());
  }
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->RootId("/home/u/a", "/a"), a);
  EXPECT_EQ(*store->RootId("/home/u/a", "/b"), b);
  auto roots = store->Roots();
  ASSERT_TRUE(roots.ok());
  ASSERT_EQ(roots->size(), 2u);
  EXPECT_EQ((*roots)[0].id, a);
  EXPECT_EQ((*roots)[0].local_dir, "/home/u/a");
  EXPECT_EQ((*roots)[0].cloud_path, "/a");
  EXPECT_EQ((*roots)[0].file_records, 0u);
  EXPECT_EQ((*roots)[1].id, b);
  EXPECT_EQ((*roots)[1].file_records, 2u);
}

TEST_F(StateStoreTest, PrefixDeletesAreExact) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  const std::int64_t other = *store->RootId("/l2", "/c2");
  const std::vector<std::string> paths = {"a", "a-b", "a.txt", "a/x", "a/y/z", "a0", "ab/x", "b"};
  StateStore::Batch batch;
  for (const std::string& p : paths) {
    batch.PutFile(MakeFile(p, 1));
    batch.PutRemote(MakeRemote(p));
  }
  ASSERT_TRUE(store->Commit(root, batch).ok());
  ASSERT_TRUE(store->Commit(other, batch).ok());

  batch.Clear();
  batch.DeleteFilesUnder("a");
  batch.DeleteRemoteUnder("a/y");
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_EQ(FilePaths(*store, root), (std::vector<std::string>{"a-b", "a.txt", "a0", "ab/x", "b"}));
  EXPECT_EQ(RemotePaths(*store, root),
            (std::vector<std::string>{"a", "a-b", "a.txt", "a/x", "a0", "ab/x", "b"}));
  EXPECT_EQ(FilePaths(*store, other), paths);  // other roots untouched

  batch.Clear();
  batch.DeleteRemote("a");
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_EQ(RemotePaths(*store, root),
            (std::vector<std::string>{"a-b", "a.txt", "a/x", "a0", "ab/x", "b"}));

  batch.Clear();
  batch.DeleteFilesUnder("");
  batch.ClearRemote();
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_TRUE(FilePaths(*store, root).empty());
  EXPECT_TRUE(RemotePaths(*store, root).empty());
  EXPECT_EQ(RemotePaths(*store, other), paths);
}

TEST_F(StateStoreTest, MoveUnderRenamesSubtreeInBothTables) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  StateStore::Batch batch;
  for (const std::string p : {"a", "a/x", "a/y/z", "ab/x", "a.txt", "b/old"}) {
    batch.PutFile(MakeFile(p, p.size()));
    batch.PutRemote(MakeRemote(p));
  }
  ASSERT_TRUE(store->Commit(root, batch).ok());
  batch.Clear();
  batch.MoveUnder("a", "b");
  ASSERT_TRUE(store->Commit(root, batch).ok());
  const std::vector<std::string> expected = {"a.txt", "ab/x", "b", "b/x", "b/y/z"};
  EXPECT_EQ(FilePaths(*store, root), expected);
  EXPECT_EQ(RemotePaths(*store, root), expected);
  // Everything but the path travels with the record.
  const auto files = Files(*store, root);
  EXPECT_EQ(files[4].identity, MakeFile("a/y/z", 5).identity);
  EXPECT_EQ(files[4].digest, hash::HashBytes("a/y/z"));
  const auto remote = Remote(*store, root);
  EXPECT_EQ(remote[4].rev, "rev-a/y/z");
}

TEST_F(StateStoreTest, MoveUnderHandlesNestedSourceAndTarget) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  StateStore::Batch batch;
  for (const std::string p : {"p", "p/q", "p/q/r", "p/s"}) batch.PutFile(MakeFile(p, 1));
  batch.MoveUnder("p/q", "p");  // a folder replaces its parent
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_EQ(FilePaths(*store, root), (std::vector<std::string>{"p", "p/r"}));

  batch.Clear();
  batch.MoveUnder("p", "p/sub");  // into its own child (the store does not judge)
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_EQ(FilePaths(*store, root), (std::vector<std::string>{"p/sub", "p/sub/r"}));

  batch.Clear();
  batch.MoveUnder("p/sub", "P/Sub");  // case-only rename
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_EQ(FilePaths(*store, root), (std::vector<std::string>{"P/Sub", "P/Sub/r"}));
}

TEST_F(StateStoreTest, FailedCommitAppliesNothing) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  StateStore::Batch batch;
  batch.PutFile(MakeFile("kept", 1));
  ASSERT_TRUE(store->Commit(root, batch).ok());
  batch.Clear();
  batch.PutFile(MakeFile("new", 1));
  batch.DeleteFile("kept");
  batch.MoveUnder("", "x");  // invalid: fails the whole batch
  const Status s = store->Commit(root, batch);
  EXPECT_EQ(s.kind(), Status::Kind::kInvalidArgument);
  EXPECT_EQ(FilePaths(*store, root), (std::vector<std::string>{"kept"}));
  // The store is still usable afterwards.
  batch.Clear();
  batch.PutFile(MakeFile("after", 1));
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_EQ(FilePaths(*store, root), (std::vector<std::string>{"after", "kept"}));
}

TEST_F(StateStoreTest, CorruptFileIsSetAsideAndRebuilt) {
  fs::create_directories(dir_);
  const std::string garbage(8192, 'G');
  WriteAll(dir_ / "state.db", garbage);
  WriteAll(dir_ / "state.db-wal", "junk wal");
  std::string warning;
  auto store = MustOpen(&warning);
  ASSERT_NE(store, nullptr);
  EXPECT_NE(warning.find("state.db.corrupt-"), std::string::npos) << warning;
  const auto aside = SetAsideFiles();
  ASSERT_EQ(aside.size(), 2u);  // the database and its -wal
  bool found_db = false;
  for (const fs::path& p : aside) {
    if (!p.string().ends_with("-wal")) {
      EXPECT_EQ(ReadAll(p), garbage);
      found_db = true;
    }
  }
  EXPECT_TRUE(found_db);
  const std::int64_t root = *store->RootId("/l", "/c");
  StateStore::Batch batch;
  batch.PutFile(MakeFile("a", 1));
  ASSERT_TRUE(store->Commit(root, batch).ok());
  EXPECT_EQ(FilePaths(*store, root), (std::vector<std::string>{"a"}));
  EXPECT_EQ(ModeOf(dir_ / "state.db"), 0600u);
}

TEST_F(StateStoreTest, DamagedPagesAreDetectedAndSetAside) {
  {
    auto store = MustOpen();
    ASSERT_NE(store, nullptr);
    const std::int64_t root = *store->RootId("/l", "/c");
    StateStore::Batch batch;
    for (int i = 0; i < 2000; ++i) batch.PutFile(MakeFile("f" + std::to_string(i), 1));
    ASSERT_TRUE(store->Commit(root, batch).ok());
  }
  // The store checkpoints on close; mangle every page after the first (the header stays valid).
  const fs::path db = dir_ / "state.db";
  std::string bytes = ReadAll(db);
  ASSERT_GT(bytes.size(), 3u * 4096u);
  for (std::size_t i = 4096; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  WriteAll(db, bytes);
  std::string warning;
  auto store = MustOpen(&warning);
  ASSERT_NE(store, nullptr);
  EXPECT_NE(warning.find("corrupt"), std::string::npos) << warning;
  EXPECT_EQ(SetAsideFiles().size(), 1u);
  EXPECT_EQ(store->Roots()->size(), 0u);
}

TEST_F(StateStoreTest, ForeignSqliteDatabaseIsSetAside) {
  fs::create_directories(dir_);
  RunSql(dir_ / "state.db", "CREATE TABLE photos(id INTEGER); INSERT INTO photos VALUES (1);");
  std::string warning;
  auto store = MustOpen(&warning);
  ASSERT_NE(store, nullptr);
  EXPECT_NE(warning.find("not a filesync state database"), std::string::npos) << warning;
  EXPECT_EQ(SetAsideFiles().size(), 1u);
  EXPECT_TRUE(store->Errors().ok());
}

TEST_F(StateStoreTest, SqliteWithOurVersionButNoMarkerIsSetAside) {
  fs::create_directories(dir_);
  RunSql(dir_ / "state.db", "CREATE TABLE files(x); PRAGMA user_version = 1;");
  std::string warning;
  auto store = MustOpen(&warning);
  ASSERT_NE(store, nullptr);
  EXPECT_NE(warning.find("not a filesync state database"), std::string::npos) << warning;
}

TEST_F(StateStoreTest, NewerSchemaIsSetAside) {
  {
    auto store = MustOpen();
    ASSERT_NE(store, nullptr);
  }
  RunSql(dir_ / "state.db", "PRAGMA user_version = 99;");
  std::string warning;
  auto store = MustOpen(&warning);
  ASSERT_NE(store, nullptr);
  EXPECT_NE(warning.find("newer"), std::string::npos) << warning;
  EXPECT_EQ(SetAsideFiles().size(), 1u);
}

TEST_F(StateStoreTest, ValidStoreIsReopenedWithoutWarning) {
  {
    auto store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(0, "k", "v").ok());
  }
  std::string warning = "stale";
  auto store = MustOpen(&warning);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(warning, "");
  EXPECT_TRUE(SetAsideFiles().empty());
  EXPECT_EQ(store->Get(0, "k")->value_or(""), "v");
}

TEST_F(StateStoreTest, SecondOpenOfSameDirIsRefused) {
  auto first = MustOpen();
  ASSERT_NE(first, nullptr);
  auto second = StateStore::Open(dir_, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().kind(), Status::Kind::kConflict);
  EXPECT_NE(second.status().message().find("state dir " + dir_.string() +
                                           " is in use by another filesync (pid " +
                                           std::to_string(getpid()) + ")"),
            std::string::npos)
      << second.status().message();

  // Another process is refused too.
  const pid_t pid = fork();
  if (pid == 0) {
    auto other = StateStore::Open(dir_, nullptr);
    _exit(!other.ok() && other.status().kind() == Status::Kind::kConflict ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  first.reset();
  EXPECT_NE(MustOpen(), nullptr);  // released with the store
}

// Issue 11 item 10: the lock is on the state directory, so deleting the `lock` file (which only
// names the owner) lets no second store in.
TEST_F(StateStoreTest, DeletingTheOwnerFileDoesNotReleaseTheLock) {
  auto first = StateStore::Open(dir_, nullptr, "run");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(ReadAll(dir_ / "lock"), std::to_string(getpid()) + "\nrun\n");
  ASSERT_EQ(unlink((dir_ / "lock").c_str()), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    auto other = StateStore::Open(dir_, nullptr, "sync");
    _exit(!other.ok() && other.status().kind() == Status::Kind::kConflict ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a second store got in";
  // Holder() names the owner without taking the lock (a writer then still gets it at once).
  auto first_again = StateStore::Open(dir_, nullptr, "run");
  EXPECT_FALSE(first_again.ok());
  (*first).reset();
  EXPECT_FALSE(StateStore::Holder(dir_).has_value());
  auto owner = StateStore::Open(dir_, nullptr, "sync");
  ASSERT_TRUE(owner.ok());
  const auto holder = StateStore::Holder(dir_);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, getpid());
  EXPECT_EQ(holder->command, "sync");
  EXPECT_TRUE((*owner)->CheckLocation().ok());
  // A state dir moved away under its owner is noticed (another filesync could lock a new one).
  fs::rename(dir_, base_ / "moved");
  EXPECT_EQ((*owner)->CheckLocation().kind(), Status::Kind::kNotFound);
}

// Issue 11 item 16: a read-only open changes nothing and refuses to invent a state.
TEST_F(StateStoreTest, ReadOnlyOpenCreatesAndRenamesNothing) {
  auto missing = StateStore::OpenReadOnly(dir_, StateStore::ReadOnly::kDirect);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().kind(), Status::Kind::kNotFound);
  EXPECT_NE(missing.status().message().find("no state at " + dir_.string()), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_));
  {
    auto store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(0, "last_pass", "{}").ok());
    ASSERT_TRUE(store->RootId("/l", "/c").ok());
  }
  auto names = [&] {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.insert(e.path().filename().string());
    return out;
  };
  const auto before = names();
  const std::string bytes = ReadAll(dir_ / "state.db");
  {
    auto direct = StateStore::OpenReadOnly(dir_, StateStore::ReadOnly::kDirect);
    ASSERT_TRUE(direct.ok()) << direct.status().ToString();
    EXPECT_EQ((*direct)->Get(0, "last_pass")->value_or(""), "{}");
    EXPECT_FALSE((*direct)->Put(0, "x", "y").ok()) << "kDirect must not write";
    EXPECT_EQ((*direct)->Roots()->size(), 1u);
  }
  {
    auto copy = StateStore::OpenReadOnly(dir_, StateStore::ReadOnly::kCopy);
    ASSERT_TRUE(copy.ok()) << copy.status().ToString();
    EXPECT_TRUE((*copy)->Put(0, "x", "y").ok()) << "a copy takes writes, in memory";
    EXPECT_TRUE((*copy)->RootId("/other", "/c").ok());
    EXPECT_EQ((*copy)->Get(0, "x")->value_or(""), "y");
  }
  EXPECT_EQ(names(), before);
  EXPECT_EQ(ReadAll(dir_ / "state.db"), bytes);
  // Readable while a writer holds the state dir (through its WAL).
  {
    auto writer = MustOpen();
    ASSERT_NE(writer, nullptr);
    ASSERT_TRUE(writer->Put(0, "last_pass", "{\"n\":2}").ok());
    auto direct = StateStore::OpenReadOnly(dir_, StateStore::ReadOnly::kDirect);
    ASSERT_TRUE(direct.ok()) << direct.status().ToString();
    EXPECT_EQ((*direct)->Get(0, "last_pass")->value_or(""), "{\"n\":2}");
  }
  // A corrupt file is reported as unusable, left where it is.
  WriteAll(dir_ / "state.db", std::string(8192, 'G'));
  fs::remove(dir_ / "state.db-wal");
  fs::remove(dir_ / "state.db-shm");
  const auto corrupt = names();
  auto bad = StateStore::OpenReadOnly(dir_, StateStore::ReadOnly::kDirect);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().kind(), Status::Kind::kPermanent);
  EXPECT_NE(bad.status().message().find("unusable"), std::string::npos);
  EXPECT_EQ(names(), corrupt);
  EXPECT_TRUE(SetAsideFiles().empty());
}

TEST_F(StateStoreTest, KeyValuesPerRootAndGlobal) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  auto missing = store->Get(root, "cursor");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(store->Put(root, "cursor", "c1").ok());
  ASSERT_TRUE(store->Put(0, "cursor", "global").ok());
  ASSERT_TRUE(store->Put(root, "cursor", "c2").ok());
  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(store->Put(root, "bin", binary).ok());
  ASSERT_TRUE(store->Put(root, "empty", "").ok());
  EXPECT_EQ(store->Get(root, "cursor")->value_or(""), "c2");
  EXPECT_EQ(store->Get(0, "cursor")->value_or(""), "global");
  EXPECT_EQ(store->Get(root, "bin")->value_or(""), binary);
  auto empty = store->Get(root, "empty");
  ASSERT_TRUE(empty.ok());
  ASSERT_TRUE(empty->has_value());
  EXPECT_EQ(**empty, "");
  ASSERT_TRUE(store->Erase(root, "cursor").ok());
  EXPECT_FALSE(store->Get(root, "cursor")->has_value());
  EXPECT_EQ(store->Get(0, "cursor")->value_or(""), "global");
  ASSERT_TRUE(store->Erase(root, "never-set").ok());
}

TEST_F(StateStoreTest, ErrorsAreRecordedCountedAndCleared) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/home/u/docs", "/docs");
  const auto before = std::time(nullptr);
  ASSERT_TRUE(store->RecordError(root, "a/x", "permission denied").ok());
  ASSERT_TRUE(store->RecordError(root, "a/x", "still denied").ok());
  ASSERT_TRUE(store->RecordError(root, "a", "folder error").ok());
  ASSERT_TRUE(store->RecordError(root, "ab", "sibling").ok());
  ASSERT_TRUE(store->RecordError(root, "a.txt", "sibling file").ok());
  auto errors = store->Errors();
  ASSERT_TRUE(errors.ok());
  ASSERT_EQ(errors->size(), 4u);
  const ErrorRecord& e = (*errors)[2];  // by path: a, a.txt, a/x, ab
  EXPECT_EQ(e.path, "a/x");
  EXPECT_EQ(e.root, "/home/u/docs");
  EXPECT_EQ(e.root_id, root);
  EXPECT_EQ(e.message, "still denied");
  EXPECT_EQ(e.attempts, 2);
  EXPECT_GE(e.first_seen_unix, before);
  EXPECT_LE(e.first_seen_unix, e.last_seen_unix);
  EXPECT_EQ((*errors)[0].attempts, 1);

  ASSERT_TRUE(store->ClearErrorsUnder(root, "a").ok());
  errors = store->Errors();
  ASSERT_EQ(errors->size(), 2u);
  EXPECT_EQ((*errors)[0].path, "a.txt");
  EXPECT_EQ((*errors)[1].path, "ab");
  ASSERT_TRUE(store->ClearError(root, "ab").ok());
  ASSERT_EQ(store->Errors()->size(), 1u);
  ASSERT_TRUE(store->ClearErrorsUnder(root, "").ok());
  EXPECT_TRUE(store->Errors()->empty());
}

TEST_F(StateStoreTest, ForgetRootRemovesEverythingOfThatRootOnly) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t a = *store->RootId("/a", "/a");
  const std::int64_t b = *store->RootId("/b", "/b");
  StateStore::Batch batch;
  batch.PutFile(MakeFile("f", 1));
  batch.PutRemote(MakeRemote("f"));
  ASSERT_TRUE(store->Commit(a, batch).ok());
  ASSERT_TRUE(store->Commit(b, batch).ok());
  ASSERT_TRUE(store->Put(a, "k", "v").ok());
  ASSERT_TRUE(store->RecordError(a, "f", "e").ok());
  ASSERT_TRUE(store->ForgetRoot(a).ok());
  EXPECT_TRUE(FilePaths(*store, a).empty());
  EXPECT_TRUE(RemotePaths(*store, a).empty());
  EXPECT_FALSE(store->Get(a, "k")->has_value());
  EXPECT_TRUE(store->Errors()->empty());
  EXPECT_EQ(store->Roots()->size(), 1u);
  EXPECT_EQ(FilePaths(*store, b), (std::vector<std::string>{"f"}));
}

TEST_F(StateStoreTest, ConcurrentCallsFromSeveralThreads) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        StateStore::Batch batch;
        const std::string path = "t" + std::to_string(t) + "/f" + std::to_string(i);
        batch.PutFile(MakeFile(path, static_cast<std::uint64_t>(i)));
        if (!store->Commit(root, batch).ok()) ++failures;
        if (!store->Put(root, path, "v").ok()) ++failures;
        if (!store->RecordError(root, path, "e").ok()) ++failures;
        std::size_t n = 0;
        if (!store->LoadFiles(root, [&](FileRecord&&) { ++n; }).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(FilePaths(*store, root).size(), 200u);
  EXPECT_EQ(store->Errors()->size(), 200u);
}

// Prints (does not assert) the timings the engine relies on: a commit of 10,000 PutFile and a
// LoadFiles of 100,000 records.
TEST_F(StateStoreTest, PerformanceFigures) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const std::int64_t root = *store->RootId("/l", "/c");
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  double commit_10k = 0;
  for (int chunk = 0; chunk < 10; ++chunk) {
    StateStore::Batch batch;
    for (int i = 0; i < 10'000; ++i) {
      const int n = chunk * 10'000 + i;
      batch.PutFile(MakeFile("dir" + std::to_string(n % 100) + "/file" + std::to_string(n) + ".txt",
                             static_cast<std::uint64_t>(n)));
    }
    const auto start = Clock::now();
    ASSERT_TRUE(store->Commit(root, batch).ok());
    if (chunk == 9) commit_10k = ms(Clock::now() - start);
  }
  std::size_t loaded = 0;
  const auto start = Clock::now();
  ASSERT_TRUE(store->LoadFiles(root, [&](FileRecord&&) { ++loaded; }).ok());
  const double load_100k = ms(Clock::now() - start);
  EXPECT_EQ(loaded, 100'000u);
  std::printf("commit of 10000 PutFile: %.1f ms; LoadFiles of 100000 records: %.1f ms\n",
              commit_10k, load_100k);
}

}  // namespace
}  // namespace filesync::store
