#include "util/status.h"

namespace filesync {

const char* Status::KindName(Kind kind) {
  switch (kind) {
    case Kind::kOk:
      return "ok";
    case Kind::kNotFound:
      return "not_found";
    case Kind::kConflict:
      return "conflict";
    case Kind::kRateLimited:
      return "rate_limited";
    case Kind::kTransient:
      return "transient";
    case Kind::kAuth:
      return "auth";
    case Kind::kInvalidArgument:
      return "invalid_argument";
    case Kind::kIo:
      return "io";
    case Kind::kChanged:
      return "changed";
    case Kind::kCancelled:
      return "cancelled";
    case Kind::kPermanent:
      return "permanent";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(KindName(kind_)) + ": " + message_;
}

}  // namespace filesync
