// What independent clients rely on and Dropbox does (issue 11, found by pointing rclone 1.60 at
// the emulator): a doubled leading slash in a path (the .stone patterns allow it; rclone lists
// "//dir"), raw UTF-8 in Dropbox-API-Arg (accepted unless --strict-arg-header), and Range on
// downloads (RFC 7233: 206 with Content-Range, 416 with "bytes */size").
#include <set>

#include "emulator_fixture.h"

namespace filesync::emulator_test {
namespace {

using InteropTest = EmulatorTest;

std::set<std::string> Names(const Response& listing) {
  std::set<std::string> out;
  const nlohmann::json body = listing.json();
  for (const auto& e : body["entries"]) out.insert(e["name"].get<std::string>());
  return out;
}

TEST_F(InteropTest, DoubledLeadingSlashNamesTheSamePath) {
  PutFile("/Folder/a.txt", "a");
  ASSERT_EQ(Rpc("files/create_folder_v2", {{"path", "/Folder/sub"}}).status, 200);

  // What rclone 1.60 sends for a folder below a remote rooted at the Dropbox root.
  auto listing = Rpc("files/list_folder", {{"path", "//folder"}});
  ASSERT_EQ(listing.status, 200) << listing.body;
  EXPECT_EQ(Names(listing), (std::set<std::string>{"a.txt", "sub"}));
  const nlohmann::json listed = listing.json();  // a range-for over a temporary's member dangles
  for (const auto& e : listed["entries"]) {
    EXPECT_EQ(e["path_display"].get<std::string>().rfind("/Folder/", 0), 0u) << e.dump();
    EXPECT_EQ(e["path_lower"].get<std::string>().rfind("/folder/", 0), 0u) << e.dump();
  }
  auto deeper = Rpc("files/list_folder", {{"path", "//folder/sub"}});
  ASSERT_EQ(deeper.status, 200) << deeper.body;
  EXPECT_TRUE(deeper.json()["entries"].empty());

  auto md = Rpc("files/get_metadata", {{"path", "///folder/A.TXT"}});
  ASSERT_EQ(md.status, 200) << md.body;
  EXPECT_EQ(md.json()["path_display"], "/Folder/a.txt");
  auto bytes = Download("//folder/a.txt");
  EXPECT_EQ(bytes.status, 200) << bytes.body;
  EXPECT_EQ(bytes.body, "a");

  // Writes land at the single-slash path, not at a folder with an empty name.
  auto up = Upload("files/upload", {{"path", "//Up/b.txt"}}, "b");
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(up.json()["path_display"], "/Up/b.txt");
  EXPECT_EQ(Rpc("files/get_metadata", {{"path", "/up/b.txt"}}).status, 200);
  auto moved = Rpc("files/move_v2", {{"from_path", "//up/b.txt"}, {"to_path", "//up/c.txt"}});
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(moved.json()["metadata"]["path_display"], "/Up/c.txt");
  auto root = Rpc("files/list_folder", {{"path", ""}});
  EXPECT_EQ(Names(root), (std::set<std::string>{"Folder", "Up"}));

  // Only the leading run collapses: an empty component further in, or slashes only, is still
  // malformed (docs/emulator.md).
  EXPECT_EQ(Expect409(Rpc("files/get_metadata", {{"path", "/folder//a.txt"}})),
            "path/malformed_path");
  EXPECT_EQ(Expect409(Rpc("files/list_folder", {{"path", "//"}})), "path/malformed_path");
}

class LenientHeaderTest : public EmulatorTest {
 protected:
  void SetUp() override {
    emu_.set_strict_arg_header(false);  // the emulator's default, as a user would start it
    EmulatorTest::SetUp();
  }
};

TEST_F(LenientHeaderTest, RawUtf8InArgHeaderIsAcceptedByDefault) {
  // "/Réport/naïve.txt" as raw UTF-8 bytes, as rclone 1.60 sends it.
  auto up = UploadRawHeader("files/upload", "{\"path\":\"/R\xc3\xa9port/na\xc3\xafve.txt\"}", "x");
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(up.json()["path_display"], "/R\u00e9port/na\u00efve.txt");

  auto c = Client();
  httplib::Headers h = Auth();
  h.emplace("Dropbox-API-Arg", "{\"path\":\"/r\xc3\xa9port/NA\xc3\x8fVE.txt\"}");
  auto down = c->Post("/2/files/download", h, "", "application/octet-stream");
  ASSERT_TRUE(down);
  EXPECT_EQ(down->status, 200) << down->body;
  EXPECT_EQ(down->body, "x");
}

TEST_F(LenientHeaderTest, ControlBytesAndInvalidUtf8InArgHeaderAre400) {
  // DEL and other control characters are no HTTP field content; 0xFF is no UTF-8.
  for (const std::string& bad :
       {std::string("{\"path\":\"/del\x7f.txt\"}"), std::string("{\"path\":\"/bad\xff.txt\"}"),
        std::string("{\"path\":\"/cut\xc3\"}")}) {
    auto r = UploadRawHeader("files/upload", bad, "x");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.content_type().rfind("text/plain", 0), 0u) << r.content_type();
  }
  EXPECT_EQ(Rpc("files/list_folder", {{"path", ""}}).json()["entries"].size(), 0u);
}

// EmulatorProcess passes --strict-arg-header unless told otherwise, so filesync's own tests
// catch a header it forgot to escape although Dropbox would take it.
TEST_F(InteropTest, StrictArgHeaderRefusesRawUtf8ButTakesEscapes) {
  auto raw = UploadRawHeader("files/upload", "{\"path\":\"/R\xc3\xa9port.txt\"}", "x");
  EXPECT_EQ(raw.status, 400) << raw.body;
  EXPECT_NE(raw.body.find("--strict-arg-header"), std::string::npos) << raw.body;
  auto escaped = UploadRawHeader("files/upload", R"({"path":"/R\u00e9port.txt"})", "x");
  EXPECT_EQ(escaped.status, 200) << escaped.body;
}

class RangeTest : public EmulatorTest {
 protected:
  // files/download of `path` with `range` as the Range header, on `client` if given.
  Response Get(const std::string& path, const std::string& range,
               httplib::Client* client = nullptr) {
    std::unique_ptr<httplib::Client> own;
    if (client == nullptr) {
      own = Client();
      client = own.get();
    }
    httplib::Headers h = Auth();
    h.emplace("Dropbox-API-Arg", nlohmann::json{{"path", path}}.dump(-1, ' ', true));
    if (!range.empty()) h.emplace("Range", range);
    return From(client->Post("/2/files/download", h, "", "application/octet-stream"));
  }
};

TEST_F(RangeTest, SingleRangesAnswer206WithContentRange) {
  PutFile("/r.bin", "0123456789");
  struct Case {
    std::string range, body, content_range;
  };
  const std::vector<Case> cases = {
      {"bytes=2-5", "2345", "bytes 2-5/10"},       {"bytes=7-", "789", "bytes 7-9/10"},
      {"bytes=-3", "789", "bytes 7-9/10"},         {"bytes=8-100", "89", "bytes 8-9/10"},
      {"bytes=-30", "0123456789", "bytes 0-9/10"}, {"bytes=0-0", "0", "bytes 0-0/10"},
      {"bytes=9-9", "9", "bytes 9-9/10"},          {"BYTES = 3-4", "", ""},
      {"bytes= 3-4", "34", "bytes 3-4/10"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.range);
    auto r = Get("/R.BIN", c.range);
    if (c.content_range.empty()) {  // not a byte-range set: the header is ignored
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, "0123456789");
      continue;
    }
    EXPECT_EQ(r.status, 206) << r.body;
    EXPECT_EQ(r.body, c.body);
    EXPECT_EQ(r.header("Content-Range"), c.content_range);
    EXPECT_EQ(r.header("Content-Length"), std::to_string(c.body.size()));
    // The result header still describes the whole file.
    auto md = nlohmann::json::parse(r.header("Dropbox-API-Result"), nullptr, false);
    ASSERT_TRUE(md.is_object()) << r.header("Dropbox-API-Result");
    EXPECT_EQ(md["size"], 10);
  }
}

TEST_F(RangeTest, UnsatisfiableRangesAnswer416WithTheSize) {
  PutFile("/r.bin", "0123456789");
  PutFile("/empty.bin", "");
  auto c = Client();
  c->set_keep_alive(true);
  for (const auto& [path, range, size] : std::vector<std::tuple<std::string, std::string, int>>{
           {"/r.bin", "bytes=10-", 10},
           {"/r.bin", "bytes=10-20", 10},
           {"/r.bin", "bytes=99999999999999999999999-", 10},
           {"/r.bin", "bytes=-0", 10},
           {"/empty.bin", "bytes=0-", 0},
           {"/empty.bin", "bytes=-5", 0}}) {
    SCOPED_TRACE(path + " " + range);
    auto r = Get(path, range, c.get());
    EXPECT_EQ(r.status, 416) << r.body;
    EXPECT_EQ(r.header("Content-Range"), "bytes */" + std::to_string(size));
    EXPECT_TRUE(r.header("Dropbox-API-Result").empty());
  }
  // The connection stays usable after the refusals.
  auto whole = Get("/r.bin", "", c.get());
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body, "0123456789");
}

TEST_F(RangeTest, MultipleRangesOrOtherUnitsGetTheWholeFile) {
  PutFile("/r.bin", "0123456789");
  for (const std::string range : {"bytes=0-1,4-5", "bytes=0-1, 7-", "items=0-1"}) {
    SCOPED_TRACE(range);
    auto r = Get("/r.bin", range);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "0123456789");
    EXPECT_TRUE(r.header("Content-Range").empty()) << r.header("Content-Range");
  }
}

TEST_F(RangeTest, RangeLeavesErrorBodiesWhole) {
  auto r = Get("/missing.bin", "bytes=0-3");
  EXPECT_EQ(Expect409(r), "path/not_found");
  EXPECT_TRUE(r.header("Content-Range").empty());
}

TEST_F(RangeTest, RangeAcrossReadChunksOfALargeFile) {
  // Over 1 MiB so the body is read from disk in more than one piece.
  std::string data(3 * kMiB + 17, '\0');
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>((i * 31 + i / 7) & 0xFF);
  PutFile("/big.bin", data);
  const std::uint64_t first = kMiB - 5;
  const std::uint64_t last = 2 * kMiB + kMiB / 2;
  auto r = Get("/big.bin", "bytes=" + std::to_string(first) + "-" + std::to_string(last));
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(r.header("Content-Range"), "bytes " + std::to_string(first) + "-" +
                                           std::to_string(last) + "/" +
                                           std::to_string(data.size()));
  EXPECT_TRUE(r.body == data.substr(first, last - first + 1)) << "range bytes differ";
  auto tail = Get("/big.bin", "bytes=-100");
  ASSERT_EQ(tail.status, 206);
  EXPECT_TRUE(tail.body == data.substr(data.size() - 100)) << "suffix bytes differ";
}

}  // namespace
}  // namespace filesync::emulator_test
