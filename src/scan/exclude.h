// ExcludeMatcher: decides which local paths filesync ignores, with gitignore-like patterns.
//
// Paths given to the matcher are relative to the sync dir, '/'-separated, without a leading or
// trailing '/' ("docs/a.pdf"). Patterns, by example:
//   "*.tmp"          no '/': matches the basename at any depth ("a.tmp", "x/y/a.tmp").
//   ".git"           the same, for a literal name: any file or dir named .git, at any depth.
//   "/build"         a leading '/' anchors the pattern at the sync dir root: "build" only,
//                    not "src/build".
//   "docs/*.pdf"     an inner '/' anchors too: "docs/a.pdf", not "x/docs/a.pdf" and not
//                    "docs/sub/a.pdf".
//   "cache/"         a trailing '/' matches directories only (a file named cache is kept).
//   "**/tmp/**"      "**" as a whole component matches any number of components: a leading
//                    "**/" zero or more ("tmp/x", "a/b/tmp/x"), an inner "/**/" zero or more
//                    ("a/**/b" matches "a/b" and "a/x/y/b"), a trailing "/**" one or more
//                    (everything inside, not the directory itself).
//   '*' matches any run of characters and '?' one character, neither ever crossing '/';
//   "[abc]", "[a-z]", "[!abc]" / "[^abc]" match one character of (or not of) a class; a ']'
//   right after the opening '[' (or '!'/'^') is literal; '\' makes the next character literal.
// Characters are bytes: '?' and classes match one byte, so prefer '*' around non-ASCII names.
// There is no negation: a leading '!' is an ordinary character. A path is excluded when any
// pattern matches it or one of its parent directories (an excluded directory is never
// descended into, so nothing below it is seen).
//
// Compile() rejects an empty pattern, a pattern that is only "/", an unbalanced '[' and a
// trailing '\' with kInvalidArgument naming the pattern.
// Thread safety: a compiled matcher is immutable; const methods may be called concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace filesync::scan {

class ExcludeMatcher {
 public:
  // A matcher with no patterns excludes nothing.
  ExcludeMatcher() = default;

  static Result<ExcludeMatcher> Compile(const std::vector<std::string>& patterns);

  // True if `relative_path` (a directory when `is_dir`) or any of its parent directories is
  // matched by a pattern.
  [[nodiscard]] bool Excluded(std::string_view relative_path, bool is_dir) const;

  // True if a pattern matches `relative_path` itself, ignoring its parents. For walkers that
  // never descend into an excluded directory, where the parents are known not to match.
  [[nodiscard]] bool Matches(std::string_view relative_path, bool is_dir) const;

  [[nodiscard]] bool empty() const { return patterns_.empty(); }

 private:
  struct Pattern {
    std::string text;                     // as given, for messages
    std::vector<std::string> components;  // glob per component; "**" is the any-depth marker
    bool anchored = false;                // matched against the whole path, else the basename
    bool dir_only = false;
  };

  static bool MatchComponents(const std::vector<std::string>& pattern, std::size_t pi,
                              const std::vector<std::string_view>& path, std::size_t si);

  std::vector<Pattern> patterns_;
};

}  // namespace filesync::scan
