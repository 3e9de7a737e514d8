// Fuzz target: the exclude pattern compiler and matcher. Input: patterns, one per line, then a
// NUL byte, then paths to test, one per line. Checks what scan/exclude.h promises: Compile()
// refuses an empty pattern and "/" (and never crashes on anything); Matches(p) implies
// Excluded(p); an excluded directory excludes everything below it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "scan/exclude.h"

namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto nl = text.find('\n', start);
    out.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

void Check(bool ok, const char* what, const std::string& detail) {
  if (!ok) {
    std::fprintf(stderr, "broken promise: %s: [%s]\n", what, detail.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  const std::vector<std::string> patterns = Lines(input.substr(0, nul));
  const std::vector<std::string> paths =
      nul == std::string::npos ? std::vector<std::string>{} : Lines(input.substr(nul + 1));
  auto matcher = filesync::scan::ExcludeMatcher::Compile(patterns);
  for (const auto& p : patterns) {
    if (p.empty() || p == "/") Check(!matcher.ok(), "empty or \"/\" pattern refused", p);
  }
  if (!matcher.ok()) return 0;
  for (const auto& path : paths) {
    // Only well-formed relative paths: no leading, trailing or doubled slash.
    if (path.empty() || path.front() == '/' || path.back() == '/' ||
        path.find("//") != std::string::npos)
      continue;
    for (const bool is_dir : {false, true}) {
      const bool excluded = matcher->Excluded(path, is_dir);
      if (matcher->Matches(path, is_dir)) Check(excluded, "Matches implies Excluded", path);
      if (is_dir && excluded)
        Check(matcher->Excluded(path + "/child", false), "below an excluded dir is excluded", path);
    }
  }
  return 0;
}
