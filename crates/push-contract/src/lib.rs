//! Novu's push activity contract, accepted by every Tidings push provider.
//!
//! Push providers have (almost) no delivery webhooks, so Novu defines its own: the sender's
//! backend forwards what the device reports (notification shown, tapped, dismissed) or what the
//! send call returned, with Novu's SDK or a plain `POST`, authenticated with
//! `Authorization: ApiKey` (the service checks it; this crate only reads the body).
//! Docs: <https://docs.novu.co/platform/integrations/push/push-activity-tracking>.
//!
//! ```json
//! {"eventType": "opened", "eventId": "<__nvMessageId>", "timestamp": "2026-01-01T00:00:00Z",
//!  "deviceId": "<device token>", "platform": "ios", "content": {"title": "..."}}
//! ```
//!
//! - `eventType`: exactly one of `delivered opened clicked dismissed failed` (the status, as
//!   is); anything else is [`Error::InvalidField`] (400) naming the allowed values.
//! - `eventId`: the result id (Novu's message id, delivered to the device as `__nvMessageId`);
//!   required, a string or an integer kept exact. There is no provider message id.
//! - `timestamp` (optional): ISO 8601, or Unix seconds or milliseconds (number or string), is
//!   `date`; the receive time when absent.
//! - `deviceId` / `device_id` (optional): the recipient. `platform` and `content` stay in `row`.
//! - Dedup: a hash of `eventId`, `eventType`, `deviceId` and `timestamp`.
//!
//! Besides the contract, the providers without webhooks (FCM, APNs, Expo) accept the send
//! responses a sender forwards. Those share one shape here: [`Forwarded`] reads the sender's own
//! references (`eventId`, `deviceId`, added to the forwarded object or to the query string of
//! the URL it called), and [`Forwarded::event`] turns one [`Report`]ed outcome into an event
//! with the same id, dedup and failure rules for every provider.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_core::ids::Id;
use tidings_core::{
    Draft, Error, Event, Failure, MediaType, Parsed, RawRequest, Result, Status, json, time,
    wire_date,
};

/// The push event types of the contract, which are also the push statuses.
pub const EVENT_TYPES: [&str; 5] = ["delivered", "opened", "clicked", "dismissed", "failed"];

/// The status an `eventType` names, or `None` when it is not one of [`EVENT_TYPES`].
///
/// | `eventType` | status |
/// |---|---|
/// | `delivered` | delivered (shown on the device) |
/// | `opened` | opened (the notification itself was tapped) |
/// | `clicked` | clicked (an action button or link) |
/// | `dismissed` | dismissed (swiped away or expired unopened) |
/// | `failed` | failed (not delivered to the device) |
pub fn status(event_type: &str) -> Option<Status> {
    Some(match event_type {
        "delivered" => Status::Delivered,
        "opened" => Status::Opened,
        "clicked" => Status::Clicked,
        "dismissed" => Status::Dismissed,
        "failed" => Status::Failed,
        _ => return None,
    })
}

/// Whether a push provider reads this body's media type: JSON, or JSON sent as `text/plain` or
/// without a content type (browser service workers and hand-written forwarders do both).
pub fn is_json_like(request: &RawRequest<'_>) -> bool {
    matches!(
        request.media_type(),
        MediaType::Json | MediaType::Text | MediaType::Missing
    )
}

/// Only the key that tells a contract body apart from a provider's own payload.
#[derive(Deserialize)]
struct Probe {
    /// Whether `eventType` is present, whatever its value (`null` included), so that a bad
    /// value is reported as such rather than as some other format.
    #[serde(rename = "eventType", default, deserialize_with = "present")]
    event_type: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// The contract body, read leniently so that each field gets its own precise error.
#[derive(Deserialize)]
struct Contract<'a> {
    #[serde(rename = "eventType", borrow)]
    event_type: &'a RawValue,
    #[serde(rename = "eventId", borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(rename = "deviceId", borrow, default)]
    device_id: Option<&'a RawValue>,
    #[serde(rename = "device_id", borrow, default)]
    device_id_snake: Option<&'a RawValue>,
}

/// Whether the body is a JSON object with an `eventType` key: Novu's contract rather than the
/// provider's own payload.
pub fn is_contract(body: &[u8]) -> bool {
    json::is_object(body)
        && serde_json::from_slice::<Probe>(body).is_ok_and(|probe| probe.event_type)
}

/// The start every push provider's `parse` shares: 415 for a media type no push sender uses,
/// the events of a body in Novu's contract, or `None` for the provider's own formats.
pub fn contract(provider: &'static str, request: &RawRequest<'_>) -> Result<Option<Parsed>> {
    if !is_json_like(request) {
        return Err(request.unsupported(provider));
    }
    parse(provider, request).transpose()
}

/// Parses a body in Novu's push contract for `provider`, or `None` when the body is not one
/// (see [`is_contract`]), so the provider reads its own formats.
pub fn parse(provider: &'static str, request: &RawRequest<'_>) -> Option<Result<Parsed>> {
    if !is_contract(request.body) {
        return None;
    }
    Some(parse_contract(provider, request))
}

fn parse_contract(provider: &'static str, request: &RawRequest<'_>) -> Result<Parsed> {
    let contract: Contract<'_> = json::read_slice(provider, request.body)?;
    let event_type = match serde_json::from_str::<String>(contract.event_type.get()) {
        Ok(text) => text,
        Err(_) => return Err(invalid_event_type(contract.event_type.get())),
    };
    let event_type = event_type.as_str();
    let status = status(event_type).ok_or_else(|| invalid_event_type(event_type))?;
    let event_id = contract.event_id.ok_or(Error::MissingField("eventId"))?;
    let event_id = serde_json::from_str::<Id>(event_id.get())
        .ok()
        .map(|id| id.0)
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| Error::InvalidField {
            field: "eventId",
            reason: "must be a non-empty string or an integer (the message id)".into(),
        })?;
    let date = match contract.timestamp {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => Some(read_time(raw).ok_or_else(|| Error::InvalidField {
            field: "timestamp",
            reason: "must be an ISO 8601 date or Unix seconds or milliseconds".into(),
        })?),
    };
    let recipient = match contract.device_id.or(contract.device_id_snake) {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => Some(
            serde_json::from_str::<Id>(raw.get())
                .map_err(|_| Error::InvalidField {
                    field: "deviceId",
                    reason: "must be a string (the device token)".into(),
                })?
                .0,
        ),
    }
    .filter(|id| !id.is_empty());
    let date_text = date.as_ref().map(wire_date::format).unwrap_or_default();
    let dedup_fields = [
        event_id.as_str(),
        event_type,
        recipient.as_deref().unwrap_or(""),
        &date_text,
    ];
    let draft = Draft::new(provider, status, event_type).dedup_fields(&dedup_fields);
    let mut parsed = Parsed::default();
    parsed.push(
        request,
        draft
            .own_id(event_id)
            .date(date)
            .recipient(recipient)
            .row(body_text(request)),
    );
    Ok(parsed)
}

fn invalid_event_type(given: &str) -> Error {
    Error::InvalidField {
        field: "eventType",
        reason: format!(
            "`{}` is not a push event type (expected one of: {})",
            shorten(given, 64),
            EVENT_TYPES.join(", ")
        ),
    }
}

/// A date sent as ISO 8601 text, or Unix seconds or milliseconds as a number or a string.
fn read_time(raw: &RawValue) -> Option<DateTime<Utc>> {
    if let Ok(text) = serde_json::from_str::<&str>(raw.get()) {
        return time::parse(text);
    }
    if let Ok(whole) = serde_json::from_str::<i64>(raw.get()) {
        return time::from_unix_auto(whole);
    }
    let float = serde_json::from_str::<f64>(raw.get()).ok()?;
    if float.abs() >= 100_000_000_000.0 {
        time::from_unix_float(float / 1000.0)
    } else {
        time::from_unix_float(float)
    }
}

/// At most `max` characters of `text`, for quoting a payload value in an error.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// The sender's own references for a forwarded provider response (an FCM or APNs error, an Expo
/// ticket), which carry no message id of their own: the `eventId` and `deviceId` query
/// parameters of the URL the sender called, or the same keys added to the forwarded object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The sender's message id (Novu's `__nvMessageId`).
    pub event_id: Option<String>,
    /// The device token the response is about.
    pub device_id: Option<String>,
}

/// The keys a sender may add to a forwarded provider response.
#[derive(Deserialize)]
struct ForwardedBody {
    #[serde(rename = "eventId", default)]
    event_id: Option<Id>,
    #[serde(rename = "deviceId", alias = "device_id", default)]
    device_id: Option<Id>,
}

impl Forwarded {
    /// Reads the references from the body (a JSON object), then from the request URL.
    pub fn from_request(request: &RawRequest<'_>) -> Forwarded {
        let body = serde_json::from_slice::<ForwardedBody>(request.body).ok();
        let (body_event, body_device) = body
            .map(|b| (b.event_id.map(|i| i.0), b.device_id.map(|i| i.0)))
            .unwrap_or_default();
        let query = request.query();
        let param = |name: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        Forwarded {
            event_id: body_event
                .or_else(|| param("eventId"))
                .filter(|id| !id.is_empty()),
            device_id: body_device
                .or_else(|| param("deviceId"))
                .filter(|id| !id.is_empty()),
        }
    }
}

/// One outcome a provider's send response reports (an FCM or APNs error, an Expo ticket or
/// receipt), before the sender's references are added.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The provider's own name for the outcome (its error code, or `receipt ok`).
    pub provider_event: String,
    /// The status (`failed` for errors, `delivered` for an Expo receipt).
    pub status: Option<Status>,
    /// The provider's message id, where the response carries one (`apns-id`, a receipt id).
    pub external_id: Option<String>,
    /// The device token, where the response names it.
    pub recipient: Option<String>,
    /// The provider's error code.
    pub code: Option<String>,
    /// The provider's error text.
    pub response: Option<String>,
    /// Whether retrying can succeed.
    pub failure: Option<Failure>,
    /// The provider's own time for the outcome, where it sends one.
    pub date: Option<DateTime<Utc>>,
    /// Tells apart outcomes of one response that share every field above (a batch position).
    pub discriminator: String,
    /// The JSON text of this one outcome.
    pub row: String,
}

impl Forwarded {
    /// The normalized event for one outcome of a forwarded send response.
    ///
    /// - `id`: the sender's `eventId`, else the provider message id, else the device token (the
    ///   id Novu itself keeps for APNs sends), else the dedup key: a response forwarded with no
    ///   reference at all is still recorded, under an id of its own.
    /// - Dedup: a hash of `eventId`, the provider message id, the device, the outcome and the
    ///   provider's time, never the receive time: a provider's retry of the same response must
    ///   give the same key. Two outcomes that share all of these are indistinguishable from a
    ///   retry and are kept as one event with a duplicate count (both raw requests are stored).
    pub fn event(&self, provider: &'static str, request: &RawRequest<'_>, report: Report) -> Event {
        let recipient = report.recipient.or_else(|| self.device_id.clone());
        let date_text = report
            .date
            .as_ref()
            .map(wire_date::format)
            .unwrap_or_default();
        let dedup_fields = [
            self.event_id.as_deref().unwrap_or(""),
            report.external_id.as_deref().unwrap_or(""),
            recipient.as_deref().unwrap_or(""),
            &report.provider_event,
            report.code.as_deref().unwrap_or(""),
            &date_text,
            &report.discriminator,
        ];
        let draft = Draft::new(
            provider,
            report.status.unwrap_or(Status::Failed),
            report.provider_event.as_str(),
        )
        .dedup_fields(&dedup_fields);
        // The device token names the message when nothing else does (Novu keeps it for APNs).
        let own_id = self
            .event_id
            .clone()
            .or_else(|| report.external_id.clone())
            .or_else(|| recipient.clone());
        draft
            .own_id(own_id)
            .external_id(report.external_id)
            .date(report.date)
            .recipient(recipient)
            .failure(report.failure)
            .code(report.code.filter(|c| !c.is_empty()))
            .response(report.response.filter(|r| !r.is_empty()))
            .row(report.row)
            .build(request)
    }
}

/// The exact text of the whole body, trimmed, for `row` when the body is one event.
pub fn body_text(request: &RawRequest<'_>) -> String {
    std::str::from_utf8(request.body)
        .map(str::trim)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use chrono::TimeZone;

    fn request<'a>(body: &'a [u8], headers: &'a http::HeaderMap) -> RawRequest<'a> {
        RawRequest {
            method: "POST",
            body,
            content_type: Some("application/json"),
            headers,
            url: Some("https://hooks.example.com/x?eventId=m-1&deviceId=tok"),
            received_at: chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn reads_the_contract() {
        let headers = http::HeaderMap::new();
        let body = br#"{"eventType":"opened","eventId":12345678901234567890,"timestamp":1700000001000,"device_id":"tok"}"#;
        let parsed = parse("fcm", &request(body, &headers)).unwrap().unwrap();
        let event = &parsed.events[0];
        assert_eq!(event.id, "12345678901234567890");
        assert_eq!(event.body.status, Status::Opened);
        assert_eq!(event.body.date.timestamp_millis(), 1_700_000_001_000);
        assert_eq!(event.recipient.as_deref(), Some("tok"));
    }

    #[test]
    fn rejects_what_the_contract_does_not_allow() {
        let headers = http::HeaderMap::new();
        let err = |body: &[u8]| parse("fcm", &request(body, &headers)).unwrap().unwrap_err();
        assert!(matches!(
            err(br#"{"eventType":"read","eventId":"m"}"#),
            Error::InvalidField {
                field: "eventType",
                ..
            }
        ));
        assert!(matches!(
            err(br#"{"eventType":null,"eventId":"m"}"#),
            Error::InvalidField {
                field: "eventType",
                ..
            }
        ));
        assert!(matches!(
            err(br#"{"eventType":7,"eventId":"m"}"#),
            Error::InvalidField {
                field: "eventType",
                ..
            }
        ));
        assert_eq!(
            err(br#"{"eventType":"opened"}"#),
            Error::MissingField("eventId")
        );
        assert!(matches!(
            err(br#"{"eventType":"opened","eventId":"m","timestamp":"soon"}"#),
            Error::InvalidField {
                field: "timestamp",
                ..
            }
        ));
        assert!(parse("fcm", &request(br#"{"error":{}}"#, &headers)).is_none());
        assert!(parse("fcm", &request(br#"["eventType"]"#, &headers)).is_none());
    }

    #[test]
    fn forwarded_references_come_from_body_then_url() {
        let headers = http::HeaderMap::new();
        let from_url = Forwarded::from_request(&request(b"{}", &headers));
        assert_eq!(from_url.event_id.as_deref(), Some("m-1"));
        assert_eq!(from_url.device_id.as_deref(), Some("tok"));
        let from_body = Forwarded::from_request(&request(br#"{"eventId":"m-2"}"#, &headers));
        assert_eq!(from_body.event_id.as_deref(), Some("m-2"));
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
