#include "cli/backend.h"

#include <stdexcept>

#include "cli/commands.h"
#include "cloud/local/local_cloud.h"

namespace filesync::cli {
namespace {

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(const config::Config& config) : cloud_(config.local_cloud_dir) {}
  cloud::Cloud& cloud() override { return cloud_; }

 private:
  cloud::LocalCloud cloud_;
};

}  // namespace

std::unique_ptr<Backend> MakeBackend(const config::Config& config, cache::StateStore& /*store*/) {
  if (config.backend == config::Backend::kLocal) return std::make_unique<LocalBackend>(config);
  throw std::runtime_error("the Dropbox backend is not wired in yet");
}

int RunAuth(const GlobalOptions& /*global*/, const std::filesystem::path& /*out*/) {
  std::fprintf(stderr, "filesync: auth needs the Dropbox backend\n");
  return 1;
}

}  // namespace filesync::cli
