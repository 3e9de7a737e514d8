#include "cli/backend.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>

#include "cli/commands.h"
#include "cloud/dropbox/auth.h"
#include "cloud/dropbox/dropbox_cloud.h"
#include "cloud/dropbox/http_client.h"
#include "cloud/local/local_cloud.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

// A local_cloud_dir that can never be a folder (a file where it or a parent should be) is a
// configuration error, said at start-up or on reload rather than on every pass. A folder merely
// missing is the pass's business: a first pass creates it, a later one refuses (LocalCloud).
void CheckCloudDirCanBeAFolder(const config::Config& config) {
  std::error_code ec;
  for (std::filesystem::path p = config.local_cloud_dir; !p.empty(); p = p.parent_path()) {
    const auto status = std::filesystem::status(p, ec);
    if (status.type() == std::filesystem::file_type::not_found) {
      if (p == p.parent_path()) break;
      continue;
    }
    if (status.type() == std::filesystem::file_type::directory) return;
    const auto origin = config.origins.find("local_cloud_dir");
    throw config::ConfigError((origin != config.origins.end() ? origin->second : config.source) +
                              ": key 'local_cloud_dir' = \"" + config.local_cloud_dir.string() +
                              "\": " + p.string() +
                              " is not a folder, so it cannot hold the cloud; point "
                              "local_cloud_dir at a folder");
  }
}

class LocalBackend : public Backend {
 public:
  LocalBackend(const config::Config& config, cloud::Throttle* throttle)
      : cloud_(config.local_cloud_dir, throttle) {
    CheckCloudDirCanBeAFolder(config);
  }
  cloud::Cloud& cloud() override { return cloud_; }

 private:
  cloud::LocalCloud cloud_;
};

// Dropbox's resumable upload sessions live in the state store, next to everything else that
// must survive a crash.
class StoreSessions : public dropbox::SessionStore {
 public:
  explicit StoreSessions(store::StateStore& store) : store_(store) {}
  Result<std::optional<std::string>> Get(std::string_view key) override {
    return store_.Get(0, Key(key));
  }
  Status Put(std::string_view key, std::string_view value) override {
    return store_.Put(0, Key(key), value);
  }
  Status Erase(std::string_view key) override { return store_.Erase(0, Key(key)); }

 private:
  static std::string Key(std::string_view key) { return "dropbox_session:" + std::string(key); }
  store::StateStore& store_;
};

class DropboxBackend : public Backend {
 public:
  DropboxBackend(const config::Config& config, store::StateStore& store, BackendHooks hooks)
      : sessions_(store) {
    dropbox::DropboxOptions options;
    options.api_url = config.dbx_api_url;
    options.content_url = config.dbx_content_url;
    options.notify_url = config.dbx_notify_url;
    options.access_token = config.dbx_token;
    options.refresh_token = config.dbx_refresh_token;
    options.app_key = config.dbx_app_key;
    options.app_secret = config.dbx_app_secret;
    options.ca_file = config.dbx_ca_file.string();
    options.append_batch = config.dbx_append_batch;
    options.chunk_size = config.dbx_chunk_size;
    options.sessions = &sessions_;
    options.transport = dropbox::MakeCurlTransport({.ca_file = config.dbx_ca_file.string(),
                                                    .throttle = hooks.throttle,
                                                    .observer = hooks.requests});
    // config::Validate() owns the rules for the dbx_* keys (credentials, chunk size); what
    // DropboxCloud still refuses here is a programming error, not a configuration one.
    cloud_ = std::make_unique<dropbox::DropboxCloud>(std::move(options));
  }
  cloud::Cloud& cloud() override { return *cloud_; }
  Result<std::string> Account() override {
    auto account = cloud_->CurrentAccount();
    if (!account.ok()) return account.status();
    const std::string& name = account->display_name;
    const std::string& email = account->email;
    return name.empty() ? email : email.empty() ? name : name + " <" + email + ">";
  }

 private:
  StoreSessions sessions_;
  std::unique_ptr<dropbox::DropboxCloud> cloud_;
};

}  // namespace

std::unique_ptr<Backend> MakeBackend(const config::Config& config, store::StateStore& store,
                                     BackendHooks hooks) {
  if (config.backend == config::Backend::kDropbox)
    return std::make_unique<DropboxBackend>(config, store, hooks);
  return std::make_unique<LocalBackend>(config, hooks.throttle);
}

}  // namespace filesync::cli
