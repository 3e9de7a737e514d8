// Patterns are split into '/'-separated components at compile time; a path is split the same
// way and matched component by component, with "**" components backtracking over path
// components. Within a component, '*' backtracks over characters (classic two-pointer glob).
// Both are cheap for the short components and few patterns of real configs.
#include "scan/exclude.h"

namespace filesync::scan {
namespace {

constexpr std::string_view kAnyDepth = "**";

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    parts.push_back(path.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

// Length of the class starting at glob[i] == '[' (through its ']'), or 0 if it never closes.
std::size_t ClassLength(std::string_view glob, std::size_t i) {
  std::size_t j = i + 1;
  if (j < glob.size() && (glob[j] == '!' || glob[j] == '^')) ++j;
  if (j < glob.size() && glob[j] == ']') ++j;  // a leading ']' is literal
  while (j < glob.size() && glob[j] != ']') {
    if (glob[j] == '\\' && j + 1 < glob.size()) ++j;
    ++j;
  }
  return j < glob.size() ? j - i + 1 : 0;
}

// Does the class glob[i .. i+len) contain c?
bool ClassMatches(std::string_view glob, std::size_t i, std::size_t len, char c) {
  std::size_t j = i + 1;
  const std::size_t end = i + len - 1;  // index of the closing ']'
  bool negate = false;
  if (glob[j] == '!' || glob[j] == '^') {
    negate = true;
    ++j;
  }
  bool found = false;
  while (j < end) {
    char lo = glob[j];
    if (lo == '\\' && j + 1 < end) lo = glob[++j];
    ++j;
    char hi = lo;
    // "a-z" is a range unless the '-' is last ("[a-]").
    if (j + 1 < end && glob[j] == '-') {
      hi = glob[j + 1];
      if (hi == '\\' && j + 2 < end) {
        hi = glob[j + 2];
        ++j;
      }
      j += 2;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u >= static_cast<unsigned char>(lo) && u <= static_cast<unsigned char>(hi)) found = true;
  }
  return found != negate;
}

// Glob match of one component (no '/' on either side).
bool MatchGlob(std::string_view glob, std::string_view name) {
  std::size_t g = 0;
  std::size_t n = 0;
  std::size_t star_g = std::string_view::npos;
  std::size_t star_n = 0;
  while (n < name.size()) {
    if (g < glob.size()) {
      const char c = glob[g];
      if (c == '*') {
        while (g < glob.size() && glob[g] == '*') ++g;
        star_g = g;
        star_n = n;
        continue;
      }
      if (c == '?') {
        ++g;
        ++n;
        continue;
      }
      if (c == '[') {
        const std::size_t len = ClassLength(glob, g);
        if (len > 0 && ClassMatches(glob, g, len, name[n])) {
          g += len;
          ++n;
          continue;
        }
      } else {
        const bool escaped = c == '\\' && g + 1 < glob.size();
        const char literal = escaped ? glob[g + 1] : c;
        if (literal == name[n]) {
          g += escaped ? 2 : 1;
          ++n;
          continue;
        }
      }
    }
    if (star_g == std::string_view::npos) return false;
    g = star_g;
    n = ++star_n;
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

bool IsLiteral(std::string_view glob) {
  return glob.find_first_of("*?[\\") == std::string_view::npos;
}

Status Bad(const std::string& pattern, const char* why) {
  return Status::InvalidArgument("bad exclude pattern \"" + pattern + "\": " + why);
}

}  // namespace

Result<ExcludeMatcher> ExcludeMatcher::Compile(const std::vector<std::string>& patterns) {
  ExcludeMatcher matcher;
  for (const std::string& text : patterns) {
    if (text.empty()) return Bad(text, "empty");
    std::string_view body = text;
    Pattern pattern;
    pattern.text = text;
    if (body.size() > 1 && body.back() == '/') {
      pattern.dir_only = true;
      body.remove_suffix(1);
    }
    if (body.front() == '/') {
      pattern.anchored = true;
      body.remove_prefix(1);
    }
    if (body.empty()) return Bad(text, "matches nothing");
    if (body.find('/') != std::string_view::npos) pattern.anchored = true;
    for (std::string_view part : Split(body)) {
      if (part.empty()) return Bad(text, "empty path component");
      for (std::size_t i = 0; i < part.size(); ++i) {
        if (part[i] == '\\') {
          if (i + 1 == part.size()) return Bad(text, "trailing '\\'");
          ++i;
        } else if (part[i] == '[') {
          const std::size_t len = ClassLength(part, i);
          if (len == 0) return Bad(text, "unbalanced '['");
          i += len - 1;
        }
      }
      pattern.components.emplace_back(part);
    }
    matcher.patterns_.push_back(std::move(pattern));
  }
  return matcher;
}

bool ExcludeMatcher::MatchComponents(const std::vector<std::string>& pattern, std::size_t pi,
                                     const std::vector<std::string_view>& path, std::size_t si) {
  while (pi < pattern.size()) {
    if (pattern[pi] == kAnyDepth) {
      // A trailing "**" needs at least one component (everything inside, not the dir itself).
      if (pi + 1 == pattern.size()) return si < path.size();
      for (std::size_t skip = si; skip <= path.size(); ++skip) {
        if (MatchComponents(pattern, pi + 1, path, skip)) return true;
      }
      return false;
    }
    if (si == path.size()) return false;
    const std::string& glob = pattern[pi];
    if (IsLiteral(glob) ? glob != path[si] : !MatchGlob(glob, path[si])) return false;
    ++pi;
    ++si;
  }
  return si == path.size();
}

bool ExcludeMatcher::Matches(std::string_view relative_path, bool is_dir) const {
  if (patterns_.empty() || relative_path.empty()) return false;
  std::vector<std::string_view> parts;
  const std::size_t slash = relative_path.rfind('/');
  const std::string_view base =
      slash == std::string_view::npos ? relative_path : relative_path.substr(slash + 1);
  for (const Pattern& pattern : patterns_) {
    if (pattern.dir_only && !is_dir) continue;
    if (!pattern.anchored) {
      const std::string& glob = pattern.components.front();
      if (IsLiteral(glob) ? glob == base : MatchGlob(glob, base)) return true;
      continue;
    }
    if (parts.empty()) parts = Split(relative_path);
    if (MatchComponents(pattern.components, 0, parts, 0)) return true;
  }
  return false;
}

bool ExcludeMatcher::Excluded(std::string_view relative_path, bool is_dir) const {
  if (patterns_.empty()) return false;
  for (std::size_t slash = relative_path.find('/'); slash != std::string_view::npos;
       slash = relative_path.find('/', slash + 1)) {
    if (Matches(relative_path.substr(0, slash), true)) return true;
  }
  return Matches(relative_path, is_dir);
}

}  // namespace filesync::scan
