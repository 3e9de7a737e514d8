// filesync-dropbox-emulator: a local Dropbox API v2 server for tests, benchmarks and demos.
// Prints "listening on http(s)://HOST:PORT" as its first stdout line; logs go to stderr.
// SIGTERM/SIGINT stop it cleanly; bad flags print one line and exit 2.
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "dropbox_emulator/faults.h"
#include "dropbox_emulator/routes.h"
#include "dropbox_emulator/server.h"

namespace {

int Fail(const std::string& message) {
  std::cerr << "filesync-dropbox-emulator: " << message << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using filesync::emulator::ServerOptions;
  ServerOptions options;
  std::string listen;
  std::string faults;
  std::int64_t lifetime = 14400;
  std::int64_t commit_lock_ms = 5;
  std::int64_t longpoll_max_s = 480;

  CLI::App app{"Dropbox API v2 emulator for filesync tests"};
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0 = ephemeral)")->required();
  app.add_option("--data", options.data_dir, "Directory holding the namespace")->required();
  app.add_option("--token", options.auth.static_token, "Static bearer token (never expires)");
  app.add_option("--faults", faults, "Fault spec, e.g. 429=0.05,500=0.05,drop=0.02,seed=7");
  app.add_option("--token-lifetime", lifetime, "Lifetime of issued access tokens (s)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000000}));
  app.add_option("--app-key", options.auth.app_key, "OAuth client_id to accept");
  app.add_option("--app-secret", options.auth.app_secret, "OAuth client_secret to accept");
  app.add_option("--refresh-token", options.auth.refresh_token, "Pre-issued refresh token");
  app.add_option("--commit-lock-ms", commit_lock_ms, "Namespace lock hold time per commit (ms)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{60000}));
  app.add_option("--longpoll-max-s", longpoll_max_s, "Cap on longpoll waits (s)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{480}));
  app.add_option("--tls-cert", options.tls_cert, "PEM certificate (enables https)");
  app.add_option("--tls-key", options.tls_key, "PEM private key");
  app.add_option("--seed", options.seed, "Default PRNG seed for faults");
  app.add_option("--threads", options.threads, "HTTP worker threads")->check(CLI::Range(1, 1024));
  app.add_flag("--strict-arg-header", options.strict_arg_header,
               "Refuse raw non-ASCII in Dropbox-API-Arg (400), as the JSON-encoding page asks; "
               "by default raw UTF-8 is accepted, as Dropbox does");
  std::vector<std::string> without_routes;
  app.add_option("--without-routes", without_routes,
                 "Routes to answer as unknown, like an older server (e.g. "
                 "files/upload_session/append_batch,files/move_batch_v2)")
      ->delimiter(',');
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    return Fail(what);
  }

  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return Fail("--listen: expected HOST:PORT");
  options.host = listen.substr(0, colon);
  try {
    const int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) return Fail("--listen: port out of range");
    options.port = port;
  } catch (const std::exception&) {
    return Fail("--listen: bad port");
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return Fail("--tls-cert and --tls-key go together");
  }
  if (!faults.empty()) {
    std::string error;
    auto spec = filesync::emulator::ParseFaultSpec(faults, &error);
    if (!spec) return Fail(error);
    options.faults = *spec;
  }
  for (const std::string& route : without_routes) {
    if (filesync::emulator::FindRoute(route) == nullptr) {
      return Fail("--without-routes: unknown route '" + route +
                  "' (give routes as files/move_batch_v2, without /2/)");
    }
    options.without_routes.insert(route);
  }
  options.auth.token_lifetime = std::chrono::seconds(lifetime);
  options.commit_lock = std::chrono::milliseconds(commit_lock_ms);
  options.longpoll_max = std::chrono::seconds(longpoll_max_s);
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (!std::filesystem::is_directory(options.data_dir)) {
    return Fail("--data: cannot create directory " + options.data_dir);
  }

  // Signals are handled by a dedicated thread; block them before any other thread starts.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  filesync::Result<std::unique_ptr<filesync::emulator::Server>> server =
      filesync::Status::Permanent("not created");
  try {
    server = filesync::emulator::Server::Create(options);
  } catch (const std::exception& e) {
    std::cerr << "filesync-dropbox-emulator: " << e.what() << "\n";
    return 1;
  }
  if (!server.ok()) {
    std::cerr << "filesync-dropbox-emulator: " << server.status().ToString() << "\n";
    return server.status().kind() == filesync::Status::Kind::kInvalidArgument ? 2 : 1;
  }
  auto port = (*server)->Bind();
  if (!port.ok()) {
    std::cerr << "filesync-dropbox-emulator: " << port.status().ToString() << "\n";
    return 1;
  }
  std::printf("listening on %s://%s:%d\n", (*server)->tls() ? "https" : "http",
              options.host.c_str(), *port);
  std::fflush(stdout);

  // The signal thread is joined before the server is destroyed: Stop() still touches the server
  // after Serve() has returned. If Serve() returns on its own, a SIGTERM sent to that thread
  // ends its sigwait (a second Stop() is a no-op).
  auto* srv = server->get();
  std::thread signals([srv, set] {
    int sig = 0;
    sigwait(&set, &sig);
    srv->Stop();
  });
  srv->Serve();
  pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  return 0;
}
