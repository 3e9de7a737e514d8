// Config: filesync's settings, loaded once at start-up (and again on SIGHUP).
//
// Sources, later ones overriding earlier ones key by key:
//   1. config/<env>.toml            env = --env, else $FILESYNC_ENV, else "dev"
//   2. config/instance.toml         git-ignored secrets and machine-specific values (optional,
//                                   except that env "prod" requires it)
//   3. FILESYNC_<KEY> environment   e.g. FILESYNC_POLL_INTERVAL=30, FILESYNC_CLIENT_SYNC_DIRS=/a:/b
// With --config FILE, that one file is used alone (environment variables still apply).
//
// Every problem is a ConfigError whose what() is ONE line naming the file, the key, the bad
// value and the fix, e.g.
//   config/dev.toml: key 'workers' = 0: must be a whole number from 1 to 64; e.g. workers = 4
// Problems with a whole file (missing, unreadable, malformed TOML) name the file (and for
// malformed TOML the line and column) instead of a key. Unknown keys suggest the nearest known
// key. Secrets (dbx_token, dbx_refresh_token, dbx_app_secret, the status endpoint's token) are
// never echoed in an error or in Describe(). The CLI maps ConfigError to exit code 2. The full key
// reference, with defaults and precedence rules, is docs/configuration.md.
//
// Thread safety: Load() reads the process environment and the file system; call it from one
// thread at a time (start-up, SIGHUP handling). A loaded Config is a plain value; the other
// functions only read it and are safe to call concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/bandwidth.h"
#include "ops/listen_address.h"

namespace filesync::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Backend { kLocal, kDropbox };

// A pass that would delete more than `count` entries, or more than `percent` of the tracked
// entries of a sync dir, stops unless --allow-mass-delete is given.
struct MaxDelete {
  std::uint64_t count = 1000;
  double percent = 50.0;
};

struct Config {
  // Where the values came from, for messages ("config/dev.toml + config/instance.toml").
  std::string source;
  // The files Load() read, in load order (for PermissionWarnings()).
  std::vector<std::filesystem::path> files;
  // Key -> where its value was last set ("config/instance.toml", "environment FILESYNC_WORKERS").
  // Keys left at their defaults are absent; Validate() then names `source`.
  std::map<std::string, std::string> origins;

  // --- the seed's keys ---
  std::string dbx_token;                                // secret; Dropbox access token
  std::vector<std::filesystem::path> client_sync_dirs;  // absolute, distinct basenames, not nested
  std::string cloud_root = "/filesync";                 // cloud path; "" or "/x/y", no ".."
  std::chrono::seconds poll_interval{60};               // >= 1

  // --- engine ---
  Backend backend = Backend::kLocal;
  std::filesystem::path local_cloud_dir;  // local backend's "cloud"; default <state_dir>/cloud
  int workers = 4;                        // 1..64
  std::filesystem::path state_dir;   // default $XDG_STATE_HOME/filesync or ~/.local/state/filesync
  std::vector<std::string> exclude;  // glob patterns (see scan/exclude.h)
  MaxDelete max_delete;              // "1000,50%", "1000", "50%" or an integer
  std::string log_level = "info";    // trace, debug, info, warn, error
  std::chrono::seconds cloud_verify_interval{3600};  // local backend: full re-walk of the cloud dir

  // --- Dropbox backend ---
  std::string dbx_refresh_token;  // secret; with dbx_app_key enables automatic token refresh
  std::string dbx_app_key;
  std::string dbx_app_secret;  // secret; optional (PKCE apps have none)
  // File holding the refresh token (what `filesync auth` writes, mode 0600); read at load time
  // when dbx_refresh_token is not set, so the secret need not be copied into a config file.
  std::filesystem::path dbx_refresh_token_file;
  std::filesystem::path dbx_ca_file;  // extra CA bundle to trust (tests); TLS is always verified
  std::string dbx_api_url = "https://api.dropboxapi.com";
  std::string dbx_content_url = "https://content.dropboxapi.com";
  std::string dbx_notify_url = "https://notify.dropboxapi.com";
  bool dbx_append_batch = true;  // false: fall back to upload_session/start(close) per file
  std::uint64_t dbx_chunk_size = 16 * 1024 * 1024;  // large-file chunk, multiple of 4 MiB

  // --- operations (docs/operations.md) ---
  // The HTTP status endpoint's address; unset (the default, or "") means no endpoint.
  std::optional<ops::ListenAddress> status_listen;
  // File holding the endpoint's bearer token; required when status_listen is not loopback.
  std::filesystem::path status_token_file;
  // Secret, not a key: the token read from status_token_file at load time (when status_listen
  // is set). Never printed.
  std::string status_token;
  ops::BandwidthSchedule bwlimit;  // shared by every transfer; default off

  // Cloud path a client dir mirrors to: cloud_root + "/" + basename(dir) (a trailing slash on
  // `client_dir` is ignored). E.g. cloud_root "/filesync", "/home/me/Documents" ->
  // "/filesync/Documents"; cloud_root "" -> "/Documents".
  [[nodiscard]] std::string CloudPathFor(const std::filesystem::path& client_dir) const;
};

struct LoadOptions {
  std::filesystem::path config_dir = "config";  // where <env>.toml and instance.toml live
  std::optional<std::string> env;               // --env; falls back to $FILESYNC_ENV, then "dev"
  std::optional<std::filesystem::path> config_file;  // --config: this file alone
  // false for `filesync auth`, which is about to create the credentials: the dropbox backend
  // then needs none, and dbx_refresh_token_file is not read (it may not exist yet).
  bool need_credentials = true;
};

// Loads, merges and validates. Throws ConfigError (one line) on any problem.
Config Load(const LoadOptions& options);

// Validates an already-merged Config (also used by tests). Throws ConfigError naming
// config.origins[key], else config.source. Checks the file system only for dbx_ca_file
// (readable) and to resolve symlinks when comparing directories.
void Validate(const Config& config);

// The effective configuration as TOML, one `key = value` line per key in the order of
// docs/configuration.md, secrets shown as "<redacted>" (empty secrets as ""). For
// `filesync config` and start-up logs.
std::string Describe(const Config& config);

// True if any secret (dbx_token, dbx_refresh_token, dbx_app_secret) is set.
bool HoldsSecret(const Config& config);

// One message per file in config.files that sets a secret and is readable by group or others,
// e.g. "config/instance.toml: holds dbx_token but is readable by group/others (mode 0644); run
// chmod 600 config/instance.toml"; and one each for dbx_refresh_token_file and
// status_token_file, when set and readable by group or others ("<file>: holds the Dropbox
// refresh token but is readable by group/others (mode 0644); run chmod 600 <file>"). Empty when
// all is well.
std::vector<std::string> PermissionWarnings(const Config& config);

}  // namespace filesync::config
