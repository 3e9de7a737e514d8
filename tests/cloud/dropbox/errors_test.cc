#include "cloud/dropbox/errors.h"

#include <gtest/gtest.h>

#include "fakes.h"

namespace filesync::dropbox {
namespace {

using testing::JsonResponse;
using testing::TextResponse;
using K = Status::Kind;
using nlohmann::json;

ApiError Classify(const HttpResponse& r) { return ClassifyResponse(r, "files/test"); }

HttpResponse Conflict409(const json& error) {
  return JsonResponse(409, {{"error_summary", "x/..."}, {"error", error}});
}

TEST(Errors, BadRequestKeepsPlainText) {
  const ApiError e =
      Classify(TextResponse(400, "Error in call to API function \"files/list_folder\": bad path"));
  EXPECT_EQ(e.status.kind(), K::kInvalidArgument);
  EXPECT_NE(e.status.message().find("bad path"), std::string::npos);
  EXPECT_FALSE(e.status.IsRetryable());
}

TEST(Errors, UnknownRouteIsToldApartFromOtherBadRequests) {
  // Dropbox's text for a route it does not serve, and a proxy's 404.
  EXPECT_TRUE(Classify(TextResponse(400,
                                    "Error in call to API function \"files/move_batch_v2\": "
                                    "Unknown API function: /2/files/move_batch_v2"))
                  .unknown_route);
  EXPECT_TRUE(Classify(TextResponse(404, "Not Found")).unknown_route);
  EXPECT_FALSE(Classify(TextResponse(400,
                                     "Error in call to API function \"files/move_v2\": "
                                     "request body: from_path: missing"))
                   .unknown_route);
  EXPECT_FALSE(Classify(TextResponse(500, "Unknown API function")).unknown_route);
}

TEST(Errors, ExpiredTokenIsAuthWithRefreshHint) {
  const ApiError e = Classify(JsonResponse(401, {{"error_summary", "expired_access_token/.."},
                                                 {"error", {{".tag", "expired_access_token"}}}}));
  EXPECT_EQ(e.status.kind(), K::kAuth);
  EXPECT_TRUE(e.expired_token);
}

TEST(Errors, OtherAuthErrorsAreNotRefreshable) {
  for (const char* tag : {"invalid_access_token", "user_suspended", "some_future_tag"}) {
    const ApiError e = Classify(JsonResponse(401, {{"error", {{".tag", tag}}}}));
    EXPECT_EQ(e.status.kind(), K::kAuth) << tag;
    EXPECT_FALSE(e.expired_token) << tag;
  }
  const ApiError scope = Classify(JsonResponse(
      401, {{"error", {{".tag", "missing_scope"}, {"required_scope", "files.content.write"}}}}));
  EXPECT_EQ(scope.status.kind(), K::kAuth);
  EXPECT_TRUE(scope.Has("missing_scope"));
}

TEST(Errors, ForbiddenAndPathRootArePermanent) {
  EXPECT_EQ(Classify(JsonResponse(403, {{"error", {{".tag", "no_permission"}}}})).status.kind(),
            K::kPermanent);
  EXPECT_EQ(Classify(JsonResponse(422, {{"error", {{".tag", "invalid_root"}}}})).status.kind(),
            K::kPermanent);
}

TEST(Errors, EndpointErrorsByUnionTag) {
  struct Case {
    json error;
    K kind;
  };
  const std::vector<Case> cases = {
      {{{".tag", "path"}, {"path", {{".tag", "not_found"}}}}, K::kNotFound},
      {{{".tag", "path_lookup"}, {"path_lookup", {{".tag", "not_found"}}}}, K::kNotFound},
      {{{".tag", "path"}, {"path", {{".tag", "conflict"}, {"conflict", {{".tag", "folder"}}}}}},
       K::kConflict},
      {{{".tag", "path"},
        {"reason", {{".tag", "conflict"}, {"conflict", {{".tag", "file"}}}}},
        {"upload_session_id", "pid:1"}},
       K::kConflict},
      {{{".tag", "too_many_write_operations"}}, K::kRateLimited},
      {{{".tag", "path"}, {"path", {{".tag", "malformed_path"}}}}, K::kInvalidArgument},
      {{{".tag", "path"}, {"path", {{".tag", "malformed_path"}, {"malformed_path", "bad"}}}},
       K::kInvalidArgument},
      {{{".tag", "path"}, {"path", {{".tag", "disallowed_name"}}}}, K::kInvalidArgument},
      {{{".tag", "path"}, {"path", {{".tag", "insufficient_space"}}}}, K::kPermanent},
      {{{".tag", "path_write"}, {"path_write", {{".tag", "no_write_permission"}}}}, K::kPermanent},
      {{{".tag", "reset"}}, K::kNotFound},
      {{{".tag", "content_hash_mismatch"}}, K::kChanged},
      {{{".tag", "brand_new_tag"}, {"brand_new_tag", {{"x", 1}}}}, K::kPermanent},
  };
  for (const auto& c : cases) {
    const ApiError e = Classify(Conflict409(c.error));
    EXPECT_EQ(e.status.kind(), c.kind) << c.error.dump();
  }
}

TEST(Errors, WriteContentionIn409IsRateLimitedWriteReason) {
  const ApiError e = Classify(Conflict409({{".tag", "too_many_write_operations"}}));
  EXPECT_EQ(e.rate_reason, RateReason::kTooManyWriteOperations);
  EXPECT_FALSE(e.retry_after.has_value());
}

TEST(Errors, TagChainAndCorrectOffset) {
  const json e = {{".tag", "lookup_failed"},
                  {"lookup_failed", {{".tag", "incorrect_offset"}, {"correct_offset", 8388608}}}};
  EXPECT_EQ(UnionTags(e), (std::vector<std::string>{"lookup_failed", "incorrect_offset"}));
  EXPECT_EQ(CorrectOffset(e), 8388608u);
  EXPECT_EQ(StatusFromErrorUnion(e, "x").kind(), K::kConflict);
  EXPECT_EQ(UnionTags(json("add")), std::vector<std::string>{"add"});
}

TEST(Errors, RateLimitJsonRetryAfter) {
  HttpResponse r = JsonResponse(
      429, {{"error_summary", "too_many_requests/.."},
            {"error", {{"reason", {{".tag", "too_many_requests"}}}, {"retry_after", 300}}}});
  const ApiError e = Classify(r);
  EXPECT_EQ(e.status.kind(), K::kRateLimited);
  EXPECT_EQ(e.rate_reason, RateReason::kTooManyRequests);
  ASSERT_TRUE(e.retry_after);
  EXPECT_EQ(*e.retry_after, std::chrono::seconds(300));
  EXPECT_EQ(e.status.retry_after(), std::chrono::milliseconds(300000));
}

TEST(Errors, RateLimitPlainTextUsesHeader) {
  HttpResponse r = TextResponse(429, "too many requests");
  r.headers.Add("Retry-After", "7");
  const ApiError e = Classify(r);
  EXPECT_EQ(e.rate_reason, RateReason::kTooManyRequests);
  EXPECT_EQ(e.retry_after, std::chrono::milliseconds(7000));
}

TEST(Errors, RateLimitWriteOperationsWithoutRetryAfter) {
  const ApiError e = Classify(
      JsonResponse(429, {{"error_summary", "too_many_write_operations/"},
                         {"error", {{"reason", {{".tag", "too_many_write_operations"}}}}}}));
  EXPECT_EQ(e.status.kind(), K::kRateLimited);
  EXPECT_EQ(e.rate_reason, RateReason::kTooManyWriteOperations);
  EXPECT_FALSE(e.retry_after.has_value());
}

TEST(Errors, ServerErrorsAreTransientWithOptionalRetryAfter) {
  EXPECT_EQ(Classify(TextResponse(500, "oops")).status.kind(), K::kTransient);
  HttpResponse r = TextResponse(503, "busy");
  r.headers.Add("retry-after", "3");
  const ApiError e = Classify(r);
  EXPECT_EQ(e.status.kind(), K::kTransient);
  EXPECT_EQ(e.status.retry_after(), std::chrono::milliseconds(3000));
}

TEST(Errors, MessageNamesRouteAndRequestId) {
  const ApiError e = Classify(Conflict409({{".tag", "path"}, {"path", {{".tag", "not_found"}}}}));
  EXPECT_NE(e.status.message().find("files/test"), std::string::npos);
  EXPECT_NE(e.status.message().find("req-123"), std::string::npos);
  EXPECT_EQ(e.request_id, "req-123");
  EXPECT_EQ(e.TagPath(), "path/not_found");
}

TEST(Errors, RetryAfterParsing) {
  EXPECT_EQ(ParseRetryAfter("12"), std::chrono::milliseconds(12000));
  EXPECT_EQ(ParseRetryAfter(" 0 "), std::chrono::milliseconds(0));
  EXPECT_FALSE(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"));
  EXPECT_FALSE(ParseRetryAfter("-1"));
}

}  // namespace
}  // namespace filesync::dropbox
