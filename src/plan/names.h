// Name rules checked at plan time, so a name the cloud would refuse is reported once and skipped
// instead of failing as an upload error on every pass.
//
//  - Every backend: a path component may have at most 255 code points.
//  - Dropbox rules (NameRules::kDropbox): names Dropbox ignores or refuses, matched
//    case-insensitively (desktop.ini, thumbs.db, .ds_store, "icon\r", .dropbox, .dropbox.attr,
//    .dropbox.cache, Office temp files "~$*", ".~*", "~*.tmp"); names with a backslash or a
//    control character; names ending in a space (Dropbox paths may not end with whitespace).
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace filesync::plan {

enum class NameRules { kPlain, kDropbox };

inline constexpr std::size_t kMaxComponentCodePoints = 255;

// Why the last component of `path` cannot be synced, or nullopt if it can. Only the last
// component is checked: callers check each directory once, before its children.
std::optional<std::string> CheckName(std::string_view path, NameRules rules);

}  // namespace filesync::plan
