// ListenAddress: the parsed `status_listen` value, "host:port".
//
// The host is an IP address, IPv6 in brackets ("127.0.0.1:9184", "[::1]:9184", "0.0.0.0:9184",
// "[::]:9184"), or "localhost" (meaning 127.0.0.1); the port is 1 to 65535. A host name other
// than localhost is refused: whether an address is loopback (and so may go without a token)
// must not depend on a resolver. Loopback means 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104.
//
// Thread safety: plain values and a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace filesync::ops {

struct ListenAddress {
  std::string host;        // what to bind: an IP address without brackets ("::1")
  std::uint16_t port = 0;  // 0 only when built by hand (tests): any free port
  bool loopback = false;   // only this machine can connect
  bool ipv6 = false;

  // "127.0.0.1:9184", "[::1]:9184".
  [[nodiscard]] std::string ToString() const;
  bool operator==(const ListenAddress&) const = default;

  // kInvalidArgument whose message is "<problem>; <how to write it>" (the caller names the key).
  static Result<ListenAddress> Parse(std::string_view text);
};

}  // namespace filesync::ops
