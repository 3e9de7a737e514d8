// UTF-8 helpers shared by the planner, the Dropbox backend and the emulator (utf8proc inside).
// Dropbox's comparison key for paths, built from ToNfc and Lower, is core::CloudKey
// (core/rel_path.h). All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace filesync::unicode {

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

// NFC form of valid UTF-8 `s`; returns `s` unchanged if it is not valid UTF-8.
std::string ToNfc(std::string_view s);

// Per-code-point lower-casing of valid UTF-8 (no normalisation).
std::string Lower(std::string_view s);

// Number of code points in valid UTF-8 `s` (Dropbox limits components to 255 of them).
std::size_t CodePoints(std::string_view s);

// The columns a terminal gives valid UTF-8 `s` (wide East Asian characters take two,
// combining marks none); an invalid byte counts as one.
std::size_t DisplayWidth(std::string_view s);

// The longest part of valid UTF-8 `s` that fits in `columns`, from the start (keep_end false)
// or from the end (keep_end true), never splitting a character.
std::string_view FitColumns(std::string_view s, std::size_t columns, bool keep_end);

}  // namespace filesync::unicode
