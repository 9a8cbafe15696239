//! A message's current status: an order-independent fold over its distinct events.
//!
//! Events for one message arrive in any order and more than once, so the state is a join over a
//! set: the event with the highest precedence wins, ties going to the later event time, then to
//! a fixed order of statuses. Max and min are commutative, associative and idempotent, so every
//! order and every duplication of the same events gives the same state.
//!
//! | precedence | statuses | why |
//! |---|---|---|
//! | 100 | `clicked` | engagement proves delivery; a click implies an open |
//! | 90 | `opened` | engagement outranks delivery and late failure notices |
//! | 80 | `bounced` `blocked` `dropped` `rejected` `failed` `undelivered` | a failure after `delivered` is real (asynchronous bounces); for multi-part SMS a failed part wins over delivered parts |
//! | 70 | `delivered` | |
//! | 60 | `deferred` `delayed` | temporary: a later `delivered` or failure settles it |
//! | 50 | `sent` | a late `sent` never overwrites `delivered` |
//! | 40 | `sending` | |
//! | 30 | `queued` | |
//! | 20 | `accepted` | |
//! | 10 | `created` | |
//! | 1 | `spam` `complaint` `unsubscribed` `dismissed` | flags with their times, never a regression: they set the status only while nothing else is known |

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Event, Failure, Status};

/// The precedence of a status in the fold (see the module table).
pub fn precedence(status: Status) -> u8 {
    match status {
        Status::Clicked => 100,
        Status::Opened => 90,
        Status::Bounced
        | Status::Blocked
        | Status::Dropped
        | Status::Rejected
        | Status::Failed
        | Status::Undelivered => 80,
        Status::Delivered => 70,
        Status::Deferred | Status::Delayed => 60,
        Status::Sent => 50,
        Status::Sending => 40,
        Status::Queued => 30,
        Status::Accepted => 20,
        Status::Created => 10,
        Status::Spam | Status::Complaint | Status::Unsubscribed | Status::Dismissed => 1,
    }
}

/// Whether a status is kept as a flag rather than as a step of delivery.
pub fn is_flag(status: Status) -> bool {
    precedence(status) == 1
}

/// What the fold needs of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The event's status.
    pub status: Status,
    /// The event's own time.
    pub at: DateTime<Utc>,
    /// Temporary or permanent, for failures.
    pub failure: Option<Failure>,
}

impl Fact {
    fn key(&self) -> (u8, DateTime<Utc>, Status, Option<Failure>) {
        (precedence(self.status), self.at, self.status, self.failure)
    }
}

impl From<&Event> for Fact {
    fn from(event: &Event) -> Fact {
        Fact {
            status: event.body.status,
            at: event.body.date,
            failure: event.failure,
        }
    }
}

/// A message's folded state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageState {
    /// The current status.
    pub status: Status,
    /// The time of the event that set the current status.
    pub status_at: DateTime<Utc>,
    /// Temporary or permanent, when the current status is a failure the provider qualified.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure: Option<Failure>,
    /// The earliest time each status was seen: the message's milestones (`sent`, `delivered`,
    /// `opened`, ...) and flags (`complaint`, `unsubscribed`, `dismissed`, ...).
    pub first_at: BTreeMap<Status, DateTime<Utc>>,
}

impl MessageState {
    /// The state after one event.
    pub fn new(fact: Fact) -> MessageState {
        MessageState {
            status: fact.status,
            status_at: fact.at,
            failure: fact.failure,
            first_at: BTreeMap::from([(fact.status, fact.at)]),
        }
    }

    /// Folds a set of events; `None` when there are none.
    pub fn fold(facts: impl IntoIterator<Item = Fact>) -> Option<MessageState> {
        let mut facts = facts.into_iter();
        let mut state = MessageState::new(facts.next()?);
        for fact in facts {
            state.apply(fact);
        }
        Some(state)
    }

    /// Adds one event. Applying an event twice, or events in any order, gives the same state.
    pub fn apply(&mut self, fact: Fact) {
        let current = Fact {
            status: self.status,
            at: self.status_at,
            failure: self.failure,
        };
        if fact.key() > current.key() {
            self.status = fact.status;
            self.status_at = fact.at;
            self.failure = fact.failure;
        }
        self.first_at
            .entry(fact.status)
            .and_modify(|at| *at = (*at).min(fact.at))
            .or_insert(fact.at);
    }

    /// When the recipient first complained (`spam` or `complaint`).
    pub fn complained_at(&self) -> Option<DateTime<Utc>> {
        let spam = self.first_at.get(&Status::Spam);
        let complaint = self.first_at.get(&Status::Complaint);
        spam.into_iter().chain(complaint).min().copied()
    }

    /// When the recipient first unsubscribed.
    pub fn unsubscribed_at(&self) -> Option<DateTime<Utc>> {
        self.first_at.get(&Status::Unsubscribed).copied()
    }

    /// When the notification was first dismissed.
    pub fn dismissed_at(&self) -> Option<DateTime<Utc>> {
        self.first_at.get(&Status::Dismissed).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn fact(status: Status, seconds: i64) -> Fact {
        Fact {
            status,
            at: Utc.timestamp_opt(seconds, 0).unwrap(),
            failure: None,
        }
    }

    fn fold(facts: &[Fact]) -> MessageState {
        MessageState::fold(facts.iter().copied()).unwrap()
    }

    #[test]
    fn late_sent_never_overwrites_delivered() {
        let state = fold(&[fact(Status::Delivered, 10), fact(Status::Sent, 5)]);
        assert_eq!(state.status, Status::Delivered);
        assert_eq!(
            state.first_at[&Status::Sent],
            Utc.timestamp_opt(5, 0).unwrap()
        );
    }

    #[test]
    fn asynchronous_bounce_after_delivery_wins() {
        let state = fold(&[fact(Status::Bounced, 20), fact(Status::Delivered, 10)]);
        assert_eq!(state.status, Status::Bounced);
    }

    #[test]
    fn engagement_outranks_delivery_and_clicks_outrank_opens() {
        let state = fold(&[
            fact(Status::Opened, 30),
            fact(Status::Delivered, 10),
            fact(Status::Clicked, 20),
        ]);
        assert_eq!(state.status, Status::Clicked);
    }

    #[test]
    fn a_failed_sms_part_wins_over_delivered_parts() {
        let state = fold(&[
            fact(Status::Delivered, 10),
            fact(Status::Failed, 5),
            fact(Status::Delivered, 12),
        ]);
        assert_eq!(state.status, Status::Failed);
    }

    #[test]
    fn complaints_are_flags_not_regressions() {
        let state = fold(&[
            fact(Status::Delivered, 10),
            fact(Status::Complaint, 50),
            fact(Status::Unsubscribed, 60),
        ]);
        assert_eq!(state.status, Status::Delivered);
        assert_eq!(
            state.complained_at(),
            Some(Utc.timestamp_opt(50, 0).unwrap())
        );
        assert_eq!(
            state.unsubscribed_at(),
            Some(Utc.timestamp_opt(60, 0).unwrap())
        );
        // Alone, a flag is all that is known.
        assert_eq!(fold(&[fact(Status::Spam, 1)]).status, Status::Spam);
    }

    #[test]
    fn every_status_has_a_precedence() {
        for status in Status::ALL {
            assert!(precedence(status) > 0);
        }
    }

    fn any_fact() -> impl Strategy<Value = Fact> {
        (
            prop::sample::select(Status::ALL.to_vec()),
            0i64..50,
            prop::option::of(prop_oneof![
                Just(Failure::Temporary),
                Just(Failure::Permanent)
            ]),
        )
            .prop_map(|(status, seconds, failure)| Fact {
                status,
                at: Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap(),
                failure,
            })
    }

    /// A set of events, and the same set reordered with some events delivered more than once.
    fn permuted_with_duplicates() -> impl Strategy<Value = (Vec<Fact>, Vec<Fact>)> {
        prop::collection::vec(any_fact(), 1..12).prop_flat_map(|facts| {
            let n = facts.len();
            (
                Just(facts.clone()),
                prop::collection::vec(0..n, 0..n * 2),
                Just(facts).prop_shuffle(),
            )
                .prop_map(|(original, dup_indices, shuffled)| {
                    let mut delivered = shuffled;
                    for i in dup_indices {
                        let extra = original[i];
                        let at = i % (delivered.len() + 1);
                        delivered.insert(at, extra);
                    }
                    (original, delivered)
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn fold_is_order_and_duplicate_independent((original, delivered) in permuted_with_duplicates()) {
            prop_assert_eq!(fold(&original), fold(&delivered));
        }

        #[test]
        fn the_winner_has_the_highest_precedence(facts in prop::collection::vec(any_fact(), 1..12)) {
            let state = fold(&facts);
            let best = facts.iter().map(|f| precedence(f.status)).max().unwrap();
            prop_assert_eq!(precedence(state.status), best);
        }
    }
}
