// Fuzz target: the Dropbox JSON response parsers (metadata, list_folder pages, batch entries,
// job statuses, for every success shape). Whatever the server sends, they return a Result; a
// thrown exception (e.g. nlohmann::json::type_error on a field of the wrong type) is a bug.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>

#include "cloud/dropbox/parsing.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = filesync::dropbox;
  const auto value = nlohmann::json::parse(data, data + size, nullptr, false);
  if (value.is_discarded()) return 0;
  try {
    for (const auto tag :
         {d::Metadata::Tag::kFile, d::Metadata::Tag::kFolder, d::Metadata::Tag::kUnknown}) {
      auto m = d::ParseMetadata(value, tag);
      if (m.ok()) (void)d::ToRemoteEntry(*m);
    }
    auto page = d::ParseListFolderResult(value);
    if (page.ok()) {
      for (const auto& m : page->entries) (void)d::ToRemoteEntry(m);
    }
    for (const auto shape : {d::SuccessShape::kNone, d::SuccessShape::kInline,
                             d::SuccessShape::kUnderMetadata, d::SuccessShape::kUnderSuccess}) {
      (void)d::ParseBatchEntries(value, shape, "fuzz");
      (void)d::ParseJobStatus(value, shape, "fuzz");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "a Dropbox response parser threw: %s\n", e.what());
    std::abort();
  }
  return 0;
}
