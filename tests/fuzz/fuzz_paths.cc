// Fuzz target: path handling. Random bytes as a path through the Unicode helpers, the planner's
// name checks and the cloud key, checking what their headers promise:
//  - ToNfc of valid UTF-8 is valid UTF-8 and idempotent; of invalid input it is the input;
//  - CloudKey(s) == Lower(ToNfc(s)) == CloudKey(s, true); CloudKey(s, false) == s;
//  - a last component of more than 255 code points is refused by CheckName under every rule set.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/rel_path.h"
#include "plan/names.h"
#include "util/unicode.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "broken promise: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace u = filesync::unicode;
  namespace p = filesync::plan;
  namespace c = filesync::core;
  const std::string s(reinterpret_cast<const char*>(data), size);
  const bool valid = u::IsValidUtf8(s);
  const std::string nfc = u::ToNfc(s);
  if (valid) {
    Check(u::IsValidUtf8(nfc), "ToNfc output is valid UTF-8");
    Check(u::ToNfc(nfc) == nfc, "ToNfc is idempotent");
    Check(u::IsValidUtf8(u::Lower(s)), "Lower output is valid UTF-8");
    Check(c::CloudKey(s) == u::Lower(nfc), "CloudKey == Lower(ToNfc)");
    Check(c::CloudKey(s, true) == c::CloudKey(s), "CloudKey(case-insensitive) == CloudKey");
    (void)u::CodePoints(s);
  } else {
    Check(nfc == s, "ToNfc leaves invalid UTF-8 unchanged");
  }
  Check(c::CloudKey(s, false) == s, "CloudKey(case-sensitive) is the path");
  for (const auto rules : {p::NameRules::kPlain, p::NameRules::kDropbox}) {
    const auto issue = p::CheckName(s, rules);
    if (valid) {
      const auto slash = s.rfind('/');
      const std::string_view last =
          slash == std::string::npos ? std::string_view(s) : std::string_view(s).substr(slash + 1);
      if (u::CodePoints(last) > p::kMaxComponentCodePoints)
        Check(issue.has_value(), "over-long component refused");
    }
  }
  return 0;
}
