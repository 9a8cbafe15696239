//! The suppression list on SQLite: folded by the writer inside each group's transaction; manual
//! records written on the maintenance connection in their own immediate transaction.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tidings_core::Channel;
use tidings_core::suppression::{Kind, Policy};

use super::{SqliteStore, format_time, parse_time};
use crate::suppressions::{
    HISTORY_MAX, ManualRecord, Record, StoredFact, Suppression, SuppressionPage, SuppressionQuery,
    Touches, derive, key, micros, parse_channel, parse_kind, parse_reason, reason_name,
};
use crate::{Error, Result};

/// Migration: the suppression list (see `crate::suppressions`). `suppression_records`: one row
/// per causing event (unique by its dedup key) or manual record; `suppressions`: one row per
/// recipient with a record, holding its latest delivery and the derived entry.
pub(super) const MIGRATION: &str = "CREATE TABLE suppression_records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        environment_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        source TEXT,
        event_seq INTEGER,
        integration_id TEXT,
        provider TEXT,
        provider_event TEXT,
        message_id TEXT,
        code TEXT,
        response TEXT,
        note TEXT,
        recorded_at TEXT NOT NULL,
        UNIQUE (environment_id, source)
    );
    CREATE INDEX suppression_records_by_recipient
        ON suppression_records (environment_id, recipient, seq);
    CREATE TABLE suppressions (
        environment_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        delivered_at TEXT,
        reason TEXT,
        cause_seq INTEGER,
        first_at TEXT,
        last_at TEXT,
        expires_at TEXT,
        temporary_failures INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (environment_id, recipient)
    ) WITHOUT ROWID;";

const RECORD_COLUMNS: &str = "r.seq, r.kind, r.at, r.event_seq, r.integration_id, r.provider, \
     r.provider_event, r.message_id, r.code, r.response, r.note";

fn entry_sql(filter: &str) -> String {
    format!(
        "SELECT s.recipient, s.channel, s.reason, s.first_at, s.last_at, s.expires_at,
                s.temporary_failures, s.updated_at, {RECORD_COLUMNS}
         FROM suppressions s JOIN suppression_records r ON r.seq = s.cause_seq
         WHERE s.environment_id = ?1 AND s.reason IS NOT NULL
           AND (s.expires_at IS NULL OR s.expires_at > ?2) AND {filter}"
    )
}

fn record(row: &rusqlite::Row<'_>, at: usize) -> Result<Record> {
    Ok(Record {
        position: row.get(at)?,
        kind: parse_kind(&row.get::<_, String>(at + 1)?)?,
        at: parse_time(&row.get::<_, String>(at + 2)?)?,
        event_seq: row.get(at + 3)?,
        integration: row.get(at + 4)?,
        provider: row.get(at + 5)?,
        provider_event: row.get(at + 6)?,
        message_id: row.get(at + 7)?,
        code: row.get(at + 8)?,
        response: row.get(at + 9)?,
        note: row.get(at + 10)?,
    })
}

fn entry(row: &rusqlite::Row<'_>) -> Result<Suppression> {
    let time = |i: usize| -> Result<DateTime<Utc>> { parse_time(&row.get::<_, String>(i)?) };
    Ok(Suppression {
        recipient: row.get(0)?,
        channel: parse_channel(&row.get::<_, String>(1)?)?,
        reason: parse_reason(&row.get::<_, String>(2)?)?,
        first_at: time(3)?,
        last_at: time(4)?,
        expires_at: row
            .get::<_, Option<String>>(5)?
            .map(|t| parse_time(&t))
            .transpose()?,
        temporary_failures: u32::try_from(row.get::<_, i64>(6)?).unwrap_or(u32::MAX),
        updated_at: time(7)?,
        cause: record(row, 8)?,
    })
}

/// Writes a group's facts and refolds every recipient they touch, in the group's transaction.
pub(super) fn apply(conn: &Connection, touches: &Touches, policy: &Policy) -> Result<()> {
    if touches.is_empty() {
        return Ok(());
    }
    let now = format_time(&Utc::now());
    let mut insert = conn.prepare_cached(
        "INSERT INTO suppression_records (environment_id, recipient, channel, kind, at, source,
           event_seq, integration_id, provider, provider_event, message_id, code, response,
           recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (environment_id, source) DO NOTHING",
    )?;
    for ((environment_id, recipient), touch) in touches {
        for fact in &touch.facts {
            insert.execute(params![
                environment_id,
                recipient,
                touch.channel.as_str(),
                fact.kind.as_str(),
                format_time(&fact.at),
                fact.source,
                fact.event_seq,
                fact.integration_id,
                fact.provider,
                fact.provider_event,
                fact.message_id,
                fact.code,
                fact.response,
                now,
            ])?;
        }
        refold(
            conn,
            environment_id,
            recipient,
            touch.channel,
            touch.delivered_at,
            !touch.facts.is_empty(),
            policy,
            &now,
        )?;
    }
    Ok(())
}

/// Recomputes one recipient's entry from its stored facts. Creates the row when `create`;
/// otherwise a recipient without a row is left alone (a delivery to someone never suppressed).
#[allow(clippy::too_many_arguments)]
fn refold(
    conn: &Connection,
    environment_id: &str,
    recipient: &str,
    channel: Channel,
    delivered: Option<DateTime<Utc>>,
    create: bool,
    policy: &Policy,
    now: &str,
) -> Result<()> {
    type Stored = (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
        i64,
    );
    let existing: Option<Stored> = conn
        .prepare_cached(
            "SELECT channel, delivered_at, reason, cause_seq, expires_at, temporary_failures
             FROM suppressions WHERE environment_id = ?1 AND recipient = ?2",
        )?
        .query_row(params![environment_id, recipient], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    let (channel, stored_delivered, before) = match existing {
        Some((channel, delivered_at, reason, cause, expires, count)) => (
            parse_channel(&channel)?,
            delivered_at.map(|t| parse_time(&t)).transpose()?,
            Some((reason, cause, expires, count)),
        ),
        None if create => {
            conn.prepare_cached(
                "INSERT INTO suppressions (environment_id, recipient, channel, updated_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![environment_id, recipient, channel.as_str(), now])?;
            (channel, None, None)
        }
        None => return Ok(()),
    };
    let delivered_at = stored_delivered.max(delivered.map(micros));
    let mut facts = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, at, source, integration_id, message_id FROM suppression_records
             WHERE environment_id = ?1 AND recipient = ?2",
        )?;
        let mut rows = stmt.query(params![environment_id, recipient])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let kind = parse_kind(&row.get::<_, String>(1)?)?;
            facts.push(StoredFact {
                seq,
                kind,
                at: parse_time(&row.get::<_, String>(2)?)?,
                key: key(seq, kind, row.get(3)?, row.get(4)?, row.get(5)?),
            });
        }
    }
    let derived = derive(&facts, delivered_at, channel, policy);
    let verdict = derived.verdict.as_ref();
    let reason = reason_name(&derived.verdict);
    let expires = verdict.and_then(|v| v.expires_at).map(|t| format_time(&t));
    let count = i64::from(verdict.map_or(0, |v| v.temporary_failures));
    let changed = before.as_ref().is_none_or(|(r, c, e, n)| {
        (r.as_deref(), *c, e.as_deref(), *n)
            != (reason, derived.cause_seq, expires.as_deref(), count)
    });
    conn.prepare_cached(
        "UPDATE suppressions SET delivered_at = ?3, reason = ?4, cause_seq = ?5, first_at = ?6,
           last_at = ?7, expires_at = ?8, temporary_failures = ?9,
           updated_at = CASE WHEN ?10 THEN ?11 ELSE updated_at END
         WHERE environment_id = ?1 AND recipient = ?2",
    )?
    .execute(params![
        environment_id,
        recipient,
        delivered_at.map(|t| format_time(&t)),
        reason,
        derived.cause_seq,
        verdict.map(|v| format_time(&v.first_at)),
        verdict.map(|v| format_time(&v.last_at)),
        expires,
        count,
        changed,
        now,
    ])?;
    Ok(())
}

impl SqliteStore {
    /// Writes a manual record (add, remove, import) and refolds the recipient, on the
    /// maintenance connection: SQLite serializes it with the writer's groups.
    pub fn record_suppression(&self, manual: &ManualRecord) -> Result<()> {
        let mut conn = self.pruner.lock().map_err(|_| Error::Unavailable)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = format_time(&Utc::now());
        tx.prepare_cached(
            "INSERT INTO suppression_records (environment_id, recipient, channel, kind, at, note,
               recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            manual.environment_id,
            manual.recipient,
            manual.channel.as_str(),
            manual.kind.as_str(),
            format_time(&micros(manual.at)),
            manual.note,
            now,
        ])?;
        refold(
            &tx,
            &manual.environment_id,
            &manual.recipient,
            manual.channel,
            None,
            manual.kind != Kind::Removed,
            &self.suppression_settings.policy,
            &now,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The recipient's suppression in force at `now`, if any.
    pub fn suppression(
        &self,
        environment_id: &str,
        recipient: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Suppression>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&entry_sql("s.recipient = ?3"))?;
            let mut rows = stmt.query(params![environment_id, format_time(&now), recipient])?;
            rows.next()?.map(entry).transpose()
        })
    }

    /// A page of suppressions in force at `query.now`, by recipient.
    pub fn suppressions(&self, query: &SuppressionQuery) -> Result<SuppressionPage> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{} ORDER BY s.recipient LIMIT ?7",
                entry_sql(
                    "(?3 IS NULL OR s.recipient > ?3) AND (?4 IS NULL OR s.reason = ?4)
                     AND (?5 IS NULL OR s.channel = ?5) AND (?6 IS NULL OR s.first_at >= ?6)"
                )
            ))?;
            let limit = query.limit.max(1);
            let mut rows = stmt.query(params![
                query.environment_id,
                format_time(&query.now),
                query.after,
                query.reason.map(|r| r.as_str()),
                query.channel.map(|c| c.as_str()),
                query.since.map(|t| format_time(&t)),
                (limit + 1) as i64,
            ])?;
            let mut data = Vec::new();
            while let Some(row) = rows.next()? {
                data.push(entry(row)?);
            }
            let next = if data.len() > limit {
                data.truncate(limit);
                data.last().map(|s| s.recipient.clone())
            } else {
                None
            };
            Ok(SuppressionPage { data, next })
        })
    }

    /// A recipient's records, newest first (at most [`HISTORY_MAX`]).
    pub fn suppression_history(
        &self,
        environment_id: &str,
        recipient: &str,
    ) -> Result<Vec<Record>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM suppression_records r
                 WHERE r.environment_id = ?1 AND r.recipient = ?2 ORDER BY r.seq DESC LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![environment_id, recipient, HISTORY_MAX as i64])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(record(row, 0)?);
            }
            Ok(out)
        })
    }
}
