//! Outbound delivery progress on SQLite. Writes go through the pruner's connection (never the
//! ingest writer's), reads through the reader pool. One process owns a SQLite database, so the
//! leases are plain column updates.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{EVENT_COLUMNS, SqliteStore, format_time, parse_time, stored_event};
use crate::outbound::{
    DELIVERIES_MAX, DeliveryRow, EndpointProgress, FailedAttempt, Fence, HeadLease, Lag,
};
use crate::{Cursor, Error, Result, StoredEvent};

const DELIVERY_COLUMNS: &str = "endpoint_id, event_xid, event_seq, state, attempts, \
    next_attempt_at, last_attempt_at, last_status, last_answer, webhook_id, payload";

fn delivery_row(row: &rusqlite::Row<'_>) -> Result<DeliveryRow> {
    let state: String = row.get(3)?;
    let next: Option<String> = row.get(5)?;
    let last: String = row.get(6)?;
    let status: Option<i64> = row.get(7)?;
    let xid: i64 = row.get(1)?;
    Ok(DeliveryRow {
        endpoint_id: row.get(0)?,
        position: Cursor {
            xid: xid as u64,
            seq: row.get(2)?,
        },
        state: state.parse()?,
        attempts: row.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: next.as_deref().map(parse_time).transpose()?,
        last_attempt_at: parse_time(&last)?,
        last_status: status.and_then(|s| u16::try_from(s).ok()),
        last_answer: row.get(8)?,
        webhook_id: row.get(9)?,
        payload: row.get(10)?,
    })
}

fn time_opt(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_time).transpose()
}

/// Whether the head's lease is still at `epoch`.
fn epoch_holds(conn: &Connection, endpoint_id: &str, epoch: i64) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM outbound_endpoints WHERE endpoint_id = ?1 AND lease_epoch = ?2",
            params![endpoint_id, epoch],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

impl SqliteStore {
    fn outbound_write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.pruner.lock().map_err(|_| Error::Unavailable)?;
        f(&mut conn)
    }

    /// Records a configured endpoint, starting at `start` when it is new.
    pub fn outbound_register(
        &self,
        endpoint_id: &str,
        environment_id: &str,
        enabled: bool,
        start: Cursor,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.outbound_write(|conn| {
            conn.execute(
                "INSERT INTO outbound_endpoints
                   (endpoint_id, environment_id, enabled, cursor_xid, cursor_seq, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (endpoint_id) DO UPDATE
                   SET environment_id = excluded.environment_id, enabled = excluded.enabled",
                params![
                    endpoint_id,
                    environment_id,
                    enabled,
                    start.xid as i64,
                    start.seq,
                    format_time(&now)
                ],
            )?;
            Ok(())
        })
    }

    /// Takes the head of an endpoint when nobody holds it (or the holder's lease ran out).
    pub fn outbound_acquire(
        &self,
        endpoint_id: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<HeadLease>> {
        self.outbound_write(|conn| {
            let row = conn
                .query_row(
                    "UPDATE outbound_endpoints
                     SET lease_owner = ?2, lease_until = ?3, lease_epoch = lease_epoch + 1
                     WHERE endpoint_id = ?1
                       AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_until IS NULL
                            OR lease_until < ?4)
                     RETURNING lease_epoch, cursor_xid, cursor_seq",
                    params![endpoint_id, owner, format_time(&until), format_time(&now)],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, i64>(2)?,
                        ))
                    },
                )
                .optional()?;
            Ok(row.map(|(epoch, xid, seq)| HeadLease {
                epoch,
                cursor: Cursor {
                    xid: xid as u64,
                    seq,
                },
            }))
        })
    }

    /// Extends the head's lease; false when it was lost.
    pub fn outbound_renew(
        &self,
        endpoint_id: &str,
        owner: &str,
        epoch: i64,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        self.outbound_write(|conn| {
            Ok(conn.execute(
                "UPDATE outbound_endpoints SET lease_until = ?4
                 WHERE endpoint_id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
                params![endpoint_id, owner, epoch, format_time(&until)],
            )? == 1)
        })
    }

    /// Gives the head up (shutdown).
    pub fn outbound_release(&self, endpoint_id: &str, owner: &str, epoch: i64) -> Result<()> {
        self.outbound_write(|conn| {
            conn.execute(
                "UPDATE outbound_endpoints SET lease_owner = NULL, lease_until = NULL
                 WHERE endpoint_id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
                params![endpoint_id, owner, epoch],
            )?;
            Ok(())
        })
    }

    /// Moves the head's cursor forward over `delivered` successes; false when fenced off.
    pub fn outbound_advance(
        &self,
        endpoint_id: &str,
        epoch: i64,
        cursor: Cursor,
        delivered: i64,
        last_success_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        self.outbound_write(|conn| {
            Ok(conn.execute(
                "UPDATE outbound_endpoints
                 SET cursor_xid = ?3, cursor_seq = ?4, delivered = delivered + ?5,
                     last_success_at = COALESCE(?6, last_success_at)
                 WHERE endpoint_id = ?1 AND lease_epoch = ?2
                   AND (cursor_xid < ?3 OR (cursor_xid = ?3 AND cursor_seq <= ?4))",
                params![
                    endpoint_id,
                    epoch,
                    cursor.xid as i64,
                    cursor.seq,
                    delivered,
                    last_success_at.as_ref().map(format_time)
                ],
            )? == 1)
        })
    }

    /// Records a failed attempt (a new row, or the row's next state); false when fenced off.
    pub fn outbound_fail(
        &self,
        endpoint_id: &str,
        fence: &Fence,
        failed: &FailedAttempt,
    ) -> Result<bool> {
        self.outbound_write(|conn| {
            let tx = conn.transaction()?;
            let allowed = match fence {
                Fence::Epoch(epoch) => epoch_holds(&tx, endpoint_id, *epoch)?,
                Fence::Owner(owner) => tx
                    .query_row(
                        "SELECT 1 FROM outbound_deliveries
                         WHERE endpoint_id = ?1 AND event_seq = ?2 AND lease_owner = ?3",
                        params![endpoint_id, failed.position.seq, owner],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some(),
            };
            if !allowed {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO outbound_deliveries
                   (endpoint_id, event_xid, event_seq, state, attempts, next_attempt_at,
                    last_attempt_at, last_status, last_answer, webhook_id, payload,
                    lease_owner, lease_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, NULL)
                 ON CONFLICT (endpoint_id, event_seq) DO UPDATE SET
                   state = excluded.state, attempts = excluded.attempts,
                   next_attempt_at = excluded.next_attempt_at,
                   last_attempt_at = excluded.last_attempt_at,
                   last_status = excluded.last_status, last_answer = excluded.last_answer,
                   lease_owner = NULL, lease_until = NULL",
                params![
                    endpoint_id,
                    failed.position.xid as i64,
                    failed.position.seq,
                    failed.state.as_str(),
                    i64::from(failed.attempts),
                    failed.next_attempt_at.as_ref().map(format_time),
                    format_time(&failed.attempted_at),
                    failed.status.map(i64::from),
                    failed.answer,
                    failed.webhook_id,
                    failed.payload,
                ],
            )?;
            tx.execute(
                "UPDATE outbound_endpoints SET last_error_at = ?2, last_error = ?3
                 WHERE endpoint_id = ?1",
                params![
                    endpoint_id,
                    format_time(&failed.attempted_at),
                    failed.answer
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Records that an event with a row was delivered: the row goes; false when fenced off.
    pub fn outbound_succeed(
        &self,
        endpoint_id: &str,
        fence: &Fence,
        position: Cursor,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.outbound_write(|conn| {
            let tx = conn.transaction()?;
            let deleted = match fence {
                Fence::Epoch(epoch) => {
                    if !epoch_holds(&tx, endpoint_id, *epoch)? {
                        return Ok(false);
                    }
                    tx.execute(
                        "DELETE FROM outbound_deliveries WHERE endpoint_id = ?1 AND event_seq = ?2",
                        params![endpoint_id, position.seq],
                    )?
                }
                Fence::Owner(owner) => tx.execute(
                    "DELETE FROM outbound_deliveries
                     WHERE endpoint_id = ?1 AND event_seq = ?2 AND lease_owner = ?3",
                    params![endpoint_id, position.seq, owner],
                )?,
            };
            if matches!(fence, Fence::Owner(_)) && deleted == 0 {
                return Ok(false);
            }
            tx.execute(
                "UPDATE outbound_endpoints SET delivered = delivered + 1, last_success_at = ?2
                 WHERE endpoint_id = ?1",
                params![endpoint_id, format_time(&at)],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Claims up to `limit` rows in retry that are due and not leased, until `until`.
    pub fn outbound_claim_due(
        &self,
        endpoint_id: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>> {
        self.outbound_write(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE outbound_deliveries SET lease_owner = ?2, lease_until = ?3
                 WHERE endpoint_id = ?1 AND event_seq IN (
                   SELECT event_seq FROM outbound_deliveries
                   WHERE endpoint_id = ?1 AND state = 'retry' AND next_attempt_at <= ?4
                     AND (lease_until IS NULL OR lease_until < ?4)
                   ORDER BY next_attempt_at, event_seq LIMIT ?5)
                 RETURNING {DELIVERY_COLUMNS}"
            ))?;
            let mut rows = stmt.query(params![
                endpoint_id,
                owner,
                format_time(&until),
                format_time(&now),
                limit as i64
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(delivery_row(row)?);
            }
            out.sort_by_key(|d| d.position);
            Ok(out)
        })
    }

    /// When the earliest row in retry is due.
    pub fn outbound_next_due(&self, endpoint_id: &str) -> Result<Option<DateTime<Utc>>> {
        self.readers.with(|conn| {
            let next: Option<String> = conn.query_row(
                "SELECT min(next_attempt_at) FROM outbound_deliveries
                 WHERE endpoint_id = ?1 AND state = 'retry'",
                params![endpoint_id],
                |row| row.get(0),
            )?;
            time_opt(next)
        })
    }

    /// The row of one event for one endpoint, if it has one.
    pub fn outbound_delivery(
        &self,
        endpoint_id: &str,
        position: Cursor,
    ) -> Result<Option<DeliveryRow>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbound_deliveries
                 WHERE endpoint_id = ?1 AND event_seq = ?2"
            ))?;
            let mut rows = stmt.query(params![endpoint_id, position.seq])?;
            rows.next()?.map(delivery_row).transpose()
        })
    }

    /// Every endpoint's progress.
    pub fn outbound_endpoints(&self) -> Result<Vec<EndpointProgress>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT o.endpoint_id, o.environment_id, o.enabled, o.cursor_xid, o.cursor_seq,
                        o.delivered, o.last_success_at, o.last_error_at, o.last_error,
                        (SELECT count(*) FROM outbound_deliveries d
                         WHERE d.endpoint_id = o.endpoint_id AND d.state <> 'dead'),
                        (SELECT count(*) FROM outbound_deliveries d
                         WHERE d.endpoint_id = o.endpoint_id AND d.state = 'dead'),
                        CASE WHEN o.lease_until >= ?1 THEN o.lease_owner END, o.lease_epoch
                 FROM outbound_endpoints o ORDER BY o.endpoint_id",
            )?;
            let mut rows = stmt.query(params![format_time(&Utc::now())])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let xid: i64 = row.get(3)?;
                out.push(EndpointProgress {
                    endpoint_id: row.get(0)?,
                    environment_id: row.get(1)?,
                    enabled: row.get(2)?,
                    cursor: Cursor {
                        xid: xid as u64,
                        seq: row.get(4)?,
                    },
                    delivered: row.get(5)?,
                    last_success_at: time_opt(row.get(6)?)?,
                    last_error_at: time_opt(row.get(7)?)?,
                    last_error: row.get(8)?,
                    retrying: row.get(9)?,
                    dead: row.get(10)?,
                    lease_owner: row.get(11)?,
                    lease_epoch: row.get(12)?,
                });
            }
            Ok(out)
        })
    }

    /// Rows of events not yet delivered, optionally of one endpoint, only dead ones when
    /// `dead_only`, in position order.
    pub fn outbound_deliveries(
        &self,
        endpoint_id: Option<&str>,
        dead_only: bool,
    ) -> Result<Vec<DeliveryRow>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbound_deliveries
                 WHERE (?1 IS NULL OR endpoint_id = ?1) AND (?2 = 0 OR state = 'dead')
                 ORDER BY endpoint_id, event_seq LIMIT {DELIVERIES_MAX}"
            ))?;
            let mut rows = stmt.query(params![endpoint_id, dead_only])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(delivery_row(row)?);
            }
            Ok(out)
        })
    }

    /// Queues an endpoint's dead-lettered events for a new round of attempts now.
    pub fn outbound_redrive_dead(&self, endpoint_id: &str, now: DateTime<Utc>) -> Result<u64> {
        self.outbound_write(|conn| {
            Ok(conn.execute(
                "UPDATE outbound_deliveries
                 SET state = 'retry', attempts = 0, next_attempt_at = ?2,
                     lease_owner = NULL, lease_until = NULL
                 WHERE endpoint_id = ?1 AND state = 'dead'",
                params![endpoint_id, format_time(&now)],
            )? as u64)
        })
    }

    /// Rewinds an endpoint to just before the first event of its environment received at or
    /// after `since` (never forward), fencing off the head's holder, and drops the rows the
    /// head will deliver again. Returns the new cursor; `None` for an unknown endpoint.
    pub fn outbound_redrive_since(
        &self,
        endpoint_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Cursor>> {
        self.outbound_write(|conn| {
            let tx = conn.transaction()?;
            let endpoint: Option<(String, i64)> = tx
                .query_row(
                    "SELECT environment_id, cursor_seq FROM outbound_endpoints
                     WHERE endpoint_id = ?1",
                    params![endpoint_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((environment_id, current)) = endpoint else {
                return Ok(None);
            };
            let first: Option<i64> = tx.query_row(
                "SELECT min(seq) FROM events WHERE environment_id = ?1 AND received_at >= ?2",
                params![environment_id, format_time(&since)],
                |row| row.get(0),
            )?;
            let target = first.map_or(current, |seq| (seq - 1).min(current));
            tx.execute(
                "UPDATE outbound_endpoints
                 SET cursor_xid = 0, cursor_seq = ?2, lease_epoch = lease_epoch + 1,
                     lease_owner = NULL, lease_until = NULL
                 WHERE endpoint_id = ?1",
                params![endpoint_id, target],
            )?;
            tx.execute(
                "DELETE FROM outbound_deliveries WHERE endpoint_id = ?1 AND event_seq > ?2",
                params![endpoint_id, target],
            )?;
            tx.commit()?;
            Ok(Some(Cursor {
                xid: 0,
                seq: target,
            }))
        })
    }

    /// How many events of an environment are after `cursor`, and the oldest one's receive time.
    pub fn outbound_lag(&self, environment_id: &str, cursor: Cursor) -> Result<Lag> {
        let horizon = self.horizon();
        self.readers.with(|conn| {
            // `+environment_id`: the range after the cursor drives the scan, not the whole
            // environment's share of `events_by_message`.
            let (events, oldest): (i64, Option<String>) = conn.query_row(
                "SELECT count(*), min(received_at) FROM events
                 WHERE seq > ?1 AND seq <= ?2 AND +environment_id = ?3",
                params![cursor.seq, horizon, environment_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            Ok(Lag {
                events,
                oldest_received_at: time_opt(oldest)?,
            })
        })
    }

    /// The event at a position, if it is still stored.
    pub fn event_at(&self, position: Cursor) -> Result<Option<StoredEvent>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?1"
            ))?;
            let mut rows = stmt.query(params![position.seq])?;
            rows.next()?.map(stored_event).transpose()
        })
    }
}
