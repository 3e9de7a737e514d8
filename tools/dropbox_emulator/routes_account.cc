// Account routes: users/get_current_account, users/get_space_usage, check/user,
// auth/token/revoke. The account is fixed (one emulated user).
#include "dropbox_emulator/routes.h"

namespace filesync::emulator {
namespace {

constexpr std::uint64_t kAllocated = 2ULL * 1024 * 1024 * 1024 * 1024;

bool IsVoid(const nlohmann::json& arg) { return arg.is_null(); }

}  // namespace

Reply HandleAccountRoute(RouteContext& ctx, const Call& call) {
  const std::string& route = call.route;
  if (route == "check/user") {
    const nlohmann::json arg = call.arg.is_null() ? nlohmann::json::object() : call.arg;
    ArgReader r(arg, "request body");
    const std::string query = r.String("query", false).value_or("");
    if (!r.Finish()) return BadArgument(route, r.error());
    if (query.size() > 500) return BadArgument(route, "request body: 'query' longer than 500");
    return Reply::Json({{"result", query}});
  }
  if (!IsVoid(call.arg))
    return BadArgument(route, "request body: expected null, got " + call.arg.dump());
  if (route == "users/get_current_account") {
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
  if (route == "users/get_space_usage") {
    return Reply::Json({{"used", ctx.ns->UsedBytes()},
                        {"allocation", {{".tag", "individual"}, {"allocated", kAllocated}}}});
  }
  if (route == "auth/token/revoke") {
    ctx.tokens->Revoke(call.token);
    return Reply::Json(nullptr);
  }
  return BadArgument(route, "unknown route");
}

}  // namespace filesync::emulator
