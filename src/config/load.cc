// How: Load() parses each file with toml++, applies its entries in file order through the key
// table, then the FILESYNC_<KEY> variables, fills the path defaults, reads the token files and
// runs the validation.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "config/internal.h"

namespace filesync::config::internal {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path, std::string_view missing_fix) {
  const std::string name = path.string();
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) {
    FailFile(name, "cannot read: " + (ec ? ec.message() : std::string("no such file")),
             missing_fix);
  }
  if (fs::is_directory(status)) {
    FailFile(name, "cannot read: is a directory, not a file", "point to a TOML file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    FailFile(name, "cannot read: " + std::generic_category().message(err),
             "make it readable by the user running filesync, e.g. chmod 600 " + name);
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) FailFile(name, "cannot read: I/O error", "check the file and the disk");
  return content.str();
}

std::string LineOf(const std::string& content, std::size_t line) {
  std::istringstream in(content);
  std::string text;
  for (std::size_t i = 0; i < line && std::getline(in, text); ++i) {
  }
  return text;
}

toml::table ParseToml(const fs::path& path, const std::string& content) {
  const std::string name = path.string();
  try {
    return toml::parse(content, name);
  } catch (const toml::parse_error& e) {
    const auto line = e.source().begin.line;
    const auto column = e.source().begin.column;
    // toml++ may quote part of the offending text; on a line that names a secret, it must not.
    std::string description(e.description());
    if (LooksSecret(LineOf(content, line))) {
      description = "syntax error (details hidden: the line holds a secret)";
    } else if (const auto saw = description.find(", saw '");
               saw != std::string::npos && LooksSecret(content)) {
      description.resize(saw);  // the quoted character may belong to a secret on an earlier line
    }
    FailFile(
        name + ":" + std::to_string(line) + ":" + std::to_string(column),
        "invalid TOML: " + description,
        "fix the syntax at line " + std::to_string(line) + ", column " + std::to_string(column));
  }
}

void ApplyTable(const fs::path& path, const toml::table& table, Config& config) {
  const std::string origin = path.string();
  // toml::table is sorted by key; apply in file order so the first error is the first in the file.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (const auto& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& sa = a.first->source().begin;
    const auto& sb = b.first->source().begin;
    return std::pair(sa.line, sa.column) < std::pair(sb.line, sb.column);
  });
  for (const auto& [key, node] : entries) {
    const std::string name(key->str());
    const KeySpec* spec = FindKey(name);
    if (spec == nullptr) {
      const auto nearest = NearestKey(name);
      const bool hide = LooksSecret(name) || (nearest && Key(*nearest).secret);
      Fail(origin, name, hide ? std::string(kRedacted) : Shorten(RenderNode(*node)),
           "unknown key '" + name + "'",
           nearest ? "did you mean '" + std::string(*nearest) + "'?"
                   : std::string("see docs/configuration.md for the list of keys"));
    }
    spec->apply(*spec, config, Raw{.node = node, .text = {}, .origin = origin});
    config.origins[name] = origin;
  }
}

void LoadFile(const fs::path& path, std::string_view missing_fix, Config& config) {
  const std::string content = ReadFile(path, missing_fix);
  const toml::table table = ParseToml(path, content);
  config.files.push_back(path);
  ApplyTable(path, table, config);
}

// Environment variables override every file. Unknown FILESYNC_* names are left alone: other
// tools (tests, the emulator) use that prefix too.
bool ApplyEnvironment(Config& config) {
  bool any = false;
  for (const KeySpec& spec : AllKeys()) {
    const std::string name = EnvName(spec.name);
    auto value = GetEnv(name);
    if (!value) continue;
    const std::string origin = std::string(kEnvOriginPrefix) + name;
    spec.apply(spec, config, Raw{.node = nullptr, .text = *value, .origin = origin});
    config.origins[std::string(spec.name)] = origin;
    any = true;
  }
  return any;
}

fs::path DefaultStateDir() {
  if (auto xdg = GetEnv("XDG_STATE_HOME"); xdg && !xdg->empty() && fs::path(*xdg).is_absolute()) {
    return Normal(fs::path(*xdg) / "filesync");
  }
  if (auto home = GetEnv("HOME"); home && !home->empty()) {
    return Normal(fs::path(*home) / ".local/state/filesync");
  }
  return {};
}

bool IsValidEnvName(std::string_view env) {
  return !env.empty() && std::all_of(env.begin(), env.end(), [](char ch) {
    return std::islower(static_cast<unsigned char>(ch)) ||
           std::isdigit(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
}

// The token file holds one line, the refresh token (surrounding whitespace ignored).
void ReadRefreshTokenFile(Config& c) {
  std::ifstream in(c.dbx_refresh_token_file);
  std::string token;
  if (!in || !(in >> token) || token.empty()) {
    Invalid(c, "dbx_refresh_token_file", "cannot be read, or is empty",
            "run `filesync auth` to create it, or point the key at the file it wrote");
  }
  c.dbx_refresh_token = std::move(token);
}

// The status token file holds the token (surrounding whitespace ignored): visible ASCII, at
// least 16 characters. Its content never appears in a message.
void ReadStatusTokenFile(Config& c) {
  constexpr std::string_view kKey = "status_token_file";
  constexpr std::size_t kMinToken = 16;
  const std::string file = c.status_token_file.string();
  const std::string fix =
      "put a token in it, e.g. openssl rand -hex 32 > " + file + "; chmod 600 " + file;
  std::error_code ec;
  const auto status = fs::status(c.status_token_file, ec);
  if (ec || !fs::exists(status)) Invalid(c, kKey, "does not exist", fix);
  if (!fs::is_regular_file(status)) Invalid(c, kKey, "is not a regular file", fix);
  constexpr std::size_t kMaxFile = 4096;  // a token file, not e.g. a /proc file to read forever
  std::ifstream in(c.status_token_file, std::ios::binary);
  std::string token(kMaxFile + 1, '\0');
  in.read(token.data(), static_cast<std::streamsize>(token.size()));
  if (!in && !in.eof()) {
    Invalid(c, kKey, "cannot be read by this user",
            "make it readable by the user running filesync (and no one else: chmod 600)");
  }
  token.resize(static_cast<std::size_t>(in.gcount()));
  if (token.size() > kMaxFile) Invalid(c, kKey, "is larger than 4 KiB, so not a token file", fix);
  token.erase(0, token.find_first_not_of(" \t\r\n"));
  token.erase(token.find_last_not_of(" \t\r\n") + 1);
  if (token.empty()) Invalid(c, kKey, "is empty", fix);
  if (!std::all_of(token.begin(), token.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; })) {
    Invalid(c, kKey, "holds more than one word, or characters other than visible ASCII", fix);
  }
  if (token.size() < kMinToken) {
    Invalid(c, kKey, "holds a token shorter than 16 characters (too easy to guess)", fix);
  }
  c.status_token = std::move(token);
}

// "<file>: holds <what> but is readable by group/others (mode 0644); run chmod 600 <file>", or ""
// when `file` is owner-only (or cannot be looked at).
std::string ReadableByOthers(const fs::path& file, const std::string& what) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return "";
  if ((st.st_mode & (S_IRGRP | S_IROTH)) == 0) return "";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return SingleLine(file.string() + ": holds " + what + " but is readable by group/others (mode " +
                    mode + "); run chmod 600 " + file.string());
}

// The secret keys that `file` sets to a non-empty value (none if it no longer parses: it changed
// since Load(), and the next Load() reports it).
std::vector<std::string> SecretsSetIn(const fs::path& file) {
  std::vector<std::string> secrets;
  try {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    const toml::table table = toml::parse(content.str(), file.string());
    for (const KeySpec& spec : AllKeys()) {
      if (!spec.secret) continue;
      const auto* value = table.get_as<std::string>(spec.name);
      if (value != nullptr && !value->get().empty()) secrets.emplace_back(spec.name);
    }
  } catch (const toml::parse_error&) {
    return {};
  }
  return secrets;
}

}  // namespace
}  // namespace filesync::config::internal

namespace filesync::config {

namespace fs = std::filesystem;
using internal::ApplyEnvironment;
using internal::DefaultStateDir;
using internal::Fail;
using internal::FailFile;
using internal::GetEnv;
using internal::IsValidEnvName;
using internal::kEnvOriginPrefix;
using internal::LoadFile;
using internal::Quote;
using internal::ReadableByOthers;
using internal::ReadRefreshTokenFile;
using internal::ReadStatusTokenFile;
using internal::SecretsSetIn;
using internal::ValidateAll;

Config Load(const LoadOptions& options) {
  Config config;
  std::vector<std::string> sources;
  if (options.config_file) {
    LoadFile(*options.config_file, "check the --config path", config);
    sources.push_back(options.config_file->string());
  } else {
    std::string env = "dev";
    std::string env_origin = "default";
    if (options.env) {
      env = *options.env;
      env_origin = "--env";
    } else if (auto from_env = GetEnv("FILESYNC_ENV"); from_env && !from_env->empty()) {
      env = *from_env;
      env_origin = std::string(kEnvOriginPrefix) + "FILESYNC_ENV";
    }
    if (!IsValidEnvName(env)) {
      Fail(env_origin, "env", Quote(env),
           "not an environment name (lower-case letters, digits, _ and -)",
           "use test, dev or prod");
    }
    const fs::path env_file = options.config_dir / (env + ".toml");
    LoadFile(env_file,
             "env '" + env + "' (from " + env_origin +
                 ") needs this file; use test, dev or prod, or run "
                 "from the directory that holds config/",
             config);
    sources.push_back(env_file.string());
    const fs::path instance = options.config_dir / "instance.toml";
    std::error_code ec;
    const bool instance_exists = fs::exists(fs::symlink_status(instance, ec));
    if (instance_exists) {
      LoadFile(instance, "fix or remove the dangling link", config);
      sources.push_back(instance.string());
    } else if (env == "prod") {
      FailFile(instance.string(), "missing, and env 'prod' requires it (the secrets live there)",
               "copy " + (options.config_dir / "instance.example.toml").string() + " to " +
                   instance.string() + ", fill it in and chmod 600 it");
    }
  }
  if (ApplyEnvironment(config)) sources.emplace_back("environment");
  if (config.state_dir.empty() && !config.origins.contains("state_dir")) {
    config.state_dir = DefaultStateDir();
  }
  if (config.local_cloud_dir.empty() && !config.origins.contains("local_cloud_dir") &&
      !config.state_dir.empty()) {
    config.local_cloud_dir = config.state_dir / "cloud";
  }
  for (std::size_t i = 0; i < sources.size(); ++i) {
    config.source += (i == 0 ? "" : " + ") + sources[i];
  }
  if (options.need_credentials && config.dbx_refresh_token.empty() &&
      !config.dbx_refresh_token_file.empty()) {
    ReadRefreshTokenFile(config);
  }
  if (config.status_listen && !config.status_token_file.empty()) ReadStatusTokenFile(config);
  ValidateAll(config, options.need_credentials);
  return config;
}

std::vector<std::string> PermissionWarnings(const Config& config) {
  std::vector<std::string> warnings;
  for (const fs::path& file : config.files) {
    const std::vector<std::string> secrets = SecretsSetIn(file);
    if (secrets.empty()) continue;
    std::string names;
    for (const std::string& s : secrets) names += (names.empty() ? "" : ", ") + s;
    if (auto warning = ReadableByOthers(file, names); !warning.empty())
      warnings.push_back(std::move(warning));
  }
  // The refresh-token file is a secrets file too, whether or not a config file also sets the
  // token.
  if (!config.dbx_refresh_token_file.empty()) {
    if (auto warning = ReadableByOthers(config.dbx_refresh_token_file, "the Dropbox refresh token");
        !warning.empty())
      warnings.push_back(std::move(warning));
  }
  if (!config.status_token_file.empty()) {
    if (auto warning = ReadableByOthers(config.status_token_file, "the status endpoint's token");
        !warning.empty())
      warnings.push_back(std::move(warning));
  }
  return warnings;
}

}  // namespace filesync::config
