//! The suppression list on PostgreSQL: folded inside each group's transaction. A group inserts
//! a recipient's facts, then locks its row (`FOR UPDATE`, recipients in sorted order) and reads
//! every fact after taking the lock, so the last of two concurrent groups sees both groups'
//! facts and the entry is the same whichever commits first.

use chrono::{DateTime, Utc};
use tidings_core::Channel;
use tidings_core::suppression::{Kind, Policy};
use tokio_postgres::Row;

use super::PgStore;
use crate::Result;
use crate::suppressions::{
    HISTORY_MAX, ManualRecord, Record, StoredFact, Suppression, SuppressionPage, SuppressionQuery,
    Touches, derive, key, micros, parse_channel, parse_kind, parse_reason, reason_name,
};

/// Migration: the suppression list (see `crate::suppressions`). Recipients sort in byte order
/// (`COLLATE "C"`) as on SQLite, so list cursors mean the same on both.
pub(super) const MIGRATION: &str = "CREATE TABLE suppression_records (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        environment_id TEXT NOT NULL,
        recipient TEXT COLLATE \"C\" NOT NULL,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        source TEXT,
        event_seq BIGINT,
        integration_id TEXT,
        provider TEXT,
        provider_event TEXT,
        message_id TEXT,
        code TEXT,
        response TEXT,
        note TEXT,
        recorded_at TIMESTAMPTZ NOT NULL,
        UNIQUE (environment_id, source)
    );
    CREATE INDEX suppression_records_by_recipient
        ON suppression_records (environment_id, recipient, seq);
    CREATE TABLE suppressions (
        environment_id TEXT NOT NULL,
        recipient TEXT COLLATE \"C\" NOT NULL,
        channel TEXT NOT NULL,
        delivered_at TIMESTAMPTZ,
        reason TEXT,
        cause_seq BIGINT,
        first_at TIMESTAMPTZ,
        last_at TIMESTAMPTZ,
        expires_at TIMESTAMPTZ,
        temporary_failures INTEGER NOT NULL DEFAULT 0,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (environment_id, recipient)
    );";

const RECORD_COLUMNS: &str = "r.seq, r.kind, r.at, r.event_seq, r.integration_id, r.provider, \
     r.provider_event, r.message_id, r.code, r.response, r.note";

fn entry_sql(filter: &str) -> String {
    format!(
        "SELECT s.recipient, s.channel, s.reason, s.first_at, s.last_at, s.expires_at,
                s.temporary_failures, s.updated_at, {RECORD_COLUMNS}
         FROM suppressions s JOIN suppression_records r ON r.seq = s.cause_seq
         WHERE s.environment_id = $1 AND s.reason IS NOT NULL
           AND (s.expires_at IS NULL OR s.expires_at > $2) AND {filter}"
    )
}

fn record(row: &Row, at: usize) -> Result<Record> {
    Ok(Record {
        position: row.try_get(at)?,
        kind: parse_kind(row.try_get(at + 1)?)?,
        at: row.try_get(at + 2)?,
        event_seq: row.try_get(at + 3)?,
        integration: row.try_get(at + 4)?,
        provider: row.try_get(at + 5)?,
        provider_event: row.try_get(at + 6)?,
        message_id: row.try_get(at + 7)?,
        code: row.try_get(at + 8)?,
        response: row.try_get(at + 9)?,
        note: row.try_get(at + 10)?,
    })
}

fn entry(row: &Row) -> Result<Suppression> {
    Ok(Suppression {
        recipient: row.try_get(0)?,
        channel: parse_channel(row.try_get(1)?)?,
        reason: parse_reason(row.try_get(2)?)?,
        first_at: row.try_get(3)?,
        last_at: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        temporary_failures: u32::try_from(row.try_get::<_, i32>(6)?).unwrap_or(0),
        updated_at: row.try_get(7)?,
        cause: record(row, 8)?,
    })
}

/// Writes a group's facts and refolds every recipient they touch, in the group's transaction,
/// in five statements whatever the number of recipients: the records, the missing entries, the
/// entries locked in recipient order, their records read after the lock, the changed entries.
pub(super) async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    touches: &Touches,
    policy: &Policy,
) -> std::result::Result<(), tokio_postgres::Error> {
    if touches.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut records = RecordColumns::default();
    let (mut new_envs, mut new_recipients, mut new_channels) = (Vec::new(), Vec::new(), Vec::new());
    for ((environment_id, recipient), touch) in touches {
        if touch.facts.is_empty() {
            continue;
        }
        new_envs.push(environment_id.as_str());
        new_recipients.push(recipient.as_str());
        new_channels.push(touch.channel.as_str());
        for fact in &touch.facts {
            records.push(environment_id, recipient, touch.channel, fact);
        }
    }
    if !new_envs.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO suppression_records (environment_id, recipient, channel, kind, at,
                   source, event_seq, integration_id, provider, provider_event, message_id, code,
                   response, recorded_at)
                 SELECT u.*, $14::timestamptz FROM unnest($1::text[], $2::text[], $3::text[],
                   $4::text[], $5::timestamptz[], $6::text[], $7::int8[], $8::text[], $9::text[],
                   $10::text[], $11::text[], $12::text[], $13::text[]) AS u
                 ON CONFLICT (environment_id, source) DO NOTHING",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &records.environment_id,
                &records.recipient,
                &records.channel,
                &records.kind,
                &records.at,
                &records.source,
                &records.event_seq,
                &records.integration_id,
                &records.provider,
                &records.provider_event,
                &records.message_id,
                &records.code,
                &records.response,
                &now,
            ],
        )
        .await?;
        // In one order for every group, so two groups never wait on each other in a cycle.
        let create = tx
            .prepare_cached(
                "INSERT INTO suppressions (environment_id, recipient, channel, updated_at)
                 SELECT e, r, c, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(e, r, c)
                 ORDER BY e COLLATE \"C\", r COLLATE \"C\"
                 ON CONFLICT (environment_id, recipient) DO NOTHING",
            )
            .await?;
        tx.execute(&create, &[&new_envs, &new_recipients, &new_channels, &now])
            .await?;
    }
    let envs: Vec<&str> = touches.keys().map(|(e, _)| e.as_str()).collect();
    let recipients: Vec<&str> = touches.keys().map(|(_, r)| r.as_str()).collect();
    let lock = tx
        .prepare_cached(
            "SELECT s.environment_id, s.recipient, s.channel, s.delivered_at, s.reason,
                    s.cause_seq, s.expires_at, s.temporary_failures
             FROM suppressions s
             JOIN unnest($1::text[], $2::text[]) AS u(e, r)
               ON s.environment_id = u.e AND s.recipient = u.r
             ORDER BY s.environment_id COLLATE \"C\", s.recipient COLLATE \"C\"
             FOR UPDATE OF s",
        )
        .await?;
    let locked = tx.query(&lock, &[&envs, &recipients]).await?;
    if locked.is_empty() {
        return Ok(());
    }
    // Read after the lock: every record committed before it is visible (READ COMMITTED).
    let read = tx
        .prepare_cached(
            "SELECT r.environment_id, r.recipient, r.seq, r.kind, r.at, r.source,
                    r.integration_id, r.message_id
             FROM suppression_records r
             JOIN unnest($1::text[], $2::text[]) AS u(e, rc)
               ON r.environment_id = u.e AND r.recipient = u.rc",
        )
        .await?;
    let mut facts: std::collections::BTreeMap<(String, String), Vec<StoredFact>> =
        std::collections::BTreeMap::new();
    for row in tx.query(&read, &[&envs, &recipients]).await? {
        let seq: i64 = row.try_get(2)?;
        // Kinds are only ever written by this code; an unknown one (a newer release's) is
        // left out of the fold rather than failing the whole group.
        let Some(kind) = Kind::from_name(row.try_get(3)?) else {
            tracing::warn!(seq, "Unknown suppression record kind; skipped.");
            continue;
        };
        facts
            .entry((row.try_get(0)?, row.try_get(1)?))
            .or_default()
            .push(StoredFact {
                seq,
                kind,
                at: row.try_get(4)?,
                key: key(seq, kind, row.try_get(5)?, row.try_get(6)?, row.try_get(7)?),
            });
    }
    let mut changes = EntryColumns::default();
    for row in &locked {
        let id: (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let Some(touch) = touches.get(&id) else {
            continue;
        };
        let channel = parse_channel(row.try_get(2)?).unwrap_or(touch.channel);
        let stored_delivered: Option<DateTime<Utc>> = row.try_get(3)?;
        let delivered_at = stored_delivered.max(touch.delivered_at.map(micros));
        let before = (
            row.try_get::<_, Option<String>>(4)?,
            row.try_get::<_, Option<i64>>(5)?,
            row.try_get::<_, Option<DateTime<Utc>>>(6)?,
            row.try_get::<_, i32>(7)?,
        );
        let mine = facts.get(&id).map(Vec::as_slice).unwrap_or_default();
        let derived = derive(mine, delivered_at, channel, policy);
        let verdict = derived.verdict.as_ref();
        let reason = reason_name(&derived.verdict);
        let expires = verdict.and_then(|v| v.expires_at);
        let count = i32::try_from(verdict.map_or(0, |v| v.temporary_failures)).unwrap_or(i32::MAX);
        let changed = (before.0.as_deref(), before.1, before.2, before.3)
            != (reason, derived.cause_seq, expires, count);
        if !changed && delivered_at == stored_delivered {
            continue;
        }
        changes.environment_id.push(id.0);
        changes.recipient.push(id.1);
        changes.delivered_at.push(delivered_at);
        changes.reason.push(reason.map(str::to_owned));
        changes.cause_seq.push(derived.cause_seq);
        changes.first_at.push(verdict.map(|v| v.first_at));
        changes.last_at.push(verdict.map(|v| v.last_at));
        changes.expires_at.push(expires);
        changes.temporary_failures.push(count);
        changes.changed.push(changed);
    }
    if changes.environment_id.is_empty() {
        return Ok(());
    }
    let update = tx
        .prepare_cached(
            "UPDATE suppressions s SET delivered_at = u.d, reason = u.reason,
               cause_seq = u.cause, first_at = u.first_at, last_at = u.last_at,
               expires_at = u.expires_at, temporary_failures = u.count,
               updated_at = CASE WHEN u.changed THEN $11 ELSE s.updated_at END
             FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int8[],
                         $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::int4[],
                         $10::bool[])
               AS u(e, r, d, reason, cause, first_at, last_at, expires_at, count, changed)
             WHERE s.environment_id = u.e AND s.recipient = u.r",
        )
        .await?;
    tx.execute(
        &update,
        &[
            &changes.environment_id,
            &changes.recipient,
            &changes.delivered_at,
            &changes.reason,
            &changes.cause_seq,
            &changes.first_at,
            &changes.last_at,
            &changes.expires_at,
            &changes.temporary_failures,
            &changes.changed,
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// A group's new records, column by column, for one `unnest` insert.
#[derive(Default)]
struct RecordColumns<'a> {
    environment_id: Vec<&'a str>,
    recipient: Vec<&'a str>,
    channel: Vec<&'static str>,
    kind: Vec<&'static str>,
    at: Vec<DateTime<Utc>>,
    source: Vec<&'a str>,
    event_seq: Vec<i64>,
    integration_id: Vec<&'a str>,
    provider: Vec<&'a str>,
    provider_event: Vec<&'a str>,
    message_id: Vec<&'a str>,
    code: Vec<Option<&'a str>>,
    response: Vec<Option<&'a str>>,
}

impl<'a> RecordColumns<'a> {
    fn push(
        &mut self,
        environment_id: &'a str,
        recipient: &'a str,
        channel: Channel,
        fact: &'a crate::suppressions::NewFact,
    ) {
        self.environment_id.push(environment_id);
        self.recipient.push(recipient);
        self.channel.push(channel.as_str());
        self.kind.push(fact.kind.as_str());
        self.at.push(fact.at);
        self.source.push(&fact.source);
        self.event_seq.push(fact.event_seq);
        self.integration_id.push(&fact.integration_id);
        self.provider.push(&fact.provider);
        self.provider_event.push(&fact.provider_event);
        self.message_id.push(&fact.message_id);
        self.code.push(fact.code.as_deref());
        self.response.push(fact.response.as_deref());
    }
}

/// Entries to update, column by column.
#[derive(Default)]
struct EntryColumns {
    environment_id: Vec<String>,
    recipient: Vec<String>,
    delivered_at: Vec<Option<DateTime<Utc>>>,
    reason: Vec<Option<String>>,
    cause_seq: Vec<Option<i64>>,
    first_at: Vec<Option<DateTime<Utc>>>,
    last_at: Vec<Option<DateTime<Utc>>>,
    expires_at: Vec<Option<DateTime<Utc>>>,
    temporary_failures: Vec<i32>,
    changed: Vec<bool>,
}

/// Recomputes one recipient's entry from its stored facts, holding its row lock. Creates the row
/// when `create`; otherwise a recipient without a row is left alone.
#[allow(clippy::too_many_arguments)]
async fn refold(
    tx: &deadpool_postgres::Transaction<'_>,
    environment_id: &str,
    recipient: &str,
    channel: Channel,
    delivered: Option<DateTime<Utc>>,
    create: bool,
    policy: &Policy,
    now: DateTime<Utc>,
) -> std::result::Result<(), tokio_postgres::Error> {
    if create {
        tx.execute(
            "INSERT INTO suppressions (environment_id, recipient, channel, updated_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (environment_id, recipient) DO NOTHING",
            &[&environment_id, &recipient, &channel.as_str(), &now],
        )
        .await?;
    }
    let Some(row) = tx
        .query_opt(
            "SELECT channel, delivered_at, reason, cause_seq, expires_at, temporary_failures
             FROM suppressions WHERE environment_id = $1 AND recipient = $2 FOR UPDATE",
            &[&environment_id, &recipient],
        )
        .await?
    else {
        return Ok(());
    };
    let channel = parse_channel(row.try_get(0)?).unwrap_or(channel);
    let stored_delivered: Option<DateTime<Utc>> = row.try_get(1)?;
    let before: (Option<String>, Option<i64>, Option<DateTime<Utc>>, i32) = (
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
    );
    let delivered_at = stored_delivered.max(delivered.map(micros));
    let mut facts = Vec::new();
    for row in tx
        .query(
            "SELECT seq, kind, at, source, integration_id, message_id FROM suppression_records
             WHERE environment_id = $1 AND recipient = $2",
            &[&environment_id, &recipient],
        )
        .await?
    {
        let seq: i64 = row.try_get(0)?;
        // Kinds are only ever written by this code; an unknown one (a newer release's) is
        // left out of the fold rather than failing the whole group.
        let Some(kind) = Kind::from_name(row.try_get(1)?) else {
            tracing::warn!(seq, "Unknown suppression record kind; skipped.");
            continue;
        };
        facts.push(StoredFact {
            seq,
            kind,
            at: row.try_get(2)?,
            key: key(seq, kind, row.try_get(3)?, row.try_get(4)?, row.try_get(5)?),
        });
    }
    let derived = derive(&facts, delivered_at, channel, policy);
    let verdict = derived.verdict.as_ref();
    let reason = reason_name(&derived.verdict);
    let expires = verdict.and_then(|v| v.expires_at);
    let count = i32::try_from(verdict.map_or(0, |v| v.temporary_failures)).unwrap_or(i32::MAX);
    let changed = (before.0.as_deref(), before.1, before.2, before.3)
        != (reason, derived.cause_seq, expires, count);
    tx.execute(
        "UPDATE suppressions SET delivered_at = $3, reason = $4, cause_seq = $5, first_at = $6,
           last_at = $7, expires_at = $8, temporary_failures = $9,
           updated_at = CASE WHEN $10 THEN $11 ELSE updated_at END
         WHERE environment_id = $1 AND recipient = $2",
        &[
            &environment_id,
            &recipient,
            &delivered_at,
            &reason,
            &derived.cause_seq,
            &verdict.map(|v| v.first_at),
            &verdict.map(|v| v.last_at),
            &expires,
            &count,
            &changed,
            &now,
        ],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// Writes a manual record (add, remove, import) and refolds the recipient, in one
    /// transaction.
    pub async fn record_suppression(&self, manual: &ManualRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = Utc::now();
        tx.execute(
            "INSERT INTO suppression_records (environment_id, recipient, channel, kind, at, note,
               recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &manual.environment_id,
                &manual.recipient,
                &manual.channel.as_str(),
                &manual.kind.as_str(),
                &micros(manual.at),
                &manual.note,
                &now,
            ],
        )
        .await?;
        refold(
            &tx,
            &manual.environment_id,
            &manual.recipient,
            manual.channel,
            None,
            manual.kind != Kind::Removed,
            &self.suppression_settings.policy,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The recipient's suppression in force at `now`, if any.
    pub async fn suppression(
        &self,
        environment_id: &str,
        recipient: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Suppression>> {
        let client = self.reader().await?;
        let stmt = client
            .prepare_cached(&entry_sql("s.recipient = $3"))
            .await?;
        client
            .query_opt(&stmt, &[&environment_id, &now, &recipient])
            .await?
            .as_ref()
            .map(entry)
            .transpose()
    }

    /// A page of suppressions in force at `query.now`, by recipient.
    pub async fn suppressions(&self, query: &SuppressionQuery) -> Result<SuppressionPage> {
        let client = self.reader().await?;
        let stmt = client
            .prepare_cached(&format!(
                "{} ORDER BY s.recipient LIMIT $7",
                entry_sql(
                    "($3::text IS NULL OR s.recipient > $3) AND ($4::text IS NULL OR s.reason = $4)
                     AND ($5::text IS NULL OR s.channel = $5)
                     AND ($6::timestamptz IS NULL OR s.first_at >= $6)"
                )
            ))
            .await?;
        let limit = query.limit.max(1);
        let rows = client
            .query(
                &stmt,
                &[
                    &query.environment_id,
                    &query.now,
                    &query.after,
                    &query.reason.map(|r| r.as_str()),
                    &query.channel.map(|c| c.as_str()),
                    &query.since,
                    &((limit + 1) as i64),
                ],
            )
            .await?;
        let mut data = rows.iter().map(entry).collect::<Result<Vec<_>>>()?;
        let next = if data.len() > limit {
            data.truncate(limit);
            data.last().map(|s| s.recipient.clone())
        } else {
            None
        };
        Ok(SuppressionPage { data, next })
    }

    /// A recipient's records, newest first (at most [`HISTORY_MAX`]).
    pub async fn suppression_history(
        &self,
        environment_id: &str,
        recipient: &str,
    ) -> Result<Vec<Record>> {
        let client = self.reader().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM suppression_records r
                     WHERE r.environment_id = $1 AND r.recipient = $2
                     ORDER BY r.seq DESC LIMIT $3"
                ),
                &[&environment_id, &recipient, &(HISTORY_MAX as i64)],
            )
            .await?;
        rows.iter().map(|row| record(row, 0)).collect()
    }
}
