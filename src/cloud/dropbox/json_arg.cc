// nlohmann's ensure_ascii mode already escapes code points >= 0x7F (so DEL too) with lowercase
// hex and surrogate pairs; this wrapper fixes the options so every caller gets exactly that.
#include "cloud/dropbox/json_arg.h"

namespace filesync::dropbox {

std::string EncodeHeaderArg(const nlohmann::ordered_json& arg) {
  return arg.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace filesync::dropbox
