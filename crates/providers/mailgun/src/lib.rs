//! Mailgun webhooks: one event per POST, as JSON (webhooks "v3", since 2018) or as the legacy
//! form fields, signed with an HMAC over a timestamp and a random token.
//!
//! Docs: <https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads>,
//! <https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks> and, for
//! the legacy bodies, <https://documentation.mailgun.com/en/latest/api-webhooks-deprecated.html>.
//!
//! - Body: `application/json` `{"signature": {"timestamp", "token", "signature"}, "event-data":
//!   {...}}`; legacy webhooks post flat `application/x-www-form-urlencoded` fields, or
//!   `multipart/form-data` when the original message is attached (the file parts are skipped).
//!   Legacy bodies merge the sender's user variables into the same fields: Mailgun's own value is
//!   the first of a repeated field, except `timestamp`, `token` and `signature`, where it is the
//!   last. `row` is the `event-data` JSON, or the legacy fields as a JSON object.
//! - Ids: the message id is `event-data.message.headers["message-id"]` (legacy `Message-Id` or
//!   `message-id`, else the `Message-Id` in `message-headers`), without angle brackets. A user
//!   variable `id`, `novuMessageId` or `__nvMessageId` (`user-variables` object or JSON text;
//!   legacy: a plain field) is the result id. An event without any message id (trimmed legacy
//!   posts) is keyed by its event id, else the signature token; one without any of these is
//!   kept, reported under its dedup key, when it names a recipient (else it is ignored).
//! - `date`: `event-data.timestamp`, float Unix seconds to the microsecond; legacy: the
//!   `timestamp` field (seconds). The receive time only when neither is sent.
//! - Dedup: `event-data.id` with the event's timestamp (the id is unique only within a day);
//!   without an id, a hash of message id, event, recipient, time, severity, reason and URL
//!   (with no id at all, also the `To` header's recipient). Legacy: the signature `token`,
//!   random per event; without it, a hash of message id, event, recipient, time and URL.
//! - Signature: hex HMAC-SHA256 with the webhook signing key over `timestamp ‖ token` (the body
//!   itself is not signed), compared with `signature` in constant time. The signed timestamp must
//!   lie within 15 minutes of the receive time (Mailgun recommends rejecting stale timestamps
//!   and names no window). A subaccount's `parent-signature` is not needed.

mod status;
mod wire;

use tidings_core::ids::OWN_ID_KEYS;
use tidings_core::signature::{check_window, hex_matches, hmac_sha256};
use tidings_core::{
    Credentials, Draft, Error, MediaType, Nonce, Parsed, ProviderParser, RawRequest, Result,
    Status, ids, json, non_empty, time,
};

use crate::wire::{EventData, Scalar, Webhook};

const ID: &str = "mailgun";
/// Mailgun recommends rejecting stale timestamps but names no window.
const DEFAULT_TOLERANCE_MINUTES: i64 = 15;

tidings_core::provider! {
    /// Mailgun webhooks, v3 JSON and legacy forms.
    pub struct Mailgun;
    id: ID,
    channel: Email,
    signature: Signature::Keyed("hmac-sha256"),
    media_types: [Json, Form, Multipart, Missing],
}

impl ProviderParser for Mailgun {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signed = signed_fields(request)?;
        let signed_at = signed
            .timestamp
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(time::from_unix_seconds)
            .ok_or(Error::MalformedSignature("timestamp"))?;
        let signature = signed.signature.trim();
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::MalformedSignature("signature"));
        }
        credentials.any_key_matches(|key| {
            let mac = hmac_sha256(
                key.expose().as_bytes(),
                &[signed.timestamp.as_bytes(), signed.token.as_bytes()],
            );
            hex_matches(&mac, signature)
        })?;
        let default = chrono::Duration::minutes(DEFAULT_TOLERANCE_MINUTES);
        if let Some(tolerance) = credentials.freshness.tolerance(Some(default)) {
            check_window(signed_at, request.received_at, tolerance)?;
        }
        Ok(())
    }

    /// Mailgun signs only `timestamp + token`: the token is remembered until the timestamp
    /// leaves the window, so the signature cannot be replayed with another body.
    fn nonce(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Option<Nonce> {
        let signed = signed_fields(request).ok()?;
        let signed_at = time::from_unix_seconds(signed.timestamp.trim().parse::<i64>().ok()?)?;
        let default = chrono::Duration::minutes(DEFAULT_TOLERANCE_MINUTES);
        let expires_at = credentials
            .freshness
            .tolerance(Some(default))
            .and_then(|tolerance| signed_at.checked_add_signed(tolerance))
            // No window: the signature never goes stale, so neither does its token.
            .unwrap_or(Nonce::NEVER)
            .min(Nonce::NEVER);
        Some(Nonce {
            value: signed.token,
            expires_at,
        })
    }

    /// Mailgun's private API keys (`<32 hex>-<8 hex>-<8 hex>`) sit beside the webhook signing key
    /// in the dashboard and are often pasted in its place; they never verify a webhook.
    fn refusal_hint(
        &self,
        _request: &RawRequest<'_>,
        credentials: &Credentials<'_>,
    ) -> Option<String> {
        credentials
            .signing_keys
            .iter()
            .any(|key| looks_like_api_key(key.expose()))
            .then(|| {
                "The configured key has the shape of a Mailgun private API key (32 hex characters, then two groups of 8); webhooks are signed with the HTTP webhook signing key (Mailgun dashboard: Sending, Webhooks, HTTP webhook signing key). Configure that one.".to_owned()
            })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        match request.media_type() {
            MediaType::Json | MediaType::Missing => parse_json(request),
            MediaType::Form | MediaType::Multipart => parse_legacy(request),
            _ => Err(request.unsupported(ID)),
        }
    }
}

/// The signed values as sent.
struct Signed {
    timestamp: String,
    token: String,
    signature: String,
}

fn signed_fields(request: &RawRequest<'_>) -> Result<Signed> {
    match request.media_type() {
        MediaType::Json | MediaType::Missing => {
            let webhook: Webhook<'_> = json::read_slice(ID, request.body)?;
            let block = webhook
                .signature
                .ok_or(Error::MissingSignatureField("signature"))?;
            let field = |value: &Option<Scalar>, name| {
                value
                    .as_ref()
                    .and_then(Scalar::text)
                    .map(str::to_owned)
                    .ok_or(Error::MissingSignatureField(name))
            };
            Ok(Signed {
                timestamp: field(&block.timestamp, "signature.timestamp")?,
                token: field(&block.token, "signature.token")?,
                signature: field(&block.signature, "signature.signature")?,
            })
        }
        MediaType::Form | MediaType::Multipart => {
            let form = request.form()?;
            // User variables named like these come first; Mailgun's own values are the last.
            let field = |name| {
                form.last(name)
                    .map(str::to_owned)
                    .ok_or(Error::MissingSignatureField(name))
            };
            Ok(Signed {
                timestamp: field("timestamp")?,
                token: field("token")?,
                signature: field("signature")?,
            })
        }
        _ => Err(request.unsupported(ID)),
    }
}

fn parse_json(request: &RawRequest<'_>) -> Result<Parsed> {
    let webhook: Webhook<'_> = json::read_slice(ID, request.body)?;
    let row = webhook
        .event_data
        .ok_or(Error::MissingField("event-data"))?;
    let data: EventData = json::read(ID, row.get())?;
    let token = webhook
        .signature
        .and_then(|s| s.token)
        .and_then(|t| t.text().map(str::to_owned));

    let headers = data.message.as_ref().and_then(|m| m.headers.as_ref());
    let external_id = headers
        .and_then(|h| h.message_id.as_deref())
        .map(ids::strip_angle_brackets)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let event_id = data.id.as_ref().and_then(Scalar::text).map(str::to_owned);
    let own_id = data.user_variables.as_ref().and_then(wire::own_id);
    let provider_event = describe(&data);

    // `rejected` events have no `recipient`: the `To` header names it.
    let recipient = non_empty(data.recipient.as_deref())
        .or_else(|| headers.and_then(|h| non_empty(h.to.as_deref().map(wire::address))))
        .map(str::to_owned);

    let mut parsed = Parsed::default();
    let id = own_id
        .or_else(|| external_id.clone())
        .or_else(|| event_id.clone())
        .or(token);
    if id.is_none() && recipient.is_none() {
        parsed.ignore(
            provider_event,
            None,
            "the event carries no id and no recipient",
        );
        return Ok(parsed);
    }
    let Some((status, failure)) = status::classify(
        &data.event,
        data.severity.as_deref(),
        data.reason.as_deref(),
    ) else {
        parsed.ignore(provider_event, id, "event type maps to no delivery status");
        return Ok(parsed);
    };

    let signed_time = data
        .timestamp
        .as_ref()
        .and_then(Scalar::seconds)
        .and_then(time::from_unix_float);
    let micros = signed_time
        .map(|t| t.timestamp_micros().to_string())
        .unwrap_or_default();
    let draft = Draft::new(ID, status, provider_event);
    let draft = match &event_id {
        Some(event_id) if signed_time.is_some() => draft.dedup_id(format!("{event_id}@{micros}")),
        _ => {
            let mut fields = vec![
                external_id.as_deref().or(id.as_deref()).unwrap_or(""),
                &data.event,
                data.recipient.as_deref().unwrap_or(""),
                &micros,
                data.severity.as_deref().unwrap_or(""),
                data.reason.as_deref().unwrap_or(""),
                data.url.as_deref().unwrap_or(""),
            ];
            // Without any id, a `rejected` event's recipient (from the `To` header) is all that
            // tells it apart from another.
            if id.is_none() {
                fields.push(recipient.as_deref().unwrap_or(""));
            }
            draft.dedup_fields(&fields)
        }
    };

    let delivery = data.delivery_status.as_ref();
    let response = delivery
        .and_then(|d| non_empty(d.description.as_deref()).or(non_empty(d.message.as_deref())))
        .or_else(|| {
            data.reject.as_ref().and_then(|r| {
                non_empty(r.reason.as_deref()).or(non_empty(r.description.as_deref()))
            })
        })
        .map(str::to_owned);
    let automated = is_engagement(status).then(|| {
        data.client_info.as_ref().is_some_and(|c| {
            c.bot.as_ref().is_some_and(Scalar::flagged) || c.client_type.as_deref() == Some("robot")
        })
    });
    // Without any id (no message id, event id nor token) the event is kept all the same,
    // reported under its dedup key: it still says something true about its recipient.
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(external_id)
            .date(signed_time)
            .recipient(recipient)
            .failure(failure)
            .code(delivery.and_then(|d| d.code.as_ref()?.text().map(str::to_owned)))
            .response(response)
            .attempts(delivery.and_then(|d| d.attempt_no.as_ref()?.as_u32()))
            .automated(automated)
            .row(row.get()),
    );
    Ok(parsed)
}

fn parse_legacy(request: &RawRequest<'_>) -> Result<Parsed> {
    let form = request.form()?;
    let Some(event) = form.first("event") else {
        if form.first("body-plain").is_some() || form.first("sender").is_some() {
            return Err(Error::malformed(
                ID,
                "this is an inbound message (a route's forward()), not a tracking webhook",
            ));
        }
        return Err(Error::MissingField("event"));
    };
    let external_id = non_empty(form.first("Message-Id"))
        .or_else(|| non_empty(form.first("message-id")))
        .map(str::to_owned)
        .or_else(|| {
            form.first("message-headers")
                .and_then(wire::message_id_header)
        })
        .map(|id| ids::strip_angle_brackets(&id).to_owned())
        .filter(|id| !id.is_empty());
    let own_id = OWN_ID_KEYS
        .iter()
        .find_map(|name| non_empty(form.first(name)))
        .map(str::to_owned);
    let token = non_empty(form.last("token")).map(str::to_owned);

    let recipient = non_empty(form.first("recipient"));

    let mut parsed = Parsed::default();
    let id = own_id
        .or_else(|| external_id.clone())
        .or_else(|| token.clone());
    if id.is_none() && recipient.is_none() {
        parsed.ignore(event, None, "the event carries no id and no recipient");
        return Ok(parsed);
    }
    let Some((status, failure)) = status::classify(event, None, None) else {
        parsed.ignore(event, id, "event type maps to no delivery status");
        return Ok(parsed);
    };

    let timestamp = form.last("timestamp").unwrap_or("").trim();
    let signed_time = timestamp
        .parse::<i64>()
        .ok()
        .and_then(time::from_unix_seconds);
    let draft = Draft::new(ID, status, event);
    let draft = match &token {
        Some(token) => draft.dedup_id(token),
        None => draft.dedup_fields(&[
            external_id.as_deref().or(id.as_deref()).unwrap_or(""),
            event,
            recipient.unwrap_or(""),
            timestamp,
            form.first("url").unwrap_or(""),
        ]),
    };
    let response = non_empty(form.first("error"))
        .or_else(|| non_empty(form.first("description")))
        .or_else(|| non_empty(form.first("notification")));
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(external_id)
            .date(signed_time)
            .recipient(recipient.map(str::to_owned))
            .failure(failure)
            .code(non_empty(form.first("code")).map(str::to_owned))
            .response(response.map(str::to_owned))
            .automated(is_engagement(status).then(|| form.first("client-type") == Some("robot")))
            .row(json::form_fields(&form)),
    );
    Ok(parsed)
}

/// The event name, with severity and reason for failures (`failed (severity=permanent,
/// reason=bounce)`).
fn describe(data: &EventData) -> String {
    let details: Vec<String> = [("severity", &data.severity), ("reason", &data.reason)]
        .into_iter()
        .filter_map(|(name, value)| Some(format!("{name}={}", value.as_deref()?)))
        .collect();
    if data.event == "failed" && !details.is_empty() {
        format!("{} ({})", data.event, details.join(", "))
    } else {
        data.event.clone()
    }
}

fn is_engagement(status: Status) -> bool {
    matches!(status, Status::Opened | Status::Clicked)
}

/// Whether `key` has the shape of a Mailgun private API key: `<32 hex>-<8 hex>-<8 hex>`.
fn looks_like_api_key(key: &str) -> bool {
    let groups: Vec<&str> = key.trim().split('-').collect();
    groups.iter().map(|g| g.len()).eq([32, 8, 8])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use tidings_core::{Freshness, Secret};

    use super::*;

    const KEY: &str = "TEST_WEBHOOK_SIGNING_KEY";

    fn request<'a>(
        body: &'a [u8],
        content_type: &'a str,
        headers: &'a http::HeaderMap,
    ) -> RawRequest<'a> {
        RawRequest {
            method: "POST",
            body,
            content_type: Some(content_type),
            headers,
            url: None,
            received_at: Utc.timestamp_opt(1_461_261_400, 0).unwrap(),
        }
    }

    fn verify(request: &RawRequest<'_>) -> Result<()> {
        let keys = [Secret::new(KEY)];
        let options = BTreeMap::new();
        let fetched = BTreeMap::new();
        let credentials = Credentials {
            signing_keys: &keys,
            options: &options,
            fetched: &fetched,
            freshness: Freshness::ProviderDefault,
        };
        Mailgun.verify(request, &credentials)
    }

    fn sign(timestamp: &str, token: &str) -> String {
        hex::encode(hmac_sha256(
            KEY.as_bytes(),
            &[timestamp.as_bytes(), token.as_bytes()],
        ))
    }

    #[test]
    fn legacy_signature_uses_the_last_values_and_the_window() {
        let headers = http::HeaderMap::new();
        let good = sign("1461261330", "real-token");
        let body = format!(
            "token=user&timestamp=1&signature={}&event=opened&token=real-token&timestamp=1461261330&signature={good}",
            sign("1", "user")
        );
        let req = request(
            body.as_bytes(),
            "application/x-www-form-urlencoded",
            &headers,
        );
        assert_eq!(verify(&req), Ok(()));
        let late = RawRequest {
            method: "POST",
            received_at: Utc.timestamp_opt(1_461_261_330 + 901, 0).unwrap(),
            ..req
        };
        assert!(matches!(verify(&late), Err(Error::Stale { .. })));
    }

    #[test]
    fn json_signature_errors_are_precise() {
        let headers = http::HeaderMap::new();
        let json =
            |body: &'static str| verify(&request(body.as_bytes(), "application/json", &headers));
        assert_eq!(
            json(r#"{"event-data": {"event": "opened"}}"#),
            Err(Error::MissingSignatureField("signature"))
        );
        assert_eq!(
            json(r#"{"signature": {"timestamp": "1461261330", "token": "t"}}"#),
            Err(Error::MissingSignatureField("signature.signature"))
        );
        assert_eq!(
            json(r#"{"signature": {"timestamp": "1461261330", "token": "t", "signature": "zz"}}"#),
            Err(Error::MalformedSignature("signature"))
        );
        assert!(matches!(json("not json"), Err(Error::Malformed { .. })));
    }

    #[test]
    fn user_variables_give_the_result_id_as_object_or_json_text() {
        let headers = http::HeaderMap::new();
        let body = br#"{"event-data": {"event": "delivered", "timestamp": 1534108637.153125,
            "message": {"headers": {"message-id": "<m1@example.org>"}},
            "user-variables": "{\"__nvMessageId\": \"novu-1\"}"}}"#;
        let parsed = Mailgun
            .parse(&request(body, "application/json", &headers))
            .unwrap();
        let event = &parsed.events[0];
        assert_eq!(event.id, "novu-1");
        assert_eq!(event.body.external_id.as_deref(), Some("m1@example.org"));
        assert_eq!(
            wire::own_id(&serde_json::json!({"id": 42, "novuMessageId": "x"})),
            Some("42".into())
        );
    }

    #[test]
    fn an_event_without_ids_is_kept_when_it_names_a_recipient() {
        let headers = http::HeaderMap::new();
        let parse = |body: &[u8]| {
            Mailgun
                .parse(&request(body, "application/json", &headers))
                .unwrap()
        };
        let kept = parse(
            br#"{"event-data": {"event": "complained", "timestamp": 1534108637.1,
            "recipient": "a@example.com"}}"#,
        );
        let event = &kept.events[0];
        assert_eq!(event.id, event.dedup_key);
        assert_eq!(event.body.external_id, None);
        let said_nothing = parse(br#"{"event-data": {"event": "complained"}}"#);
        assert!(said_nothing.events.is_empty());
        assert_eq!(said_nothing.ignored.len(), 1);
    }

    #[test]
    fn unknown_events_are_ignored_and_other_bodies_rejected() {
        let headers = http::HeaderMap::new();
        let stored =
            br#"{"event-data": {"event": "stored", "message": {"headers": {"message-id": "m"}}}}"#;
        let parsed = Mailgun
            .parse(&request(stored, "application/json", &headers))
            .unwrap();
        assert!(parsed.events.is_empty());
        assert_eq!(parsed.ignored[0].provider_event, "stored");

        let inbound = b"recipient=a%40example.com&sender=b%40example.com&body-plain=hi";
        let err = Mailgun
            .parse(&request(
                inbound,
                "application/x-www-form-urlencoded",
                &headers,
            ))
            .unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }));
        assert_eq!(
            Mailgun.parse(&request(b"{}", "application/json", &headers)),
            Err(Error::MissingField("event-data"))
        );
        assert!(matches!(
            Mailgun.parse(&request(b"<x/>", "application/xml", &headers)),
            Err(Error::UnsupportedMediaType { .. })
        ));
    }
}
