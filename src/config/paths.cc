// How: lexical comparisons first, then the same after resolving symlinks (where the paths
// exist), so two spellings of one directory compare equal.
#include <system_error>

#include "config/internal.h"

namespace filesync::config::internal {

namespace fs = std::filesystem;

fs::path Normal(const fs::path& p) {
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return fs::path(s);
}

namespace {

// Follows symlinks where the path exists, so that aliases of one directory compare equal.
fs::path Resolved(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(p, ec);
  return ec ? Normal(p) : Normal(r);
}

// True if `inner` equals `outer` or lies below it (both normal and absolute).
bool IsWithin(const fs::path& inner, const fs::path& outer) {
  auto o = outer.begin();
  auto i = inner.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

}  // namespace

bool IsWithinAnyway(const fs::path& inner, const fs::path& outer) {
  return IsWithin(Normal(inner), Normal(outer)) || IsWithin(Resolved(inner), Resolved(outer));
}

fs::path ExpandHome(const std::string& s) {
  if (s == "~" || s.starts_with("~/")) {
    if (auto home = GetEnv("HOME"); home && !home->empty()) return fs::path(*home + s.substr(1));
  }
  return fs::path(s);
}

}  // namespace filesync::config::internal

namespace filesync::config {

std::string Config::CloudPathFor(const std::filesystem::path& client_dir) const {
  return cloud_root + "/" + internal::Normal(client_dir).filename().string();
}

}  // namespace filesync::config
