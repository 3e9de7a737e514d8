// How: split at the last ':' (after a ']' for IPv6), read the port with from_chars, and let
// inet_pton decide whether the host is an IPv4 or IPv6 address; loopback is decided on the
// bytes inet_pton produced.
#include "ops/listen_address.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstring>

namespace filesync::ops {
namespace {

constexpr std::string_view kFix =
    "write \"host:port\" with an IP address, e.g. \"127.0.0.1:9184\" or \"[::1]:9184\"";

Status Invalid(const std::string& problem, std::string_view fix = kFix) {
  return Status::InvalidArgument(problem + "; " + std::string(fix));
}

}  // namespace

std::string ListenAddress::ToString() const {
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<ListenAddress> ListenAddress::Parse(std::string_view text) {
  const std::string shown = "\"" + std::string(text) + "\"";
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return Invalid(shown + " has no port");
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  ListenAddress out;
  if (host.starts_with('[')) {
    if (!host.ends_with(']')) return Invalid(shown + " has an unclosed '['");
    host = host.substr(1, host.size() - 2);
    out.ipv6 = true;
  } else if (host.find(':') != std::string_view::npos) {
    return Invalid(shown + " is an IPv6 address without brackets",
                   "put the address in brackets, e.g. \"[::1]:9184\"");
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port < 1 || port > 65535) {
    return Invalid(shown + " has no valid port (1 to 65535)",
                   "choose a port from 1 to 65535, e.g. \"127.0.0.1:9184\"");
  }
  out.port = static_cast<std::uint16_t>(port);
  if (host.empty()) {
    return Invalid(shown + " has no host",
                   "write the address to listen on, e.g. \"127.0.0.1:" + std::to_string(port) +
                       "\" (only this machine) or \"0.0.0.0:" + std::to_string(port) + "\"");
  }
  if (!out.ipv6 && host == "localhost") host = "127.0.0.1";
  out.host = std::string(host);
  std::array<unsigned char, 16> bytes{};
  if (out.ipv6) {
    if (inet_pton(AF_INET6, out.host.c_str(), bytes.data()) != 1) {
      return Invalid(shown + ": \"" + out.host + "\" is not an IPv6 address");
    }
    static constexpr std::array<unsigned char, 16> kLoopback = {0, 0, 0, 0, 0, 0, 0, 0,
                                                                0, 0, 0, 0, 0, 0, 0, 1};
    static constexpr std::array<unsigned char, 12> kMappedV4 = {0, 0, 0, 0, 0,    0,
                                                                0, 0, 0, 0, 0xff, 0xff};
    out.loopback =
        bytes == kLoopback ||
        (std::memcmp(bytes.data(), kMappedV4.data(), kMappedV4.size()) == 0 && bytes[12] == 127);
  } else {
    if (inet_pton(AF_INET, out.host.c_str(), bytes.data()) != 1) {
      return Invalid(shown + ": \"" + out.host + "\" is not an IP address",
                     "use an IP address (host names other than localhost are not resolved), "
                     "e.g. \"127.0.0.1:" +
                         std::to_string(port) + "\"");
    }
    out.loopback = bytes[0] == 127;
  }
  return out;
}

}  // namespace filesync::ops
