// list_folder cursors (reference §5): pagination, continue with upserts and deletes, reset,
// get_latest_cursor and longpoll.
#include <chrono>
#include <thread>

#include "emulator_fixture.h"

namespace filesync::emulator_test {
namespace {

using CursorTest = EmulatorTest;

// Follows has_more; returns all entries and the final cursor.
std::pair<nlohmann::json, std::string> Drain(
    Response first, const std::function<Response(const std::string&)>& next) {
  nlohmann::json all = nlohmann::json::array();
  Response r = std::move(first);
  while (true) {
    EXPECT_EQ(r.status, 200) << r.body;
    const nlohmann::json j = r.json();
    if (!j.is_object()) return {all, ""};
    for (const auto& e : j["entries"]) all.push_back(e);
    if (!j["has_more"].get<bool>()) return {all, j["cursor"]};
    r = next(j["cursor"]);
  }
}

TEST_F(CursorTest, PaginationWithLimit) {
  for (int i = 0; i < 7; ++i) PutFile("/p/f" + std::to_string(i), "x");
  auto first = Rpc("files/list_folder", {{"path", "/p"}, {"limit", 2}});
  ASSERT_EQ(first.status, 200);
  EXPECT_TRUE(first.json()["has_more"].get<bool>());
  EXPECT_LE(first.json()["entries"].size(), 3u);
  auto [all, cursor] = Drain(first, [&](const std::string& c) {
    return Rpc("files/list_folder/continue", {{"cursor", c}});
  });
  std::set<std::string> names;
  for (const auto& e : all) names.insert(e["name"]);
  EXPECT_EQ(names.size(), 7u);
  EXPECT_FALSE(cursor.empty());
}

TEST_F(CursorTest, ContinueReportsUpsertsAndDeletes) {
  PutFile("/w/keep.txt", "k");
  PutFile("/w/dir/inner.txt", "i");
  auto list = Rpc("files/list_folder", {{"path", ""}, {"recursive", true}});
  ASSERT_EQ(list.status, 200);
  auto [entries, cursor] = Drain(list, [&](const std::string& c) {
    return Rpc("files/list_folder/continue", {{"cursor", c}});
  });
  EXPECT_EQ(entries.size(), 4u);

  PutFile("/w/new.txt", "n");
  ASSERT_EQ(Rpc("files/delete_v2", {{"path", "/w/dir"}}).status, 200);
  ASSERT_EQ(Rpc("files/delete_v2", {{"path", "/w/keep.txt"}}).status, 200);

  auto changes = Rpc("files/list_folder/continue", {{"cursor", cursor}});
  ASSERT_EQ(changes.status, 200) << changes.body;
  std::map<std::string, std::string> seen;  // path_lower -> last .tag
  const nlohmann::json body = changes.json();
  for (const auto& e : body["entries"]) seen[e["path_lower"]] = e[".tag"];
  EXPECT_EQ(seen["/w/new.txt"], "file");
  EXPECT_EQ(seen["/w/dir"], "deleted");
  EXPECT_EQ(seen["/w/keep.txt"], "deleted");
  EXPECT_EQ(seen.count("/w/dir/inner.txt") == 0 || seen["/w/dir/inner.txt"] == "deleted", true);

  // Nothing new since: an empty page.
  auto again = Rpc("files/list_folder/continue", {{"cursor", body["cursor"]}});
  ASSERT_EQ(again.status, 200);
  EXPECT_TRUE(again.json()["entries"].empty());
  EXPECT_FALSE(again.json()["has_more"].get<bool>());
}

// A folder above the listed one deleted or moved away takes the listed folder with it: the
// cursor says so with a deleted entry for the listed folder (and the longpoll wakes for it).
TEST_F(CursorTest, AncestorDeletedOrMovedAwayIsReportedAsTheListedFolderDeleted) {
  for (const std::string how : {"delete", "move"}) {
    PutFile("/Top/Mirror/a.txt", "a");
    PutFile("/Top/other.txt", "o");
    auto list = Rpc("files/list_folder", {{"path", "/Top/Mirror"}, {"recursive", true}});
    ASSERT_EQ(list.status, 200);
    auto [entries, cursor] = Drain(list, [&](const std::string& c) {
      return Rpc("files/list_folder/continue", {{"cursor", c}});
    });
    PutFile("/Top/other.txt", "outside the listed folder: not reported");
    if (how == "delete") {
      ASSERT_EQ(Rpc("files/delete_v2", {{"path", "/Top"}}).status, 200);
    } else {
      ASSERT_EQ(Rpc("files/move_v2", {{"from_path", "/Top"}, {"to_path", "/Moved"}}).status, 200);
    }
    auto poll = Rpc("files/list_folder/longpoll", {{"cursor", cursor}, {"timeout", 30}});
    EXPECT_EQ(poll.json()["changes"], true) << how;
    auto changes = Rpc("files/list_folder/continue", {{"cursor", cursor}});
    ASSERT_EQ(changes.status, 200) << changes.body;
    const nlohmann::json got = changes.json()["entries"];
    ASSERT_EQ(got.size(), 1u) << how << ": " << got.dump();
    EXPECT_EQ(got[0][".tag"], "deleted");
    EXPECT_EQ(got[0]["path_lower"], "/top/mirror");
    EXPECT_EQ(got[0]["path_display"], "/Top/Mirror");
    if (how == "move") {
      ASSERT_EQ(Rpc("files/delete_v2", {{"path", "/Moved"}}).status, 200);
    }
  }
}

TEST_F(CursorTest, NonRecursiveScopeOnlySeesDirectChildren) {
  ASSERT_EQ(Rpc("files/create_folder_v2", {{"path", "/top"}}).status, 200);
  auto cursor = Rpc("files/list_folder/get_latest_cursor", {{"path", "/top"}});
  ASSERT_EQ(cursor.status, 200) << cursor.body;
  PutFile("/top/a.txt", "a");
  PutFile("/top/deep/b.txt", "b");
  PutFile("/elsewhere.txt", "c");
  auto changes = Rpc("files/list_folder/continue", {{"cursor", cursor.json()["cursor"]}});
  ASSERT_EQ(changes.status, 200);
  std::set<std::string> paths;
  const nlohmann::json body = changes.json();
  for (const auto& e : body["entries"]) paths.insert(e["path_lower"]);
  EXPECT_EQ(paths, (std::set<std::string>{"/top/a.txt", "/top/deep"}));
}

TEST_F(CursorTest, IncludeDeletedListsTombstones) {
  PutFile("/t/gone.txt", "g");
  ASSERT_EQ(Rpc("files/delete_v2", {{"path", "/t/gone.txt"}}).status, 200);
  PutFile("/t/here.txt", "h");
  auto without = Rpc("files/list_folder", {{"path", "/t"}});
  EXPECT_EQ(without.json()["entries"].size(), 1u);
  auto with = Rpc("files/list_folder", {{"path", "/t"}, {"include_deleted", true}});
  ASSERT_EQ(with.status, 200);
  const nlohmann::json body = with.json();
  bool saw_deleted = false;
  for (const auto& e : body["entries"])
    saw_deleted |= e[".tag"] == "deleted" && e["name"] == "gone.txt";
  EXPECT_TRUE(saw_deleted) << with.body;
}

TEST_F(CursorTest, ResetCursorsMakesContinue409Reset) {
  PutFile("/r.txt", "r");
  auto list = Rpc("files/list_folder", {{"path", ""}});
  ASSERT_EQ(list.status, 200);
  const std::string cursor = list.json()["cursor"];
  auto c = Client();
  ASSERT_EQ(c->Post("/admin/reset_cursors")->status, 200);
  auto r = Rpc("files/list_folder/continue", {{"cursor", cursor}});
  EXPECT_EQ(Expect409(r), "reset");
  auto poll = Rpc("files/list_folder/longpoll", {{"cursor", cursor}});
  EXPECT_EQ(Expect409(poll), "reset");
  auto garbage = Rpc("files/list_folder/continue", {{"cursor", "not-a-cursor"}});
  EXPECT_EQ(garbage.status, 400);
}

TEST_F(CursorTest, LongpollNeedsNoAuthAndReportsChanges) {
  auto latest = Rpc("files/list_folder/get_latest_cursor", {{"path", ""}, {"recursive", true}});
  ASSERT_EQ(latest.status, 200);
  const std::string cursor = latest.json()["cursor"];
  auto c = Client();
  // No Authorization header; the emulator caps the wait with --longpoll-max-s 2.
  const auto t0 = std::chrono::steady_clock::now();
  auto idle =
      From(c->Post("/2/files/list_folder/longpoll",
                   nlohmann::json{{"cursor", cursor}, {"timeout", 30}}.dump(), "application/json"));
  ASSERT_EQ(idle.status, 200) << idle.body;
  EXPECT_FALSE(idle.json()["changes"].get<bool>());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));

  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    PutFile("/poke.txt", "p");
  });
  auto woke = From(c->Post("/2/files/list_folder/longpoll",
                           nlohmann::json{{"cursor", cursor}}.dump(), "application/json"));
  writer.join();
  ASSERT_EQ(woke.status, 200);
  EXPECT_TRUE(woke.json()["changes"].get<bool>());
  auto bad_timeout =
      From(c->Post("/2/files/list_folder/longpoll",
                   nlohmann::json{{"cursor", cursor}, {"timeout", 5}}.dump(), "application/json"));
  EXPECT_EQ(bad_timeout.status, 400);
}

}  // namespace
}  // namespace filesync::emulator_test
