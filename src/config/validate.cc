// How: Validate() checks ranges and the relations between keys (sync dirs against each other
// and against state_dir and local_cloud_dir, cloud_root's components, the names Dropbox
// refuses); it is the one owner of these rules: the backends take a validated Config. Each
// problem is thrown as one line naming where the key was set (Invalid()).
#include <algorithm>
#include <array>
#include <fstream>
#include <system_error>

#include "config/internal.h"
#include "core/rel_path.h"
#include "plan/names.h"
#include "util/unicode.h"

namespace filesync::config::internal {
namespace {

namespace fs = std::filesystem;

constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};

std::string Where(const Config& c, std::string_view key) {
  if (auto it = c.origins.find(std::string(key)); it != c.origins.end()) return it->second;
  return c.source.empty() ? std::string("configuration") : c.source;
}

std::string Shown(const Config& c, const KeySpec& spec) {
  return spec.secret ? std::string(kRedacted) : Shorten(spec.format(c));
}

}  // namespace

[[noreturn]] void Invalid(const Config& c, std::string_view key, std::string_view problem,
                          std::optional<std::string> fix) {
  const KeySpec& spec = Key(key);
  const std::string where = Where(c, key);
  Fail(where, key, Shown(c, spec), problem, fix ? *fix : Example(spec, where));
}

namespace {

// The fix for a relative path that holds a '$': it was probably meant as a variable.
constexpr std::string_view kNoVariables =
    "environment variables such as $HOME are not expanded in paths: write the path from the "
    "root, or start it with ~/ for your home directory";

void ValidateSyncDir(const Config& c, const fs::path& dir) {
  constexpr std::string_view kKey = "client_sync_dirs";
  const std::string shown = Quote(dir.string());
  if (dir.empty()) Invalid(c, kKey, "contains an empty entry");
  if (!dir.is_absolute()) {
    Invalid(c, kKey, shown + " is not an absolute path",
            dir.string().find('$') != std::string::npos
                ? std::string(kNoVariables)
                : "write it from the root, e.g. " +
                      Quote((fs::path("/home/me") / dir).lexically_normal().string()));
  }
  if (Normal(dir) == "/") {
    Invalid(c, kKey, "\"/\" cannot be synced (it contains the state and every other dir)",
            "list the directories under / that you want synced");
  }
  if (!unicode::IsValidUtf8(Normal(dir).filename().string())) {
    Invalid(c, kKey, shown + " has a name that is not valid UTF-8 (the cloud stores UTF-8 names)",
            "rename the directory or sync its parent");
  }
}

// Sync dir `a` (listed before `b` when `a_first`) against sync dir `b`.
void ValidateSyncDirPair(const Config& c, const fs::path& a, const fs::path& b, bool a_first) {
  constexpr std::string_view kKey = "client_sync_dirs";
  if (a_first && IsWithinAnyway(a, b) && IsWithinAnyway(b, a)) {
    Invalid(c, kKey, Quote(a.string()) + " and " + Quote(b.string()) + " are the same directory",
            "list each directory once");
  }
  if (IsWithinAnyway(a, b)) {
    Invalid(
        c, kKey,
        Quote(a.string()) + " is inside " + Quote(b.string()) + " (sync dirs must not be nested)",
        "keep only " + Quote(b.string()) + " or list sibling directories instead");
  }
  if (a_first && core::CloudKey(Normal(a).filename().string()) ==
                     core::CloudKey(Normal(b).filename().string())) {
    Invalid(c, kKey,
            Quote(a.string()) + " and " + Quote(b.string()) +
                " have the same name, so both would map to cloud path " + c.CloudPathFor(a) +
                " (names compare case-insensitively)",
            "rename one of them, or sync their common parent instead");
  }
}

void ValidateSyncDirs(const Config& c) {
  if (c.client_sync_dirs.empty()) {
    Invalid(c, "client_sync_dirs", "no directories to sync (the list is empty)",
            "set client_sync_dirs = [\"/home/me/Documents\"] in config/instance.toml, or "
            "FILESYNC_CLIENT_SYNC_DIRS=/home/me/Documents:/home/me/Photos");
  }
  for (const fs::path& dir : c.client_sync_dirs) ValidateSyncDir(c, dir);
  for (std::size_t i = 0; i < c.client_sync_dirs.size(); ++i) {
    for (std::size_t j = 0; j < c.client_sync_dirs.size(); ++j) {
      if (i != j) ValidateSyncDirPair(c, c.client_sync_dirs[i], c.client_sync_dirs[j], i < j);
    }
  }
}

// The local backend's staging folder at the top of local_cloud_dir
// (cloud::LocalCloud::kStagingName; config_test checks they agree: config cannot include a
// backend).
constexpr std::string_view kLocalStagingName = ".filesync-staging";

void ValidateCloudRoot(const Config& c) {
  constexpr std::string_view kKey = "cloud_root";
  const std::string& r = c.cloud_root;
  if (r.empty()) return;
  const std::string fix = "use \"\" for the cloud root itself or a path like \"/filesync\"";
  if (r.find('\0') != std::string::npos) Invalid(c, kKey, "contains a NUL byte", fix);
  if (r.find('\\') != std::string::npos) {
    Invalid(c, kKey, "contains a backslash (cloud paths use \"/\")", fix);
  }
  if (!unicode::IsValidUtf8(r)) Invalid(c, kKey, "is not valid UTF-8", fix);
  if (r.front() != '/') Invalid(c, kKey, "must start with \"/\" (or be \"\")", fix);
  if (r == "/") Invalid(c, kKey, "\"/\" is not normalised (Load() turns it into \"\")", fix);
  if (r.back() == '/') Invalid(c, kKey, "must not end with \"/\"", fix);
  std::size_t start = 1;
  while (start <= r.size()) {
    std::size_t slash = r.find('/', start);
    if (slash == std::string::npos) slash = r.size();
    const std::string_view part(r.data() + start, slash - start);
    if (part.empty()) Invalid(c, kKey, "has an empty component (\"//\")", fix);
    if (part == ".") Invalid(c, kKey, "has a \".\" component", fix);
    if (part == "..") Invalid(c, kKey, "has a \"..\" component", fix);
    if (start == 1 && part == kLocalStagingName && c.backend == Backend::kLocal) {
      Invalid(c, kKey, "is the local backend's staging folder", fix);
    }
    start = slash + 1;
  }
}

// With cloud_root "", a sync dir's name is the first component of its cloud folder: the local
// backend keeps its staging folder there.
void ValidateLocalNames(const Config& c) {
  if (c.backend != Backend::kLocal || !c.cloud_root.empty()) return;
  for (const fs::path& dir : c.client_sync_dirs) {
    if (Normal(dir).filename() == kLocalStagingName) {
      Invalid(c, "client_sync_dirs",
              Quote(dir.string()) + " would be mirrored to the local backend's staging folder /" +
                  std::string(kLocalStagingName),
              "set a cloud_root such as \"/filesync\", or sync a directory with another name");
    }
  }
}

// Names Dropbox refuses (plan/names.h) in the folders a Dropbox mirror lives in: each component
// of cloud_root, and each sync dir's name (the last component of its cloud folder). Found here
// instead of as a refused request at the first pass.
void ValidateDropboxNames(const Config& c) {
  if (c.backend != Backend::kDropbox) return;
  const std::string& r = c.cloud_root;
  for (std::size_t start = 1; start < r.size();) {
    std::size_t slash = r.find('/', start);
    if (slash == std::string::npos) slash = r.size();
    const std::string part = r.substr(start, slash - start);
    if (auto why = plan::CheckName("/" + part, plan::NameRules::kDropbox)) {
      Invalid(c, "cloud_root", "Dropbox refuses the folder name " + Quote(part) + ": " + *why,
              "choose another cloud_root, e.g. cloud_root = \"/filesync\"");
    }
    start = slash + 1;
  }
  for (const fs::path& dir : c.client_sync_dirs) {
    const std::string name = Normal(dir).filename().string();
    if (auto why = plan::CheckName("/" + name, plan::NameRules::kDropbox)) {
      Invalid(c, "client_sync_dirs",
              Quote(dir.string()) + " would be mirrored to " + c.CloudPathFor(dir) +
                  ", a name Dropbox refuses (" + *why + ")",
              "sync a directory with another name, or its parent");
    }
  }
}

void ValidatePositive(const Config& c, std::string_view key, std::chrono::seconds value) {
  if (value.count() < 1) Invalid(c, key, "must be a whole number of seconds >= 1");
}

// `dir` may not be inside a sync dir; with `disjoint`, no sync dir may be inside `dir` either.
void ValidateOwnDir(const Config& c, std::string_view key, const fs::path& dir, bool disjoint) {
  if (dir.empty()) Invalid(c, key, "must be set");
  if (!dir.is_absolute()) {
    Invalid(c, key, "must be an absolute path",
            dir.string().find('$') != std::string::npos ? std::optional<std::string>(kNoVariables)
                                                        : std::nullopt);
  }
  for (const fs::path& sync : c.client_sync_dirs) {
    if (IsWithinAnyway(dir, sync)) {
      Invalid(c, key,
              "is inside sync dir " + Quote(sync.string()) + " (filesync would sync its own files)",
              "move it outside every client_sync_dirs entry");
    }
    if (disjoint && IsWithinAnyway(sync, dir)) {
      Invalid(c, key, "contains sync dir " + Quote(sync.string()),
              "move it outside every client_sync_dirs entry");
    }
  }
}

void ValidateUrl(const Config& c, std::string_view key, const std::string& url) {
  const bool https = url.starts_with("https://");
  const std::size_t scheme = https ? 8 : url.starts_with("http://") ? 7 : 0;
  if (scheme == 0) Invalid(c, key, "must start with http:// or https://");
  if (url.size() == scheme || url[scheme] == '/') Invalid(c, key, "has no host");
  for (char ch : url) {
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) {
      Invalid(c, key, "contains a space or control character");
    }
  }
}

void ValidateLocalCloudDir(const Config& c) {
  if (c.backend != Backend::kLocal && c.local_cloud_dir.empty()) return;
  ValidateOwnDir(c, "local_cloud_dir", c.local_cloud_dir, true);
  if (IsWithinAnyway(c.state_dir, c.local_cloud_dir)) {
    Invalid(
        c, "local_cloud_dir", "contains state_dir " + Quote(c.state_dir.string()),
        "keep the local cloud and the state directory apart, e.g. the default <state_dir>/cloud");
  }
}

void ValidateExclude(const Config& c) {
  for (const std::string& pattern : c.exclude) {
    if (pattern.empty()) Invalid(c, "exclude", "contains an empty pattern");
    if (pattern == "/") Invalid(c, "exclude", "pattern \"/\" would exclude the whole sync dir");
    if (pattern.find('\0') != std::string::npos) Invalid(c, "exclude", "contains a NUL byte");
  }
}

void ValidateCaFile(const Config& c) {
  if (c.dbx_ca_file.empty()) return;
  std::error_code ec;
  const auto status = fs::status(c.dbx_ca_file, ec);
  if (ec || !fs::exists(status)) {
    Invalid(c, "dbx_ca_file", "does not exist", "point it at a PEM CA bundle, or remove the key");
  }
  if (!fs::is_regular_file(status)) {
    Invalid(c, "dbx_ca_file", "is not a regular file",
            "point it at a PEM CA bundle, or remove the key");
  }
  std::ifstream in(c.dbx_ca_file);
  if (!in) {
    Invalid(c, "dbx_ca_file", "cannot be read by this user", "fix its permissions (chmod 644)");
  }
}

// The dropbox backend needs an access token or a refresh token, and it refreshes with a refresh
// token whenever one is set, which takes the app key. Config owns these rules: the backend takes
// them as checked.
void ValidateCredentials(const Config& c) {
  if (c.backend != Backend::kDropbox) return;
  if (c.dbx_token.empty() && c.dbx_refresh_token.empty()) {
    Invalid(c, "backend", "the dropbox backend needs credentials",
            "set dbx_token, or dbx_refresh_token and dbx_app_key, in config/instance.toml "
            "(or FILESYNC_DBX_TOKEN)");
  }
  if (!c.dbx_refresh_token.empty() && c.dbx_app_key.empty()) {
    Invalid(c, "dbx_app_key", "is empty but dbx_refresh_token needs it to refresh tokens",
            "set dbx_app_key = \"<your app key>\" in config/instance.toml");
  }
}

}  // namespace

void ValidateAll(const Config& c, bool need_credentials) {
  ValidateSyncDirs(c);
  ValidateCloudRoot(c);
  ValidateDropboxNames(c);
  ValidateLocalNames(c);
  ValidatePositive(c, "poll_interval", c.poll_interval);
  if (c.workers < 1 || c.workers > kMaxWorkers) {
    Invalid(c, "workers", "must be a whole number from 1 to 64");
  }
  ValidateOwnDir(c, "state_dir", c.state_dir, false);
  ValidateLocalCloudDir(c);
  ValidateExclude(c);
  if (!(c.max_delete.percent >= 0.0 && c.max_delete.percent <= 100.0)) {
    Invalid(c, "max_delete", "the percentage must be between 0% and 100%");
  }
  if (std::find(kLogLevels.begin(), kLogLevels.end(), c.log_level) == kLogLevels.end()) {
    Invalid(c, "log_level", "must be one of trace, debug, info, warn, error (in any case)");
  }
  ValidatePositive(c, "cloud_verify_interval", c.cloud_verify_interval);
  ValidateUrl(c, "dbx_api_url", c.dbx_api_url);
  ValidateUrl(c, "dbx_content_url", c.dbx_content_url);
  ValidateUrl(c, "dbx_notify_url", c.dbx_notify_url);
  ValidateCaFile(c);
  if (c.dbx_chunk_size < kChunkQuantum || c.dbx_chunk_size > kMaxChunkSize ||
      c.dbx_chunk_size % kChunkQuantum != 0) {
    Invalid(c, "dbx_chunk_size",
            "must be a multiple of 4 MiB (4194304 bytes) from 4 MiB to 148 MiB (Dropbox limits a "
            "request to 150 MiB)");
  }
  if (c.status_listen && !c.status_listen->loopback && c.status_token_file.empty()) {
    Invalid(c, "status_listen",
            "is reachable from other machines (not a loopback address) but status_token_file is "
            "not set",
            "set status_token_file to a file holding a token (e.g. openssl rand -hex 32 > "
            "/etc/filesync/status-token; chmod 600 it), or listen on 127.0.0.1 only");
  }
  if (need_credentials) ValidateCredentials(c);
}

}  // namespace filesync::config::internal

namespace filesync::config {

void Validate(const Config& c) { internal::ValidateAll(c, true); }

}  // namespace filesync::config
