// Builds the Cloud backend the configuration names, with whatever adapters it needs from the
// state store (Dropbox keeps its resumable upload sessions there).
#pragma once

#include <memory>

#include "cloud/cloud.h"
#include "cloud/cloud_ops.h"
#include "config/config.h"
#include "store/state_store.h"

namespace filesync::cli {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual cloud::Cloud& cloud() = 0;
  // Checks the credentials with one request and names the account they belong to ("" for a
  // backend without accounts). kAuth: the service refused them (the message names the key).
  virtual Result<std::string> Account() { return std::string(); }
};

// What the operations layer lends the backend (each may be null; both outlive the backend):
// the bwlimit every transfer draws from, and the sink of its request metrics.
struct BackendHooks {
  cloud::Throttle* throttle = nullptr;
  cloud::RequestObserver* requests = nullptr;
};

// Throws std::runtime_error (a start-up error, exit 1) when the backend cannot be set up.
std::unique_ptr<Backend> MakeBackend(const config::Config& config, store::StateStore& store,
                                     BackendHooks hooks = {});

}  // namespace filesync::cli
