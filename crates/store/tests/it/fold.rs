//! The stored message state equals `MessageState::fold` over the distinct events, whatever the
//! order, the duplication and the grouping of the deliveries.

use std::collections::BTreeMap;

use tidings_core::fold::{Fact, MessageState};
use tidings_core::{Event, Failure, Status};
use tidings_store::Store;

use crate::conformance;
use crate::support::{Backend, Rng, at, event, ingest};

/// Events for `messages` messages (with ties on time down to the nanosecond, failures, flags),
/// and the deliveries: shuffled, about a third of them twice.
pub(crate) fn deliveries(seed: u64, messages: usize) -> (BTreeMap<String, Vec<Fact>>, Vec<Event>) {
    let mut rng = Rng::new(seed);
    let mut facts: BTreeMap<String, Vec<Fact>> = BTreeMap::new();
    let mut out = Vec::new();
    for m in 0..messages {
        let id = format!("msg-{seed}-{m}");
        for k in 0..1 + rng.below(8) {
            let status = Status::ALL[rng.below(Status::ALL.len())];
            let date = at(rng.below(20) as i64, rng.below(3) as u32 * 333);
            let failure = [None, Some(Failure::Temporary), Some(Failure::Permanent)][rng.below(3)];
            let event = event(&id, &format!("{id}-{k}"), status, date, failure);
            facts
                .entry(id.clone())
                .or_default()
                .push(Fact::from(&event));
            if rng.below(3) == 0 {
                out.push(event.clone());
            }
            out.push(event);
        }
    }
    rng.shuffle(&mut out);
    (facts, out)
}

/// Sends `events` in requests of one to four events, `parallel` requests at a time, each to one
/// of `stores` in turn.
pub(crate) async fn send(
    stores: &[Store],
    env: &str,
    events: &[Event],
    seed: u64,
    parallel: usize,
) {
    let mut rng = Rng::new(seed);
    let mut requests = Vec::new();
    let mut rest = events;
    while !rest.is_empty() {
        let n = (1 + rng.below(4)).min(rest.len());
        requests.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    for (round, wave) in requests.chunks(parallel.max(1)).enumerate() {
        let tasks: Vec<_> = wave
            .iter()
            .enumerate()
            .map(|(i, events)| {
                let store = stores[(round + i) % stores.len()].clone();
                let request = ingest(env, events.clone());
                tokio::spawn(async move { store.ingest(request).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
}

pub(crate) async fn assert_folded(store: &Store, env: &str, facts: &BTreeMap<String, Vec<Fact>>) {
    let rows = store.messages(Some(env), None).await.unwrap();
    assert_eq!(rows.len(), facts.len());
    for row in rows {
        let expected = &facts[&row.id];
        assert_eq!(
            Some(row.state.clone()),
            MessageState::fold(expected.iter().copied()),
            "message {}",
            row.id
        );
        assert_eq!(row.events, expected.len() as i64, "message {}", row.id);
    }
}

async fn fold_matches_core(backend: &Backend) {
    let store = backend.open().await;
    for seed in 1..=3 {
        let (facts, events) = deliveries(seed, 15);
        let env = format!("env-{seed}");
        send(std::slice::from_ref(&store), &env, &events, seed, 8).await;
        assert_folded(&store, &env, &facts).await;
    }
}

/// Every status after every other, one at a time: exercises each comparison of the fold.
async fn fold_matches_core_pairwise(backend: &Backend) {
    let store = backend.open().await;
    let mut facts = BTreeMap::new();
    for (i, first) in Status::ALL.into_iter().enumerate() {
        for (j, second) in Status::ALL.into_iter().enumerate() {
            let id = format!("pair-{i}-{j}");
            let a = event(&id, &format!("{id}-a"), first, at(5, 0), None);
            let b = event(
                &id,
                &format!("{id}-b"),
                second,
                at(5, 0),
                Some(Failure::Permanent),
            );
            facts.insert(id, vec![Fact::from(&a), Fact::from(&b)]);
            store.ingest(ingest("pairs", vec![a])).await.unwrap();
            store.ingest(ingest("pairs", vec![b])).await.unwrap();
        }
    }
    assert_folded(&store, "pairs", &facts).await;
}

conformance! {
    fold_equals_core_for_shuffled_duplicated_deliveries => fold_matches_core,
    fold_equals_core_for_every_pair_of_statuses => fold_matches_core_pairwise,
}
