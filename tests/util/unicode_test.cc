#include "util/unicode.h"

#include <gtest/gtest.h>

#include "util/status.h"

namespace filesync {
namespace {

TEST(Unicode, ValidatesUtf8) {
  EXPECT_TRUE(unicode::IsValidUtf8("plain"));
  EXPECT_TRUE(unicode::IsValidUtf8("R\xC3\xA9port"));
  EXPECT_FALSE(unicode::IsValidUtf8("bad\xFF"));
  EXPECT_FALSE(unicode::IsValidUtf8("\xC0\xAF"));      // overlong '/'
  EXPECT_FALSE(unicode::IsValidUtf8("\xED\xA0\x80"));  // surrogate
}

TEST(Unicode, NfdBecomesNfc) {
  const std::string nfc = "caf\xC3\xA9";   // café, precomposed
  const std::string nfd = "cafe\xCC\x81";  // e + combining acute
  EXPECT_EQ(unicode::ToNfc(nfd), nfc);
  EXPECT_EQ(unicode::ToNfc(nfc), nfc);
}

TEST(Unicode, LowerFoldsAsciiAndBeyond) {
  EXPECT_EQ(unicode::Lower("ReadMe.TXT"), "readme.txt");
  EXPECT_EQ(unicode::Lower("\xC3\x89T\xC3\x89"), "\xC3\xA9t\xC3\xA9");
}

TEST(Unicode, CountsCodePoints) {
  EXPECT_EQ(unicode::CodePoints("abc"), 3u);
  EXPECT_EQ(unicode::CodePoints("\xF0\x9F\x98\x80x"), 2u);
}

// Value and error in two tests, not one: with two Results alive in one function, GCC 12 at -O2
// reports the first one's inactive Status member as -Wmaybe-uninitialized (a false positive).
TEST(Status, ResultCarriesValue) {
  Result<int> good(7);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
}

TEST(Status, ResultCarriesError) {
  Result<int> bad(Status::NotFound("/x"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().ToString(), "not_found: /x");
  EXPECT_TRUE(Status::Transient("x").IsRetryable());
  EXPECT_FALSE(Status::Conflict("x").IsRetryable());
}

}  // namespace
}  // namespace filesync
