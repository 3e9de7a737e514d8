// Tests for config/config.h, written from the contract in the header and the issue: merge order,
// defaults, a catalogue of bad configs (each error one line naming file, key and fix), secret
// redaction, Describe(), PermissionWarnings(). Every test works in its own temp directory and
// with a scrubbed FILESYNC_* environment.
#include "config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "cloud/local/local_cloud.h"

extern char** environ;

namespace filesync::config {
namespace {

namespace fs = std::filesystem;

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Scrub every variable Load() reads, remembering them for TearDown().
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      if (name.starts_with("FILESYNC_") || name == "XDG_STATE_HOME" || name == "HOME") {
        saved_[name] = entry.substr(entry.find('=') + 1);
      }
    }
    for (const auto& [name, value] : saved_) ::unsetenv(name.c_str());
    char pattern[] = "/tmp/filesync_config_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    tmp_ = pattern;
    dir_ = tmp_ / "config";
    fs::create_directories(dir_);
    fs::create_directories(tmp_ / "home");
    SetEnv("HOME", (tmp_ / "home").string());
  }

  void TearDown() override {
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      if (name.starts_with("FILESYNC_")) pending_unset_.push_back(name);
    }
    for (const std::string& name : pending_unset_) ::unsetenv(name.c_str());
    ::unsetenv("XDG_STATE_HOME");
    ::unsetenv("HOME");
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
    std::error_code ec;
    fs::permissions(tmp_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(tmp_, ec);
  }

  static void SetEnv(const std::string& name, const std::string& value) {
    ::setenv(name.c_str(), value.c_str(), 1);
  }

  // "@" in `content` stands for the temp dir.
  std::string Expand(const std::string& content) const {
    return Replace(content, "@", tmp_.string());
  }

  fs::path Write(const std::string& name, const std::string& content) const {
    const fs::path path = dir_ / name;
    std::ofstream(path) << Expand(content);
    return path;
  }

  LoadOptions Options() const {
    LoadOptions options;
    options.config_dir = dir_;
    return options;
  }

  // A dev.toml that is valid on its own.
  void WriteGoodDev() const {
    Write("dev.toml", "client_sync_dirs = [\"@/docs\"]\nstate_dir = \"@/state\"\n");
  }

  fs::path tmp_;
  fs::path dir_;
  std::map<std::string, std::string> saved_;
  std::vector<std::string> pending_unset_;
};

// ---------------------------------------------------------------------------------------------
// Catalogue of bad configurations

struct BadCase {
  const char* name;
  const char* dev = nullptr;       // config/dev.toml; nullptr: a valid one
  const char* instance = nullptr;  // config/instance.toml; nullptr: absent
  std::vector<std::pair<std::string, std::string>> env = {};  // FILESYNC_* variables
  const char* env_option = nullptr;                           // LoadOptions::env; nullptr: unset
  const char* config_file = nullptr;  // LoadOptions::config_file, relative to the temp dir
  std::string where;                  // expected file (or environment variable) in the message
  const char* key;                    // expected key; "" for whole-file problems
  std::vector<std::string> hints;     // substrings the message must contain (problem and fix)
  const char* forbidden = nullptr;    // must not appear (a secret)
};

// A bad value in config/instance.toml (over a valid dev.toml).
BadCase InInstance(const char* name, const char* instance, const char* key,
                   std::vector<std::string> hints, const char* forbidden = nullptr) {
  return {.name = name,
          .instance = instance,
          .where = "config/instance.toml",
          .key = key,
          .hints = std::move(hints),
          .forbidden = forbidden};
}

// A bad FILESYNC_* variable (over a valid dev.toml).
BadCase InEnvironment(const char* name, const char* variable, const char* value, const char* key,
                      std::vector<std::string> hints) {
  return {.name = name,
          .env = {{variable, value}},
          .where = std::string("environment ") + variable,
          .key = key,
          .hints = std::move(hints)};
}

const std::vector<BadCase>& Catalogue() {
  static const std::vector<BadCase> cases = {
      // --- wrong types ---
      InInstance("PollIntervalNotANumber", "poll_interval = \"soon\"", "poll_interval",
                 {"\"soon\"", "whole seconds", "e.g. poll_interval = 30"}),
      InInstance("PollIntervalFloat", "poll_interval = 1.5", "poll_interval",
                 {"1.5", "whole seconds"}),
      InInstance("PollIntervalBadUnit", "poll_interval = \"5x\"", "poll_interval",
                 {"\"5x\"", "e.g. poll_interval = 30"}),
      InInstance("WorkersString", "workers = \"4\"", "workers", {"1 to 64", "e.g. workers = 4"}),
      InInstance("SyncDirsNotArray", "client_sync_dirs = \"@/docs\"", "client_sync_dirs",
                 {"array of strings", "e.g. client_sync_dirs = ["}),
      InInstance("SyncDirsEntryNotString", "client_sync_dirs = [1]", "client_sync_dirs",
                 {"entry 1", "e.g. client_sync_dirs"}),
      InInstance("ExcludeNotArray", "exclude = \"*.tmp\"", "exclude",
                 {"array of strings", "e.g. exclude ="}),
      InInstance("ExcludeEmptyPattern", "exclude = [\"*.tmp\", \"\"]", "exclude",
                 {"empty pattern", "e.g. exclude ="}),
      InInstance("AppendBatchString", "dbx_append_batch = \"yes\"", "dbx_append_batch",
                 {"true or false", "e.g. dbx_append_batch = true"}),
      InInstance("SecretWrongTypeIsRedacted", "dbx_token = 987654321", "dbx_token",
                 {"<redacted>", "must be a string"}, "987654321"),
      // --- missing keys ---
      {.name = "SyncDirsMissingEverywhere",
       .dev = "state_dir = \"@/state\"",
       .where = "config/dev.toml",
       .key = "client_sync_dirs",
       .hints = {"empty", "config/instance.toml", "FILESYNC_CLIENT_SYNC_DIRS"}},
      InInstance("SyncDirsEmptyInInstance", "client_sync_dirs = []", "client_sync_dirs",
                 {"empty", "config/instance.toml", "FILESYNC_CLIENT_SYNC_DIRS"}),
      InInstance("DropboxWithoutCredentials", "backend = \"dropbox\"", "backend",
                 {"credentials", "dbx_token", "dbx_refresh_token"}),
      // dbx_app_key is set nowhere, so the message names the loaded files.
      {.name = "RefreshTokenWithoutAppKey",
       .instance = "backend = \"dropbox\"\ndbx_refresh_token = \"rt-TOPSECRET-1\"",
       .where = "config/dev.toml + ",
       .key = "dbx_app_key",
       .hints = {"dbx_app_key ="},
       .forbidden = "TOPSECRET"},
      // The refresh token is used whenever it is set (the backend refreshes with it), so an
      // access token beside it does not excuse the missing app key.
      {.name = "RefreshTokenWithoutAppKeyBesideAnAccessToken",
       .instance = "backend = \"dropbox\"\ndbx_token = \"sl-TOPSECRET-2\"\n"
                   "dbx_refresh_token = \"rt-TOPSECRET-3\"",
       .where = "config/dev.toml + ",
       .key = "dbx_app_key",
       .hints = {"dbx_refresh_token needs it", "dbx_app_key ="},
       .forbidden = "TOPSECRET"},
      // --- sync dirs ---
      InInstance("SyncDirRelative", "client_sync_dirs = [\"docs\"]", "client_sync_dirs",
                 {"not an absolute path", "/home/me/docs"}),
      InInstance("SyncDirRoot", "client_sync_dirs = [\"/\"]", "client_sync_dirs",
                 {"\"/\" cannot be synced", "directories under /"}),
      InInstance("SyncDirEmptyString", "client_sync_dirs = [\"\"]", "client_sync_dirs",
                 {"empty entry", "e.g. client_sync_dirs"}),
      InInstance("SyncDirsNested", "client_sync_dirs = [\"@/a\", \"@/a/b\"]", "client_sync_dirs",
                 {"is inside", "nested", "keep only"}),
      InInstance("SyncDirsNestedReverseOrder", "client_sync_dirs = [\"@/a/b/c\", \"@/a\"]",
                 "client_sync_dirs", {"is inside", "keep only"}),
      InInstance("SyncDirsEqualUpToSlash", "client_sync_dirs = [\"@/a\", \"@/a/\"]",
                 "client_sync_dirs", {"same directory", "list each directory once"}),
      InInstance("SyncDirsEqualUpToDot", "client_sync_dirs = [\"@/x/./a\", \"@/x/a\"]",
                 "client_sync_dirs", {"same directory"}),
      InInstance("SyncDirsSameBasename", "client_sync_dirs = [\"@/x/docs\", \"@/y/docs\"]",
                 "client_sync_dirs", {"same name", "/filesync/docs", "rename"}),
      InInstance("SyncDirsSameBasenameOtherCase", "client_sync_dirs = [\"@/x/Docs\", \"@/y/docs\"]",
                 "client_sync_dirs", {"same name", "case-insensitively"}),
      // --- cloud_root ---
      InInstance("CloudRootRelative", "cloud_root = \"filesync\"", "cloud_root",
                 {"must start with \"/\"", "\"/filesync\""}),
      InInstance("CloudRootDotDot", "cloud_root = \"/a/../b\"", "cloud_root",
                 {"\"..\" component", "\"/filesync\""}),
      InInstance("CloudRootDot", "cloud_root = \"/a/./b\"", "cloud_root", {"\".\" component"}),
      InInstance("CloudRootEmptyComponent", "cloud_root = \"/a//b\"", "cloud_root",
                 {"empty component"}),
      InInstance("CloudRootTrailingSlash", "cloud_root = \"/a/\"", "cloud_root",
                 {"end with \"/\""}),
      InInstance("CloudRootBackslash", "cloud_root = \"/a\\\\b\"", "cloud_root", {"backslash"}),
      InInstance("CloudRootNul", "cloud_root = \"/a\\u0000b\"", "cloud_root", {"NUL"}),
      // --- names Dropbox refuses, in the folders a Dropbox mirror lives in ---
      InInstance("DropboxCloudRootRefusedName",
                 "backend = \"dropbox\"\ndbx_token = \"t\"\ncloud_root = \"/backup/Desktop.ini\"",
                 "cloud_root", {"\"Desktop.ini\"", "Dropbox refuses", "choose another cloud_root"}),
      InInstance("DropboxCloudRootTrailingSpace",
                 "backend = \"dropbox\"\ndbx_token = \"t\"\ncloud_root = \"/backup /x\"",
                 "cloud_root", {"\"backup \"", "whitespace"}),
      InInstance("DropboxSyncDirRefusedName",
                 "backend = \"dropbox\"\ndbx_token = \"t\"\nclient_sync_dirs = [\"@/thumbs.db\"]",
                 "client_sync_dirs", {"thumbs.db", "/filesync/thumbs.db", "another name"}),
      // --- the local backend's staging folder at the top of local_cloud_dir ---
      InInstance("LocalCloudRootIsStaging", "cloud_root = \"/.filesync-staging/x\"", "cloud_root",
                 {"staging folder"}),
      InInstance("LocalSyncDirMirroredIntoStaging",
                 "cloud_root = \"\"\nclient_sync_dirs = [\"@/.filesync-staging\"]",
                 "client_sync_dirs", {"staging folder", "cloud_root"}),
      // --- intervals and workers ---
      InInstance("PollIntervalNegative", "poll_interval = -5", "poll_interval",
                 {"= -5", ">= 1", "e.g. poll_interval = 30"}),
      InInstance("PollIntervalZero", "poll_interval = 0", "poll_interval", {">= 1"}),
      InInstance("PollIntervalZeroString", "poll_interval = \"0s\"", "poll_interval", {">= 1"}),
      InInstance("VerifyIntervalZero", "cloud_verify_interval = 0", "cloud_verify_interval",
                 {">= 1", "e.g. cloud_verify_interval = 3600"}),
      InInstance("WorkersZero", "workers = 0", "workers", {"1 to 64"}),
      InInstance("WorkersTooMany", "workers = 65", "workers", {"1 to 64"}),
      // --- enums ---
      InInstance("BackendUnknown", "backend = \"s3\"", "backend", {"\"local\" or \"dropbox\""}),
      InInstance("LogLevelUnknown", "log_level = \"verbose\"", "log_level",
                 {"trace, debug, info, warn, error"}),
      // --- own directories ---
      InInstance("StateDirRelative", "state_dir = \"state\"", "state_dir",
                 {"absolute", "e.g. state_dir ="}),
      InInstance("StateDirInsideSyncDir", "state_dir = \"@/docs/.state\"", "state_dir",
                 {"inside sync dir", "move it outside"}),
      InInstance("LocalCloudDirInsideSyncDir", "local_cloud_dir = \"@/docs/cloud\"",
                 "local_cloud_dir", {"inside sync dir", "move it outside"}),
      InInstance("LocalCloudDirContainsSyncDir", "local_cloud_dir = \"@\"", "local_cloud_dir",
                 {"contains sync dir", "move it outside"}),
      InInstance("LocalCloudDirRelative", "local_cloud_dir = \"cloud\"", "local_cloud_dir",
                 {"absolute"}),
      // --- Dropbox endpoints and tuning ---
      InInstance("ApiUrlWrongScheme", "dbx_api_url = \"ftp://api.example\"", "dbx_api_url",
                 {"http:// or https://", "e.g. dbx_api_url = \"https://"}),
      InInstance("NotifyUrlNoScheme", "dbx_notify_url = \"notify.dropboxapi.com\"",
                 "dbx_notify_url", {"http:// or https://"}),
      InInstance("ContentUrlNoHost", "dbx_content_url = \"https://\"", "dbx_content_url",
                 {"no host"}),
      InInstance("CaFileMissing", "dbx_ca_file = \"@/no-such-ca.pem\"", "dbx_ca_file",
                 {"does not exist", "PEM"}),
      InInstance("CaFileIsDirectory", "dbx_ca_file = \"@\"", "dbx_ca_file",
                 {"not a regular file", "PEM"}),
      InInstance("RefreshTokenFileMissing",
                 "backend = \"dropbox\"\ndbx_app_key = \"k\"\ndbx_refresh_token_file = "
                 "\"@/no-such-token\"",
                 "dbx_refresh_token_file", {"cannot be read", "filesync auth"}),
      InInstance("ChunkSizeNotMultiple", "dbx_chunk_size = 5000000", "dbx_chunk_size",
                 {"multiple of 4 MiB", "148 MiB", "e.g. dbx_chunk_size"}),
      InInstance("ChunkSizeTooBig", "dbx_chunk_size = 159383552", "dbx_chunk_size", {"148 MiB"}),
      InInstance("ChunkSizeZero", "dbx_chunk_size = 0", "dbx_chunk_size", {"multiple of 4 MiB"}),
      InInstance("ChunkSizeNegative", "dbx_chunk_size = -4194304", "dbx_chunk_size", {"negative"}),
      // --- max_delete ---
      InInstance("MaxDeleteWords", "max_delete = \"lots\"", "max_delete",
                 {"\"lots\"", "e.g. max_delete = \"1000,50%\""}),
      InInstance("MaxDeletePercentTooBig", "max_delete = \"150%\"", "max_delete",
                 {"between 0% and 100%"}),
      InInstance("MaxDeleteNegative", "max_delete = -1", "max_delete", {"negative"}),
      InInstance("MaxDeleteThreeParts", "max_delete = \"10,20%,30\"", "max_delete",
                 {"count, a percentage or both"}),
      InInstance("MaxDeleteEmpty", "max_delete = \"\"", "max_delete",
                 {"count, a percentage or both"}),
      // --- unknown keys ---
      InInstance("UnknownKeySuggests", "pol_interval = 30", "pol_interval",
                 {"unknown key 'pol_interval'; did you mean 'poll_interval'?"}),
      InInstance("UnknownKeyNearSecretIsRedacted", "dbx_tokn = \"sl.TOPSECRET-2\"", "dbx_tokn",
                 {"<redacted>", "did you mean 'dbx_token'?"}, "TOPSECRET"),
      InInstance("UnknownTable", "[dropbox]\ntoken = \"x\"", "dropbox",
                 {"unknown key 'dropbox'", "docs/configuration.md"}),
      // --- malformed TOML (whole-file problems: no key) ---
      {.name = "MalformedToml",
       .dev = "client_sync_dirs = [\"@/docs\"]\npoll_interval = = 3\n",
       .where = "config/dev.toml:2:",
       .key = "",
       .hints = {"invalid TOML", "line 2, column"}},
      {.name = "MalformedTomlOnSecretLine",
       .instance = "workers = 2\ndbx_token = sl.TOPSECRET-3\n",
       .where = "config/instance.toml:2:",
       .key = "",
       .hints = {"invalid TOML", "line 2"},
       .forbidden = "TOPSECRET"},
      // toml++ quotes the character it choked on; here that is the start of a secret-ish line.
      {.name = "MalformedTomlAfterSecretLine",
       .instance = "dbx_token = [\"sl.x\"\nQTOPSECRET = 1\n",
       .where = "config/instance.toml:2:",
       .key = "",
       .hints = {"invalid TOML", "line 2"},
       .forbidden = "'Q'"},
      {.name = "DuplicateKey",
       .instance = "workers = 2\nworkers = 3\n",
       .where = "config/instance.toml:2:",
       .key = "",
       .hints = {"invalid TOML"}},
      // --- files ---
      {.name = "ConfigFileMissing",
       .config_file = "no-such.toml",
       .where = "no-such.toml",
       .key = "",
       .hints = {"cannot read", "--config"}},
      {.name = "ConfigFileIsDirectory",
       .config_file = "config",
       .where = "config",
       .key = "",
       .hints = {"is a directory", "TOML file"}},
      {.name = "ProdWithoutInstance",
       .env_option = "prod",
       .where = "config/instance.toml",
       .key = "",
       .hints = {"env 'prod' requires it", "instance.example.toml"}},
      {.name = "UnknownEnvFile",
       .env_option = "staging",
       .where = "config/staging.toml",
       .key = "",
       .hints = {"cannot read", "test, dev or prod"}},
      {.name = "EnvNameWithPath",
       .env_option = "../x",
       .where = "--env",
       .key = "env",
       .hints = {"not an environment name", "test, dev or prod"}},
      // --- status endpoint (issue 15) ---
      InInstance("StatusListenNoPort", "status_listen = \"9184\"", "status_listen",
                 {"no port", "\"127.0.0.1:9184\""}),
      InInstance("StatusListenBadPort", "status_listen = \"127.0.0.1:99999\"", "status_listen",
                 {"1 to 65535"}),
      InInstance("StatusListenPortZero", "status_listen = \"127.0.0.1:0\"", "status_listen",
                 {"1 to 65535"}),
      InInstance("StatusListenIpv6WithoutBrackets", "status_listen = \"::1:9184\"", "status_listen",
                 {"brackets", "\"[::1]:9184\""}),
      InInstance("StatusListenHostName", "status_listen = \"myhost:9184\"", "status_listen",
                 {"IP address"}),
      InInstance("StatusListenNotString", "status_listen = 9184", "status_listen",
                 {"must be a string", "e.g. status_listen = \"127.0.0.1:9184\""}),
      InInstance("StatusListenPublicWithoutToken", "status_listen = \"0.0.0.0:9184\"",
                 "status_listen", {"not a loopback address", "status_token_file", "127.0.0.1"}),
      InInstance("StatusTokenFileMissing",
                 "status_listen = \"127.0.0.1:9184\"\nstatus_token_file = \"@/no-such-token\"",
                 "status_token_file", {"does not exist", "openssl rand -hex 32 > @/no-such-token"}),
      // --- bwlimit (issue 15) ---
      InInstance("BwlimitSpaceInRate", "bwlimit = \"8 MiB\"", "bwlimit", {"space", "\"8MiB\""}),
      InInstance("BwlimitWord", "bwlimit = \"fast\"", "bwlimit",
                 {"not a rate", "\"8MiB\"", "\"08:00,1MiB 19:00,off\""}),
      InInstance("BwlimitAmbiguousMegabytes", "bwlimit = \"10MB\"", "bwlimit",
                 {"ambiguous", "10MiB"}),
      InInstance("BwlimitUnknownUnit", "bwlimit = \"10Mbit\"", "bwlimit", {"unknown unit"}),
      InInstance("BwlimitTooSmall", "bwlimit = 500", "bwlimit", {"below 1 KiB/s", "\"500k\""}),
      InInstance("BwlimitZero", "bwlimit = 0", "bwlimit", {"\"off\""}),
      InInstance("BwlimitBadTime", "bwlimit = \"25:00,1M 19:00,off\"", "bwlimit",
                 {"00:00 to 23:59"}),
      InInstance("BwlimitTimeTwice", "bwlimit = \"08:00,1M 08:00,off\"", "bwlimit", {"twice"}),
      InInstance("BwlimitEntryWithoutRate", "bwlimit = \"08:00 19:00,off\"", "bwlimit",
                 {"TIME,RATE"}),
      InInstance("BwlimitNotString", "bwlimit = true", "bwlimit", {"must be a string"}),
      // --- environment variables ---
      InEnvironment("EnvBwlimitGarbage", "FILESYNC_BWLIMIT", "lots", "bwlimit",
                    {"\"lots\"", "\"8MiB\""}),
      InEnvironment("EnvStatusListenNoHost", "FILESYNC_STATUS_LISTEN", ":9184", "status_listen",
                    {"no host", "127.0.0.1:9184"}),
      InEnvironment("EnvWorkersNotNumber", "FILESYNC_WORKERS", "many", "workers",
                    {"\"many\"", "e.g. FILESYNC_WORKERS=4"}),
      InEnvironment("EnvPollIntervalNegative", "FILESYNC_POLL_INTERVAL", "-3", "poll_interval",
                    {">= 1", "FILESYNC_POLL_INTERVAL=30"}),
      InEnvironment("EnvSyncDirsRelative", "FILESYNC_CLIENT_SYNC_DIRS", "@/a:rel",
                    "client_sync_dirs", {"\"rel\" is not an absolute path"}),
      InEnvironment("EnvSyncDirsEmpty", "FILESYNC_CLIENT_SYNC_DIRS", "", "client_sync_dirs",
                    {"empty", "config/instance.toml"}),
      InEnvironment("EnvBoolGarbage", "FILESYNC_DBX_APPEND_BATCH", "maybe", "dbx_append_batch",
                    {"true or false"}),
      {.name = "EnvConfigFileStillGetsEnv",
       .env = {{"FILESYNC_WORKERS", "0"}},
       .config_file = "config/dev.toml",
       .where = "environment FILESYNC_WORKERS",
       .key = "workers",
       .hints = {"1 to 64"}},
      {.name = "EnvSecretWithBadUrlNeverEchoed",
       .instance = "backend = \"dropbox\"",
       .env = {{"FILESYNC_DBX_TOKEN", "sl.TOPSECRET-4"}, {"FILESYNC_DBX_API_URL", "api"}},
       .where = "environment FILESYNC_DBX_API_URL",
       .key = "dbx_api_url",
       .hints = {"http:// or https://"},
       .forbidden = "TOPSECRET"},
  };
  return cases;
}

// Keeps ctest names readable (gtest would otherwise dump the struct's bytes).
void PrintTo(const BadCase& c, std::ostream* out) { *out << c.name; }

class BadConfigTest : public ConfigTest, public ::testing::WithParamInterface<BadCase> {};

TEST_P(BadConfigTest, FailsWithOneLineNamingFileKeyAndFix) {
  const BadCase& c = GetParam();
  if (c.dev == nullptr) {
    WriteGoodDev();
    fs::copy_file(dir_ / "dev.toml", dir_ / "prod.toml");
  } else {
    Write("dev.toml", c.dev);
  }
  if (c.instance != nullptr) Write("instance.toml", c.instance);
  for (const auto& [name, value] : c.env) SetEnv(name, Expand(value));
  LoadOptions options = Options();
  if (c.env_option != nullptr) options.env = c.env_option;
  if (c.config_file != nullptr) options.config_file = tmp_ / c.config_file;

  std::string message;
  try {
    const Config config = Load(options);
    FAIL() << "Load() accepted a bad config; source: " << config.source;
  } catch (const ConfigError& e) {
    message = e.what();
  }
  SCOPED_TRACE(message);
  EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line";
  EXPECT_EQ(message.find('\r'), std::string::npos) << "not one line";
  EXPECT_NE(message.find(c.where), std::string::npos) << "does not name " << c.where;
  if (std::string(c.key).empty()) {
    EXPECT_TRUE(message.starts_with(tmp_.string()) || message.starts_with("--env"))
        << "does not start with the file";
  } else {
    EXPECT_NE(message.find("key '" + std::string(c.key) + "' = "), std::string::npos)
        << "does not name key " << c.key;
  }
  const std::size_t fix = message.find("; ");
  ASSERT_NE(fix, std::string::npos) << "no fix hint";
  EXPECT_GT(message.size(), fix + 5) << "fix hint is empty";
  for (const std::string& hint : c.hints) {
    EXPECT_NE(message.find(Expand(hint)), std::string::npos) << "missing: " << hint;
  }
  if (c.forbidden != nullptr) {
    EXPECT_EQ(message.find(c.forbidden), std::string::npos) << "leaks a secret";
  }
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadConfigTest, ::testing::ValuesIn(Catalogue()),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(CatalogueSize, HasAtLeast35Cases) { EXPECT_GE(Catalogue().size(), 35u); }

// ---------------------------------------------------------------------------------------------
// Bad configs that need more set-up than the table gives

TEST_F(ConfigTest, UnreadableInstanceFileIsAnError) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "running as root, which can read a chmod 000 file; "
                    "ConfigFileIsDirectory covers the unreadable-file path";
  }
  WriteGoodDev();
  const fs::path instance = Write("instance.toml", "workers = 2\n");
  fs::permissions(instance, fs::perms::none);
  try {
    Load(Options());
    FAIL() << "Load() read a chmod 000 file";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos);
    EXPECT_NE(message.find(instance.string()), std::string::npos) << message;
    EXPECT_NE(message.find("cannot read"), std::string::npos) << message;
    EXPECT_NE(message.find("chmod"), std::string::npos) << message;
  }
}

TEST_F(ConfigTest, SyncDirsNestedThroughSymlinkAreAnError) {
  fs::create_directories(tmp_ / "real/inner");
  fs::create_symlink(tmp_ / "real", tmp_ / "alias");
  Write("dev.toml",
        "client_sync_dirs = [\"@/real\", \"@/alias/inner\"]\nstate_dir = \"@/state\"\n");
  try {
    Load(Options());
    FAIL() << "accepted a dir nested through a symlink";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is inside"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("key 'client_sync_dirs'"), std::string::npos) << e.what();
  }
}

TEST_F(ConfigTest, ValidateOnHandBuiltConfigNamesSource) {
  Config config;
  config.source = "hand-built";
  config.client_sync_dirs = {tmp_ / "docs"};
  config.state_dir = tmp_ / "state";
  config.local_cloud_dir = tmp_ / "cloud";
  EXPECT_NO_THROW(Validate(config));
  config.workers = 100;
  try {
    Validate(config);
    FAIL() << "workers = 100 accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("hand-built: key 'workers' = 100: ", 0), 0u) << e.what();
  }
}

// The local backend stores any name: Dropbox's rules apply only to the Dropbox backend.
TEST_F(ConfigTest, DropboxNameRulesDoNotApplyToTheLocalBackend) {
  WriteGoodDev();
  Write("instance.toml", "cloud_root = \"/backup/desktop.ini\"\n");
  EXPECT_EQ(Load(Options()).cloud_root, "/backup/desktop.ini");
}

// config (validate.cc) spells the local backend's staging folder itself (config cannot include a
// backend).
TEST_F(ConfigTest, StagingNameAgreesWithTheLocalBackend) {
  WriteGoodDev();
  Write("instance.toml",
        std::string("cloud_root = \"/") + cloud::LocalCloud::kStagingName + "\"\n");
  EXPECT_THROW(Load(Options()), ConfigError);
}

TEST_F(ConfigTest, ValidateRejectsUnnormalisedSlashCloudRoot) {
  Config config;
  config.client_sync_dirs = {tmp_ / "docs"};
  config.state_dir = tmp_ / "state";
  config.local_cloud_dir = tmp_ / "cloud";
  config.cloud_root = "/";
  EXPECT_THROW(Validate(config), ConfigError);
}

// ---------------------------------------------------------------------------------------------
// Merge order and environment selection

TEST_F(ConfigTest, MergeOrderEnvFileThenInstanceThenEnvironment) {
  Write("dev.toml",
        "client_sync_dirs = [\"@/docs\"]\nstate_dir = \"@/state\"\npoll_interval = 10\n"
        "workers = 2\nlog_level = \"debug\"\n");
  Write("instance.toml", "poll_interval = 20\nworkers = 3\n");
  SetEnv("FILESYNC_POLL_INTERVAL", "30");
  const Config config = Load(Options());
  EXPECT_EQ(config.poll_interval, std::chrono::seconds(30));  // environment wins
  EXPECT_EQ(config.workers, 3);                               // instance beats dev.toml
  EXPECT_EQ(config.log_level, "debug");                       // only in dev.toml
  EXPECT_EQ(config.origins.at("poll_interval"), "environment FILESYNC_POLL_INTERVAL");
  EXPECT_EQ(config.origins.at("workers"), (dir_ / "instance.toml").string());
  EXPECT_EQ(config.origins.at("log_level"), (dir_ / "dev.toml").string());
  ASSERT_EQ(config.files.size(), 2u);
  EXPECT_EQ(config.files[0], dir_ / "dev.toml");
  EXPECT_EQ(config.files[1], dir_ / "instance.toml");
  EXPECT_EQ(config.source, (dir_ / "dev.toml").string() + " + " +
                               (dir_ / "instance.toml").string() + " + environment");
}

TEST_F(ConfigTest, ConfigFileIsUsedAloneButEnvironmentStillApplies) {
  WriteGoodDev();
  Write("instance.toml", "this is not toml at all = = =\n");  // would fail if read
  const fs::path other = tmp_ / "other.toml";
  std::ofstream(other) << Expand(
      "client_sync_dirs = [\"@/pics\"]\nstate_dir = \"@/st\"\nworkers = 7\n");
  SetEnv("FILESYNC_LOG_LEVEL", "warn");
  LoadOptions options = Options();
  options.config_file = other;
  const Config config = Load(options);
  ASSERT_EQ(config.client_sync_dirs.size(), 1u);
  EXPECT_EQ(config.client_sync_dirs[0], tmp_ / "pics");
  EXPECT_EQ(config.workers, 7);
  EXPECT_EQ(config.log_level, "warn");
  ASSERT_EQ(config.files.size(), 1u);
  EXPECT_EQ(config.files[0], other);
}

TEST_F(ConfigTest, EnvOptionBeatsVariableBeatsDefault) {
  Write("dev.toml", "client_sync_dirs = [\"@/docs\"]\nstate_dir = \"@/state\"\nworkers = 1\n");
  Write("test.toml", "client_sync_dirs = [\"@/docs\"]\nstate_dir = \"@/state\"\nworkers = 2\n");
  Write("prod.toml", "client_sync_dirs = [\"@/docs\"]\nstate_dir = \"@/state\"\nworkers = 3\n");
  Write("instance.toml", "");
  EXPECT_EQ(Load(Options()).workers, 1);  // default "dev"
  SetEnv("FILESYNC_ENV", "test");
  EXPECT_EQ(Load(Options()).workers, 2);
  LoadOptions options = Options();
  options.env = "prod";
  EXPECT_EQ(Load(options).workers, 3);
}

TEST_F(ConfigTest, ProdLoadsWithInstanceFile) {
  Write("prod.toml", "backend = \"dropbox\"\n");
  Write("instance.toml",
        "client_sync_dirs = [\"@/docs\"]\nstate_dir = \"@/state\"\ndbx_refresh_token = \"r\"\n"
        "dbx_app_key = \"k\"\n");
  LoadOptions options = Options();
  options.env = "prod";
  const Config config = Load(options);
  EXPECT_EQ(config.backend, Backend::kDropbox);
  EXPECT_EQ(config.dbx_app_key, "k");
}

TEST_F(ConfigTest, EnvironmentListsAreColonSeparated) {
  WriteGoodDev();
  SetEnv("FILESYNC_CLIENT_SYNC_DIRS", Expand("@/a:@/b/"));
  SetEnv("FILESYNC_EXCLUDE", "*.tmp:.git");
  const Config config = Load(Options());
  EXPECT_EQ(config.client_sync_dirs, (std::vector<fs::path>{tmp_ / "a", tmp_ / "b"}));
  EXPECT_EQ(config.exclude, (std::vector<std::string>{"*.tmp", ".git"}));
}

TEST_F(ConfigTest, EnvironmentScalarsOfEveryKind) {
  WriteGoodDev();
  SetEnv("FILESYNC_DBX_APPEND_BATCH", "false");
  SetEnv("FILESYNC_MAX_DELETE", "20,5%");
  SetEnv("FILESYNC_CLOUD_VERIFY_INTERVAL", "2h");
  SetEnv("FILESYNC_DBX_CHUNK_SIZE", "8MiB");
  SetEnv("FILESYNC_BACKEND", "dropbox");
  SetEnv("FILESYNC_DBX_TOKEN", "tok");
  const Config config = Load(Options());
  EXPECT_FALSE(config.dbx_append_batch);
  EXPECT_EQ(config.max_delete.count, 20u);
  EXPECT_DOUBLE_EQ(config.max_delete.percent, 5.0);
  EXPECT_EQ(config.cloud_verify_interval, std::chrono::hours(2));
  EXPECT_EQ(config.dbx_chunk_size, 8u * 1024 * 1024);
  EXPECT_EQ(config.backend, Backend::kDropbox);
  EXPECT_EQ(config.dbx_token, "tok");
}

// ---------------------------------------------------------------------------------------------
// Defaults and normalisation

TEST_F(ConfigTest, DefaultsWhenOnlySyncDirsAreSet) {
  Write("dev.toml", "client_sync_dirs = [\"@/docs\"]\n");
  const Config config = Load(Options());
  const Config defaults;
  EXPECT_EQ(config.cloud_root, "/filesync");
  EXPECT_EQ(config.poll_interval, std::chrono::seconds(60));
  EXPECT_EQ(config.backend, Backend::kLocal);
  EXPECT_EQ(config.workers, 4);
  EXPECT_EQ(config.state_dir, tmp_ / "home/.local/state/filesync");
  EXPECT_EQ(config.local_cloud_dir, tmp_ / "home/.local/state/filesync/cloud");
  EXPECT_TRUE(config.exclude.empty());
  EXPECT_EQ(config.max_delete.count, 1000u);
  EXPECT_DOUBLE_EQ(config.max_delete.percent, 50.0);
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.cloud_verify_interval, std::chrono::seconds(3600));
  EXPECT_EQ(config.dbx_api_url, defaults.dbx_api_url);
  EXPECT_EQ(config.dbx_content_url, defaults.dbx_content_url);
  EXPECT_EQ(config.dbx_notify_url, defaults.dbx_notify_url);
  EXPECT_TRUE(config.dbx_append_batch);
  EXPECT_EQ(config.dbx_chunk_size, 16u * 1024 * 1024);
  EXPECT_FALSE(config.status_listen.has_value());
  EXPECT_TRUE(config.status_token.empty());
  EXPECT_TRUE(config.bwlimit.unlimited());
  EXPECT_FALSE(HoldsSecret(config));
}

TEST_F(ConfigTest, StateDirDefaultsToXdgStateHome) {
  Write("dev.toml", "client_sync_dirs = [\"@/docs\"]\n");
  SetEnv("XDG_STATE_HOME", (tmp_ / "xdg").string());
  const Config config = Load(Options());
  EXPECT_EQ(config.state_dir, tmp_ / "xdg/filesync");
  EXPECT_EQ(config.local_cloud_dir, tmp_ / "xdg/filesync/cloud");
}

TEST_F(ConfigTest, RelativeXdgStateHomeIsIgnored) {
  Write("dev.toml", "client_sync_dirs = [\"@/docs\"]\n");
  SetEnv("XDG_STATE_HOME", "relative/state");
  EXPECT_EQ(Load(Options()).state_dir, tmp_ / "home/.local/state/filesync");
}

TEST_F(ConfigTest, PathsAreNormalisedAndTildeExpanded) {
  Write("dev.toml",
        "client_sync_dirs = [\"@/x/../docs/\", \"~/pics\"]\nstate_dir = \"@/state/\"\n"
        "cloud_root = \"/\"\n");
  const Config config = Load(Options());
  EXPECT_EQ(config.client_sync_dirs, (std::vector<fs::path>{tmp_ / "docs", tmp_ / "home/pics"}));
  EXPECT_EQ(config.state_dir, tmp_ / "state");
  EXPECT_EQ(config.cloud_root, "");  // "/" means the cloud root itself
  EXPECT_EQ(config.CloudPathFor(config.client_sync_dirs[0]), "/docs");
}

TEST_F(ConfigTest, DurationStrings) {
  WriteGoodDev();
  Write("instance.toml", "poll_interval = \"5m\"\ncloud_verify_interval = \"1h30m\"\n");
  Config config = Load(Options());
  EXPECT_EQ(config.poll_interval, std::chrono::minutes(5));
  EXPECT_EQ(config.cloud_verify_interval, std::chrono::minutes(90));
  Write("instance.toml", "poll_interval = \"45s\"\ncloud_verify_interval = 7\n");
  config = Load(Options());
  EXPECT_EQ(config.poll_interval, std::chrono::seconds(45));
  EXPECT_EQ(config.cloud_verify_interval, std::chrono::seconds(7));
}

TEST_F(ConfigTest, MaxDeleteForms) {
  WriteGoodDev();
  const std::vector<std::pair<std::string, MaxDelete>> forms = {
      {"\"1000,50%\"", {1000, 50.0}}, {"\"200\"", {200, 50.0}}, {"\"10%\"", {1000, 10.0}},
      {"\"5%, 30\"", {30, 5.0}},      {"7", {7, 50.0}},         {"\"0,12.5%\"", {0, 12.5}},
  };
  for (const auto& [text, expected] : forms) {
    Write("instance.toml", "max_delete = " + text + "\n");
    const Config config = Load(Options());
    EXPECT_EQ(config.max_delete.count, expected.count) << text;
    EXPECT_DOUBLE_EQ(config.max_delete.percent, expected.percent) << text;
  }
}

TEST_F(ConfigTest, ChunkSizeLimits) {
  WriteGoodDev();
  Write("instance.toml", "dbx_chunk_size = 155189248\n");  // 148 MiB: the largest allowed
  EXPECT_EQ(Load(Options()).dbx_chunk_size, 148u * 1024 * 1024);
  Write("instance.toml", "dbx_chunk_size = \"4MiB\"\n");
  EXPECT_EQ(Load(Options()).dbx_chunk_size, 4u * 1024 * 1024);
  Write("instance.toml", "dbx_chunk_size = \"152MiB\"\n");
  EXPECT_THROW(Load(Options()), ConfigError);
}

TEST_F(ConfigTest, SiblingDirsWithPrefixNamesAreNotNested) {
  Write("dev.toml", "client_sync_dirs = [\"@/docs\", \"@/docs2\"]\nstate_dir = \"@/state\"\n");
  EXPECT_EQ(Load(Options()).client_sync_dirs.size(), 2u);
}

TEST_F(ConfigTest, CloudPathFor) {
  Config config;
  EXPECT_EQ(config.CloudPathFor("/home/me/Documents"), "/filesync/Documents");
  EXPECT_EQ(config.CloudPathFor("/home/me/Documents/"), "/filesync/Documents");
  config.cloud_root = "";
  EXPECT_EQ(config.CloudPathFor("/home/me/Photos"), "/Photos");
  config.cloud_root = "/a/b";
  EXPECT_EQ(config.CloudPathFor("/x/y"), "/a/b/y");
}

// ---------------------------------------------------------------------------------------------
// Describe, HoldsSecret, PermissionWarnings

TEST_F(ConfigTest, DescribeRedactsSecretsAndRoundTrips) {
  WriteGoodDev();
  Write(
      "instance.toml",
      "backend = \"dropbox\"\ndbx_token = \"sl.TOPSECRET-A\"\ndbx_refresh_token = \"TOPSECRET-B\"\n"
      "dbx_app_key = \"appkey\"\ndbx_app_secret = \"TOPSECRET-C\"\nexclude = [\"*.tmp\"]\n"
      "max_delete = \"30,10%\"\n");
  const Config config = Load(Options());
  EXPECT_TRUE(HoldsSecret(config));
  const std::string text = Describe(config);
  EXPECT_EQ(text.find("TOPSECRET"), std::string::npos) << text;
  EXPECT_NE(text.find("dbx_token = \"<redacted>\""), std::string::npos) << text;
  EXPECT_NE(text.find("dbx_refresh_token = \"<redacted>\""), std::string::npos) << text;
  EXPECT_NE(text.find("dbx_app_secret = \"<redacted>\""), std::string::npos) << text;
  EXPECT_NE(text.find("dbx_app_key = \"appkey\""), std::string::npos) << text;

  // The description is itself a valid config that loads to the same values.
  const fs::path described = tmp_ / "described.toml";
  std::ofstream(described) << text;
  LoadOptions options = Options();
  options.config_file = described;
  const Config again = Load(options);
  EXPECT_EQ(again.client_sync_dirs, config.client_sync_dirs);
  EXPECT_EQ(again.state_dir, config.state_dir);
  EXPECT_EQ(again.local_cloud_dir, config.local_cloud_dir);
  EXPECT_EQ(again.exclude, config.exclude);
  EXPECT_EQ(again.max_delete.count, 30u);
  EXPECT_DOUBLE_EQ(again.max_delete.percent, 10.0);
  EXPECT_EQ(again.backend, Backend::kDropbox);
  EXPECT_EQ(again.dbx_chunk_size, config.dbx_chunk_size);
  EXPECT_EQ(Describe(again).substr(Describe(again).find('\n')), text.substr(text.find('\n')));
}

TEST_F(ConfigTest, DescribeShowsEmptySecretsAsEmpty) {
  Config config;
  const std::string text = Describe(config);
  EXPECT_NE(text.find("dbx_token = \"\"\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("<redacted>"), std::string::npos) << text;
  EXPECT_FALSE(HoldsSecret(config));
  config.dbx_app_secret = "s";
  EXPECT_TRUE(HoldsSecret(config));
}

TEST_F(ConfigTest, PermissionWarningsForReadableSecretFile) {
  WriteGoodDev();
  const fs::path instance = Write("instance.toml", "dbx_token = \"sl.TOPSECRET-D\"\n");
  fs::permissions(dir_ / "dev.toml", fs::perms::owner_read | fs::perms::owner_write |
                                         fs::perms::group_read | fs::perms::others_read);
  fs::permissions(instance, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                fs::perms::others_read);
  Config config = Load(Options());
  std::vector<std::string> warnings = PermissionWarnings(config);
  ASSERT_EQ(warnings.size(), 1u);  // dev.toml is readable too, but holds no secret
  EXPECT_NE(warnings[0].find(instance.string()), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("dbx_token"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("0644"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("chmod 600"), std::string::npos) << warnings[0];
  EXPECT_EQ(warnings[0].find("TOPSECRET"), std::string::npos) << warnings[0];

  fs::permissions(instance, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_TRUE(PermissionWarnings(config).empty());
}

TEST_F(ConfigTest, PermissionWarningsForGroupReadableOnly) {
  WriteGoodDev();
  const fs::path instance = Write("instance.toml", "dbx_app_secret = \"x\"\n");
  fs::permissions(instance, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  const std::vector<std::string> warnings = PermissionWarnings(Load(Options()));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("dbx_app_secret"), std::string::npos) << warnings[0];
}

// ---------------------------------------------------------------------------------------------
// Status endpoint and bwlimit (issue 15)

TEST_F(ConfigTest, StatusListenAndTokenLoad) {
  WriteGoodDev();
  const fs::path token = tmp_ / "status-token";
  std::ofstream(token) << "  0123456789abcdefTOPSECRET-TOKEN\n";
  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write);
  Write("instance.toml",
        "status_listen = \"[::1]:9184\"\nstatus_token_file = \"@/status-token\"\n");
  const Config config = Load(Options());
  ASSERT_TRUE(config.status_listen.has_value());
  EXPECT_EQ(config.status_listen->ToString(), "[::1]:9184");
  EXPECT_TRUE(config.status_listen->loopback);
  EXPECT_EQ(config.status_token, "0123456789abcdefTOPSECRET-TOKEN");
  const std::string text = Describe(config);
  EXPECT_NE(text.find("status_listen = \"[::1]:9184\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("status_token_file = \"" + token.string() + "\"\n"), std::string::npos);
  EXPECT_EQ(text.find("TOPSECRET"), std::string::npos) << text;
  EXPECT_TRUE(PermissionWarnings(config).empty());
}

TEST_F(ConfigTest, NonLoopbackStatusListenLoadsWithAToken) {
  WriteGoodDev();
  std::ofstream(tmp_ / "status-token") << "abcdefghijklmnopqrstuvwxyz012345";
  Write("instance.toml",
        "status_listen = \"0.0.0.0:9184\"\nstatus_token_file = \"@/status-token\"\n");
  const Config config = Load(Options());
  EXPECT_FALSE(config.status_listen->loopback);
  EXPECT_EQ(config.status_token.size(), 32u);
}

TEST_F(ConfigTest, EmptyStatusListenIsOffAndTheTokenFileIsThenNotRead) {
  WriteGoodDev();
  Write("instance.toml", "status_listen = \"\"\nstatus_token_file = \"@/no-such-file\"\n");
  const Config config = Load(Options());
  EXPECT_FALSE(config.status_listen.has_value());
  EXPECT_TRUE(config.status_token.empty());
}

TEST_F(ConfigTest, BadStatusTokenFilesAreErrorsThatNeverShowTheToken) {
  WriteGoodDev();
  Write("instance.toml",
        "status_listen = \"127.0.0.1:9184\"\nstatus_token_file = \"@/status-token\"\n");
  const fs::path token = tmp_ / "status-token";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {" \n\t\n", "is empty"},
      {"TOPSECRET-short", "shorter than 16"},
      {"TOPSECRET-0123456789 TOPSECRET-0123456789", "more than one word"},
      {"TOPSECRET-0123456789\nTOPSECRET-second-line", "more than one word"},
      {"TOPSECRET-0123456789-\xc3\xa9", "visible ASCII"},
  };
  for (const auto& [content, problem] : cases) {
    SCOPED_TRACE(problem);
    std::ofstream(token, std::ios::trunc) << content;
    try {
      Load(Options());
      FAIL() << "accepted a bad token file";
    } catch (const ConfigError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("key 'status_token_file' = \"" + token.string() + "\""),
                std::string::npos)
          << message;
      EXPECT_NE(message.find(problem), std::string::npos) << message;
      EXPECT_NE(message.find("openssl rand -hex 32"), std::string::npos) << message;
      EXPECT_EQ(message.find("TOPSECRET"), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
  std::ofstream(token, std::ios::trunc) << std::string(5000, 'a');
  try {
    Load(Options());
    FAIL() << "accepted a 5000-byte token file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 4 KiB"), std::string::npos) << e.what();
  }
  fs::remove(token);
  fs::create_directory(token);
  try {
    Load(Options());
    FAIL() << "accepted a directory as the token file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
}

TEST_F(ConfigTest, PermissionWarningForAReadableStatusTokenFile) {
  WriteGoodDev();
  const fs::path token = tmp_ / "status-token";
  std::ofstream(token) << "TOPSECRET-0123456789abcdef";
  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                             fs::perms::others_read);
  Write("instance.toml",
        "status_listen = \"127.0.0.1:9184\"\nstatus_token_file = \"@/status-token\"\n");
  const std::vector<std::string> warnings = PermissionWarnings(Load(Options()));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(token.string()), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("status endpoint's token"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("chmod 600 " + token.string()), std::string::npos) << warnings[0];
  EXPECT_EQ(warnings[0].find("TOPSECRET"), std::string::npos) << warnings[0];
}

TEST_F(ConfigTest, BwlimitForms) {
  WriteGoodDev();
  Write("instance.toml", "bwlimit = \"08:00,1MiB 19:00,off\"\n");
  Config config = Load(Options());
  EXPECT_EQ(config.bwlimit.RateAt(9 * 60), 1024u * 1024);
  EXPECT_EQ(config.bwlimit.RateAt(20 * 60), 0u);
  EXPECT_NE(Describe(config).find("bwlimit = \"08:00,1MiB 19:00,off\"\n"), std::string::npos);
  Write("instance.toml", "bwlimit = 1048576\n");
  EXPECT_EQ(Load(Options()).bwlimit.RateAt(0), 1024u * 1024);
  Write("instance.toml", "bwlimit = \"off\"\n");
  EXPECT_TRUE(Load(Options()).bwlimit.unlimited());
  SetEnv("FILESYNC_BWLIMIT", "500k");
  config = Load(Options());
  EXPECT_EQ(config.bwlimit.RateAt(0), 500u * 1024);
  EXPECT_EQ(config.origins["bwlimit"], "environment FILESYNC_BWLIMIT");
}

// ---------------------------------------------------------------------------------------------
// The shipped config files

class ShippedConfigTest : public ConfigTest {
 protected:
  void CopyShipped() const {
    for (const char* name : {"dev.toml", "test.toml", "prod.toml", "instance.example.toml"}) {
      fs::copy_file(fs::path(FILESYNC_SOURCE_DIR) / "config" / name, dir_ / name);
    }
  }
};

TEST_F(ShippedConfigTest, DevAndTestNeedOnlySyncDirs) {
  CopyShipped();
  for (const char* env : {"dev", "test"}) {
    LoadOptions options = Options();
    options.env = env;
    try {
      Load(options);
      FAIL() << env << ": accepted an empty client_sync_dirs";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("key 'client_sync_dirs'"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("config/instance.toml"), std::string::npos) << e.what();
    }
    SetEnv("FILESYNC_CLIENT_SYNC_DIRS", Expand("@/docs"));
    const Config config = Load(options);
    EXPECT_EQ(config.backend, Backend::kLocal) << env;
    ::unsetenv("FILESYNC_CLIENT_SYNC_DIRS");
  }
}

TEST_F(ShippedConfigTest, ProdNeedsInstanceAndExampleIsAllComments) {
  CopyShipped();
  LoadOptions options = Options();
  options.env = "prod";
  EXPECT_THROW(Load(options), ConfigError);
  fs::copy_file(dir_ / "instance.example.toml", dir_ / "instance.toml");
  SetEnv("FILESYNC_CLIENT_SYNC_DIRS", Expand("@/docs"));
  SetEnv("FILESYNC_DBX_TOKEN", "tok");
  const Config config = Load(options);
  EXPECT_EQ(config.poll_interval, std::chrono::seconds(60));
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.backend, Backend::kDropbox);
  // The example sets nothing: every value came from prod.toml, the environment or defaults.
  for (const auto& [key, origin] : config.origins) {
    EXPECT_NE(origin, (dir_ / "instance.toml").string()) << key;
  }
}

}  // namespace
}  // namespace filesync::config
