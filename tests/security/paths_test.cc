// Cloud path confinement, in process (issue 5, Security): the checks that keep a cloud path
// inside its root, called directly with the paths a Linux file name can never produce — "..",
// ".", empty components, relative paths, embedded NUL, the staging folder — through every
// LocalCloud operation and config validation of cloud_root. Nothing may be created, moved or
// deleted outside the local cloud dir.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "cloud/local/local_cloud.h"
#include "config/config.h"
#include "core/entry.h"

namespace filesync {
namespace {

namespace fs = std::filesystem;

// Paths that name something outside the root, or are not canonical cloud paths.
const std::vector<std::string> kEscapes = {"/..",
                                           "/../x",
                                           "/a/../../x",
                                           "/a/..",
                                           "/a/../b",
                                           "..",
                                           "../x",
                                           "x",
                                           "a/b",
                                           "/.",
                                           "/./x",
                                           "/a/.",
                                           "//x",
                                           "/a//b",
                                           "/a/",
                                           "/x/../../outside",
                                           std::string("/a\0b", 4),
                                           std::string("/\0/..", 5),
                                           "/.filesync-staging/x",
                                           "/.filesync-staging"};

// Everything under `dir` (relative path -> "d" or file content), symlinks included by name.
std::map<std::string, std::string> Snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string rel = fs::relative(it->path(), dir).string();
    if (it->is_directory() && !it->is_symlink()) {
      out[rel] = "d";
    } else {
      std::ifstream in(it->path(), std::ios::binary);
      out[rel] = std::string(std::istreambuf_iterator<char>(in), {});
    }
  }
  return out;
}

std::string Printable(const std::string& s) {
  std::string out;
  for (char ch : s) out += ch == '\0' ? std::string("\\0") : std::string(1, ch);
  return out;
}

class LocalCloudPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("filesync-security-paths-" + std::to_string(getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_ / "outside" / "x");
    std::ofstream(base_ / "outside" / "x" / "victim") << "victim";
    std::ofstream(base_ / "source.txt") << "payload";
    // The root sits two levels down so that "../.." from it is still inside base_ (observable).
    root_ = base_ / "cloud" / "root";
    cloud_ = std::make_unique<cloud::LocalCloud>(root_);
    ASSERT_TRUE(cloud_->BeginPass({}).ok());
    ASSERT_TRUE(cloud_->CreateFolder("/a").ok());
    ASSERT_TRUE(cloud_->CreateFolder("/b").ok());
  }
  void TearDown() override {
    cloud_.reset();
    fs::remove_all(base_);
  }
  cloud::UploadItem Item(const std::string& cloud_path) const {
    struct stat st {};
    EXPECT_EQ(stat((base_ / "source.txt").c_str(), &st), 0);
    return {.local_path = (base_ / "source.txt").string(),
            .cloud_path = cloud_path,
            .expected = core::IdentityOf(st),
            .mtime_ns = 0};
  }

  fs::path base_, root_;
  std::unique_ptr<cloud::LocalCloud> cloud_;
};

TEST_F(LocalCloudPaths, EveryOperationRefusesPathsThatEscapeTheRoot) {
  const auto before = Snapshot(base_);
  for (const auto& path : kEscapes) {
    SCOPED_TRACE(Printable(path));
    EXPECT_FALSE(cloud_->CreateFolder(path).ok());
    const cloud::UploadItem item = Item(path);
    const auto uploaded = cloud_->Upload(std::span(&item, 1), {});
    ASSERT_EQ(uploaded.size(), 1u);
    EXPECT_FALSE(uploaded[0].ok());
    EXPECT_FALSE(cloud_->Move("/a", path).ok());
    EXPECT_FALSE(cloud_->Move(path, "/c").ok());
    const std::vector<std::string> paths = {path};
    const auto deleted = cloud_->Delete(paths);
    ASSERT_EQ(deleted.size(), 1u);
    EXPECT_FALSE(deleted[0].ok());
    EXPECT_FALSE(cloud_->List(path, "").ok());
  }
  EXPECT_EQ(Snapshot(base_), before) << "something changed on disk";
  // The same operations with good paths do change things (the checks above can fail).
  const cloud::UploadItem good = Item("/a/ok.txt");
  EXPECT_TRUE(cloud_->Upload(std::span(&good, 1), {})[0].ok());
  EXPECT_TRUE(cloud_->Move("/b", "/c").ok());
  EXPECT_NE(Snapshot(base_), before);
}

TEST_F(LocalCloudPaths, DeletingTheRootIsRefused) {
  const std::vector<std::string> paths = {""};
  const auto deleted = cloud_->Delete(paths);
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_FALSE(deleted[0].ok());
  EXPECT_TRUE(fs::is_directory(root_ / "a"));
}

// Someone who can write to the local cloud folder (a shared NAS folder) plants links in it. No
// operation may write, create, rename or delete anything through a link: links are refused where
// a folder is needed, and replaced or removed themselves where they are the entry operated on.
class LocalCloudSymlinks : public LocalCloudPaths {
 protected:
  void SetUp() override {
    LocalCloudPaths::SetUp();
    victim_ = base_ / "outside" / "x";
    ASSERT_TRUE(cloud_->CreateFolder("/d/inner").ok());
    fs::create_directory_symlink(victim_, root_ / "d" / "link");
    fs::create_symlink(victim_ / "victim", root_ / "d" / "file-link");
    fs::create_directory_symlink(victim_, root_ / "d" / "inner" / "link");
    victim_before_ = Snapshot(victim_);
  }
  void ExpectSymlinkRefusal(const Status& s, const std::string& what) {
    EXPECT_FALSE(s.ok()) << what;
    EXPECT_EQ(s.kind(), Status::Kind::kConflict) << what << ": " << s.ToString();
    EXPECT_NE(s.message().find("is a symlink; not following it"), std::string::npos)
        << what << ": " << s.ToString();
    EXPECT_EQ(Snapshot(victim_), victim_before_) << what << " changed the link's target";
  }
  Status UploadTo(const std::string& path) {
    const cloud::UploadItem item = Item(path);
    auto result = cloud_->Upload(std::span(&item, 1), {});
    return result.at(0).ok() ? Status::Ok() : result[0].status();
  }
  Status DeleteOne(const std::string& path) {
    const std::vector<std::string> paths = {path};
    return cloud_->Delete(paths).at(0);
  }

  fs::path victim_;
  std::map<std::string, std::string> victim_before_;
};

TEST_F(LocalCloudSymlinks, NothingIsWrittenThroughALinkToAFolder) {
  ExpectSymlinkRefusal(UploadTo("/d/link/victim"), "upload over a file behind the link");
  ExpectSymlinkRefusal(UploadTo("/d/link/new.txt"), "upload of a new file behind the link");
  ExpectSymlinkRefusal(UploadTo("/d/link/deep/new.txt"), "upload into a new folder behind it");
  ExpectSymlinkRefusal(UploadTo("/d/inner/link/x/new.txt"), "upload two levels behind a link");
  ExpectSymlinkRefusal(cloud_->CreateFolder("/d/link/new"), "create folder behind the link");
  ExpectSymlinkRefusal(cloud_->CreateFolder("/d/link"), "create folder at the link");
  ExpectSymlinkRefusal(DeleteOne("/d/link/victim"), "delete behind the link");
  ExpectSymlinkRefusal(DeleteOne("/d/link/x"), "delete a folder behind the link");
  ExpectSymlinkRefusal(cloud_->Move("/d/link/victim", "/moved").status(), "move out of the link");
  ExpectSymlinkRefusal(cloud_->Move("/a", "/d/link/a").status(), "move into the link");
  ExpectSymlinkRefusal(cloud_->Move("/d/link", "/moved").status(), "move the link itself");
  ExpectSymlinkRefusal(cloud_->List("/d/link", "").status(), "list behind the link");
  EXPECT_TRUE(fs::is_directory(root_ / "a")) << "a refused move keeps its source";
  // The same operations on real folders succeed, so the refusals above can fail.
  EXPECT_TRUE(UploadTo("/d/inner/deep/new.txt").ok());
  EXPECT_TRUE(cloud_->Move("/a", "/d/a").ok());
  EXPECT_TRUE(DeleteOne("/d/inner/deep").ok());
}

TEST_F(LocalCloudSymlinks, ALinkAtTheDestinationIsReplacedNotFollowed) {
  ASSERT_TRUE(UploadTo("/d/file-link").ok());
  EXPECT_FALSE(fs::is_symlink(root_ / "d" / "file-link"));
  std::ifstream in(root_ / "d" / "file-link", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "payload");
  EXPECT_EQ(Snapshot(victim_), victim_before_);
}

TEST_F(LocalCloudSymlinks, DeletingRemovesLinksNotTheirTargets) {
  EXPECT_TRUE(DeleteOne("/d/link").ok());
  EXPECT_FALSE(fs::exists(fs::symlink_status(root_ / "d" / "link")));
  EXPECT_TRUE(DeleteOne("/d/file-link").ok());
  EXPECT_FALSE(fs::exists(fs::symlink_status(root_ / "d" / "file-link")));
  // A folder tree with a link inside: the tree goes, the link's target stays.
  EXPECT_TRUE(DeleteOne("/d").ok());
  EXPECT_FALSE(fs::exists(root_ / "d"));
  EXPECT_EQ(Snapshot(victim_), victim_before_);
  std::vector<std::string> staged;
  for (const auto& e :
       fs::directory_iterator(root_ / cloud::LocalCloud::kStagingName / cloud_->instance()))
    staged.push_back(e.path().filename());
  EXPECT_EQ(staged, std::vector<std::string>{"owner"}) << "the deleted tree is gone";
}

TEST_F(LocalCloudSymlinks, ListingSkipsLinks) {
  auto listed = cloud_->List("/d", "");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  std::vector<std::string> paths;
  for (const auto& change : listed->changes) paths.push_back(change.entry.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/d/inner"}));
}

// The configured cloud dir itself may be reached through a link (a mount, a NAS path).
TEST_F(LocalCloudSymlinks, TheConfiguredRootMayBeALink) {
  const fs::path alias = base_ / "alias";
  fs::create_directory_symlink(root_, alias);
  cloud::LocalCloud via_link(alias);
  ASSERT_TRUE(via_link.BeginPass({}).ok());
  const cloud::UploadItem item = Item("/d/inner/through-alias.txt");
  EXPECT_TRUE(via_link.Upload(std::span(&item, 1), {}).at(0).ok());
  EXPECT_TRUE(fs::is_regular_file(root_ / "d" / "inner" / "through-alias.txt"));
  auto listed = via_link.List("", "");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_FALSE(listed->changes.empty());
}

config::Config ValidConfig() {
  config::Config c;
  c.source = "test.toml";
  c.client_sync_dirs = {"/srv/security-test/docs"};
  c.state_dir = "/srv/security-test/state";
  c.local_cloud_dir = "/srv/security-test/cloud";
  return c;
}

TEST(CloudRootValidation, RootsThatCouldEscapeAreRefused) {
  config::Config good = ValidConfig();
  for (const char* root : {"", "/filesync", "/a/b c/d", "/...", "/..a", "/a..", "/.hidden"}) {
    good.cloud_root = root;
    EXPECT_NO_THROW(config::Validate(good)) << root;
  }
  for (const auto& root : kEscapes) {
    if (root.starts_with("/.filesync-staging")) continue;  // a fine Dropbox folder name
    config::Config c = ValidConfig();
    c.cloud_root = root;
    try {
      config::Validate(c);
      ADD_FAILURE() << "accepted cloud_root " << Printable(root);
    } catch (const config::ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("cloud_root"), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_EQ(what.find('\0'), std::string::npos) << "a NUL is not echoed";
    }
  }
  for (const std::string root : {"/a\\..\\b", "\\x", "/\xff"}) {
    config::Config c = ValidConfig();
    c.cloud_root = root;
    EXPECT_THROW(config::Validate(c), config::ConfigError) << root;
  }
}

TEST(CloudRootValidation, CloudPathForStaysUnderTheRoot) {
  config::Config c = ValidConfig();
  c.cloud_root = "/backup";
  EXPECT_EQ(c.CloudPathFor("/home/me/Documents"), "/backup/Documents");
  EXPECT_EQ(c.CloudPathFor("/home/me/Documents/"), "/backup/Documents");
  EXPECT_EQ(c.CloudPathFor("/home/me/x/../Documents"), "/backup/Documents");
  EXPECT_EQ(c.CloudPathFor("/home/me/Documents/."), "/backup/Documents");
  EXPECT_EQ(c.CloudPathFor("/home/me/Documents/sub/.."), "/backup/Documents");
}

}  // namespace
}  // namespace filesync
