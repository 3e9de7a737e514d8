#include "cloud/dropbox/json_arg.h"

#include <gtest/gtest.h>

namespace filesync::dropbox {
namespace {

TEST(JsonArg, ReferenceVectorEscapesNonAsciiAndDel) {
  // Reference §1.4: input {"path": "/Réport/😀 naïve<DEL>.txt", "mode": "add"}.
  const auto arg = nlohmann::ordered_json::parse(
      "{\"path\": \"/R\xC3\xA9port/\xF0\x9F\x98\x80 na\xC3\xAFve\x7F.txt\", \"mode\": \"add\"}");
  EXPECT_EQ(EncodeHeaderArg(arg),
            R"({"path":"/R\u00e9port/\ud83d\ude00 na\u00efve\u007f.txt","mode":"add"})");
}

TEST(JsonArg, OutputIsPrintableAscii) {
  nlohmann::ordered_json arg;
  arg["path"] = "/\xE6\x97\xA5\xE6\x9C\xAC/\"q\"\\\t\x01";
  const std::string out = EncodeHeaderArg(arg);
  for (const char c : out) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20);
    EXPECT_LT(static_cast<unsigned char>(c), 0x7F);
  }
  EXPECT_EQ(out, R"({"path":"/\u65e5\u672c/\"q\"\\\t\u0001"})");
}

TEST(JsonArg, InvalidUtf8DoesNotThrow) {
  nlohmann::ordered_json arg;
  arg["path"] = std::string("/bad\xFF");
  EXPECT_EQ(EncodeHeaderArg(arg), R"({"path":"/bad\ufffd"})");
}

}  // namespace
}  // namespace filesync::dropbox
