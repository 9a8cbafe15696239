//! Re-parse on PostgreSQL: pages of raw requests, and one request's events applied in one
//! transaction. The messages it folds again are locked first, so an instance ingesting into
//! one of them meanwhile merges its event into the new state instead of losing it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use tidings_core::Event;
use tidings_core::fold::{Fact, MessageState};

use super::commit::{EventColumns, EventRequest, MessageKey, Touched, draw_seqs, save_messages};
use super::{PgStore, row_sql};
use crate::layout;
use crate::reparse::{RawRequestFilter, ReparseOutcome, Reparsed, StoredRequest};
use crate::{Error, Result};

impl PgStore {
    /// Up to `limit` raw requests after `after` (a request `seq`), oldest first.
    pub async fn raw_requests(
        &self,
        filter: &RawRequestFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredRequest>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, environment_id, integration_id, provider, received_at, content_type,
                   headers, body, method, url, authentication
                 FROM raw_requests
                 WHERE seq > $1 AND ($2::text IS NULL OR environment_id = $2)
                   AND ($3::text IS NULL OR integration_id = $3)
                   AND ($4::timestamptz IS NULL OR received_at >= $4)
                 ORDER BY seq LIMIT $5",
                &[
                    &after,
                    &filter.environment_id,
                    &filter.integration_id,
                    &filter.since,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredRequest {
                    seq: row.try_get(0)?,
                    environment_id: row.try_get(1)?,
                    integration_id: row.try_get(2)?,
                    provider: row.try_get(3)?,
                    received_at: row.try_get(4)?,
                    content_type: row.try_get(5)?,
                    headers_json: row.try_get(6)?,
                    body: row.try_get(7)?,
                    method: row.try_get(8)?,
                    url: row.try_get(9)?,
                    authentication: row.try_get(10)?,
                })
            })
            .collect()
    }

    /// Applies one request's re-parsed events (see [`crate::reparse`]); with `dry_run` the
    /// transaction is rolled back and the outcome says what it would have done.
    pub async fn supersede(&self, reparsed: &Reparsed, dry_run: bool) -> Result<ReparseOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut outcome = ReparseOutcome::default();
        let mut messages: BTreeSet<(String, String)> = BTreeSet::new();
        // The body the new rows point into (see `layout.rs`).
        let body: Vec<u8> = tx
            .query_opt(
                "SELECT body FROM raw_requests WHERE seq = $1",
                &[&reparsed.request_seq],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or_default();
        let mut from = 0;
        for event in &reparsed.events {
            let layout = layout::event_row(event, &body, &reparsed.received_at, &mut from);
            let json = serde_json::to_string(event).map_err(|e| Error::Corrupt(e.to_string()))?;
            // Under its dedup time, or, when today's parser reads another time for the same
            // key, among its message's events.
            let select = |filter: &str| {
                format!(
                    "SELECT seq, integration_id, message_id, event, duplicates, {} FROM events
                     WHERE environment_id = $1 AND {filter} AND dedup_key = $3 FOR UPDATE",
                    row_sql!()
                )
            };
            let stored = match tx
                .query_opt(
                    &select("dedup_time = $2"),
                    &[
                        &reparsed.environment_id,
                        &layout.dedup_time,
                        &event.dedup_key,
                    ],
                )
                .await?
            {
                Some(row) => Some(row),
                None => {
                    tx.query_opt(
                        &select("message_id = $2"),
                        &[&reparsed.environment_id, &event.id, &event.dedup_key],
                    )
                    .await?
                }
            };
            let stored = match stored {
                Some(row) => {
                    let old = layout::read_event(row.try_get(3)?, row.try_get(5)?)?;
                    let old_json =
                        serde_json::to_string(&old).map_err(|e| Error::Corrupt(e.to_string()))?;
                    Some((row, old, old_json))
                }
                None => None,
            };
            let duplicates: i64 = match stored {
                // Unchanged, or first stored through another integration of the environment
                // (the same webhook configured twice): that one keeps it.
                Some((row, _, old_json))
                    if old_json == json
                        || row.try_get::<_, &str>(1)? != reparsed.integration_id =>
                {
                    outcome.unchanged += 1;
                    continue;
                }
                Some((row, old, _)) => {
                    let seq: i64 = row.try_get(0)?;
                    tx.execute("DELETE FROM events WHERE seq = $1", &[&seq])
                        .await?;
                    outcome.replaced.push((old.body.status, event.body.status));
                    messages.insert((row.try_get(1)?, row.try_get(2)?));
                    row.try_get(4)?
                }
                None => {
                    outcome.added.push(event.body.status);
                    0
                }
            };
            let (_, seqs) = draw_seqs(&tx, 0, 1).await?;
            let request = EventRequest {
                environment_id: &reparsed.environment_id,
                integration_id: &reparsed.integration_id,
                provider: &reparsed.provider,
                request_seq: reparsed.request_seq,
                received_at: reparsed.received_at,
                authentication: reparsed.authentication.as_deref(),
            };
            let mut row = EventColumns::default();
            row.push(
                seqs.first().copied().unwrap_or_default(),
                &request,
                event,
                layout,
                duplicates,
            );
            // Nothing else holds this key: it was looked up (and deleted) above, locked.
            if row.insert(&tx).await?.is_empty() {
                return Err(Error::Corrupt(format!(
                    "re-parse: event `{}` of request {} collides with a stored event",
                    event.dedup_key, reparsed.request_seq
                )));
            }
            messages.insert((reparsed.integration_id.clone(), event.id.clone()));
        }
        let now = Utc::now();
        for (integration_id, message_id) in &messages {
            let key = (
                reparsed.environment_id.as_str(),
                integration_id.as_str(),
                message_id.as_str(),
            );
            refold(&tx, key, &now).await?;
        }
        outcome.refolded = messages.len();
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(outcome)
    }
}

/// Folds a message again from all of its stored events, replacing its row; a message left
/// without events goes.
async fn refold(
    tx: &deadpool_postgres::Transaction<'_>,
    key: MessageKey<'_>,
    now: &DateTime<Utc>,
) -> Result<()> {
    let (environment_id, integration_id, message_id) = key;
    // Taken first: an instance folding an event into this message waits, then merges into the
    // state written here.
    tx.execute(
        "SELECT 1 FROM messages
         WHERE environment_id = $1 AND integration_id = $2 AND message_id = $3 FOR UPDATE",
        &[&environment_id, &integration_id, &message_id],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT seq, provider, event FROM events
             WHERE environment_id = $1 AND integration_id = $2 AND message_id = $3
             ORDER BY seq",
            &[&environment_id, &integration_id, &message_id],
        )
        .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let event: Event = serde_json::from_str(row.try_get::<_, &str>(2)?)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        events.push((row.try_get::<_, i64>(0)?, row.try_get::<_, &str>(1)?, event));
    }
    tx.execute(
        "DELETE FROM messages
         WHERE environment_id = $1 AND integration_id = $2 AND message_id = $3",
        &[&environment_id, &integration_id, &message_id],
    )
    .await?;
    let Some(state) = MessageState::fold(events.iter().map(|(_, _, e)| Fact::from(e))) else {
        return Ok(());
    };
    let (changed_seq, provider) = events
        .last()
        .map(|(seq, provider, _)| (*seq, *provider))
        .unwrap_or_default();
    let external_id = events
        .iter()
        .rev()
        .find_map(|(_, _, e)| e.body.external_id.as_deref());
    let touched = Touched {
        provider,
        external_id,
        state,
        events: i64::try_from(events.len()).unwrap_or(i64::MAX),
        changed_seq,
    };
    save_messages(tx, &BTreeMap::from([(key, touched)]), now).await?;
    Ok(())
}
