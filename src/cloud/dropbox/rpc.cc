// Execute: the one retry wrapper (rclone's pacer.Call is the model). Every request goes through
// it: pacer wait -> bearer token -> send -> classify, and it retries what is safe to retry:
//  - 429 too_many_requests: after the pacer's account-wide pause, up to
//    max_rate_limited_attempts times;
//  - whole-request too_many_write_operations: write backoff, up to max_write_attempts;
//  - 5xx and network errors of idempotent requests: full-jitter backoff (a Retry-After is a
//    floor), up to max_attempts;
//  - a 401 expired_access_token: once, after a refresh.
// A non-idempotent request (move, delete_v2) that fails ambiguously comes back marked
// `ambiguous`; its caller looks at the real state with get_metadata before retrying. What
// Execute returns is final: nothing above it retries the same failure again (the processor
// does not, see Capabilities::retries_transient).
#include <algorithm>

#include "cloud/dropbox/dropbox_impl.h"
#include "cloud/dropbox/json_arg.h"

namespace filesync::dropbox {
namespace {

// Attempts of one call, per kind of failure.
struct Attempts {
  int transient = 0;
  int rate = 0;
  int write = 0;
  bool refreshed = false;
  std::string token;
};

HttpRequest MakeRequest(Call& call, const DropboxOptions& o) {
  HttpRequest request;
  request.url = (call.host == Host::kApi ? o.api_url : o.content_url) + "/2/" + call.route;
  request.timeout = call.timeout;
  request.close_connection_after = call.close_connection_after;
  request.cancel = call.cancel;
  if (call.host == Host::kApi) {
    request.headers.Add("Content-Type", "application/json");
    request.body = std::move(call.arg);
  } else {
    request.headers.Add("Content-Type", "application/octet-stream");
    request.headers.Add("Dropbox-API-Arg", std::move(call.arg));
    request.body = std::move(call.body);
  }
  return request;
}

// A server whose TLS certificate could not be verified, said in terms of the configuration
// (kAuth: the server could not be authenticated); other failures pass through.
Status Untrusted(const Status& s) {
  if (s.kind() != Status::Kind::kPermanent || !s.message().starts_with(kTlsVerificationFailed))
    return s;
  return Status::Auth("cannot verify the Dropbox server's TLS certificate (" + s.message() +
                      "); if it uses a private CA (the emulator, a TLS-inspecting proxy), set "
                      "dbx_ca_file to that CA's bundle, else check dbx_api_url and "
                      "dbx_content_url");
}

// A credential Dropbox refused (kAuth), said in terms of the configuration key that holds it
// and what to do; other failures pass through. `detail` names what was refused, never a token.
Status Refused(const DropboxOptions& o, const Status& s, const std::string& detail) {
  if (s.kind() != Status::Kind::kAuth) return s;
  if (detail.find("missing_scope") != std::string::npos) {
    return Status::Auth("Dropbox refused the request (" + detail +
                        "): the app lacks a permission; enable it on the app's Permissions "
                        "tab, then run `filesync auth` again and update dbx_refresh_token_file");
  }
  if (o.tokens == nullptr && !o.refresh_token.empty()) {
    return Status::Auth("Dropbox refused the refresh token in dbx_refresh_token (" + detail +
                        "); run `filesync auth` to link the account again and point "
                        "dbx_refresh_token_file at the new token");
  }
  if (o.tokens == nullptr) {
    return Status::Auth("Dropbox refused the access token in dbx_token (" + detail +
                        "): it is invalid, revoked or expired; run `filesync auth` and set "
                        "dbx_refresh_token_file instead (or put a new token in dbx_token)");
  }
  return Status::Auth("Dropbox refused the credentials (" + detail +
                      "); check dbx_token / dbx_refresh_token, or run `filesync auth`");
}

Reply Parsed(const HttpResponse& response, const std::string& route) {
  Reply reply;
  if (!response.body.empty()) {
    reply.result = nlohmann::json::parse(response.body, nullptr, false);
    if (reply.result.is_discarded())
      return Reply{Status::Permanent(route + ": response is not JSON")};
  }
  return reply;
}

// The retry decisions of Execute, one per kind of failure: each returns the final Reply, or
// nullopt after waiting when the call should be sent again.
class Retrier {
 public:
  Retrier(DropboxCloud::Impl& d, const Call& call) : d_(d), call_(call) {}

  Attempts attempts;

  std::optional<Reply> TransportFailed(const Status& s) {
    if (s.kind() != Status::Kind::kTransient) return Reply{Untrusted(s)};
    if (!call_.idempotent) return Reply{s, {}, std::nullopt, true};
    if (!call_.retry_transient) return Reply{s};
    if (++attempts.transient >= d_.pacer.options().max_attempts) return Reply{s};
    Log().warn("{} (attempt {}), retrying", s.message(), attempts.transient);
    d_.Pause(d_.pacer.Backoff(attempts.transient), call_.cancel);
    return std::nullopt;
  }

  // An expired or revoked access token: a refresh token (if any) gets a new one, once.
  std::optional<Reply> Unauthorized(ApiError& error) {
    const std::string detail = call_.route + ": HTTP 401 " + error.TagPath();
    if (attempts.refreshed || !(error.expired_token || error.Has("invalid_access_token"))) {
      return Reply{Refused(d_.o, error.status, detail), {}, std::move(error)};
    }
    attempts.refreshed = true;
    auto t = d_.tokens->RefreshAfterExpiry(attempts.token);
    if (!t.ok()) {
      const bool cannot_refresh = d_.o.tokens == nullptr && d_.o.refresh_token.empty();
      return Reply{Refused(d_.o, t.status(), cannot_refresh ? detail : t.status().message()),
                   {},
                   std::move(error)};
    }
    attempts.token = std::move(*t);
    return std::nullopt;
  }

  std::optional<Reply> RateLimited(ApiError& error) {
    d_.pacer.OnRateLimited(error.rate_reason, error.retry_after);
    if (error.rate_reason == RateReason::kTooManyWriteOperations) {
      if (++attempts.write >= d_.pacer.options().max_write_attempts)
        return Reply{error.status, {}, std::move(error)};
      if (!error.retry_after) d_.Pause(d_.pacer.WriteBackoff(attempts.write), call_.cancel);
    } else if (++attempts.rate >= d_.pacer.options().max_rate_limited_attempts) {
      return Reply{error.status, {}, std::move(error)};
    }
    Log().info("{}; waiting before retrying", error.status.message());
    return std::nullopt;
  }

  std::optional<Reply> ServerError(ApiError& error) {
    if (!call_.idempotent) return Reply{error.status, {}, std::move(error), true};
    if (!call_.retry_transient) return Reply{error.status, {}, std::move(error)};
    if (++attempts.transient >= d_.pacer.options().max_attempts) {
      Log().warn("{}; giving up after {} attempts", error.status.message(), attempts.transient);
      return Reply{error.status, {}, std::move(error)};
    }
    Log().warn("{} (attempt {}), retrying", error.status.message(), attempts.transient);
    auto delay = d_.pacer.Backoff(attempts.transient);
    if (error.retry_after) delay = std::max(delay, *error.retry_after);
    d_.Pause(delay, call_.cancel);
    return std::nullopt;
  }

  // A non-2xx answer: final, or nullopt to send again.
  std::optional<Reply> Refusal(const HttpResponse& response) {
    ApiError error = ClassifyResponse(response, call_.route);
    if (error.http_status == 401) return Unauthorized(error);
    if (error.http_status == 429 || error.rate_reason == RateReason::kTooManyWriteOperations)
      return RateLimited(error);
    if (error.http_status >= 500) return ServerError(error);
    if (error.http_status != 409) Log().warn("{}", error.status.message());
    Status status = error.status;
    return Reply{std::move(status), {}, std::move(error)};
  }

 private:
  DropboxCloud::Impl& d_;
  const Call& call_;
};

}  // namespace

DropboxCloud::Impl::Impl(DropboxOptions options)
    : o(std::move(options)),
      clock(o.clock != nullptr ? *o.clock : core::SystemClock()),
      pacer(o.pacer, clock),
      sessions(o.sessions) {
  if (o.chunk_size == 0 || o.chunk_size % hash::kBlockSize != 0 || o.chunk_size > 148 * kMiB) {
    throw std::invalid_argument("dbx_chunk_size must be a multiple of 4 MiB, at most 148 MiB");
  }
  if (o.max_parallel_chunks < 1) o.max_parallel_chunks = 1;
  o.max_batch_files = std::clamp<std::size_t>(o.max_batch_files, 1, kMaxBatchEntries);
  transport =
      o.transport ? o.transport : MakeCurlTransport(HttpClientOptions{.ca_file = o.ca_file});
  if (o.tokens) {
    tokens = o.tokens;
  } else if (!o.refresh_token.empty()) {
    if (o.app_key.empty()) throw std::invalid_argument("dbx_refresh_token needs dbx_app_key");
    tokens =
        std::make_shared<RefreshingTokenProvider>(RefreshOptions{.api_url = o.api_url,
                                                                 .app_key = o.app_key,
                                                                 .app_secret = o.app_secret,
                                                                 .refresh_token = o.refresh_token},
                                                  transport, clock);
  } else if (!o.access_token.empty()) {
    tokens = std::make_shared<StaticTokenProvider>(o.access_token);
  } else {
    throw std::invalid_argument(
        "no Dropbox credentials: set dbx_token, or dbx_refresh_token and dbx_app_key");
  }
}

Reply DropboxCloud::Impl::Execute(Call call) {
  HttpRequest request = MakeRequest(call, o);
  Retrier retrier(*this, call);
  std::string& token = retrier.attempts.token;
  auto stopped = [&] { return call.cancel != nullptr && call.cancel->load(); };
  for (;;) {
    if (stopped()) return Reply{Status::Cancelled(call.route + ": stopped")};
    if (token.empty()) {
      auto t = tokens->AccessToken();
      if (!t.ok()) return Reply{Untrusted(Refused(o, t.status(), t.status().message()))};
      token = std::move(*t);
    }
    request.headers.Set("Authorization", "Bearer " + token);
    pacer.Wait(call.cancel);
    if (stopped()) return Reply{Status::Cancelled(call.route + ": stopped")};
    const auto sent_at = clock.Now();
    auto response = transport->Send(request);
    Log().debug(
        "{} -> {} in {} ms", call.route, response.ok() ? response->status : 0L,
        std::chrono::duration_cast<std::chrono::milliseconds>(clock.Now() - sent_at).count());
    std::optional<Reply> done;
    if (!response.ok()) {
      done = retrier.TransportFailed(response.status());
    } else if (response->status >= 200 && response->status < 300) {
      done = Parsed(*response, call.route);
    } else {
      done = retrier.Refusal(*response);
    }
    if (done) return std::move(*done);
  }
}

void DropboxCloud::Impl::Pause(std::chrono::milliseconds d, const std::atomic<bool>* cancel) {
  if (cancel == nullptr) return pacer.Sleep(d);
  const auto until = clock.Now() + d;
  for (auto now = clock.Now(); now < until && !cancel->load(); now = clock.Now()) {
    clock.SleepFor(
        std::min<core::Clock::TimePoint::duration>(until - now, std::chrono::milliseconds(100)));
  }
}

Reply DropboxCloud::Impl::Rpc(std::string route, const ojson& arg, bool idempotent,
                              std::chrono::seconds timeout) {
  Call call;
  call.route = std::move(route);
  call.arg = arg.dump(-1, ' ', false, ojson::error_handler_t::replace);
  call.idempotent = idempotent;
  call.timeout = timeout;
  return Execute(std::move(call));
}

Reply DropboxCloud::Impl::Content(std::string route, const ojson& arg, std::string body,
                                  const cloud::Transfer& transfer, bool probe) {
  Call call;
  call.cancel = transfer.cancel;
  call.retry_transient = !probe;
  call.close_connection_after = probe;
  call.route = std::move(route);
  call.host = Host::kContent;
  call.arg = EncodeHeaderArg(arg);
  call.body = std::move(body);
  call.timeout = std::chrono::seconds(0);  // big bodies: rely on the low-speed abort
  return Execute(std::move(call));
}

Result<std::optional<Metadata>> DropboxCloud::Impl::GetMetadata(const std::string& path) {
  Reply r = Rpc("files/get_metadata", ojson{{"path", path}});
  if (!r.ok()) {
    if (r.Has("not_found")) return std::optional<Metadata>();
    return r.status;
  }
  auto m = ParseMetadata(r.result, Metadata::Tag::kUnknown);
  if (!m.ok()) return m.status();
  return std::optional<Metadata>(std::move(*m));
}

Result<JobStatus> DropboxCloud::Impl::PollJob(const std::string& route, const std::string& job_id,
                                              SuccessShape shape) {
  auto delay = o.poll_initial;
  const auto deadline = clock.Now() + o.poll_limit;
  for (;;) {
    clock.SleepFor(delay);
    Reply r = Rpc(route, ojson{{"async_job_id", job_id}});
    if (!r.ok()) return r.status;
    auto job = ParseJobStatus(r.result, shape, route);
    if (!job.ok() || job->state != JobStatus::State::kInProgress) return job;
    if (clock.Now() >= deadline)
      return Status::Transient(route + " job " + job_id + " did not finish in time");
    delay = std::min(o.poll_max, std::chrono::milliseconds(delay.count() * 3 / 2 + 1));
  }
}

}  // namespace filesync::dropbox
