//! One group's transaction: the same few statements whatever the number of requests in it.
//!
//! Every table gets one multi-row statement per group (an `unnest` of one array per column),
//! and statements that do not depend on each other are sent together (tokio-postgres pipelines
//! queries polled at once on one connection). A group is `BEGIN`, the seqs it needs, the
//! requests and their events, then the duplicate counts, the message fold and the idempotency
//! records, then the suppression list and `COMMIT`: five round trips for the common case,
//! where the per-row form took one per event. Rare paths (a signed nonce, a request without
//! events, a repeated body) keep their own per-request statements.
//!
//! **Seqs are drawn first.** Each new request and event gets its `seq` from the table's own
//! sequence before the insert, so an event names its request's seq without waiting for the
//! request's insert, and the events that were inserted are told apart from the duplicates by
//! the seqs that come back (`RETURNING` promises no order).
//!
//! **The fold is pre-folded per message** in Rust (a multi-row `ON CONFLICT DO UPDATE` may not
//! touch a row twice), then merged into the stored row by the database exactly as before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use tidings_core::fold::{Fact, MessageState, precedence};
use tidings_core::{Event, Status};
use tokio_postgres::types::ToSql;

use super::{encode_time, failure_ordinal, suppressions};
use crate::layout::{self, EventRow};
use crate::suppressions::{SuppressionSettings, Touches, note_event};
use crate::{IdempotencyRecord, Ingest, IngestOutcome};

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

/// A message touched by a group: its events folded in Rust, merged with the stored row by the
/// database.
pub(crate) struct Touched<'a> {
    pub(crate) provider: &'a str,
    pub(crate) external_id: Option<&'a str>,
    pub(crate) state: MessageState,
    pub(crate) events: i64,
    pub(crate) changed_seq: i64,
}

/// Which message: environment, integration, message id. Sorted, so that concurrent groups
/// lock message rows in one order.
pub(crate) type MessageKey<'a> = (&'a str, &'a str, &'a str);

/// Draws `requests` seqs for `raw_requests` and `events` seqs for `events`, in order.
pub(crate) async fn draw_seqs(
    tx: &deadpool_postgres::Transaction<'_>,
    requests: usize,
    events: usize,
) -> PgResult<(Vec<i64>, Vec<i64>)> {
    let draw = tx
        .prepare_cached(
            "WITH s AS (SELECT pg_get_serial_sequence('raw_requests', 'seq')::regclass AS requests,
                               pg_get_serial_sequence('events', 'seq')::regclass AS events)
             SELECT ARRAY(SELECT nextval(s.requests) FROM generate_series(1, $1::int8)),
                    ARRAY(SELECT nextval(s.events) FROM generate_series(1, $2::int8))
             FROM s",
        )
        .await?;
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let row = tx
        .query_one(&draw, &[&count(requests), &count(events)])
        .await?;
    let mut requests: Vec<i64> = row.try_get(0)?;
    let mut events: Vec<i64> = row.try_get(1)?;
    // Drawn in this order; sorted all the same, since an array subquery promises none.
    requests.sort_unstable();
    events.sort_unstable();
    Ok((requests, events))
}

/// The request an event belongs to, as its row repeats it.
pub(crate) struct EventRequest<'a> {
    pub(crate) environment_id: &'a str,
    pub(crate) integration_id: &'a str,
    pub(crate) provider: &'a str,
    pub(crate) request_seq: i64,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) authentication: Option<&'a str>,
}

/// Rows of `events`, column by column, for one `unnest` insert. The one column list of an event
/// row: the group commit and re-parse both insert through it.
#[derive(Default)]
pub(crate) struct EventColumns<'a> {
    seq: Vec<i64>,
    environment_id: Vec<&'a str>,
    integration_id: Vec<&'a str>,
    provider: Vec<&'a str>,
    message_id: Vec<&'a str>,
    dedup_key: Vec<&'a str>,
    status: Vec<&'static str>,
    date: Vec<String>,
    event: Vec<String>,
    request_seq: Vec<i64>,
    received_at: Vec<DateTime<Utc>>,
    authentication: Vec<Option<&'a str>>,
    duplicates: Vec<i64>,
    dedup_time: Vec<i64>,
    row_at: Vec<Option<i64>>,
    row_length: Vec<Option<i64>>,
    row_text: Vec<Option<String>>,
}

impl<'a> EventColumns<'a> {
    pub(crate) fn push(
        &mut self,
        seq: i64,
        request: &EventRequest<'a>,
        event: &'a Event,
        row: EventRow,
        duplicates: i64,
    ) {
        self.seq.push(seq);
        self.environment_id.push(request.environment_id);
        self.integration_id.push(request.integration_id);
        self.provider.push(request.provider);
        self.message_id.push(&event.id);
        self.dedup_key.push(&event.dedup_key);
        self.status.push(event.body.status.as_str());
        self.date.push(
            event
                .body
                .date
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        );
        self.event.push(row.json);
        self.request_seq.push(request.request_seq);
        self.received_at.push(request.received_at);
        self.authentication.push(request.authentication);
        self.duplicates.push(duplicates);
        self.dedup_time.push(row.dedup_time);
        self.row_at.push(row.row_at);
        self.row_length.push(row.row_length);
        self.row_text.push(row.row_text);
    }

    /// Inserts the rows; an event whose dedup key is stored already is left out. Returns the
    /// seqs of the rows inserted.
    pub(crate) async fn insert(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> PgResult<BTreeSet<i64>> {
        if self.seq.is_empty() {
            return Ok(BTreeSet::new());
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO events
                   (seq, environment_id, integration_id, provider, message_id, dedup_key, status,
                    date, event, request_seq, received_at, authentication, duplicates, dedup_time,
                    row_at, row_length, row_text)
                 OVERRIDING SYSTEM VALUE
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
                   $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[],
                   $11::timestamptz[], $12::text[], $13::int8[], $14::int8[], $15::int8[],
                   $16::int8[], $17::text[])
                 ON CONFLICT (environment_id, dedup_time, dedup_key) DO NOTHING
                 RETURNING seq",
            )
            .await?;
        let rows = tx
            .query(
                &insert,
                &[
                    &self.seq,
                    &self.environment_id,
                    &self.integration_id,
                    &self.provider,
                    &self.message_id,
                    &self.dedup_key,
                    &self.status,
                    &self.date,
                    &self.event,
                    &self.request_seq,
                    &self.received_at,
                    &self.authentication,
                    &self.duplicates,
                    &self.dedup_time,
                    &self.row_at,
                    &self.row_length,
                    &self.row_text,
                ],
            )
            .await?;
        rows.iter().map(|row| row.try_get(0)).collect()
    }
}

/// Requests carrying events, column by column, for one `unnest` insert.
#[derive(Default)]
struct RequestColumns<'a> {
    seq: Vec<i64>,
    environment_id: Vec<&'a str>,
    integration_id: Vec<&'a str>,
    provider: Vec<&'a str>,
    received_at: Vec<DateTime<Utc>>,
    content_type: Vec<Option<&'a str>>,
    headers: Vec<&'a str>,
    body: Vec<&'a [u8]>,
    ignored: Vec<&'a str>,
    body_hash: Vec<&'a [u8]>,
    method: Vec<&'a str>,
    url: Vec<&'a str>,
    authentication: Vec<&'a str>,
}

impl<'a> RequestColumns<'a> {
    fn push(&mut self, seq: i64, ingest: &'a Ingest) {
        self.seq.push(seq);
        self.environment_id.push(&ingest.environment_id);
        self.integration_id.push(&ingest.integration_id);
        self.provider.push(&ingest.provider);
        self.received_at.push(ingest.received_at);
        self.content_type.push(ingest.content_type.as_deref());
        self.headers.push(&ingest.headers_json);
        self.body.push(&ingest.body);
        self.ignored.push(&ingest.ignored_json);
        self.body_hash.push(&ingest.body_hash);
        self.method.push(&ingest.method);
        self.url.push(&ingest.url);
        self.authentication.push(&ingest.authentication);
    }

    async fn insert(&self, tx: &deadpool_postgres::Transaction<'_>) -> PgResult<()> {
        if self.seq.is_empty() {
            return Ok(());
        }
        // Appended: whether one repeats an earlier request is known from its events.
        let insert = tx
            .prepare_cached(
                "INSERT INTO raw_requests
                   (seq, environment_id, integration_id, provider, received_at, content_type,
                    headers, body, ignored, body_hash, method, url, authentication, has_events)
                 OVERRIDING SYSTEM VALUE
                 SELECT u.*, TRUE FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[],
                   $5::timestamptz[], $6::text[], $7::text[], $8::bytea[], $9::text[],
                   $10::bytea[], $11::text[], $12::text[], $13::text[]) AS u",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &self.seq,
                &self.environment_id,
                &self.integration_id,
                &self.provider,
                &self.received_at,
                &self.content_type,
                &self.headers,
                &self.body,
                &self.ignored,
                &self.body_hash,
                &self.method,
                &self.url,
                &self.authentication,
            ],
        )
        .await?;
        Ok(())
    }
}

/// The fold in SQL for many messages at once: the greater `(precedence, status_at, status_ord,
/// failure_ord)` wins, exactly as `Fact::key` compares in Rust; each first-seen time is the
/// least of both.
static UPSERT_MESSAGES: LazyLock<String> = LazyLock::new(|| {
    let firsts: Vec<String> = Status::ALL
        .iter()
        .map(|s| format!("first_{}", s.as_str()))
        .collect();
    let first_arrays: Vec<String> = (14..14 + firsts.len())
        .map(|i| format!("${i}::bytea[]"))
        .collect();
    let newer = "(EXCLUDED.precedence, EXCLUDED.status_at, EXCLUDED.status_ord, EXCLUDED.failure_ord) \
                 > (messages.precedence, messages.status_at, messages.status_ord, messages.failure_ord)";
    let winner: Vec<String> = [
        "status",
        "precedence",
        "status_at",
        "status_ord",
        "failure_ord",
    ]
    .iter()
    .map(|c| format!("{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE messages.{c} END"))
    .collect();
    let least: Vec<String> = firsts
        .iter()
        .map(|c| format!("{c} = LEAST(messages.{c}, EXCLUDED.{c})"))
        .collect();
    format!(
        "INSERT INTO messages (environment_id, integration_id, message_id, provider, status,
           precedence, status_at, status_ord, failure_ord, events, external_id, changed_seq,
           {firsts}, updated_at, changed_xid)
         SELECT u.*, $1::timestamptz, pg_current_xact_id() FROM unnest($2::text[], $3::text[],
           $4::text[], $5::text[], $6::text[], $7::int2[], $8::bytea[], $9::int2[], $10::int2[],
           $11::int8[], $12::text[], $13::int8[], {first_arrays}) AS u
         ON CONFLICT (environment_id, integration_id, message_id) DO UPDATE SET
           {winner},
           provider = EXCLUDED.provider,
           events = messages.events + EXCLUDED.events,
           updated_at = EXCLUDED.updated_at,
           external_id = COALESCE(EXCLUDED.external_id, messages.external_id),
           changed_xid = EXCLUDED.changed_xid,
           changed_seq = EXCLUDED.changed_seq,
           {least}",
        firsts = firsts.join(", "),
        first_arrays = first_arrays.join(", "),
        winner = winner.join(",\n           "),
        least = least.join(",\n           "),
    )
});

/// Merges each message's folded state into its row (a row that is not there is inserted as
/// is), in one statement, in key order.
pub(crate) async fn save_messages(
    tx: &deadpool_postgres::Transaction<'_>,
    messages: &BTreeMap<MessageKey<'_>, Touched<'_>>,
    now: &DateTime<Utc>,
) -> PgResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut environment_id = Vec::with_capacity(messages.len());
    let mut integration_id = Vec::with_capacity(messages.len());
    let mut message_id = Vec::with_capacity(messages.len());
    let mut provider = Vec::with_capacity(messages.len());
    let mut status = Vec::with_capacity(messages.len());
    let mut precedences = Vec::with_capacity(messages.len());
    let mut status_at = Vec::with_capacity(messages.len());
    let mut status_ord = Vec::with_capacity(messages.len());
    let mut failure_ord = Vec::with_capacity(messages.len());
    let mut events = Vec::with_capacity(messages.len());
    let mut external_id = Vec::with_capacity(messages.len());
    let mut changed_seq = Vec::with_capacity(messages.len());
    let mut firsts: Vec<Vec<Option<Vec<u8>>>> = Status::ALL
        .iter()
        .map(|_| Vec::with_capacity(messages.len()))
        .collect();
    for ((environment, integration, message), touched) in messages {
        let state = &touched.state;
        environment_id.push(*environment);
        integration_id.push(*integration);
        message_id.push(*message);
        provider.push(touched.provider);
        status.push(state.status.as_str());
        precedences.push(i16::from(precedence(state.status)));
        status_at.push(encode_time(&state.status_at));
        status_ord.push(i16::from(state.status.ordinal()));
        failure_ord.push(failure_ordinal(state.failure));
        events.push(touched.events);
        external_id.push(touched.external_id);
        changed_seq.push(touched.changed_seq);
        for (column, s) in firsts.iter_mut().zip(Status::ALL.iter()) {
            column.push(state.first_at.get(s).map(encode_time));
        }
    }
    let upsert = tx.prepare_cached(&UPSERT_MESSAGES).await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        now,
        &environment_id,
        &integration_id,
        &message_id,
        &provider,
        &status,
        &precedences,
        &status_at,
        &status_ord,
        &failure_ord,
        &events,
        &external_id,
        &changed_seq,
    ];
    params.extend(firsts.iter().map(|f| f as &(dyn ToSql + Sync)));
    tx.execute(&upsert, &params).await?;
    Ok(())
}

/// A request of the group, as it goes through the commit.
struct Pending<'a> {
    ingest: &'a Ingest,
    outcome: IngestOutcome,
}

/// An event's dedup key: environment, dedup time, dedup key.
type DedupKey<'a> = (&'a str, i64, &'a str);

pub(super) async fn commit_group(
    client: &mut deadpool_postgres::Object,
    batch: &[&Ingest],
    settings: &SuppressionSettings,
) -> PgResult<Vec<IngestOutcome>> {
    let tx = client.transaction().await?;
    let mut group: Vec<Pending<'_>> = batch
        .iter()
        .map(|ingest| Pending {
            ingest,
            outcome: IngestOutcome::default(),
        })
        .collect();
    for pending in &mut group {
        if let Some(nonce) = &pending.ingest.nonce
            && !take_nonce(&tx, pending.ingest, nonce).await?
        {
            // Reused with another body: nothing of the request is stored.
            pending.outcome.nonce_reused = true;
        }
    }
    for pending in group
        .iter_mut()
        .filter(|p| !p.outcome.nonce_reused && p.ingest.events.is_empty())
    {
        let (seq, repeats) = insert_bare_request(&tx, pending.ingest).await?;
        pending.outcome.request_seq = seq;
        pending.outcome.repeat = repeats > 0;
    }

    let mut carrying: Vec<&mut Pending<'_>> = group
        .iter_mut()
        .filter(|p| !p.outcome.nonce_reused && !p.ingest.events.is_empty())
        .collect();
    let event_count = carrying.iter().map(|p| p.ingest.events.len()).sum();
    let (request_seqs, event_seqs) = if carrying.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        draw_seqs(&tx, carrying.len(), event_count).await?
    };
    let mut requests = RequestColumns::default();
    let mut events = EventColumns::default();
    let mut event_seqs = event_seqs.into_iter();
    // Per request: its events' seqs and dedup keys, in order.
    let mut laid_out: Vec<Vec<(i64, DedupKey<'_>)>> = Vec::with_capacity(carrying.len());
    for (pending, request_seq) in carrying.iter().zip(&request_seqs) {
        let ingest = pending.ingest;
        requests.push(*request_seq, ingest);
        let request = EventRequest {
            environment_id: &ingest.environment_id,
            integration_id: &ingest.integration_id,
            provider: &ingest.provider,
            request_seq: *request_seq,
            received_at: ingest.received_at,
            authentication: Some(&ingest.authentication),
        };
        let mut keys = Vec::with_capacity(ingest.events.len());
        for (event, row) in ingest.events.iter().zip(layout::event_rows(ingest)) {
            let seq = event_seqs.next().unwrap_or_default();
            keys.push((
                seq,
                (
                    ingest.environment_id.as_str(),
                    row.dedup_time,
                    event.dedup_key.as_str(),
                ),
            ));
            events.push(seq, &request, event, row, 0);
        }
        laid_out.push(keys);
    }
    let ((), inserted) = tokio::try_join!(requests.insert(&tx), events.insert(&tx))?;

    let mut suppression_touches = Touches::new();
    let mut touched: BTreeMap<MessageKey<'_>, Touched<'_>> = BTreeMap::new();
    // Each dedup key met again, with how many times: counted on the stored event.
    let mut repeated: BTreeMap<DedupKey<'_>, i64> = BTreeMap::new();
    for ((pending, request_seq), keys) in carrying.iter_mut().zip(&request_seqs).zip(&laid_out) {
        let ingest = pending.ingest;
        pending.outcome.request_seq = *request_seq;
        for (event, (seq, key)) in ingest.events.iter().zip(keys) {
            if !inserted.contains(seq) {
                *repeated.entry(*key).or_default() += 1;
                pending.outcome.duplicates += 1;
                continue;
            }
            pending.outcome.stored += 1;
            note_event(&mut suppression_touches, settings, ingest, event, *seq);
            let fact = Fact::from(event);
            let external_id = event.body.external_id.as_deref();
            touched
                .entry((
                    ingest.environment_id.as_str(),
                    ingest.integration_id.as_str(),
                    event.id.as_str(),
                ))
                .and_modify(|message| {
                    message.state.apply(fact);
                    message.events += 1;
                    message.provider = ingest.provider.as_str();
                    message.external_id = external_id.or(message.external_id);
                    message.changed_seq = *seq;
                })
                .or_insert_with(|| Touched {
                    provider: ingest.provider.as_str(),
                    external_id,
                    state: MessageState::new(fact),
                    events: 1,
                    changed_seq: *seq,
                });
        }
    }

    let now = Utc::now();
    let (originals, (), ()) = tokio::try_join!(
        count_duplicates(&tx, &repeated),
        save_messages(&tx, &touched, &now),
        save_idempotency(&tx, batch),
    )?;

    // A request whose events were all stored before: if one of the requests that stored them
    // had the same body, this is its repeat, counted there instead of stored again.
    for (pending, keys) in carrying.iter_mut().zip(&laid_out) {
        if pending.outcome.stored > 0 {
            continue;
        }
        let mut candidates: Vec<i64> = Vec::new();
        for (_, key) in keys {
            if let Some(original) = originals.get(key)
                && !candidates.contains(original)
            {
                candidates.push(*original);
            }
        }
        if let Some(original) = count_repeat(
            &tx,
            pending.ingest,
            pending.outcome.request_seq,
            &candidates,
        )
        .await?
        {
            pending.outcome.request_seq = original;
            pending.outcome.repeat = true;
        }
    }
    // After the messages: every group takes its row locks in the same order.
    suppressions::apply(&tx, &suppression_touches, &settings.policy).await?;
    tx.commit().await?;
    Ok(group.into_iter().map(|p| p.outcome).collect())
}

/// Takes a request's signed nonce: false when it was used before with another body (a
/// replay). A nonce is taken if it is new or its earlier use has expired; the same body again
/// is the provider's retry. Two instances taking one nonce: the second waits for the first's
/// commit, then sees its row.
async fn take_nonce(
    tx: &deadpool_postgres::Transaction<'_>,
    ingest: &Ingest,
    nonce: &crate::NonceRecord,
) -> PgResult<bool> {
    let take = tx
        .prepare_cached(
            "INSERT INTO replay_nonces
               (environment_id, integration_id, scope, nonce, body_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (environment_id, integration_id, scope, nonce) DO UPDATE SET
               body_hash = EXCLUDED.body_hash, created_at = EXCLUDED.created_at,
               expires_at = EXCLUDED.expires_at
             WHERE replay_nonces.expires_at < EXCLUDED.created_at
             RETURNING 1",
        )
        .await?;
    let taken = tx
        .query_opt(
            &take,
            &[
                &ingest.environment_id,
                &ingest.integration_id,
                &nonce.scope,
                &nonce.value,
                &ingest.body_hash,
                &ingest.received_at,
                &nonce.expires_at,
            ],
        )
        .await?;
    if taken.is_some() {
        return Ok(true);
    }
    let first_body = tx
        .prepare_cached(
            "SELECT body_hash FROM replay_nonces
             WHERE environment_id = $1 AND integration_id = $2 AND scope = $3 AND nonce = $4",
        )
        .await?;
    let first: Vec<u8> = tx
        .query_one(
            &first_body,
            &[
                &ingest.environment_id,
                &ingest.integration_id,
                &nonce.scope,
                &nonce.value,
            ],
        )
        .await?
        .try_get(0)?;
    Ok(first == ingest.body_hash)
}

/// A request without events is a repeat when its body's hash is indexed already: counted there.
/// Returns its seq and repeat count.
async fn insert_bare_request(
    tx: &deadpool_postgres::Transaction<'_>,
    ingest: &Ingest,
) -> PgResult<(i64, i64)> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO raw_requests
               (environment_id, integration_id, provider, received_at, content_type, headers, body,
                ignored, body_hash, method, url, authentication)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (environment_id, integration_id, body_hash) WHERE NOT has_events
             DO UPDATE SET repeats = raw_requests.repeats + 1
             RETURNING seq, repeats",
        )
        .await?;
    let row = tx
        .query_one(
            &insert,
            &[
                &ingest.environment_id,
                &ingest.integration_id,
                &ingest.provider,
                &ingest.received_at,
                &ingest.content_type,
                &ingest.headers_json,
                &ingest.body,
                &ingest.ignored_json,
                &ingest.body_hash,
                &ingest.method,
                &ingest.url,
                &ingest.authentication,
            ],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Counts the events met again on their stored rows (in key order, so concurrent groups lock
/// them in one order) and returns which request stored each.
async fn count_duplicates<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    repeated: &BTreeMap<DedupKey<'a>, i64>,
) -> PgResult<BTreeMap<DedupKey<'a>, i64>> {
    if repeated.is_empty() {
        return Ok(BTreeMap::new());
    }
    let count = tx
        .prepare_cached(
            "UPDATE events e SET duplicates = e.duplicates + d.n
             FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[])
               WITH ORDINALITY AS d(environment_id, dedup_time, dedup_key, n, i)
             WHERE e.environment_id = d.environment_id AND e.dedup_time = d.dedup_time
               AND e.dedup_key = d.dedup_key
             RETURNING d.i, e.request_seq",
        )
        .await?;
    let environment_id: Vec<&str> = repeated.keys().map(|k| k.0).collect();
    let dedup_time: Vec<i64> = repeated.keys().map(|k| k.1).collect();
    let dedup_key: Vec<&str> = repeated.keys().map(|k| k.2).collect();
    let n: Vec<i64> = repeated.values().copied().collect();
    let rows = tx
        .query(&count, &[&environment_id, &dedup_time, &dedup_key, &n])
        .await?;
    let keys: Vec<&DedupKey<'a>> = repeated.keys().collect();
    let mut originals = BTreeMap::new();
    for row in &rows {
        // Which key a row is, by its (1-based) place in the arrays.
        let place = usize::try_from(row.try_get::<_, i64>(0)?).unwrap_or_default();
        if let Some(key) = place.checked_sub(1).and_then(|i| keys.get(i)) {
            originals.insert(**key, row.try_get(1)?);
        }
    }
    Ok(originals)
}

/// If one of `originals` (the requests that first stored a request's events) has the same
/// body, counts the repeat there and drops the new copy, `request_seq`. Returns the original's
/// seq.
async fn count_repeat(
    tx: &deadpool_postgres::Transaction<'_>,
    ingest: &Ingest,
    request_seq: i64,
    originals: &[i64],
) -> PgResult<Option<i64>> {
    for original in originals {
        let count = tx
            .prepare_cached(
                "UPDATE raw_requests SET repeats = repeats + 1
                 WHERE seq = $1 AND environment_id = $2 AND integration_id = $3 AND body_hash = $4
                 RETURNING seq",
            )
            .await?;
        let counted = tx
            .query_opt(
                &count,
                &[
                    original,
                    &ingest.environment_id,
                    &ingest.integration_id,
                    &ingest.body_hash,
                ],
            )
            .await?;
        if counted.is_some() {
            tx.execute("DELETE FROM raw_requests WHERE seq = $1", &[&request_seq])
                .await?;
            return Ok(Some(*original));
        }
    }
    Ok(None)
}

/// Saves the group's idempotency records in one statement (the last of a key wins).
async fn save_idempotency(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[&Ingest],
) -> PgResult<()> {
    let mut records: BTreeMap<(&str, &str, &str), (&Ingest, &IdempotencyRecord)> = BTreeMap::new();
    for ingest in batch {
        if let Some(record) = &ingest.idempotency {
            records.insert(
                (&ingest.environment_id, &ingest.integration_id, &record.key),
                (ingest, record),
            );
        }
    }
    if records.is_empty() {
        return Ok(());
    }
    let save = tx
        .prepare_cached(
            "INSERT INTO idempotency
               (environment_id, integration_id, key, body_hash, status, response, created_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::int4[],
               $6::bytea[], $7::timestamptz[])
             ON CONFLICT (environment_id, integration_id, key) DO UPDATE SET
               body_hash = EXCLUDED.body_hash, status = EXCLUDED.status,
               response = EXCLUDED.response, created_at = EXCLUDED.created_at",
        )
        .await?;
    let environment_id: Vec<&str> = records.keys().map(|k| k.0).collect();
    let integration_id: Vec<&str> = records.keys().map(|k| k.1).collect();
    let key: Vec<&str> = records.keys().map(|k| k.2).collect();
    let body_hash: Vec<&[u8]> = records
        .values()
        .map(|(_, r)| r.body_hash.as_slice())
        .collect();
    let status: Vec<i32> = records.values().map(|(_, r)| i32::from(r.status)).collect();
    let response: Vec<&[u8]> = records
        .values()
        .map(|(_, r)| r.response.as_slice())
        .collect();
    let created_at: Vec<DateTime<Utc>> = records.values().map(|(i, _)| i.received_at).collect();
    tx.execute(
        &save,
        &[
            &environment_id,
            &integration_id,
            &key,
            &body_hash,
            &status,
            &response,
            &created_at,
        ],
    )
    .await?;
    Ok(())
}
