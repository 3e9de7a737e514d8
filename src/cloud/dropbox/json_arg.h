// Dropbox-API-Arg header encoding (reference §1.4): JSON in which DEL and every non-ASCII
// character is written as \uXXXX, characters above U+FFFF as a UTF-16 surrogate pair, so the
// value is plain printable ASCII. Keys keep their insertion order (ordered_json). Invalid UTF-8
// is replaced by U+FFFD rather than throwing. Pure and thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace filesync::dropbox {

// Example: {"path":"/Réport/😀.txt"} -> {"path":"/R\u00e9port/\ud83d\ude00.txt"}
std::string EncodeHeaderArg(const nlohmann::ordered_json& arg);

}  // namespace filesync::dropbox
