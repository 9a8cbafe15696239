//! Assembling events: a provider says what it read, core decides the id, the date and the dedup
//! key the same way for every provider.
//!
//! ```ignore
//! parsed.push(
//!     request,
//!     Draft::new(ID, status, &event.event)
//!         .own_id(own_id)
//!         .external_id(message_id)
//!         .date(time::from_unix_seconds(ts))
//!         .recipient(event.email)
//!         .row(row.get())
//!         .dedup_fields(&[&message_id, &event.event, &ts_text]),
//! );
//! ```

use chrono::{DateTime, Utc};

use crate::{Event, EventBody, Failure, Ignored, Parsed, RawRequest, Status, ids, wire_date};

/// How an event is told apart across the provider's retries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Dedup {
    /// The default: a hash of the message id, the provider event, the recipient and the
    /// provider's own time.
    #[default]
    Standard,
    /// The provider's own event or delivery id, stable across its retries.
    Id(String),
    /// A hash of the fields that identify one event.
    Fields(Vec<String>),
    /// A key the provider built itself with [`ids`] (kept for keys already stored).
    Key(String),
}

/// One provider event as the provider read it, before core assembles the [`Event`]. Every field
/// but the status, the provider event and the provider id is optional and absent by default.
///
/// What core decides:
/// - `id`: the sender's own id ([`Draft::own_id`]) when the event carries one, else the provider
///   message id ([`Draft::external_id`]), else the dedup key, so an event without any id still
///   reaches the store.
/// - `date`: the provider's own time ([`Draft::date`]), else the receive time.
/// - `dedup_key`: the provider's stable event id ([`Draft::dedup_id`]), a hash of the fields
///   the provider names ([`Draft::dedup_fields`]), or by default a hash of the message id, the
///   provider event, the recipient and the provider's own time. The receive time never enters
///   it: a retry arrives later and must give the same key.
#[derive(Debug, Clone)]
#[must_use]
pub struct Draft {
    provider: &'static str,
    status: Status,
    provider_event: String,
    own_id: Option<String>,
    external_id: Option<String>,
    date: Option<DateTime<Utc>>,
    recipient: Option<String>,
    failure: Option<Failure>,
    code: Option<String>,
    automated: Option<bool>,
    attempts: Option<u32>,
    response: Option<String>,
    row: Option<String>,
    dedup: Dedup,
}

impl Draft {
    /// An event of `provider` with `status`, named `provider_event` by the provider.
    pub fn new(provider: &'static str, status: Status, provider_event: impl Into<String>) -> Draft {
        Draft {
            provider,
            status,
            provider_event: provider_event.into(),
            own_id: None,
            external_id: None,
            date: None,
            recipient: None,
            failure: None,
            code: None,
            automated: None,
            attempts: None,
            response: None,
            row: None,
            dedup: Dedup::Standard,
        }
    }

    /// The sender's own message id (custom args, metadata, Novu's `__nvMessageId`): the result
    /// id when present.
    pub fn own_id(mut self, id: impl Into<Option<String>>) -> Draft {
        self.own_id = id.into();
        self
    }

    /// The provider's message id (`body.external_id`): the result id when there is no own id.
    pub fn external_id(mut self, id: impl Into<Option<String>>) -> Draft {
        self.external_id = id.into();
        self
    }

    /// The provider's own time for the event; the receive time is used only when it is `None`.
    pub fn date(mut self, date: Option<DateTime<Utc>>) -> Draft {
        self.date = date;
        self
    }

    /// The recipient address or number.
    pub fn recipient(mut self, recipient: impl Into<Option<String>>) -> Draft {
        self.recipient = recipient.into();
        self
    }

    /// For failures: temporary or permanent.
    pub fn failure(mut self, failure: Option<Failure>) -> Draft {
        self.failure = failure;
        self
    }

    /// The provider's error, bounce or SMTP code.
    pub fn code(mut self, code: impl Into<Option<String>>) -> Draft {
        self.code = code.into();
        self
    }

    /// Whether the provider flags the open or click as automated.
    pub fn automated(mut self, automated: Option<bool>) -> Draft {
        self.automated = automated;
        self
    }

    /// The provider's delivery attempt count.
    pub fn attempts(mut self, attempts: Option<u32>) -> Draft {
        self.attempts = attempts;
        self
    }

    /// The provider's response or failure text.
    pub fn response(mut self, response: impl Into<Option<String>>) -> Draft {
        self.response = response.into();
        self
    }

    /// The JSON text of this one provider event (`body.row`).
    pub fn row(mut self, row: impl Into<String>) -> Draft {
        self.row = Some(row.into());
        self
    }

    /// Dedup on the provider's own event id, stable across its retries: `<provider>:<id>`.
    pub fn dedup_id(mut self, event_id: impl Into<String>) -> Draft {
        self.dedup = Dedup::Id(event_id.into());
        self
    }

    /// Dedup on a hash of the fields that identify one event (message id, event, recipient, the
    /// provider's own time, ...), in this order. Never the receive time, never the whole body.
    pub fn dedup_fields<F: AsRef<str>>(mut self, fields: &[F]) -> Draft {
        self.dedup = Dedup::Fields(fields.iter().map(|f| f.as_ref().to_owned()).collect());
        self
    }

    /// A dedup key the provider derived itself with [`ids`] (a hash over bytes it formatted
    /// itself, a choice between keys). Prefer [`Draft::dedup_id`] or [`Draft::dedup_fields`].
    pub fn dedup_key(mut self, key: String) -> Draft {
        self.dedup = Dedup::Key(key);
        self
    }

    /// The event, with the receive time of `request` as the date of last resort.
    pub fn build(self, request: &RawRequest<'_>) -> Event {
        self.build_at(request.received_at)
    }

    /// The event, with `received_at` as the date of last resort.
    pub fn build_at(self, received_at: DateTime<Utc>) -> Event {
        let dedup_key = match self.dedup {
            Dedup::Id(id) => ids::dedup_from_id(self.provider, &id),
            Dedup::Fields(fields) => ids::dedup_from_fields(self.provider, &fields_ref(&fields)),
            Dedup::Key(key) => key,
            Dedup::Standard => {
                let date = self
                    .date
                    .as_ref()
                    .map(wire_date::format)
                    .unwrap_or_default();
                ids::dedup_from_fields(
                    self.provider,
                    &[
                        self.external_id
                            .as_deref()
                            .or(self.own_id.as_deref())
                            .unwrap_or(""),
                        &self.provider_event,
                        self.recipient.as_deref().unwrap_or(""),
                        &date,
                    ],
                )
            }
        };
        let id = self
            .own_id
            .or_else(|| self.external_id.clone())
            .unwrap_or_else(|| dedup_key.clone());
        Event {
            id,
            body: EventBody {
                status: self.status,
                date: self.date.unwrap_or(received_at),
                external_id: self.external_id,
                attempts: self.attempts,
                response: self.response,
                row: self.row,
            },
            dedup_key,
            provider_event: self.provider_event,
            recipient: self.recipient,
            failure: self.failure,
            code: self.code,
            automated: self.automated,
        }
    }
}

fn fields_ref(fields: &[String]) -> Vec<&str> {
    fields.iter().map(String::as_str).collect()
}

impl Parsed {
    /// Assembles `draft` (see [`Draft`]) and appends the event.
    pub fn push(&mut self, request: &RawRequest<'_>, draft: Draft) {
        self.events.push(draft.build(request));
    }

    /// Records a provider event that maps to no status, on purpose, with the reason.
    pub fn ignore(
        &mut self,
        provider_event: impl Into<String>,
        id: Option<String>,
        reason: impl Into<String>,
    ) {
        self.ignored.push(Ignored {
            provider_event: provider_event.into(),
            id,
            reason: reason.into(),
        });
    }
}

/// Text that is not blank, trimmed.
pub fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::TimeZone;

    #[test]
    fn id_precedence_date_fallback_and_dedup() {
        let received = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let later = Utc.timestamp_opt(1_700_000_600, 0).unwrap();
        let draft = Draft::new("p", Status::Delivered, "delivered")
            .external_id(Some("ext".to_owned()))
            .recipient(Some("a@example.com".to_owned()));
        let event = draft.clone().build_at(received);
        assert_eq!(event.id, "ext");
        assert_eq!(event.body.date, received);
        // The receive time never enters the key.
        assert_eq!(event.dedup_key, draft.clone().build_at(later).dedup_key);
        let own = draft
            .clone()
            .own_id(Some("mine".to_owned()))
            .build_at(received);
        assert_eq!(own.id, "mine");
        let keyed = draft.dedup_id("evt-1").build_at(received);
        assert_eq!(keyed.dedup_key, "p:evt-1");
        let anonymous = Draft::new("p", Status::Bounced, "bounce")
            .dedup_fields(&["a@example.com", "bounce"])
            .build_at(received);
        assert_eq!(anonymous.id, anonymous.dedup_key);
        assert_eq!(
            anonymous.dedup_key,
            ids::dedup_from_fields("p", &["a@example.com", "bounce"])
        );
    }

    #[test]
    fn ignore_and_non_empty() {
        let mut parsed = Parsed::default();
        parsed.ignore("open", None, "why");
        assert_eq!(parsed.ignored.first().unwrap().reason, "why");
        assert_eq!(non_empty(Some("  x ")), Some("x"));
        assert_eq!(non_empty(Some("  ")), None);
    }
}
