// Route happy paths and error shapes, written from the reference (§2, §4, §6-§10, §13).
#include <regex>

#include "emulator_fixture.h"
#include "hash/content_hash.h"

namespace filesync::emulator_test {
namespace {

constexpr const char* kHelloHash =
    "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50";

using RoutesTest = EmulatorTest;

void ExpectFileMetadata(const nlohmann::json& md) {
  static const std::regex kTime(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)");
  static const std::regex kRev("[0-9a-f]{9,}");
  ASSERT_TRUE(md.is_object());
  EXPECT_TRUE(md.contains("name"));
  EXPECT_TRUE(md.contains("path_lower"));
  EXPECT_TRUE(md.contains("path_display"));
  EXPECT_EQ(md.value("id", "").rfind("id:", 0), 0u);
  EXPECT_TRUE(std::regex_match(md.value("rev", ""), kRev)) << md.dump();
  EXPECT_TRUE(std::regex_match(md.value("server_modified", ""), kTime)) << md.dump();
  EXPECT_TRUE(std::regex_match(md.value("client_modified", ""), kTime)) << md.dump();
  EXPECT_TRUE(md.contains("size"));
  EXPECT_EQ(md.value("content_hash", "").size(), 64u);
}

TEST_F(RoutesTest, AccountRoutes) {
  auto acc = RpcRaw("users/get_current_account", "null");
  ASSERT_EQ(acc.status, 200) << acc.body;
  EXPECT_EQ(acc.json()["account_id"].get<std::string>().rfind("dbid:", 0), 0u);
  // users_common.stone: AccountId = String(max_length=40, min_length=40).
  EXPECT_EQ(acc.json()["account_id"].get<std::string>().size(), 40u) << acc.body;
  EXPECT_EQ(acc.json()["root_info"][".tag"], "user");
  EXPECT_TRUE(acc.json()["root_info"].contains("root_namespace_id"));

  auto acc_no_body = RpcRaw("users/get_current_account", "", "");
  EXPECT_EQ(acc_no_body.status, 200) << acc_no_body.body;

  PutFile("/a.txt", "hello");
  auto usage = RpcRaw("users/get_space_usage", "null");
  ASSERT_EQ(usage.status, 200);
  EXPECT_EQ(usage.json()["used"], 5);
  EXPECT_EQ(usage.json()["allocation"][".tag"], "individual");

  auto echo = Rpc("check/user", {{"query", "foo"}});
  ASSERT_EQ(echo.status, 200);
  EXPECT_EQ(echo.json()["result"], "foo");
}

TEST_F(RoutesTest, UploadIsCaseInsensitiveAndCasePreserving) {
  auto up = Upload("files/upload", {{"path", "/A/B.txt"}, {"mode", "add"}}, "hello");
  ASSERT_EQ(up.status, 200) << up.body;
  ExpectFileMetadata(up.json());
  EXPECT_EQ(up.json()["content_hash"], kHelloHash);
  EXPECT_EQ(up.json()["size"], 5);

  auto md = Rpc("files/get_metadata", {{"path", "/a/b.TXT"}});
  ASSERT_EQ(md.status, 200) << md.body;
  EXPECT_EQ(md.json()[".tag"], "file");
  EXPECT_EQ(md.json()["path_display"], "/A/B.txt");
  EXPECT_EQ(md.json()["path_lower"], "/a/b.txt");
  EXPECT_EQ(md.json()["name"], "B.txt");
  EXPECT_EQ(md.json()["id"], up.json()["id"]);

  auto parent = Rpc("files/get_metadata", {{"path", "/a"}});
  ASSERT_EQ(parent.status, 200);
  EXPECT_EQ(parent.json()[".tag"], "folder");
  EXPECT_EQ(parent.json()["name"], "A");

  // Another case of an existing parent keeps the parent's display case.
  auto up2 = Upload("files/upload", {{"path", "/a/c.txt"}}, "x");
  ASSERT_EQ(up2.status, 200);
  EXPECT_EQ(up2.json()["path_display"], "/A/c.txt");
}

TEST_F(RoutesTest, UnicodeEscapedHeaderIsAcceptedAndNormalised) {
  // §1.4 test vector; the emulator stores NFC.
  const std::string path = "/R\u00e9port/\U0001F600 na\u00efve.txt";
  auto up = UploadRawHeader(
      "files/upload", R"({"path":"/R\u00e9port/\ud83d\ude00 na\u00efve.txt","mode":"add"})", "x");
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(up.json()["path_display"], path);
  // NFD spelling of é finds the same file.
  auto md = Rpc("files/get_metadata", {{"path", "/Re\u0301port/\U0001F600 NA\u00cfVE.txt"}});
  EXPECT_EQ(md.status, 200) << md.body;
}

TEST_F(RoutesTest, RawNonAsciiHeaderIs400PlainText) {
  auto r = UploadRawHeader("files/upload", "{\"path\":\"/R\xc3\xa9port.txt\"}", "x");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type().rfind("text/plain", 0), 0u) << r.content_type();
}

// A header line over the HTTP server's limit is refused before any route runs, with the body
// unread. The connection must not be offered for reuse: a keep-alive client's next request
// would otherwise be parsed from the stale body and get a 400 that is not its own.
TEST_F(RoutesTest, OversizeHeaderRefusalClosesTheConnection) {
  auto c = Client();
  c->set_keep_alive(true);
  httplib::Headers h = Auth();
  h.emplace("Dropbox-API-Arg", R"({"path":"/)" + std::string(9000, 'a') + R"("})");
  auto refused =
      c->Post("/2/files/upload", h, std::string(30000, '\x01'), "application/octet-stream");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  EXPECT_EQ(refused->get_header_value("Connection"), "close");
  EXPECT_NE(refused->body.find("8 KiB"), std::string::npos) << refused->body;
  for (int i = 0; i < 3; ++i) {
    auto next = c->Post("/2/users/get_current_account", Auth(), "null", "application/json");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200) << "request " << i << " after the refusal: " << next->body;
  }
}
TEST_F(RoutesTest, BadInputIs400PlainText) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"files/list_folder", R"({"path":"/"})"},
      {"files/list_folder", R"({"path":"","bogus":1})"},
      {"files/list_folder", R"({"path":"","recursive":"yes"})"},
      {"files/list_folder", R"({"path":"","limit":0})"},
      {"files/list_folder", R"({"path":)"},
      {"files/get_metadata", R"({"path":"no-slash"})"},
      {"files/get_metadata", R"({})"},
      {"files/no_such_route", R"({})"},
  };
  for (const auto& [route, body] : cases) {
    auto r = RpcRaw(route, body);
    EXPECT_EQ(r.status, 400) << route << " " << body << " -> " << r.body;
    EXPECT_EQ(r.content_type().rfind("text/plain", 0), 0u) << route << " " << body;
  }
  auto bad_mode = Upload("files/upload", {{"path", "/x"}, {"mode", "sideways"}}, "");
  EXPECT_EQ(bad_mode.status, 400);
  auto bad_time =
      Upload("files/upload", {{"path", "/x"}, {"client_modified", "2024-05-01 12:00:00"}}, "");
  EXPECT_EQ(bad_time.status, 400);
  auto no_arg = RpcRaw("files/upload", "", "application/octet-stream");
  EXPECT_EQ(no_arg.status, 400);
}

TEST_F(RoutesTest, AuthErrorsAre401Json) {
  auto c = Client();
  auto none = From(c->Post("/2/users/get_current_account", "null", "application/json"));
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.json()["error"][".tag"], "invalid_access_token");
  EXPECT_EQ(none.json()["error_summary"].get<std::string>().rfind("invalid_access_token/", 0), 0u);
  auto wrong = Rpc("check/user", {{"query", "x"}}, "not-a-token");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.json()["error"][".tag"], "invalid_access_token");
}

TEST_F(RoutesTest, ContentHashVerification) {
  auto bad =
      Upload("files/upload", {{"path", "/h.txt"}, {"content_hash", std::string(64, '0')}}, "hello");
  EXPECT_EQ(Expect409(bad), "content_hash_mismatch");
  auto good = Upload("files/upload", {{"path", "/h.txt"}, {"content_hash", kHelloHash}}, "hello");
  EXPECT_EQ(good.status, 200) << good.body;
}

TEST_F(RoutesTest, UploadWriteModes) {
  auto first = PutFile("/m.txt", "one");
  const std::string rev1 = first["rev"];

  // add + identical content: no conflict, rev unchanged.
  auto same = Upload("files/upload", {{"path", "/m.txt"}, {"mode", "add"}}, "one");
  ASSERT_EQ(same.status, 200);
  EXPECT_EQ(same.json()["rev"], rev1);

  // add + different content: path/conflict/file with an upload session holding the data.
  auto conflict = Upload("files/upload", {{"path", "/m.txt"}, {"mode", "add"}}, "two");
  EXPECT_EQ(Expect409(conflict), "path/conflict/file");
  const std::string session = conflict.json()["error"].value("upload_session_id", "");
  EXPECT_FALSE(session.empty());
  auto finish = Upload(
      "files/upload_session/finish",
      {{"cursor", {{"session_id", session}, {"offset", 3}}}, {"commit", {{"path", "/m2.txt"}}}},
      "");
  ASSERT_EQ(finish.status, 200) << finish.body;
  EXPECT_EQ(Download("/m2.txt").body, "two");

  // strict_conflict makes identical content a conflict.
  auto strict = Upload("files/upload",
                       {{"path", "/m.txt"}, {"mode", "add"}, {"strict_conflict", true}}, "one");
  EXPECT_EQ(Expect409(strict), "path/conflict/file");

  // add + autorename.
  auto renamed = Upload("files/upload", {{"path", "/m.txt"}, {"autorename", true}}, "three");
  ASSERT_EQ(renamed.status, 200);
  EXPECT_EQ(renamed.json()["name"], "m (1).txt");

  // overwrite: new rev, same id.
  auto over = Upload("files/upload", {{"path", "/M.TXT"}, {"mode", "overwrite"}}, "four");
  ASSERT_EQ(over.status, 200);
  EXPECT_NE(over.json()["rev"], rev1);
  EXPECT_EQ(over.json()["id"], first["id"]);
  EXPECT_EQ(over.json()["path_display"], "/m.txt");
  const std::string rev2 = over.json()["rev"];

  // update(rev): succeeds with the current rev, conflicts with a stale one.
  auto stale =
      Upload("files/upload", {{"path", "/m.txt"}, {"mode", {{".tag", "update"}, {"update", rev1}}}},
             "five");
  EXPECT_EQ(Expect409(stale), "path/conflict/file");
  auto upd = Upload("files/upload",
                    {{"path", "/m.txt"}, {"mode", {{".tag", "update"}, {"update", rev2}}}}, "five");
  ASSERT_EQ(upd.status, 200) << upd.body;

  // client_modified is stored as sent.
  auto cm = Upload(
      "files/upload",
      {{"path", "/cm.txt"}, {"client_modified", "2024-05-01T12:00:00Z"}, {"mute", true}}, "x");
  ASSERT_EQ(cm.status, 200);
  EXPECT_EQ(cm.json()["client_modified"], "2024-05-01T12:00:00Z");
}

TEST_F(RoutesTest, ConflictsWithFoldersAndFileAncestors) {
  ASSERT_EQ(Rpc("files/create_folder_v2", {{"path", "/dir"}}).status, 200);
  auto onto_folder = Upload("files/upload", {{"path", "/dir"}, {"mode", "overwrite"}}, "x");
  EXPECT_EQ(Expect409(onto_folder), "path/conflict/folder");

  PutFile("/f.txt", "x");
  auto under_file = Upload("files/upload", {{"path", "/f.txt/child"}}, "x");
  EXPECT_EQ(Expect409(under_file), "path/conflict/file_ancestor");

  auto malformed = Upload("files/upload", {{"path", "/trailing/"}}, "x");
  EXPECT_EQ(Expect409(malformed), "path/malformed_path");
  auto disallowed = Upload("files/upload", {{"path", "/x/.DS_Store"}}, "x");
  EXPECT_EQ(Expect409(disallowed), "path/disallowed_name");
}

TEST_F(RoutesTest, CreateFolder) {
  auto r = Rpc("files/create_folder_v2", {{"path", "/New/Sub"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["metadata"]["path_display"], "/New/Sub");
  EXPECT_EQ(r.json()["metadata"]["id"].get<std::string>().rfind("id:", 0), 0u);
  auto again = Rpc("files/create_folder_v2", {{"path", "/new/sub"}});
  EXPECT_EQ(Expect409(again), "path/conflict/folder");
  PutFile("/file", "x");
  auto on_file = Rpc("files/create_folder_v2", {{"path", "/file"}});
  EXPECT_EQ(Expect409(on_file), "path/conflict/file");
  auto auto_renamed = Rpc("files/create_folder_v2", {{"path", "/New/Sub"}, {"autorename", true}});
  ASSERT_EQ(auto_renamed.status, 200);
  EXPECT_EQ(auto_renamed.json()["metadata"]["name"], "Sub (1)");
}

TEST_F(RoutesTest, DeleteV2) {
  auto file = PutFile("/d/x.txt", "x");
  PutFile("/d/y.txt", "y");
  auto del = Rpc("files/delete_v2", {{"path", "/D/X.txt"}});
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(del.json()["metadata"][".tag"], "file");
  EXPECT_EQ(del.json()["metadata"]["id"], file["id"]);
  auto again = Rpc("files/delete_v2", {{"path", "/d/x.txt"}});
  EXPECT_EQ(Expect409(again), "path_lookup/not_found");
  auto wrong_rev = Rpc("files/delete_v2", {{"path", "/d/y.txt"}, {"parent_rev", "0123456789"}});
  EXPECT_EQ(Expect409(wrong_rev), "path_write/conflict/file");
  auto folder = Rpc("files/delete_v2", {{"path", "/d"}});
  ASSERT_EQ(folder.status, 200);
  EXPECT_EQ(folder.json()["metadata"][".tag"], "folder");
  EXPECT_EQ(Rpc("files/get_metadata", {{"path", "/d/y.txt"}}).status, 409);
  auto deleted = Rpc("files/get_metadata", {{"path", "/d/y.txt"}, {"include_deleted", true}});
  ASSERT_EQ(deleted.status, 200);
  EXPECT_EQ(deleted.json()[".tag"], "deleted");
}

TEST_F(RoutesTest, DeleteBatchIsAsyncWithPerEntryResults) {
  PutFile("/b1.txt", "1");
  PutFile("/b2.txt", "2");
  auto launch =
      Rpc("files/delete_batch",
          {{"entries", {{{"path", "/b1.txt"}}, {{"path", "/missing"}}, {{"path", "/B2.txt"}}}}});
  ASSERT_EQ(launch.status, 200) << launch.body;
  ASSERT_EQ(launch.json()[".tag"], "async_job_id");
  auto check = Rpc("files/delete_batch/check", {{"async_job_id", launch.json()["async_job_id"]}});
  ASSERT_EQ(check.status, 200) << check.body;
  ASSERT_EQ(check.json()[".tag"], "complete");
  const nlohmann::json body = check.json();
  const auto& e = body["entries"];
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0][".tag"], "success");
  EXPECT_EQ(e[0]["metadata"][".tag"], "file");
  EXPECT_EQ(e[0]["metadata"]["path_lower"], "/b1.txt");
  EXPECT_EQ(e[1][".tag"], "failure");
  EXPECT_EQ(e[1]["failure"][".tag"], "path_lookup");
  EXPECT_EQ(e[1]["failure"]["path_lookup"][".tag"], "not_found");
  EXPECT_EQ(e[2][".tag"], "success");
  auto bad = Rpc("files/delete_batch/check", {{"async_job_id", "dbjid:nope"}});
  EXPECT_EQ(Expect409(bad), "invalid_async_job_id");
}

TEST_F(RoutesTest, MoveAndCopy) {
  auto file = PutFile("/src/a.txt", "hello");
  auto moved = Rpc("files/move_v2", {{"from_path", "/src/a.txt"}, {"to_path", "/dst/A2.txt"}});
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(moved.json()["metadata"][".tag"], "file");
  EXPECT_EQ(moved.json()["metadata"]["id"], file["id"]);
  EXPECT_EQ(moved.json()["metadata"]["path_display"], "/dst/A2.txt");
  EXPECT_EQ(Download("/dst/a2.txt").body, "hello");

  auto gone = Rpc("files/move_v2", {{"from_path", "/src/a.txt"}, {"to_path", "/x.txt"}});
  EXPECT_EQ(Expect409(gone), "from_lookup/not_found");

  PutFile("/other.txt", "o");
  auto onto = Rpc("files/move_v2", {{"from_path", "/other.txt"}, {"to_path", "/dst/a2.txt"}});
  EXPECT_EQ(Expect409(onto), "to/conflict/file");

  auto into_itself = Rpc("files/move_v2", {{"from_path", "/dst"}, {"to_path", "/dst/inner"}});
  EXPECT_EQ(Expect409(into_itself), "cant_move_folder_into_itself");

  // Case-only rename is refused (reference §9.1); the emulator reports the item in the way.
  auto case_only = Rpc("files/move_v2", {{"from_path", "/other.txt"}, {"to_path", "/OTHER.txt"}});
  EXPECT_EQ(Expect409(case_only), "to/conflict/file");

  // Moving a folder moves its contents; ids survive.
  auto folder = Rpc("files/move_v2", {{"from_path", "/dst"}, {"to_path", "/moved"}});
  ASSERT_EQ(folder.status, 200);
  auto inner = Rpc("files/get_metadata", {{"path", "/moved/a2.txt"}});
  ASSERT_EQ(inner.status, 200);
  EXPECT_EQ(inner.json()["id"], file["id"]);

  auto copy = Rpc("files/copy_v2", {{"from_path", "/moved"}, {"to_path", "/copied"}});
  ASSERT_EQ(copy.status, 200) << copy.body;
  auto copied = Rpc("files/get_metadata", {{"path", "/copied/a2.txt"}});
  ASSERT_EQ(copied.status, 200);
  EXPECT_NE(copied.json()["id"], file["id"]);
  EXPECT_EQ(copied.json()["content_hash"], kHelloHash);
  EXPECT_EQ(Rpc("files/get_metadata", {{"path", "/moved/a2.txt"}}).status, 200);
}

TEST_F(RoutesTest, DownloadReturnsBytesAndResultHeader) {
  PutFile("/dl/\u00e9t\u00e9.bin", std::string("a\0b", 3));
  auto r = Download("/DL/\u00e9t\u00e9.bin");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, std::string("a\0b", 3));
  const std::string header = r.header("Dropbox-API-Result");
  for (char c : header) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
  auto md = nlohmann::json::parse(header, nullptr, false);
  ASSERT_TRUE(md.is_object()) << header;
  EXPECT_EQ(md["size"], 3);
  EXPECT_EQ(md["name"], "\u00e9t\u00e9.bin");
  auto missing = Download("/nope");
  EXPECT_EQ(Expect409(missing), "path/not_found");
}

TEST_F(RoutesTest, ListFolderShapes) {
  PutFile("/l/one.txt", "1");
  ASSERT_EQ(Rpc("files/create_folder_v2", {{"path", "/l/sub"}}).status, 200);
  PutFile("/l/sub/two.txt", "2");
  auto flat = Rpc("files/list_folder", {{"path", "/L"}});
  ASSERT_EQ(flat.status, 200) << flat.body;
  std::set<std::string> names;
  const nlohmann::json flat_body = flat.json();
  for (const auto& e : flat_body["entries"]) {
    EXPECT_TRUE(e.contains(".tag"));
    names.insert(e["name"]);
  }
  EXPECT_EQ(names, (std::set<std::string>{"one.txt", "sub"}));
  EXPECT_FALSE(flat.json()["has_more"].get<bool>());

  auto deep = Rpc("files/list_folder", {{"path", ""}, {"recursive", true}});
  ASSERT_EQ(deep.status, 200);
  std::vector<std::string> order;
  const nlohmann::json deep_body = deep.json();
  for (const auto& e : deep_body["entries"]) order.push_back(e["path_lower"]);
  // Parents come before their children.
  auto pos = [&](const std::string& p) {
    return std::find(order.begin(), order.end(), p) - order.begin();
  };
  EXPECT_LT(pos("/l"), pos("/l/sub"));
  EXPECT_LT(pos("/l/sub"), pos("/l/sub/two.txt"));
  EXPECT_EQ(order.size(), 4u);

  EXPECT_EQ(Expect409(Rpc("files/list_folder", {{"path", "/nope"}})), "path/not_found");
  EXPECT_EQ(Expect409(Rpc("files/list_folder", {{"path", "/l/one.txt"}})), "path/not_folder");
}

TEST_F(RoutesTest, IdPathsResolve) {
  auto file = PutFile("/ids/f.txt", "x");
  auto md = Rpc("files/get_metadata", {{"path", file["id"]}});
  ASSERT_EQ(md.status, 200) << md.body;
  EXPECT_EQ(md.json()["path_lower"], "/ids/f.txt");
}

// --without-routes: the emulator plays a server that predates the optional batch routes.
class WithoutRoutesTest : public EmulatorTest {
 protected:
  std::vector<std::string> ExtraArgs() override {
    return {"--without-routes", "files/move_batch_v2,files/upload_session/append_batch"};
  }
};

TEST_F(WithoutRoutesTest, ListedRoutesAreUnknownAndTheOthersServed) {
  PutFile("/w/a.txt", "hello");
  auto batch = Rpc("files/move_batch_v2",
                   {{"entries", {{{"from_path", "/w/a.txt"}, {"to_path", "/w/b.txt"}}}}});
  EXPECT_EQ(batch.status, 400) << batch.body;
  EXPECT_EQ(batch.content_type().rfind("text/plain", 0), 0u);
  EXPECT_NE(batch.body.find("Unknown API function"), std::string::npos) << batch.body;
  auto append =
      Upload("files/upload_session/append_batch", {{"entries", nlohmann::json::array()}}, "");
  EXPECT_EQ(append.status, 400) << append.body;
  EXPECT_NE(append.body.find("Unknown API function"), std::string::npos) << append.body;

  auto single = Rpc("files/move_v2", {{"from_path", "/w/a.txt"}, {"to_path", "/w/b.txt"}});
  EXPECT_EQ(single.status, 200) << single.body;
  EXPECT_EQ(Download("/w/b.txt").body, "hello");
}

}  // namespace
}  // namespace filesync::emulator_test
