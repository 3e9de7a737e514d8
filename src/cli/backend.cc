#include "cli/backend.h"

#include <iostream>
#include <stdexcept>

#include "cli/commands.h"
#include "cloud/dropbox/auth.h"
#include "cloud/dropbox/dropbox_cloud.h"
#include "cloud/local/local_cloud.h"
#include "util/log.h"

namespace filesync::cli {
namespace {

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(const config::Config& config) : cloud_(config.local_cloud_dir) {}
  cloud::Cloud& cloud() override { return cloud_; }

 private:
  cloud::LocalCloud cloud_;
};

// Dropbox's resumable upload sessions live in the state store, next to everything else that
// must survive a crash.
class StoreSessions : public dropbox::SessionStore {
 public:
  explicit StoreSessions(cache::StateStore& store) : store_(store) {}
  Result<std::optional<std::string>> Get(std::string_view key) override {
    return store_.Get(0, Key(key));
  }
  Status Put(std::string_view key, std::string_view value) override {
    return store_.Put(0, Key(key), value);
  }
  Status Erase(std::string_view key) override { return store_.Erase(0, Key(key)); }

 private:
  static std::string Key(std::string_view key) { return "dropbox_session:" + std::string(key); }
  cache::StateStore& store_;
};

class DropboxBackend : public Backend {
 public:
  DropboxBackend(const config::Config& config, cache::StateStore& store) : sessions_(store) {
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
    try {
      cloud_ = std::make_unique<dropbox::DropboxCloud>(std::move(options));
    } catch (const std::invalid_argument& e) {
      throw config::ConfigError(config.source + ": " + e.what());
    }
  }
  cloud::Cloud& cloud() override { return *cloud_; }

 private:
  StoreSessions sessions_;
  std::unique_ptr<dropbox::DropboxCloud> cloud_;
};

}  // namespace

std::unique_ptr<Backend> MakeBackend(const config::Config& config, cache::StateStore& store) {
  if (config.backend == config::Backend::kDropbox)
    return std::make_unique<DropboxBackend>(config, store);
  return std::make_unique<LocalBackend>(config);
}

int RunAuth(const GlobalOptions& global, const AuthOptions& auth) {
  dropbox::AuthFlowOptions options;
  options.app_key = auth.app_key;
  options.api_url = auth.api_url;
  options.token_file = auth.out.string();
  if (options.app_key.empty() || options.token_file.empty()) {
    // Take what was not given from the configuration (which must then load).
    const config::Config config = config::Load(global.load);
    if (options.app_key.empty()) options.app_key = config.dbx_app_key;
    if (options.api_url.empty()) options.api_url = config.dbx_api_url;
    if (options.token_file.empty())
      options.token_file = (config.state_dir / "dropbox-refresh-token").string();
    options.ca_file = config.dbx_ca_file.string();
  }
  if (options.api_url.empty()) options.api_url = "https://api.dropboxapi.com";
  if (options.app_key.empty()) {
    throw config::ConfigError(
        "filesync auth: no app key: pass --app-key KEY or set dbx_app_key in config/instance.toml");
  }
  if (Status s = dropbox::RunAuthFlow(options, std::cin, std::cout); !s.ok()) {
    std::fprintf(stderr, "filesync: auth failed: %s\n", s.ToString().c_str());
    return 1;
  }
  std::cout << "Refresh token stored in " << options.token_file
            << " (mode 0600). Add to config/instance.toml:\n"
            << "  backend = \"dropbox\"\n  dbx_app_key = \"" << options.app_key << "\"\n"
            << "  dbx_refresh_token_file = \"" << options.token_file << "\"\n";
  return 0;
}

}  // namespace filesync::cli
