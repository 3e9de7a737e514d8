#include "core/rel_path.h"

#include <algorithm>

#include "util/unicode.h"

namespace filesync::core {
namespace {

// What follows the first `components` components of `path`, without its leading '/'; nullopt
// when `path` has no more than that: ("a/b/c", 1) -> "b/c", ("a", 1) -> nullopt.
std::optional<std::string_view> After(std::string_view path, std::size_t components) {
  std::size_t at = 0;
  for (std::size_t i = 0; i < components; ++i) {
    at = path.find('/', at);
    if (at == std::string_view::npos) return std::nullopt;
    ++at;
  }
  return path.substr(at);
}

}  // namespace

std::string JoinPath(std::string_view base, std::string_view relative) {
  std::string out(base);
  if (relative.empty()) return out;
  out.push_back('/');
  out.append(relative);
  return out;
}

std::string_view ParentPath(std::string_view path) {
  const auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return {};
  return path.substr(0, slash);
}

std::string_view BaseName(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool UnderOrEqual(std::string_view path, std::string_view dir) {
  return path == dir ||
         (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

std::size_t Components(std::string_view path) {
  return static_cast<std::size_t>(std::count(path.begin(), path.end(), '/')) + 1;
}

std::string Rebase(std::string_view path, std::size_t components, std::string_view onto) {
  const auto rest = After(path, components);
  return rest ? JoinPath(onto, *rest) : std::string(onto);
}

std::optional<std::string> RelativeTo(const std::string& path, const std::string& root,
                                      bool case_insensitive) {
  if (root.empty()) return path.empty() ? std::string() : path.substr(1);
  const std::string p = CloudKey(path, case_insensitive);
  const std::string r = CloudKey(root, case_insensitive);
  if (p == r) return std::string();
  if (!UnderOrEqual(p, r)) return std::nullopt;
  // Component-wise: folding may change a path's length in bytes, never its '/'s.
  return std::string(After(path, Components(root)).value_or(""));
}

std::string CloudKey(std::string_view path) { return unicode::Lower(unicode::ToNfc(path)); }

std::string CloudKey(std::string_view path, bool case_insensitive) {
  return case_insensitive ? CloudKey(path) : std::string(path);
}

}  // namespace filesync::core
