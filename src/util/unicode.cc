#include "util/unicode.h"

#include <utf8proc.h>

#include <cstdlib>

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

std::string CloudKey(std::string_view s) { return Lower(ToNfc(s)); }

std::size_t CodePoints(std::string_view s) {
  std::size_t count = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

}  // namespace filesync::unicode
