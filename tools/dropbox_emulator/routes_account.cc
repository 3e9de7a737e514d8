// Account routes: users/get_current_account, users/get_space_usage, check/user,
// auth/token/revoke. The account is fixed (one emulated user).
#include "dropbox_emulator/route_handlers.h"

namespace filesync::emulator {
namespace {

constexpr std::uint64_t kAllocated = 2ULL * 1024 * 1024 * 1024 * 1024;

// The routes that take no argument (Void): anything but null is a 400.
std::optional<Reply> RefuseNonVoid(const Call& call) {
  if (call.arg.is_null()) return std::nullopt;
  return BadArgument(call.route, "request body: expected null, got " + call.arg.dump());
}

}  // namespace

Reply CheckUser(RouteContext&, const Call& call) {
  const nlohmann::json arg = call.arg.is_null() ? nlohmann::json::object() : call.arg;
  ArgReader r(arg, "request body");
  const std::string query = r.String("query", false).value_or("");
  if (!r.Finish()) return BadArgument(call.route, r.error());
  if (query.size() > 500) return BadArgument(call.route, "request body: 'query' longer than 500");
  return Reply::Json({{"result", query}});
}

Reply GetCurrentAccount(RouteContext&, const Call& call) {
  if (auto refused = RefuseNonVoid(call)) return *refused;
  return Reply::Json({
      {"account_id", kAccountId},
      {"name",
       {{"given_name", "Emma"},
        {"surname", "Ulator"},
        {"familiar_name", "Emma"},
        {"display_name", "Emma Ulator"},
        {"abbreviated_name", "EU"}}},
      {"email", "emulator@example.com"},
      {"email_verified", true},
      {"disabled", false},
      {"locale", "en"},
      {"referral_link", "https://db.tt/emulator"},
      {"is_paired", false},
      {"account_type", {{".tag", "pro"}}},
      {"root_info",
       {{".tag", "user"},
        {"root_namespace_id", Namespace::kRootNamespaceId},
        {"home_namespace_id", Namespace::kRootNamespaceId}}},
      {"country", "US"},
  });
}

Reply GetSpaceUsage(RouteContext& ctx, const Call& call) {
  if (auto refused = RefuseNonVoid(call)) return *refused;
  return Reply::Json({{"used", ctx.ns->UsedBytes()},
                      {"allocation", {{".tag", "individual"}, {"allocated", kAllocated}}}});
}

Reply RevokeToken(RouteContext& ctx, const Call& call) {
  if (auto refused = RefuseNonVoid(call)) return *refused;
  ctx.tokens->Revoke(call.token);
  return Reply::Json(nullptr);
}

}  // namespace filesync::emulator
