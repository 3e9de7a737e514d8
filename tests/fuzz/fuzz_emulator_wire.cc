// Fuzz target: the emulator's request parsing (tools/dropbox_emulator/wire.h). The input plays a
// Dropbox-API-Arg header / request body: header-safety check, JSON argument reading with
// ArgReader (the fields an upload or a files/* route asks for), the path patterns, timestamps and
// base64, Range headers and leading slashes. Properties: nothing throws; ParseTimestamp accepts
// only what FormatTimestamp prints; base64url decode(encode(x)) == x; a header the strict check
// accepts the default check accepts too; a resolved range lies inside the file; collapsing
// leading slashes is idempotent.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "dropbox_emulator/wire.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "broken promise: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace e = filesync::emulator;
  const std::string s(reinterpret_cast<const char*>(data), size);
  try {
    if (e::IsHeaderSafe(s)) Check(e::IsUtf8HeaderValue(s), "strict header implies UTF-8 header");
    for (const std::uint64_t file_size :
         {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{10}, std::uint64_t{1} << 40}) {
      const e::ByteRange r = e::ResolveRange(s, file_size);
      if (r.kind == e::ByteRange::Kind::kPartial) {
        Check(r.length >= 1 && r.first < file_size && r.length <= file_size - r.first,
              "partial range inside the file");
      } else if (r.kind == e::ByteRange::Kind::kWhole) {
        Check(r.first == 0 && r.length == file_size, "whole range is the file");
      }
    }
    const std::string collapsed = e::WithoutExtraLeadingSlashes(s);
    Check(e::WithoutExtraLeadingSlashes(collapsed) == collapsed, "leading slashes idempotent");
    const auto value = nlohmann::json::parse(s, nullptr, false);
    if (!value.is_discarded()) {
      e::ArgReader reader(value, "fuzz");
      (void)reader.String("path", true);
      (void)reader.Bool("autorename", false);
      (void)reader.UInt("offset", false, 0, UINT64_MAX);
      (void)reader.VoidUnion("mode", false, {"add", "overwrite"});
      if (const auto* cursor = reader.Raw("cursor", false)) {
        e::ArgReader nested(*cursor, "fuzz.cursor");
        (void)nested.String("session_id", true);
        (void)nested.UInt("offset", true, 0, UINT64_MAX);
        reader.Merge(nested);
      }
      (void)reader.Finish();
    }
    for (const auto alias : {e::PathAlias::kReadPath, e::PathAlias::kPathROrId,
                             e::PathAlias::kWritePath, e::PathAlias::kWritePathOrId}) {
      (void)e::MatchesPathPattern(s, alias);
    }
    if (const auto t = e::ParseTimestamp(s))
      Check(e::FormatTimestamp(*t) == s, "ParseTimestamp is strict");
    Check(e::Base64UrlDecode(e::Base64UrlEncode(s)) == s, "base64url round trip");
    (void)e::Base64UrlDecode(s);
    (void)e::Base64Decode(s);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "emulator wire parsing threw: %s\n", ex.what());
    std::abort();
  }
  return 0;
}
