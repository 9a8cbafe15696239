//! The suppression policy: which events suppress a recipient, which lift it, and the entry that
//! follows from them.
//!
//! An entry is a function of a *set* of facts (causing events and manual records, each with its
//! event time and a stable key) and of the latest delivery time, never of their order: a
//! replayed or reordered event gives the same entry. The rules (documented for users in
//! `docs/suppressions.md`):
//!
//! - A complaint, a permanent failure, an unsubscribe or a manual addition suppresses at once,
//!   until it is removed by hand. The cause shown is the earliest of them by event time.
//! - Temporary failures suppress when `failures` of them fall within `window` (by event time).
//!   Only failures after the latest delivery count, so a delivery later than a failure resets
//!   the count and lifts a temporary suppression, and a delivery older than the failures
//!   changes nothing. A temporary suppression expires `expiry` after its latest failure.
//! - A manual removal voids every fact with an event time up to its own time; a later event
//!   suppresses again.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{Channel, Event, Failure, Status};

/// Why a recipient is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// The recipient complained (marked a message as spam).
    Complaint,
    /// A permanent failure: hard bounce, invalid number, unregistered device token.
    PermanentFailure,
    /// The recipient unsubscribed.
    Unsubscribed,
    /// Added by hand.
    Manual,
    /// Temporary failures reached the channel's threshold.
    TemporaryFailures,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 5] = [
        Reason::Complaint,
        Reason::PermanentFailure,
        Reason::Unsubscribed,
        Reason::Manual,
        Reason::TemporaryFailures,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Complaint => "complaint",
            Reason::PermanentFailure => "permanentFailure",
            Reason::Unsubscribed => "unsubscribed",
            Reason::Manual => "manual",
            Reason::TemporaryFailures => "temporaryFailures",
        }
    }

    /// The reason with this wire name.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// One fact about a recipient: a causing event or a manual record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// A complaint.
    Complaint,
    /// A permanent failure.
    PermanentFailure,
    /// A temporary failure.
    TemporaryFailure,
    /// An unsubscribe.
    Unsubscribed,
    /// Added by hand.
    Manual,
    /// Removed by hand: lifts everything up to its time.
    Removed,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Complaint,
        Kind::PermanentFailure,
        Kind::TemporaryFailure,
        Kind::Unsubscribed,
        Kind::Manual,
        Kind::Removed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Complaint => "complaint",
            Kind::PermanentFailure => "permanentFailure",
            Kind::TemporaryFailure => "temporaryFailure",
            Kind::Unsubscribed => "unsubscribed",
            Kind::Manual => "manual",
            Kind::Removed => "removed",
        }
    }

    /// The kind with this stored name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The reason a fact of this kind suppresses with at once; `None` for temporary failures
    /// (they count towards a threshold) and removals.
    pub fn immediate_reason(self) -> Option<Reason> {
        match self {
            Kind::Complaint => Some(Reason::Complaint),
            Kind::PermanentFailure => Some(Reason::PermanentFailure),
            Kind::Unsubscribed => Some(Reason::Unsubscribed),
            Kind::Manual => Some(Reason::Manual),
            Kind::TemporaryFailure | Kind::Removed => None,
        }
    }

    /// The kind a manual addition with this reason records (an import keeps the provider's
    /// reason); `None` for temporary failures, which cannot be added by hand.
    pub fn for_manual(reason: Reason) -> Option<Kind> {
        match reason {
            Reason::Complaint => Some(Kind::Complaint),
            Reason::PermanentFailure => Some(Kind::PermanentFailure),
            Reason::Unsubscribed => Some(Kind::Unsubscribed),
            Reason::Manual => Some(Kind::Manual),
            Reason::TemporaryFailures => None,
        }
    }
}

/// What an event means for the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A fact to record.
    Fact(Kind),
    /// A successful delivery: resets the temporary failure count.
    Delivered,
}

/// What an event means for the suppression list, if anything.
///
/// Complaints (`complaint`, `spam`) and unsubscribes suppress. A failure status (`bounced`,
/// `failed`, `undelivered`, `dropped`, `blocked`) suppresses at once when the provider calls it
/// permanent, and counts towards the threshold when it calls it temporary (`dropped` and
/// `blocked` only when permanent: they are more often about the sender than the recipient). A
/// `deferred` or `delayed` the provider classifies as a temporary failure (Mailgun's
/// `failed` with severity `temporary`, SES's delivery delays) counts towards the threshold too;
/// one message retried several times counts once (see [`fact_key`]). A `bounced` the provider
/// does not classify is permanent (a bounce is a refusal). `rejected` (the provider refused the
/// content) and unclassified deferrals never count.
pub fn classify(event: &Event) -> Option<Signal> {
    let kind = match (event.body.status, event.failure) {
        (Status::Complaint | Status::Spam, _) => Kind::Complaint,
        (Status::Unsubscribed, _) => Kind::Unsubscribed,
        (Status::Delivered, _) => return Some(Signal::Delivered),
        (
            Status::Bounced
            | Status::Failed
            | Status::Undelivered
            | Status::Dropped
            | Status::Blocked,
            Some(Failure::Permanent),
        ) => Kind::PermanentFailure,
        (Status::Bounced, None) => Kind::PermanentFailure,
        (
            Status::Bounced
            | Status::Failed
            | Status::Undelivered
            | Status::Deferred
            | Status::Delayed,
            Some(Failure::Temporary),
        ) => Kind::TemporaryFailure,
        _ => return None,
    };
    Some(Signal::Fact(kind))
}

/// The key a fact is folded under (facts with one key are one fact): the event's dedup key,
/// except for temporary failures, which count once per message (`integration`, `message_id`),
/// so that a provider retrying one message several times does not reach the threshold alone.
pub fn fact_key(kind: Kind, dedup_key: &str, integration: &str, message_id: &str) -> String {
    match kind {
        Kind::TemporaryFailure => format!("message:{integration}:{message_id}"),
        _ => dedup_key.to_owned(),
    }
}

/// How many temporary failures within how long suppress, on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Temporary failures that suppress (at least 1).
    pub failures: u32,
    /// Within this long, by event time.
    pub window: Duration,
}

/// The thresholds per channel and how long a temporary suppression lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Email: soft bounces (mailbox full, greylisting, server down) usually clear within a day
    /// or two; three on separate sends within a week mean the mailbox is not coming back soon.
    pub email: Threshold,
    /// SMS: carrier congestion and a handset switched off clear within hours; three failures
    /// within three days mean the number is not reachable.
    pub sms: Threshold,
    /// Push: a temporary failure is rare (the push service was unavailable); three within a
    /// week point at the device.
    pub push: Threshold,
    /// A temporary suppression is lifted this long after its latest failure, so a recipient
    /// whose mailbox was full for a week is tried again.
    pub temporary_expiry: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            email: Threshold {
                failures: 3,
                window: Duration::days(7),
            },
            sms: Threshold {
                failures: 3,
                window: Duration::days(3),
            },
            push: Threshold {
                failures: 3,
                window: Duration::days(7),
            },
            temporary_expiry: Duration::days(30),
        }
    }
}

impl Policy {
    /// The threshold for a channel (chat follows push).
    pub fn threshold(&self, channel: Channel) -> Threshold {
        match channel {
            Channel::Email => self.email,
            Channel::Sms => self.sms,
            Channel::Push | Channel::Chat => self.push,
        }
    }
}

/// One fact as the fold sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact<'a> {
    /// What happened.
    pub kind: Kind,
    /// When, by event time (manual records: when they were made).
    pub at: DateTime<Utc>,
    /// Stable across stores and instances (the event's dedup key; a manual record's id), so
    /// ties in time resolve the same way everywhere. Facts with the same key are one fact.
    pub key: &'a str,
}

/// A suppression that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Why.
    pub reason: Reason,
    /// The index in the facts given of the fact that caused it: the earliest suppressing fact
    /// (for temporary failures, the first of the earliest window that reached the threshold).
    pub cause: usize,
    /// The time of the cause.
    pub first_at: DateTime<Utc>,
    /// The latest fact that keeps it (suppressing facts of the same class).
    pub last_at: DateTime<Utc>,
    /// Temporary failures counted since the latest delivery or removal.
    pub temporary_failures: u32,
    /// When a temporary suppression lapses; `None` for the others.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The entry that follows from a recipient's facts and latest delivery, `None` when nothing
/// suppresses it. Order-independent and idempotent: the same set gives the same answer.
pub fn evaluate(
    facts: &[Fact<'_>],
    delivered_at: Option<DateTime<Utc>>,
    threshold: Threshold,
    expiry: Duration,
) -> Option<Verdict> {
    // One fact per key, in (time, key) order: duplicates and order disappear here.
    let mut seen = BTreeSet::new();
    let mut order: Vec<usize> = (0..facts.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (facts.get(a), facts.get(b));
        a.map(|f| (f.at, f.key, f.kind))
            .cmp(&b.map(|f| (f.at, f.key, f.kind)))
    });
    let distinct: Vec<(usize, &Fact<'_>)> = order
        .into_iter()
        .filter_map(|i| facts.get(i).map(|f| (i, f)))
        .filter(|(_, f)| seen.insert(f.key))
        .collect();
    let removed_at = distinct
        .iter()
        .filter(|(_, f)| f.kind == Kind::Removed)
        .map(|(_, f)| f.at)
        .max();
    let live = |f: &Fact<'_>| removed_at.is_none_or(|removed| f.at > removed);
    let floor = removed_at.max(delivered_at);
    let temporary: Vec<(usize, &Fact<'_>)> = distinct
        .iter()
        .filter(|(_, f)| f.kind == Kind::TemporaryFailure && floor.is_none_or(|t| f.at > t))
        .copied()
        .collect();
    let temporary_failures = u32::try_from(temporary.len()).unwrap_or(u32::MAX);

    let immediate: Vec<(usize, &Fact<'_>, Reason)> = distinct
        .iter()
        .filter(|(_, f)| live(f))
        .filter_map(|&(i, f)| f.kind.immediate_reason().map(|r| (i, f, r)))
        .collect();
    if let Some(&(cause, first, reason)) = immediate.first() {
        let last_at = immediate
            .iter()
            .map(|(_, f, _)| f.at)
            .max()
            .unwrap_or(first.at);
        return Some(Verdict {
            reason,
            cause,
            first_at: first.at,
            last_at,
            temporary_failures,
            expires_at: None,
        });
    }

    let needed = usize::try_from(threshold.failures.max(1)).unwrap_or(usize::MAX);
    let reached =
        temporary
            .windows(needed)
            .find(|window| match (window.first(), window.last()) {
                (Some((_, first)), Some((_, last))) => last.at - first.at <= threshold.window,
                _ => false,
            })?;
    let &(cause, first) = reached.first()?;
    let last_at = temporary.last().map_or(first.at, |(_, f)| f.at);
    Some(Verdict {
        reason: Reason::TemporaryFailures,
        cause,
        first_at: first.at,
        last_at,
        temporary_failures,
        expires_at: Some(last_at + expiry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn day(n: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_600_000_000 + n * 86_400, 0).unwrap()
    }

    fn fact(kind: Kind, at: i64, key: &'static str) -> Fact<'static> {
        Fact {
            kind,
            at: day(at),
            key,
        }
    }

    const EMAIL: Threshold = Threshold {
        failures: 3,
        window: Duration::days(7),
    };

    fn eval(facts: &[Fact<'_>], delivered: Option<i64>) -> Option<Verdict> {
        evaluate(facts, delivered.map(day), EMAIL, Duration::days(30))
    }

    #[test]
    fn permanent_failures_and_complaints_suppress_at_once_with_the_earliest_cause() {
        let facts = [
            fact(Kind::Complaint, 5, "b"),
            fact(Kind::PermanentFailure, 2, "a"),
        ];
        let verdict = eval(&facts, Some(10)).unwrap();
        assert_eq!(verdict.reason, Reason::PermanentFailure);
        assert_eq!(verdict.cause, 1);
        assert_eq!((verdict.first_at, verdict.last_at), (day(2), day(5)));
        assert_eq!(verdict.expires_at, None);
    }

    #[test]
    fn temporary_failures_need_the_threshold_within_the_window() {
        let spread = [
            fact(Kind::TemporaryFailure, 0, "a"),
            fact(Kind::TemporaryFailure, 5, "b"),
            fact(Kind::TemporaryFailure, 10, "c"),
        ];
        assert_eq!(eval(&spread, None), None);
        let close = [
            fact(Kind::TemporaryFailure, 0, "a"),
            fact(Kind::TemporaryFailure, 5, "b"),
            fact(Kind::TemporaryFailure, 6, "c"),
            fact(Kind::TemporaryFailure, 9, "d"),
        ];
        let verdict = eval(&close, None).unwrap();
        assert_eq!(verdict.reason, Reason::TemporaryFailures);
        assert_eq!(verdict.cause, 0);
        assert_eq!(verdict.temporary_failures, 4);
        assert_eq!(verdict.expires_at, Some(day(39)));
        // Two of them repeated are still two.
        let repeated = [
            fact(Kind::TemporaryFailure, 0, "a"),
            fact(Kind::TemporaryFailure, 0, "a"),
            fact(Kind::TemporaryFailure, 1, "b"),
        ];
        assert_eq!(eval(&repeated, None), None);
    }

    #[test]
    fn a_later_delivery_resets_temporary_failures_and_an_older_one_does_not() {
        let facts = [
            fact(Kind::TemporaryFailure, 1, "a"),
            fact(Kind::TemporaryFailure, 2, "b"),
            fact(Kind::TemporaryFailure, 3, "c"),
        ];
        assert!(eval(&facts, Some(0)).is_some());
        assert_eq!(eval(&facts, Some(4)), None);
        assert_eq!(eval(&facts, Some(2)), None);
        // A delivery never lifts a permanent failure.
        assert!(eval(&[fact(Kind::PermanentFailure, 1, "p")], Some(9)).is_some());
    }

    #[test]
    fn a_removal_voids_what_came_before_it_only() {
        let removed = [
            fact(Kind::PermanentFailure, 1, "a"),
            fact(Kind::Removed, 3, "manual:1"),
        ];
        assert_eq!(eval(&removed, None), None);
        let again = [
            fact(Kind::PermanentFailure, 1, "a"),
            fact(Kind::Removed, 3, "manual:1"),
            fact(Kind::Complaint, 4, "b"),
        ];
        let verdict = eval(&again, None).unwrap();
        assert_eq!((verdict.reason, verdict.cause), (Reason::Complaint, 2));
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop::sample::select(Kind::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn any_order_and_repetition_gives_the_same_entry(
            raw in prop::collection::vec((kind(), 0i64..20), 0..12),
            delivered in prop::option::of(0i64..20),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let keys: Vec<String> = (0..raw.len()).map(|i| format!("k{i}")).collect();
            let facts: Vec<Fact<'_>> = raw
                .iter()
                .zip(&keys)
                .map(|(&(kind, at), key)| Fact { kind, at: day(at), key })
                .collect();
            let want = eval(&facts, delivered).map(|v| (v.reason, facts[v.cause].key, v.first_at,
                v.last_at, v.temporary_failures, v.expires_at));
            // Any shuffle with repeats that still contains every fact.
            let mut shuffled = facts.clone();
            for index in &order {
                if !facts.is_empty() {
                    shuffled.push(facts[index.index(facts.len())]);
                }
            }
            let len = shuffled.len();
            for (i, index) in order.iter().enumerate() {
                if len > 0 {
                    shuffled.swap(i % len, index.index(len));
                }
            }
            let got = eval(&shuffled, delivered).map(|v| (v.reason, shuffled[v.cause].key,
                v.first_at, v.last_at, v.temporary_failures, v.expires_at));
            prop_assert_eq!(got, want);
        }
    }
}
