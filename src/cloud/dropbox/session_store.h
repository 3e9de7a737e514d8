// SessionStore: where the Dropbox backend keeps the state of large-file upload sessions so an
// interrupted upload resumes after a restart (the engine adapts its SQLite state store to it;
// tests use a map). Keys and values are short ASCII strings; the backend owns their format.
// Implementations must be thread-safe (the backend also serialises its own calls).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "util/status.h"

namespace filesync::dropbox {

class SessionStore {
 public:
  virtual ~SessionStore() = default;
  // nullopt when `key` was never stored (or erased).
  virtual Result<std::optional<std::string>> Get(std::string_view key) = 0;
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  // Erasing a missing key is ok.
  virtual Status Erase(std::string_view key) = 0;
};

}  // namespace filesync::dropbox
