// filesync's command line: a command with its options; the global options may come before or
// after it. One try/catch maps start-up errors to exit codes (see cli/commands.h); CLI11_PARSE
// is not used because its error handling would bypass ours, and a usage error is one line.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cstdio>
#include <iostream>
#include <string_view>

#include "cli/commands.h"
#include "util/log.h"

namespace {

constexpr std::array<std::string_view, 6> kCommands = {"run",    "sync", "plan",
                                                       "status", "hash", "auth"};
constexpr std::array<std::string_view, 5> kValuedGlobals = {"--config", "--env", "--config-dir",
                                                            "--log-level", "--log-format"};

// The first word that is neither an option nor a global option's value: the command, if any.
std::string_view CommandWord(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") return i + 1 < argc ? std::string_view(argv[i + 1]) : std::string_view();
    if (std::find(kValuedGlobals.begin(), kValuedGlobals.end(), arg) != kValuedGlobals.end()) {
      ++i;
      continue;
    }
    if (!arg.starts_with("-")) return arg;
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace filesync;
  // A pass builds large per-file vectors and frees them; with glibc's adaptive threshold they
  // would end up on the heap after the first one is freed, and stay resident between passes.
  // A fixed threshold keeps every large block in its own mapping, returned when freed.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  CLI::App app{
      "filesync: mirror local directories one-way into cloud storage (Dropbox, or a local folder)"};
  app.set_version_flag("--version", std::string("filesync ") + FILESYNC_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // `filesync sync --config x.toml` works too

  cli::GlobalOptions global;
  std::string config_file, env;
  std::string config_dir = "config";
  app.add_option("--config", config_file, "Use this TOML file alone (no env/instance files)");
  app.add_option("--env", env, "Environment: test, dev or prod (default: $FILESYNC_ENV, else dev)");
  app.add_option("--config-dir", config_dir, "Folder holding <env>.toml and instance.toml")
      ->capture_default_str();
  app.add_option("--log-level", global.log_level,
                 "trace, debug, info, warn or error, in any case (overrides log_level)")
      ->check(
          [](const std::string& level) {
            return log::ParseLevel(level) ? std::string()
                                          : "'" + log::Printable(level) +
                                                "' is not a level; use trace, debug, info, warn "
                                                "or error";
          },
          "LEVEL");
  app.add_option("--log-format", global.log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  cli::SyncOptions sync_options;
  auto* run = app.add_subcommand(
      "run", "Run the daemon: a pass every poll_interval; SIGHUP reloads, SIGINT/SIGTERM stop");
  auto* sync =
      app.add_subcommand("sync", "Run one pass; exit 0 only when the cloud matches the client");
  sync->add_flag("--verify", sync_options.verify,
                 "Walk the cloud fully instead of trusting the state store");
  sync->add_flag("--allow-mass-delete", sync_options.allow_mass_delete,
                 "Override max_delete and the empty/replaced sync dir checks");
  auto* plan = app.add_subcommand("plan", "Show what a pass would do, changing nothing");
  plan->add_flag("--json", sync_options.json,
                 "Print a JSON object; its 'actions' array is empty when in sync");
  plan->add_flag("--verify", sync_options.verify,
                 "Walk the cloud fully instead of trusting the state store");
  plan->add_flag("--allow-mass-delete", sync_options.allow_mass_delete,
                 "Plan as if --allow-mass-delete were given");
  bool status_json = false;
  auto* status = app.add_subcommand("status", "Show the last pass, pending work and errors");
  status->add_flag("--json", status_json, "Print JSON");
  std::vector<std::string> hash_files;
  auto* hash = app.add_subcommand("hash", "Print the Dropbox content hash of files");
  hash->add_option("FILE", hash_files, "Files to hash")->required();
  cli::AuthOptions auth_options;
  auto* auth = app.add_subcommand(
      "auth", "Link a Dropbox account (PKCE code flow); stores the refresh token 0600");
  auth->add_option("--app-key", auth_options.app_key, "Dropbox app key (default: dbx_app_key)");
  auth->add_option("--api-url", auth_options.api_url, "API base URL (default: dbx_api_url)");
  auth->add_option("--out", auth_options.out,
                   "Where to store the refresh token (default: <state_dir>/dropbox-refresh-token)");

  const std::string_view command = CommandWord(argc, argv);
  if (!command.empty() &&
      std::find(kCommands.begin(), kCommands.end(), command) == kCommands.end()) {
    std::fprintf(stderr,
                 "filesync: unknown command '%s'; the commands are run, sync, plan, status, hash "
                 "and auth (filesync --help)\n",
                 log::Printable(command).c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string message = e.what();
    std::replace(message.begin(), message.end(), '\n', ' ');
    if (command.empty() && e.get_name() == "RequiredError")
      message = "no command given; the commands are run, sync, plan, status, hash and auth";
    std::fprintf(stderr, "filesync: %s (filesync --help)\n", log::Printable(message).c_str());
    return 2;
  }
  if (!config_file.empty()) global.load.config_file = config_file;
  if (!env.empty()) global.load.env = env;
  global.load.config_dir = config_dir;

  try {
    if (*run) return cli::RunDaemon(global);
    if (*sync) return cli::RunSync(global, sync_options);
    if (*plan) return cli::RunPlan(global, sync_options);
    if (*status) return cli::RunStatus(global, status_json);
    if (*hash) return cli::RunHash(hash_files);
    if (*auth) return cli::RunAuth(global, auth_options);
  } catch (const config::ConfigError& e) {
    cli::ReportFatal(global, e.what());
    return 2;
  } catch (const std::exception& e) {
    cli::ReportFatal(global, e.what());
    return 1;
  }
  return 2;
}
