// Private to src/config: what its files share. keys.cc holds the key table (every key's
// converter from a TOML node or environment string, and its formatter), validate.cc the rules
// across keys, load.cc the files and the environment, messages.cc the one-line messages and
// paths.cc the path comparisons. Nothing outside src/config includes this header.
//
// Thread safety: as config.h (GetEnv reads the process environment).
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace filesync::config::internal {

inline constexpr std::uint64_t kMiB = 1024 * 1024;
inline constexpr std::uint64_t kChunkQuantum = 4 * kMiB;
// Dropbox refuses upload requests over 150 MiB; 148 MiB is the largest multiple of 4 MiB that,
// with headers, stays under it.
inline constexpr std::uint64_t kMaxChunkSize = 148 * kMiB;
inline constexpr int kMaxWorkers = 64;
inline constexpr std::string_view kRedacted = "<redacted>";
inline constexpr std::string_view kEnvOriginPrefix = "environment ";

// ---------------------------------------------------------------------------------------------
// Messages (messages.cc). Every message is assembled by Fail() or FailFile(), which force a
// single line.

// Replaces anything that could break the one-line promise (newlines, other control bytes).
std::string SingleLine(std::string s);
[[noreturn]] void FailFile(std::string_view where, std::string_view problem, std::string_view fix);
[[noreturn]] void Fail(std::string_view where, std::string_view key, std::string_view value,
                       std::string_view problem, std::string_view fix);
// A TOML basic string: quotes, with backslash escapes for quotes, backslashes and control bytes.
std::string Quote(std::string_view s);
// At most 160 characters ("..." at the end when cut).
std::string Shorten(std::string s);
std::string QuoteList(const std::vector<std::string>& items);
std::string QuotePaths(const std::vector<std::filesystem::path>& paths);
std::string RenderNode(const toml::node& node);
std::string Lower(std::string_view s);
// "poll_interval" -> "FILESYNC_POLL_INTERVAL".
std::string EnvName(std::string_view key);
bool IsEnvOrigin(std::string_view origin);
std::optional<std::string> GetEnv(const std::string& name);
std::size_t EditDistance(std::string_view a, std::string_view b);

// ---------------------------------------------------------------------------------------------
// Paths (paths.cc)

// Lexically normal, without a trailing slash ("/a/b/" and "/a/./b" -> "/a/b"); "/" stays "/".
std::filesystem::path Normal(const std::filesystem::path& p);
// `inner` equals `outer` or lies below it, either as written or after resolving symlinks.
bool IsWithinAnyway(const std::filesystem::path& inner, const std::filesystem::path& outer);
// "~" and "~/x" -> $HOME and $HOME/x, so paths in a shared config can stay user-neutral.
std::filesystem::path ExpandHome(const std::string& s);

// ---------------------------------------------------------------------------------------------
// The key table (keys.cc)

// One value from one source before conversion: a TOML node or the text of an environment
// variable, plus where it came from ("config/dev.toml", "environment FILESYNC_WORKERS").
struct Raw {
  const toml::node* node = nullptr;
  std::string text;
  std::string origin;
};

struct KeySpec {
  std::string_view name;
  bool secret;
  std::string_view example;      // a good TOML line, for fix hints
  std::string_view env_example;  // a good environment value, for fix hints
  void (*apply)(const KeySpec& spec, Config& config, const Raw& raw);
  std::string (*format)(const Config& config);  // the field as a TOML value, unredacted
};

// Every key, in the order of docs/configuration.md.
std::span<const KeySpec> AllKeys();
// nullptr for an unknown key.
const KeySpec* FindKey(std::string_view name);
// A key that exists.
const KeySpec& Key(std::string_view name);
// The known key nearest to a misspelt one, if any is near.
std::optional<std::string_view> NearestKey(std::string_view name);
// A name that may hold a secret (token, secret, password), whose value is never shown.
bool LooksSecret(std::string_view name);
// "e.g. <a good value>" for a fix hint, in the syntax of `origin` (file or environment).
std::string Example(const KeySpec& spec, std::string_view origin);

// ---------------------------------------------------------------------------------------------
// Validation (validate.cc)

// Throws the ConfigError for `key` of `c`: where it was set, its (redacted) value, the problem
// and the fix (by default the key's example).
[[noreturn]] void Invalid(const Config& c, std::string_view key, std::string_view problem,
                          std::optional<std::string> fix = std::nullopt);
// Validate(), optionally without requiring Dropbox credentials (see LoadOptions).
void ValidateAll(const Config& c, bool need_credentials);

}  // namespace filesync::config::internal
