#include "plan/names.h"

#include <array>

#include "core/rel_path.h"
#include "util/unicode.h"

namespace filesync::plan {
namespace {

// Reference §13: system and metadata files the Dropbox API ignores or answers with
// disallowed_name. Compared after lower-casing.
constexpr std::array<std::string_view, 8> kDropboxIgnored = {
    "desktop.ini", "thumbs.db",     ".ds_store",      "icon\r",
    ".dropbox",    ".dropbox.attr", ".dropbox.cache", ".com.apple.timemachine.supported"};

bool IsOfficeTemp(std::string_view lower) {
  return lower.starts_with("~$") || lower.starts_with(".~") ||
         (lower.starts_with("~") && lower.ends_with(".tmp"));
}

}  // namespace

std::optional<std::string> CheckName(std::string_view path, NameRules rules) {
  const std::string_view name = core::BaseName(path);
  if (unicode::CodePoints(name) > kMaxComponentCodePoints) {
    return "name longer than 255 characters";
  }
  if (rules != NameRules::kDropbox) return std::nullopt;
  const std::string lower = unicode::Lower(name);
  for (const std::string_view ignored : kDropboxIgnored) {
    if (lower == ignored) return "a system file Dropbox does not sync";
  }
  if (IsOfficeTemp(lower)) return "a temporary file Dropbox does not sync";
  for (const char c : name) {
    if (c == '\\') return "backslash in the name (Dropbox refuses it)";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return "control character in the name";
  }
  if (!name.empty() && (name.back() == ' ' || name.back() == '\t')) {
    return "name ends with whitespace (Dropbox refuses it)";
  }
  return std::nullopt;
}

}  // namespace filesync::plan
