//! Re-parse on SQLite: pages of raw requests, and one request's events applied in one
//! transaction on the maintenance connection (SQLite serializes it with the writer's groups).

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, Transaction, params};
use tidings_core::Event;
use tidings_core::fold::{Fact, MessageState};

use super::{SAVE_MESSAGE, SqliteStore, format_time, parse_time, row_sql};
use crate::layout;
use crate::reparse::{RawRequestFilter, ReparseOutcome, Reparsed, StoredRequest};
use crate::{Error, Result};

impl SqliteStore {
    /// Up to `limit` raw requests after `after` (a request `seq`), oldest first.
    pub fn raw_requests(
        &self,
        filter: &RawRequestFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredRequest>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT seq, environment_id, integration_id, provider, received_at, content_type,
                   headers, body, method, url, authentication
                 FROM raw_requests
                 WHERE seq > ?1 AND (?2 IS NULL OR environment_id = ?2)
                   AND (?3 IS NULL OR integration_id = ?3) AND (?4 IS NULL OR received_at >= ?4)
                 ORDER BY seq LIMIT ?5",
            )?;
            let since = filter.since.as_ref().map(format_time);
            let mut rows = statement.query(params![
                after,
                filter.environment_id,
                filter.integration_id,
                since,
                i64::try_from(limit).unwrap_or(i64::MAX),
            ])?;
            let mut requests = Vec::new();
            while let Some(row) = rows.next()? {
                requests.push(StoredRequest {
                    seq: row.get(0)?,
                    environment_id: row.get(1)?,
                    integration_id: row.get(2)?,
                    provider: row.get(3)?,
                    received_at: parse_time(&row.get::<_, String>(4)?)?,
                    content_type: row.get(5)?,
                    headers_json: row.get(6)?,
                    body: row.get(7)?,
                    method: row.get(8)?,
                    url: row.get(9)?,
                    authentication: row.get(10)?,
                });
            }
            Ok(requests)
        })
    }

    /// Applies one request's re-parsed events (see [`crate::reparse`]); with `dry_run` the
    /// transaction is rolled back and the outcome says what it would have done.
    pub fn supersede(&self, reparsed: &Reparsed, dry_run: bool) -> Result<ReparseOutcome> {
        let mut conn = self.pruner.lock().map_err(|_| Error::Unavailable)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let outcome = apply(&tx, reparsed)?;
        if dry_run {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
        Ok(outcome)
    }
}

fn apply(tx: &Transaction<'_>, reparsed: &Reparsed) -> Result<ReparseOutcome> {
    let mut outcome = ReparseOutcome::default();
    // (integration, message id) of every message whose events changed.
    let mut messages: BTreeSet<(String, String)> = BTreeSet::new();
    let received_at = format_time(&reparsed.received_at);
    // The body the new rows point into (see `layout.rs`).
    let body: Vec<u8> = tx
        .prepare_cached("SELECT body FROM raw_requests WHERE seq = ?1")?
        .query_row(params![reparsed.request_seq], |row| row.get(0))
        .optional()?
        .unwrap_or_default();
    let mut from = 0;
    for event in &reparsed.events {
        let row = layout::event_row(event, &body, &reparsed.received_at, &mut from);
        let json = serde_json::to_string(event).map_err(|e| Error::Corrupt(e.to_string()))?;
        // Under its dedup time, or, when today's parser reads another time for the same key,
        // among its message's events.
        let lookup = |filter: &str, second: &dyn rusqlite::ToSql| {
            tx.prepare_cached(&format!(
                "SELECT seq, integration_id, message_id, event, duplicates, {} FROM events
                 WHERE environment_id = ?1 AND {filter} AND dedup_key = ?3",
                row_sql!()
            ))?
            .query_row(
                params![reparsed.environment_id, second, event.dedup_key],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, Option<String>>(5)?,
                    ))
                },
            )
            .optional()
        };
        let stored = match lookup("dedup_time = ?2", &row.dedup_time)? {
            Some(stored) => Some(stored),
            None => lookup("message_id = ?2", &event.id)?,
        };
        let duplicates = match stored {
            Some((seq, integration_id, message_id, old_json, duplicates, old_row)) => {
                let old = layout::read_event(&old_json, old_row)?;
                let old_json =
                    serde_json::to_string(&old).map_err(|e| Error::Corrupt(e.to_string()))?;
                // Unchanged, or first stored through another integration of the environment
                // (the same webhook configured twice): that one keeps it.
                if old_json == json || integration_id != reparsed.integration_id {
                    outcome.unchanged += 1;
                    continue;
                }
                tx.prepare_cached("DELETE FROM events WHERE seq = ?1")?
                    .execute(params![seq])?;
                outcome.replaced.push((old.body.status, event.body.status));
                messages.insert((integration_id, message_id));
                duplicates
            }
            None => {
                outcome.added.push(event.body.status);
                0
            }
        };
        tx.prepare_cached(
            "INSERT INTO events
               (environment_id, integration_id, provider, message_id, dedup_key, status, date,
                event, request_seq, received_at, duplicates, authentication, dedup_time, row_at,
                row_length, row_text)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?
        .execute(params![
            reparsed.environment_id,
            reparsed.integration_id,
            reparsed.provider,
            event.id,
            event.dedup_key,
            event.body.status.as_str(),
            format_time(&event.body.date),
            row.json,
            reparsed.request_seq,
            received_at,
            duplicates,
            reparsed.authentication,
            row.dedup_time,
            row.row_at,
            row.row_length,
            row.row_text,
        ])?;
        messages.insert((reparsed.integration_id.clone(), event.id.clone()));
    }
    for (integration_id, message_id) in &messages {
        refold(tx, &reparsed.environment_id, integration_id, message_id)?;
    }
    outcome.refolded = messages.len();
    Ok(outcome)
}

/// Folds a message again from all of its stored events; a message left without events goes.
fn refold(
    tx: &Transaction<'_>,
    environment_id: &str,
    integration_id: &str,
    message_id: &str,
) -> Result<()> {
    let mut statement = tx.prepare_cached(
        "SELECT seq, provider, event FROM events
         WHERE environment_id = ?1 AND integration_id = ?2 AND message_id = ?3 ORDER BY seq",
    )?;
    let mut rows = statement.query(params![environment_id, integration_id, message_id])?;
    let mut state: Option<MessageState> = None;
    let (mut count, mut changed_seq) = (0_i64, 0_i64);
    let (mut provider, mut external_id) = (String::new(), None);
    while let Some(row) = rows.next()? {
        let event: Event = serde_json::from_str(&row.get::<_, String>(2)?)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        let fact = Fact::from(&event);
        match &mut state {
            Some(state) => state.apply(fact),
            None => state = Some(MessageState::new(fact)),
        }
        count += 1;
        changed_seq = row.get(0)?;
        provider = row.get(1)?;
        if event.body.external_id.is_some() {
            external_id = event.body.external_id;
        }
    }
    let Some(state) = state else {
        tx.prepare_cached(
            "DELETE FROM messages
             WHERE environment_id = ?1 AND integration_id = ?2 AND message_id = ?3",
        )?
        .execute(params![environment_id, integration_id, message_id])?;
        return Ok(());
    };
    let json = serde_json::to_string(&state).map_err(|e| Error::Corrupt(e.to_string()))?;
    tx.prepare_cached(SAVE_MESSAGE)?.execute(params![
        environment_id,
        integration_id,
        message_id,
        external_id,
        provider,
        state.status.as_str(),
        json,
        count,
        format_time(&chrono::Utc::now()),
        changed_seq,
    ])?;
    Ok(())
}
