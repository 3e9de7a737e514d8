// `filesync auth`: Dropbox's OAuth code flow (PKCE), storing a refresh token owner-only.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>

#include "cli/commands.h"
#include "cloud/dropbox/auth.h"
#include "config/config.h"

namespace filesync::cli {
namespace {

// Makes the folder that will hold the refresh token, so that a missing or unwritable folder is
// reported before the user pastes the one-time code. A folder created here is owner-only, like
// the state dir the daemon creates.
void PrepareTokenFolder(const std::filesystem::path& token_file) {
  const std::filesystem::path folder =
      std::filesystem::absolute(token_file).lexically_normal().parent_path();
  std::error_code ec;
  const bool created = std::filesystem::create_directories(folder, ec);
  if (ec) throw std::runtime_error("cannot create " + folder.string() + ": " + ec.message());
  if (created && chmod(folder.c_str(), 0700) != 0)
    throw std::runtime_error("cannot chmod " + folder.string() + ": " + std::strerror(errno));
  if (access(folder.c_str(), W_OK | X_OK) != 0)
    throw std::runtime_error("cannot write to " + folder.string() + ": " + std::strerror(errno));
}

}  // namespace

int RunAuth(const GlobalOptions& global, const AuthOptions& auth) {
  dropbox::AuthFlowOptions options;
  options.app_key = auth.app_key;
  options.api_url = auth.api_url;
  options.token_file = auth.out.string();
  // The command line wins and the configuration fills the gaps. It must load when it has to
  // supply the app key or the token file; otherwise a config that does not load is skipped. When
  // it loads, its dbx_ca_file is trusted as `sync` trusts it: auth talks to the same server.
  // The credentials are what auth creates, so the config need not hold them yet.
  config::LoadOptions load = global.load;
  load.need_credentials = false;
  std::optional<config::Config> config;
  if (options.app_key.empty() || options.token_file.empty()) {
    config = config::Load(load);
  } else {
    try {
      config = config::Load(load);
    } catch (const config::ConfigError&) {
      // Nothing is missing from the command line; go on without the file.
    }
  }
  if (config) {
    if (options.app_key.empty()) options.app_key = config->dbx_app_key;
    if (options.api_url.empty()) options.api_url = config->dbx_api_url;
    if (options.token_file.empty())
      options.token_file = (config->state_dir / "dropbox-refresh-token").string();
    options.ca_file = config->dbx_ca_file.string();
  }
  if (options.api_url.empty()) options.api_url = "https://api.dropboxapi.com";
  if (options.app_key.empty()) {
    throw config::ConfigError(
        "filesync auth: no app key: pass --app-key KEY or set dbx_app_key in config/instance.toml");
  }
  PrepareTokenFolder(options.token_file);
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
