// Delivery receipts from providers: Twilio and Vonage status callbacks and SendGrid's event
// webhook move sent deliveries to delivered or failed. They carry no API key; each is verified
// with the tenant's secret for that provider (ApiOptions::receipt_secret) and refused when the
// signature does not hold. Only verified calls are attributed to the tenant in the audit trail.
//
// Replays: where the provider signs a timestamp (Vonage's `timestamp` parameter, SendGrid's
// timestamp header) a callback signed outside ApiOptions::receipt_tolerance_s of now is refused
// (403 receipt_expired). Twilio signs none; for every provider the store moves a delivery only
// out of `sent` (Store::RecordReceipt), so a replayed receipt is counted as a duplicate and an
// old one that would move the delivery elsewhere (failed back to delivered) as stale.
#include <charconv>
#include <cstdlib>
#include <string>

#include "api/receipt_signatures.h"
#include "api/routing.h"

namespace herald::api {
namespace {

struct Tally {
  int64_t recorded = 0;    // deliveries moved
  int64_t unknown = 0;     // no sent delivery has that message id (not ours, or too early)
  int64_t ignored = 0;     // interim states (queued, sending, processed, ...)
  int64_t duplicates = 0;  // the delivery is already at the receipt's stage
  int64_t stale = 0;       // the delivery moved on elsewhere; receipts never move it back
};

Error Forbidden(std::string code, std::string message, std::string_view field = "signature") {
  return MakeError(ErrorKind::kForbidden, std::move(code), std::move(message), std::string(field));
}

Result<std::string> SecretFor(const ApiContext& ctx, const Call& call, std::string_view provider) {
  Result<std::string> secret = MakeError(ErrorKind::kForbidden, "", "");
  if (ctx.options.receipt_secret) {
    secret = ctx.options.receipt_secret(std::string(call.Param("tenant_id")), provider);
  }
  if (!secret.ok() || secret->empty()) {
    return Forbidden("receipts_not_configured",
                     "Herald holds no " + std::string(provider) +
                         " receipt secret for this tenant, so it cannot verify this callback; "
                         "configure the tenant's " +
                         std::string(provider) + " provider first.");
  }
  return secret;
}

Error BadSignature(std::string_view provider) {
  return Forbidden("invalid_signature", "The " + std::string(provider) +
                                            " signature of this callback does not verify; it "
                                            "was refused and changed nothing.");
}

// Applies one receipt; only storage failures are errors (the provider should retry then).
Status Apply(Store* store, std::string_view tenant_id, std::string_view provider,
             std::string_view message_id, DeliveryStatus stage, std::string_view reason,
             Tally& tally) {
  if (message_id.empty()) {
    ++tally.unknown;
    return Status::Ok();
  }
  Result<ReceiptOutcome> r = store->RecordReceipt(tenant_id, provider, message_id, stage, reason);
  if (r.ok()) {
    switch (*r) {
      case ReceiptOutcome::kApplied: ++tally.recorded; break;
      case ReceiptOutcome::kDuplicate: ++tally.duplicates; break;
      case ReceiptOutcome::kStale: ++tally.stale; break;
    }
  } else if (r.error().kind == ErrorKind::kNotFound) {
    ++tally.unknown;
  } else {
    return r.take_error();
  }
  return Status::Ok();
}

http::Response Answer(const Call& call, const Tally& tally) {
  auto r = JsonResponse(200, {{"recorded", tally.recorded},
                              {"unknown", tally.unknown},
                              {"ignored", tally.ignored},
                              {"duplicates", tally.duplicates},
                              {"stale", tally.stale}});
  r.tenant_id = std::string(call.Param("tenant_id"));  // verified: the tenant's own call
  return r;
}

// A signed Unix time (seconds) must lie within the tolerance of now, either way.
Status CheckSignedTime(const ApiContext& ctx, std::string_view seconds, std::string_view field) {
  int64_t at = 0;
  const auto [end, ec] = std::from_chars(seconds.data(), seconds.data() + seconds.size(), at);
  const int64_t tolerance = ctx.options.receipt_tolerance_s;
  if (seconds.empty() || ec != std::errc() || end != seconds.data() + seconds.size()) {
    return Forbidden("receipt_expired",
                     "The callback carries no signed timestamp, so it could be a replay; it was "
                     "refused and changed nothing.",
                     field);
  }
  const int64_t age = NowMillis() / 1000 - at;
  if (age > tolerance || age < -tolerance) {
    return Forbidden("receipt_expired",
                     "The callback was signed " + std::to_string(std::llabs(age)) + " s " +
                         (age > 0 ? "ago" : "in the future") + "; Herald accepts receipts signed " +
                         "within " + std::to_string(tolerance) +
                         " s of now (a replay otherwise). "
                         "It was refused and changed nothing.",
                     field);
  }
  return Status::Ok();
}

std::string BaseUrl(const ApiContext& ctx, const Call& call) {
  if (!ctx.options.public_url.empty()) return ctx.options.public_url;
  return "http://" + std::string(call.request.Header("host"));
}

http::Response Twilio(const ApiContext& ctx, const Call& call) {
  auto secret = SecretFor(ctx, call, "twilio");
  if (!secret.ok()) return ErrorResponse(secret.error());
  const FormFields form = ParseForm(call.request.body);
  const std::string url = BaseUrl(ctx, call) + call.request.target;
  if (!VerifyTwilio(*secret, url, form, call.request.Header("x-twilio-signature"))) {
    return ErrorResponse(BadSignature("Twilio"));
  }
  Tally tally;
  const std::string_view status = FormValue(form, "MessageStatus");
  const std::string_view sid = FormValue(form, "MessageSid");
  Status s;
  if (status == "delivered") {
    s = Apply(ctx.store, call.Param("tenant_id"), "twilio", sid, DeliveryStatus::kDelivered, "",
              tally);
  } else if (status == "failed" || status == "undelivered") {
    const std::string_view code = FormValue(form, "ErrorCode");
    s = Apply(ctx.store, call.Param("tenant_id"), "twilio", sid, DeliveryStatus::kFailed,
              code.empty() ? status : code, tally);
  } else {
    ++tally.ignored;
  }
  if (!s.ok()) return ErrorResponse(s.error());
  return Answer(call, tally);
}

// Vonage sends a delivery receipt as a form or as a JSON object of flat members.
FormFields VonageParams(const http::Request& request) {
  const std::string_view body = request.body;
  const size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || body[first] != '{') return ParseForm(body);
  FormFields out;
  auto doc = ParseJson(body);
  if (!doc.ok() || !doc->is_object()) return out;
  for (const auto& [key, value] : doc->items()) {
    out.emplace_back(key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  return out;
}

http::Response Vonage(const ApiContext& ctx, const Call& call) {
  auto secret = SecretFor(ctx, call, "vonage");
  if (!secret.ok()) return ErrorResponse(secret.error());
  const FormFields params = VonageParams(call.request);
  if (!VerifyVonage(*secret, params, FormValue(params, "sig"))) {
    return ErrorResponse(BadSignature("Vonage"));
  }
  if (auto fresh = CheckSignedTime(ctx, FormValue(params, "timestamp"), "timestamp"); !fresh.ok()) {
    return ErrorResponse(fresh.error());
  }
  Tally tally;
  const std::string_view status = FormValue(params, "status");
  const std::string_view id = FormValue(params, "messageId");
  const std::string_view err = FormValue(params, "err-code");
  Status s;
  if (status == "delivered") {
    s = Apply(ctx.store, call.Param("tenant_id"), "vonage", id, DeliveryStatus::kDelivered, "",
              tally);
  } else if (status == "failed" || status == "rejected" || status == "expired") {
    const std::string reason = err.empty() || err == "0"
                                   ? std::string(status)
                                   : std::string(status) + ":" + std::string(err);
    s = Apply(ctx.store, call.Param("tenant_id"), "vonage", id, DeliveryStatus::kFailed, reason,
              tally);
  } else {
    ++tally.ignored;
  }
  if (!s.ok()) return ErrorResponse(s.error());
  return Answer(call, tally);
}

std::string StringMember(const Json& event, std::string_view key) {
  if (!event.is_object()) return {};
  auto it = event.find(key);
  return it != event.end() && it->is_string() ? it->get<std::string>() : std::string();
}

http::Response SendGrid(const ApiContext& ctx, const Call& call) {
  auto secret = SecretFor(ctx, call, "sendgrid");
  if (!secret.ok()) return ErrorResponse(secret.error());
  if (!VerifySendGrid(*secret, call.request.Header("x-twilio-email-event-webhook-timestamp"),
                      call.request.body,
                      call.request.Header("x-twilio-email-event-webhook-signature"))) {
    return ErrorResponse(BadSignature("SendGrid"));
  }
  if (auto fresh =
          CheckSignedTime(ctx, call.request.Header("x-twilio-email-event-webhook-timestamp"),
                          "X-Twilio-Email-Event-Webhook-Timestamp");
      !fresh.ok()) {
    return ErrorResponse(fresh.error());
  }
  auto doc = ParseJson(call.request.body);
  if (!doc.ok()) return ErrorResponse(doc.error());
  if (!doc->is_array()) {
    return ErrorResponse(MakeError(ErrorKind::kInvalid, "invalid_type",
                                   "The event webhook body must be a JSON array of events.", ""));
  }
  Tally tally;
  for (const Json& event : *doc) {
    const std::string kind = StringMember(event, "event");
    // sg_message_id is the X-Message-Id the send answered, followed by ".filter...".
    std::string id = StringMember(event, "sg_message_id");
    id = id.substr(0, id.find('.'));
    Status s;
    if (kind == "delivered") {
      s = Apply(ctx.store, call.Param("tenant_id"), "sendgrid", id, DeliveryStatus::kDelivered, "",
                tally);
    } else if (kind == "bounce" || kind == "dropped") {
      // The event's own reason text may quote the address: only the event name is kept.
      s = Apply(ctx.store, call.Param("tenant_id"), "sendgrid", id, DeliveryStatus::kFailed, kind,
                tally);
    } else {
      ++tally.ignored;
    }
    if (!s.ok()) return ErrorResponse(s.error());
  }
  return Answer(call, tally);
}

}  // namespace

void RegisterReceiptRoutes(Router& router, ApiContext& ctx) {
  const ApiContext* c = &ctx;
  router.Add({.method = "POST",
              .pattern = "/v1/receipts/twilio/{tenant_id}",
              .fn = [c](const Call& call) { return Twilio(*c, call); },
              .verifies_signature = true});
  router.Add({.method = "POST",
              .pattern = "/v1/receipts/vonage/{tenant_id}",
              .fn = [c](const Call& call) { return Vonage(*c, call); },
              .verifies_signature = true});
  router.Add({.method = "POST",
              .pattern = "/v1/receipts/sendgrid/{tenant_id}",
              .fn = [c](const Call& call) { return SendGrid(*c, call); },
              .verifies_signature = true});
}

}  // namespace herald::api
