// Fuzz target: the config loader. The input is written to a file and loaded with --config
// semantics; config::Load must either return a Config or throw ConfigError (one line), never
// anything else, and never crash.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/filesync-fuzz-config-" + std::to_string(getpid()) + ".toml";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  filesync::config::LoadOptions options;
  options.config_file = path;
  try {
    const filesync::config::Config config = filesync::config::Load(options);
    (void)filesync::config::Describe(config);
  } catch (const filesync::config::ConfigError& e) {
    const std::string message = e.what();
    if (message.empty() || message.find('\n') != std::string::npos) {
      std::fprintf(stderr, "ConfigError is not one line: [%s]\n", message.c_str());
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config::Load threw something other than ConfigError: %s\n", e.what());
    std::abort();
  }
  return 0;
}
