//! The suppression list: what the store keeps, and what the write path folds into it.
//!
//! Two tables. `suppression_records` holds one row per fact: a causing event (complaint,
//! permanent or temporary failure, unsubscribe; unique by the event's dedup key, so a replay adds
//! nothing) or a manual record (added, removed, imported), each with its position (`seq`).
//! `suppressions` holds one row per recipient that has a fact: its latest delivery time and the
//! entry that [`tidings_core::suppression::evaluate`] derives from all its facts. The entry is
//! recomputed from the facts whenever one is added or a delivery arrives, inside the same
//! transaction as the events (the write group), so it is always the fold of what is stored and
//! never depends on the order events arrived in.
//!
//! Concurrency: SQLite has one writer. On PostgreSQL a group inserts its facts first, then locks
//! each touched recipient's row (`SELECT ... FOR UPDATE`, in sorted order, as the messages upsert
//! does) and reads the facts after the lock: whichever transaction locks last sees every fact
//! committed before it, so two instances converge on the same entry.
//!
//! Deliveries write nothing for a recipient without a row (the write path stays as cheap as
//! before for the great majority of recipients); the cost is that a delivery received before a
//! recipient's first failure is not remembered.

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use tidings_core::recipient::{PhoneDefaults, normalize, normalize_any};
use tidings_core::suppression::{
    Fact, Kind, Policy, Reason, Signal, Verdict, classify, evaluate, fact_key,
};
use tidings_core::{Channel, Event, registry};

use crate::Ingest;

/// The suppression settings the write path and the reads need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionSettings {
    /// Thresholds and expiry.
    pub policy: Policy,
    /// How national phone numbers are normalized.
    pub phone: PhoneDefaults,
}

/// A suppressed recipient, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suppression {
    /// The normalized recipient.
    pub recipient: String,
    /// Its channel.
    pub channel: Channel,
    /// Why it is suppressed.
    pub reason: Reason,
    /// What caused it.
    pub cause: Record,
    /// When the suppression began (the cause's time).
    #[serde(serialize_with = "wire_time")]
    pub first_at: DateTime<Utc>,
    /// The latest fact that keeps it.
    #[serde(serialize_with = "wire_time")]
    pub last_at: DateTime<Utc>,
    /// Temporary suppressions only: when it lapses.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire_time_opt"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    /// Temporary failures counted since the latest delivery or removal.
    pub temporary_failures: u32,
    /// When the entry last changed.
    #[serde(serialize_with = "wire_time")]
    pub updated_at: DateTime<Utc>,
}

/// One fact about a recipient: a causing event or a manual record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The record's position among the suppression records.
    pub position: i64,
    /// What it records.
    pub kind: Kind,
    /// When: the event's time, or when the manual record was made.
    #[serde(serialize_with = "wire_time")]
    pub at: DateTime<Utc>,
    /// The causing event's `seq`, when an event caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<i64>,
    /// The integration that received the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    /// The provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The provider's own name for the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_event: Option<String>,
    /// The message the event was about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The provider's error or bounce code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The provider's response text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// A manual record's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Which suppressions to list.
#[derive(Debug, Clone)]
pub struct SuppressionQuery {
    /// The environment.
    pub environment_id: String,
    /// List after this recipient (the `next` of the previous page).
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
    /// Only this reason.
    pub reason: Option<Reason>,
    /// Only this channel.
    pub channel: Option<Channel>,
    /// Only suppressions that began at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Temporary suppressions that lapsed before this time are not listed.
    pub now: DateTime<Utc>,
}

/// One page of suppressions, by recipient.
#[derive(Debug, Clone, Serialize)]
pub struct SuppressionPage {
    /// The suppressions, ordered by recipient (byte order).
    pub data: Vec<Suppression>,
    /// The recipient to list after next time; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A manual record: added or removed by hand, or imported.
#[derive(Debug, Clone)]
pub struct ManualRecord {
    /// The environment.
    pub environment_id: String,
    /// The normalized recipient.
    pub recipient: String,
    /// Its channel.
    pub channel: Channel,
    /// [`Kind::Removed`] to lift; another kind to add.
    pub kind: Kind,
    /// When it takes effect (now, or an imported entry's creation time).
    pub at: DateTime<Utc>,
    /// Why, in the words of whoever made it.
    pub note: Option<String>,
}

/// Times on the wire: RFC 3339 UTC with milliseconds, as everywhere in the API.
fn wire_time<S: serde::Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    tidings_core::wire_date::serialize(time, s)
}

fn wire_time_opt<S: serde::Serializer>(
    time: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => tidings_core::wire_date::serialize(time, s),
        None => s.serialize_none(),
    }
}

/// A fact the write path found in a newly stored event.
#[derive(Debug, Clone)]
pub(crate) struct NewFact {
    pub(crate) kind: Kind,
    pub(crate) at: DateTime<Utc>,
    pub(crate) source: String,
    pub(crate) event_seq: i64,
    pub(crate) integration_id: String,
    pub(crate) provider: String,
    pub(crate) provider_event: String,
    pub(crate) message_id: String,
    pub(crate) code: Option<String>,
    pub(crate) response: Option<String>,
}

/// What one group does to one recipient.
#[derive(Debug, Clone)]
pub(crate) struct Touch {
    pub(crate) channel: Channel,
    pub(crate) facts: Vec<NewFact>,
    pub(crate) delivered_at: Option<DateTime<Utc>>,
}

/// Touches keyed by (environment, recipient): sorted, so concurrent groups lock rows in one order.
pub(crate) type Touches = std::collections::BTreeMap<(String, String), Touch>;

/// Times are kept to the microsecond on both backends, so both fold the same values.
pub(crate) fn micros(time: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = time.timestamp_subsec_nanos();
    time.with_nanosecond(nanos - nanos % 1000).unwrap_or(time)
}

/// Records what a newly stored event means for the list, if the ingest feeds it.
pub(crate) fn note_event(
    touches: &mut Touches,
    settings: &SuppressionSettings,
    ingest: &Ingest,
    event: &Event,
    event_seq: i64,
) {
    if !ingest.feeds_suppressions {
        return;
    }
    let Some(signal) = classify(event) else {
        return;
    };
    let Some(raw) = event.recipient.as_deref() else {
        return;
    };
    // The provider's channel; a provider this build does not know: the recipient's shape.
    let normalized = match registry().get(&ingest.provider) {
        Some(parser) => {
            normalize(parser.channel(), raw, &settings.phone).map(|r| (parser.channel(), r))
        }
        None => normalize_any(raw, &settings.phone),
    };
    let Some((channel, recipient)) = normalized else {
        return;
    };
    let at = micros(event.body.date);
    let touch = touches
        .entry((ingest.environment_id.clone(), recipient))
        .or_insert_with(|| Touch {
            channel,
            facts: Vec::new(),
            delivered_at: None,
        });
    match signal {
        Signal::Delivered => touch.delivered_at = touch.delivered_at.max(Some(at)),
        Signal::Fact(kind) => touch.facts.push(NewFact {
            kind,
            at,
            source: event.dedup_key.clone(),
            event_seq,
            integration_id: ingest.integration_id.clone(),
            provider: ingest.provider.clone(),
            provider_event: event.provider_event.clone(),
            message_id: event.id.clone(),
            code: event.code.clone(),
            response: event.body.response.clone(),
        }),
    }
}

/// A stored fact as the fold needs it: position, kind, time, key.
#[derive(Debug, Clone)]
pub(crate) struct StoredFact {
    pub(crate) seq: i64,
    pub(crate) kind: Kind,
    pub(crate) at: DateTime<Utc>,
    /// The fold key (see [`key`]).
    pub(crate) key: String,
}

/// A stored record's fold key: see [`fact_key`]; a manual record is its own fact.
pub(crate) fn key(
    seq: i64,
    kind: Kind,
    source: Option<String>,
    integration: Option<String>,
    message_id: Option<String>,
) -> String {
    match (source, integration, message_id) {
        (Some(source), Some(integration), Some(message)) => {
            fact_key(kind, &source, &integration, &message)
        }
        (Some(source), _, _) => source,
        (None, _, _) => format!("manual:{seq}"),
    }
}

/// The entry for a recipient's stored facts, with the cause as a record position.
pub(crate) struct Derived {
    pub(crate) verdict: Option<Verdict>,
    pub(crate) cause_seq: Option<i64>,
}

pub(crate) fn derive(
    facts: &[StoredFact],
    delivered_at: Option<DateTime<Utc>>,
    channel: Channel,
    policy: &Policy,
) -> Derived {
    let view: Vec<Fact<'_>> = facts
        .iter()
        .map(|f| Fact {
            kind: f.kind,
            at: f.at,
            key: &f.key,
        })
        .collect();
    let verdict = evaluate(
        &view,
        delivered_at,
        policy.threshold(channel),
        policy.temporary_expiry,
    );
    let cause_seq = verdict
        .as_ref()
        .and_then(|v| facts.get(v.cause))
        .map(|f| f.seq);
    Derived { verdict, cause_seq }
}

/// The reason column's text.
pub(crate) fn reason_name(verdict: &Option<Verdict>) -> Option<&'static str> {
    verdict.as_ref().map(|v| v.reason.as_str())
}

/// Reads a stored kind.
pub(crate) fn parse_kind(name: &str) -> crate::Result<Kind> {
    Kind::from_name(name).ok_or_else(|| crate::Error::Corrupt(format!("unknown kind {name}")))
}

/// Reads a stored reason.
pub(crate) fn parse_reason(name: &str) -> crate::Result<Reason> {
    Reason::from_name(name).ok_or_else(|| crate::Error::Corrupt(format!("unknown reason {name}")))
}

/// Reads a stored channel.
pub(crate) fn parse_channel(name: &str) -> crate::Result<Channel> {
    [Channel::Email, Channel::Sms, Channel::Push, Channel::Chat]
        .into_iter()
        .find(|c| c.as_str() == name)
        .ok_or_else(|| crate::Error::Corrupt(format!("unknown channel {name}")))
}

/// Most records a suppression's history shows.
pub const HISTORY_MAX: usize = 100;
