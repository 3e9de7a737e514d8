// `filesync hash`: Dropbox's content hash of local files, like Dropbox's reference hasher.
#include <algorithm>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "hash/content_hash.h"
#include "util/log.h"

namespace filesync::cli {

int RunHash(const std::vector<std::string>& files) {
  int code = 0;
  // Several files at once, one per core (a large file alone uses every core by itself).
  const auto results = hash::HashFiles(files, std::max(1u, std::thread::hardware_concurrency()));
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string& file = files[i];
    const auto& result = results[i];
    if (!result.ok()) {
      std::fprintf(stderr, "filesync: cannot hash %s\n",
                   log::Printable(result.status().message()).c_str());
      code = 1;
      continue;
    }
    // Like Dropbox's reference hasher: the hex digest; with several files, "digest  path" lines.
    if (files.size() == 1) {
      std::printf("%s\n", hash::ToHex(result->digest).c_str());
    } else {
      std::printf("%s  %s\n", hash::ToHex(result->digest).c_str(), log::Printable(file).c_str());
    }
  }
  return code;
}

}  // namespace filesync::cli
