#include "util/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <utility>

namespace filesync::unicode {
namespace {

const utf8proc_uint8_t* Bytes(std::string_view s) {
  return reinterpret_cast<const utf8proc_uint8_t*>(s.data());
}

bool IsAscii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  if (IsAscii(s)) return true;
  auto p = Bytes(s);
  auto len = static_cast<utf8proc_ssize_t>(s.size());
  while (len > 0) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p, len, &cp);
    if (n <= 0 || cp < 0) return false;
    p += n;
    len -= n;
  }
  return true;
}

std::string ToNfc(std::string_view s) {
  if (IsAscii(s) || !IsValidUtf8(s)) return std::string(s);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(Bytes(s), static_cast<utf8proc_ssize_t>(s.size()), &out,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return std::string(s);
  std::string result(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  std::free(out);
  return result;
}

std::string Lower(std::string_view s) {
  std::string result;
  result.reserve(s.size());
  if (IsAscii(s)) {
    for (const char c : s) result.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c);
    return result;
  }
  auto p = Bytes(s);
  auto len = static_cast<utf8proc_ssize_t>(s.size());
  while (len > 0) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p, len, &cp);
    if (n <= 0 || cp < 0) {
      result.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len));
      break;
    }
    utf8proc_uint8_t buf[4];
    const utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower(cp), buf);
    result.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(m));
    p += n;
    len -= n;
  }
  return result;
}

std::size_t CodePoints(std::string_view s) {
  std::size_t count = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

namespace {

// Width and length of the character at s[i] (an invalid byte: width 1, length 1).
std::pair<std::size_t, std::size_t> CharAt(std::string_view s, std::size_t i) {
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t n =
      utf8proc_iterate(Bytes(s.substr(i)), static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
  if (n <= 0 || cp < 0) return {1, 1};
  const int width = utf8proc_charwidth(cp);
  return {static_cast<std::size_t>(width < 0 ? 1 : width), static_cast<std::size_t>(n)};
}

}  // namespace

std::size_t DisplayWidth(std::string_view s) {
  std::size_t width = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto [w, n] = CharAt(s, i);
    width += w;
    i += n;
  }
  return width;
}

std::string_view FitColumns(std::string_view s, std::size_t columns, bool keep_end) {
  std::size_t used = 0;
  std::size_t i = 0;
  if (!keep_end) {
    while (i < s.size()) {
      const auto [w, n] = CharAt(s, i);
      if (used + w > columns) break;
      used += w;
      i += n;
    }
    return s.substr(0, i);
  }
  // From the end: find each character's start by skipping continuation bytes.
  std::size_t start = s.size();
  while (start > 0) {
    std::size_t at = start - 1;
    while (at > 0 && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80 && start - at < 4) --at;
    auto [width, n] = CharAt(s, at);
    if (at + n != start) {  // no character ends here: one invalid byte
      at = start - 1;
      width = 1;
    }
    if (used + width > columns) break;
    used += width;
    start = at;
  }
  return s.substr(start);
}

}  // namespace filesync::unicode
