//! The normalized event: Novu's `EventBody` on the wire, plus what users need and Novu drops.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::Status;

/// Novu's `EventBody`, exactly as it goes on the wire: camelCase keys, absent values omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBody {
    /// The normalized status.
    pub status: Status,
    /// When the provider says the event happened; the receive time only when it says nothing.
    /// RFC 3339 in UTC with milliseconds on the wire (`2024-01-02T03:04:05.000Z`).
    #[serde(with = "wire_date")]
    pub date: DateTime<Utc>,
    /// The provider's own message id, as an exact string.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub external_id: Option<String>,
    /// The provider's delivery attempt count, where it sends one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempts: Option<u32>,
    /// The provider's response or failure text (SMTP reply, carrier error): not normalized.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub response: Option<String>,
    /// The JSON text of this one provider event, as the provider sent it where the body is JSON.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub row: Option<String>,
}

/// Novu's `WebhookResultDto`: one normalized event and the message id the sender knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookResult {
    /// The sender's own message id when the provider carries it, else the provider's message id.
    pub id: String,
    /// The normalized event.
    pub event: EventBody,
}

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// The provider or receiver may succeed later (soft bounce, deferral, carrier congestion).
    Temporary,
    /// Retrying the same message to the same recipient will not succeed.
    Permanent,
}

/// One normalized provider event, as stored: the wire fields plus what Novu drops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The result id (see [`WebhookResult::id`]).
    pub id: String,
    /// The wire event.
    pub body: EventBody,
    /// Identifies this event across the provider's retries, prefixed with the provider id.
    /// The provider's own event id where it is stable, else a hash of the event's identifying
    /// fields (never of the whole body).
    pub dedup_key: String,
    /// The provider's own name for the event (`bounce`, `MessageStatus=delivered`, ...).
    pub provider_event: String,
    /// The recipient address or number this event is about.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recipient: Option<String>,
    /// For failures: temporary or permanent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure: Option<Failure>,
    /// The provider's error, bounce or SMTP status code, not normalized.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    /// The provider flags this open or click as automated (privacy proxy, link scanner, bot).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub automated: Option<bool>,
}

impl Event {
    /// The wire result for this event.
    pub fn result(&self) -> WebhookResult {
        WebhookResult {
            id: self.id.clone(),
            event: self.body.clone(),
        }
    }
}

/// A provider event that maps to no status: kept for the record, left out of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    /// The provider's own name for the event.
    pub provider_event: String,
    /// The message id, where the event carries one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// Why it maps to no status.
    pub reason: String,
}

/// Something the service must do besides storing events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Control {
    /// The provider asks the endpoint to confirm a subscription by visiting a URL (Amazon SNS).
    /// The URL is only ever visited after the provider's own checks pass.
    ConfirmSubscription {
        /// The confirmation URL from the (verified) request.
        url: String,
        /// The topic or channel being subscribed to.
        topic: String,
    },
    /// The provider tells the endpoint it was unsubscribed; never auto-confirmed.
    Unsubscribed {
        /// The topic or channel.
        topic: String,
    },
}

/// What a parser makes of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parsed {
    /// The normalized events, in body order.
    pub events: Vec<Event>,
    /// Provider events that map to no status, in body order.
    pub ignored: Vec<Ignored>,
    /// Actions the request asks of the service.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub controls: Vec<Control>,
}

impl Parsed {
    /// The 200 response body: one result per normalized event, in body order.
    pub fn results(&self) -> Vec<WebhookResult> {
        self.events.iter().map(Event::result).collect()
    }

    /// The 200 response body as JSON, serialized from the events without copying them.
    pub fn results_json(&self) -> serde_json::Result<Vec<u8>> {
        #[derive(Serialize)]
        struct ResultRef<'a> {
            id: &'a str,
            event: &'a EventBody,
        }
        let results: Vec<ResultRef<'_>> = self
            .events
            .iter()
            .map(|e| ResultRef {
                id: &e.id,
                event: &e.body,
            })
            .collect();
        serde_json::to_vec(&results)
    }
}

/// `date` on the wire: RFC 3339, UTC, millisecond precision, `Z` suffix (JavaScript's
/// `toISOString`, which Novu's clients parse).
pub mod wire_date {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    use super::SecondsFormat;

    /// Formats a date for the wire.
    pub fn format(date: &DateTime<Utc>) -> String {
        date.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Serializes a date for the wire.
    pub fn serialize<S: Serializer>(date: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(date))
    }

    /// Reads a wire date back.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|date| date.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn wire_shape_omits_absent_fields_and_uses_camel_case() {
        let result = WebhookResult {
            id: "msg-1".into(),
            event: EventBody {
                status: Status::Delivered,
                date: Utc.timestamp_opt(1_600_000_000, 0).unwrap(),
                external_id: Some("ext-1".into()),
                attempts: None,
                response: None,
                row: Some("{\"a\":1}".into()),
            },
        };
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"{"id":"msg-1","event":{"status":"delivered","date":"2020-09-13T12:26:40.000Z","externalId":"ext-1","row":"{\"a\":1}"}}"#
        );
        let parsed = Parsed {
            events: vec![Event {
                id: result.id.clone(),
                body: result.event.clone(),
                dedup_key: "p:1".into(),
                provider_event: "delivered".into(),
                recipient: None,
                failure: None,
                code: None,
                automated: None,
            }],
            ..Parsed::default()
        };
        assert_eq!(
            parsed.results_json().unwrap(),
            serde_json::to_vec(&parsed.results()).unwrap()
        );
        let back: WebhookResult =
            serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap();
        assert_eq!(back, result);
    }
}
