//! Outbound delivery progress on PostgreSQL, shared by every instance: the head of an endpoint
//! is leased with a fencing epoch, rows in retry are claimed with `FOR UPDATE SKIP LOCKED`.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{EVENT_COLUMNS, PgStore, parse_xid, stored_event};
use crate::outbound::{
    DELIVERIES_MAX, DeliveryRow, DeliveryState, EndpointProgress, FailedAttempt, Fence, HeadLease,
    Lag,
};
use crate::{Cursor, Result, StoredEvent};

const DELIVERY_COLUMNS: &str = "endpoint_id, event_xid::text, event_seq, state, attempts, \
    next_attempt_at, last_attempt_at, last_status, last_answer, webhook_id, payload";

fn delivery_row(row: &Row) -> Result<DeliveryRow> {
    let state: String = row.try_get(3)?;
    let attempts: i32 = row.try_get(4)?;
    let status: Option<i32> = row.try_get(7)?;
    Ok(DeliveryRow {
        endpoint_id: row.try_get(0)?,
        position: Cursor {
            xid: parse_xid(row.try_get(1)?)?,
            seq: row.try_get(2)?,
        },
        state: state.parse::<DeliveryState>()?,
        attempts: attempts.max(0) as u32,
        next_attempt_at: row.try_get(5)?,
        last_attempt_at: row.try_get(6)?,
        last_status: status.and_then(|s| u16::try_from(s).ok()),
        last_answer: row.try_get(8)?,
        webhook_id: row.try_get(9)?,
        payload: row.try_get(10)?,
    })
}

impl PgStore {
    /// Records a configured endpoint, starting at `start` when it is new.
    pub async fn outbound_register(
        &self,
        endpoint_id: &str,
        environment_id: &str,
        enabled: bool,
        start: Cursor,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO outbound_endpoints
                   (endpoint_id, environment_id, enabled, cursor_xid, cursor_seq, created_at)
                 VALUES ($1, $2, $3, $4::text::xid8, $5, $6)
                 ON CONFLICT (endpoint_id) DO UPDATE
                   SET environment_id = excluded.environment_id, enabled = excluded.enabled",
                &[
                    &endpoint_id,
                    &environment_id,
                    &enabled,
                    &start.xid.to_string(),
                    &start.seq,
                    &now,
                ],
            )
            .await?;
        Ok(())
    }

    /// Takes the head of an endpoint when nobody holds it (or the holder's lease ran out),
    /// with a new fencing epoch.
    pub async fn outbound_acquire(
        &self,
        endpoint_id: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<HeadLease>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE outbound_endpoints
                 SET lease_owner = $2, lease_until = $3, lease_epoch = lease_epoch + 1
                 WHERE endpoint_id = $1
                   AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until IS NULL
                        OR lease_until < $4)
                 RETURNING lease_epoch, cursor_xid::text, cursor_seq",
                &[&endpoint_id, &owner, &until, &now],
            )
            .await?;
        row.map(|row| {
            Ok(HeadLease {
                epoch: row.try_get(0)?,
                cursor: Cursor {
                    xid: parse_xid(row.try_get(1)?)?,
                    seq: row.try_get(2)?,
                },
            })
        })
        .transpose()
    }

    /// Extends the head's lease; false when it was lost.
    pub async fn outbound_renew(
        &self,
        endpoint_id: &str,
        owner: &str,
        epoch: i64,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(self
            .client()
            .await?
            .execute(
                "UPDATE outbound_endpoints SET lease_until = $4
                 WHERE endpoint_id = $1 AND lease_owner = $2 AND lease_epoch = $3",
                &[&endpoint_id, &owner, &epoch, &until],
            )
            .await?
            == 1)
    }

    /// Gives the head up (shutdown).
    pub async fn outbound_release(&self, endpoint_id: &str, owner: &str, epoch: i64) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE outbound_endpoints SET lease_owner = NULL, lease_until = NULL
                 WHERE endpoint_id = $1 AND lease_owner = $2 AND lease_epoch = $3",
                &[&endpoint_id, &owner, &epoch],
            )
            .await?;
        Ok(())
    }

    /// Moves the head's cursor forward over `delivered` successes; false when fenced off.
    pub async fn outbound_advance(
        &self,
        endpoint_id: &str,
        epoch: i64,
        cursor: Cursor,
        delivered: i64,
        last_success_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        Ok(self
            .client()
            .await?
            .execute(
                "UPDATE outbound_endpoints
                 SET cursor_xid = $3::text::xid8, cursor_seq = $4, delivered = delivered + $5,
                     last_success_at = COALESCE($6, last_success_at)
                 WHERE endpoint_id = $1 AND lease_epoch = $2
                   AND (cursor_xid, cursor_seq) <= ($3::text::xid8, $4)",
                &[
                    &endpoint_id,
                    &epoch,
                    &cursor.xid.to_string(),
                    &cursor.seq,
                    &delivered,
                    &last_success_at,
                ],
            )
            .await?
            == 1)
    }

    /// Records a failed attempt (a new row, or the row's next state); false when fenced off.
    pub async fn outbound_fail(
        &self,
        endpoint_id: &str,
        fence: &Fence,
        failed: &FailedAttempt,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let allowed = match fence {
            // Locks the endpoint's row: a concurrent takeover waits for this write, or this
            // write sees the new epoch.
            Fence::Epoch(epoch) => tx
                .query_opt(
                    "SELECT 1 FROM outbound_endpoints
                     WHERE endpoint_id = $1 AND lease_epoch = $2 FOR UPDATE",
                    &[&endpoint_id, epoch],
                )
                .await?
                .is_some(),
            Fence::Owner(owner) => tx
                .query_opt(
                    "SELECT 1 FROM outbound_deliveries
                     WHERE endpoint_id = $1 AND event_seq = $2 AND lease_owner = $3 FOR UPDATE",
                    &[&endpoint_id, &failed.position.seq, owner],
                )
                .await?
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
             VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)
             ON CONFLICT (endpoint_id, event_seq) DO UPDATE SET
               state = excluded.state, attempts = excluded.attempts,
               next_attempt_at = excluded.next_attempt_at,
               last_attempt_at = excluded.last_attempt_at,
               last_status = excluded.last_status, last_answer = excluded.last_answer,
               lease_owner = NULL, lease_until = NULL",
            &[
                &endpoint_id,
                &failed.position.xid.to_string(),
                &failed.position.seq,
                &failed.state.as_str(),
                &(failed.attempts.min(i32::MAX as u32) as i32),
                &failed.next_attempt_at,
                &failed.attempted_at,
                &failed.status.map(i32::from),
                &failed.answer,
                &failed.webhook_id,
                &failed.payload,
            ],
        )
        .await?;
        tx.execute(
            "UPDATE outbound_endpoints SET last_error_at = $2, last_error = $3
             WHERE endpoint_id = $1",
            &[&endpoint_id, &failed.attempted_at, &failed.answer],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that an event with a row was delivered: the row goes; false when fenced off.
    pub async fn outbound_succeed(
        &self,
        endpoint_id: &str,
        fence: &Fence,
        position: Cursor,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        match fence {
            Fence::Epoch(epoch) => {
                let holds = tx
                    .query_opt(
                        "SELECT 1 FROM outbound_endpoints
                         WHERE endpoint_id = $1 AND lease_epoch = $2 FOR UPDATE",
                        &[&endpoint_id, epoch],
                    )
                    .await?
                    .is_some();
                if !holds {
                    return Ok(false);
                }
                tx.execute(
                    "DELETE FROM outbound_deliveries WHERE endpoint_id = $1 AND event_seq = $2",
                    &[&endpoint_id, &position.seq],
                )
                .await?;
            }
            Fence::Owner(owner) => {
                let deleted = tx
                    .execute(
                        "DELETE FROM outbound_deliveries
                         WHERE endpoint_id = $1 AND event_seq = $2 AND lease_owner = $3",
                        &[&endpoint_id, &position.seq, owner],
                    )
                    .await?;
                if deleted == 0 {
                    return Ok(false);
                }
            }
        }
        tx.execute(
            "UPDATE outbound_endpoints SET delivered = delivered + 1, last_success_at = $2
             WHERE endpoint_id = $1",
            &[&endpoint_id, &at],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims up to `limit` rows in retry that are due and not leased, until `until`. Rows
    /// another instance is claiming at this moment are skipped, not waited for.
    pub async fn outbound_claim_due(
        &self,
        endpoint_id: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "UPDATE outbound_deliveries SET lease_owner = $2, lease_until = $3
                     WHERE endpoint_id = $1 AND event_seq IN (
                       SELECT event_seq FROM outbound_deliveries
                       WHERE endpoint_id = $1 AND state = 'retry' AND next_attempt_at <= $4
                         AND (lease_until IS NULL OR lease_until < $4)
                       ORDER BY next_attempt_at, event_seq LIMIT $5
                       FOR UPDATE SKIP LOCKED)
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[&endpoint_id, &owner, &until, &now, &(limit as i64)],
            )
            .await?;
        let mut out = rows.iter().map(delivery_row).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|d| d.position);
        Ok(out)
    }

    /// When the earliest row in retry is due.
    pub async fn outbound_next_due(&self, endpoint_id: &str) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .reader()
            .await?
            .query_one(
                "SELECT min(next_attempt_at) FROM outbound_deliveries
                 WHERE endpoint_id = $1 AND state = 'retry'",
                &[&endpoint_id],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The row of one event for one endpoint, if it has one.
    pub async fn outbound_delivery(
        &self,
        endpoint_id: &str,
        position: Cursor,
    ) -> Result<Option<DeliveryRow>> {
        let row = self
            .reader()
            .await?
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbound_deliveries
                     WHERE endpoint_id = $1 AND event_seq = $2"
                ),
                &[&endpoint_id, &position.seq],
            )
            .await?;
        row.as_ref().map(delivery_row).transpose()
    }

    /// Every endpoint's progress.
    pub async fn outbound_endpoints(&self) -> Result<Vec<EndpointProgress>> {
        let rows = self
            .reader()
            .await?
            .query(
                "SELECT o.endpoint_id, o.environment_id, o.enabled, o.cursor_xid::text,
                        o.cursor_seq, o.delivered, o.last_success_at, o.last_error_at,
                        o.last_error,
                        (SELECT count(*) FROM outbound_deliveries d
                         WHERE d.endpoint_id = o.endpoint_id AND d.state <> 'dead'),
                        (SELECT count(*) FROM outbound_deliveries d
                         WHERE d.endpoint_id = o.endpoint_id AND d.state = 'dead'),
                        CASE WHEN o.lease_until >= now() THEN o.lease_owner END, o.lease_epoch
                 FROM outbound_endpoints o ORDER BY o.endpoint_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(EndpointProgress {
                    endpoint_id: row.try_get(0)?,
                    environment_id: row.try_get(1)?,
                    enabled: row.try_get(2)?,
                    cursor: Cursor {
                        xid: parse_xid(row.try_get(3)?)?,
                        seq: row.try_get(4)?,
                    },
                    delivered: row.try_get(5)?,
                    last_success_at: row.try_get(6)?,
                    last_error_at: row.try_get(7)?,
                    last_error: row.try_get(8)?,
                    retrying: row.try_get(9)?,
                    dead: row.try_get(10)?,
                    lease_owner: row.try_get(11)?,
                    lease_epoch: row.try_get(12)?,
                })
            })
            .collect()
    }

    /// Rows of events not yet delivered, optionally of one endpoint, only dead ones when
    /// `dead_only`, in position order.
    pub async fn outbound_deliveries(
        &self,
        endpoint_id: Option<&str>,
        dead_only: bool,
    ) -> Result<Vec<DeliveryRow>> {
        let rows = self
            .reader()
            .await?
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbound_deliveries
                     WHERE ($1::text IS NULL OR endpoint_id = $1) AND (NOT $2 OR state = 'dead')
                     ORDER BY endpoint_id, event_xid, event_seq LIMIT {DELIVERIES_MAX}"
                ),
                &[&endpoint_id, &dead_only],
            )
            .await?;
        rows.iter().map(delivery_row).collect()
    }

    /// Queues an endpoint's dead-lettered events for a new round of attempts now.
    pub async fn outbound_redrive_dead(
        &self,
        endpoint_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(self
            .client()
            .await?
            .execute(
                "UPDATE outbound_deliveries
                 SET state = 'retry', attempts = 0, next_attempt_at = $2,
                     lease_owner = NULL, lease_until = NULL
                 WHERE endpoint_id = $1 AND state = 'dead'",
                &[&endpoint_id, &now],
            )
            .await?)
    }

    /// Rewinds an endpoint to just before the first event of its environment received at or
    /// after `since` (never forward), fencing off the head's holder, and drops the rows the
    /// head will deliver again. Returns the new cursor; `None` for an unknown endpoint.
    pub async fn outbound_redrive_since(
        &self,
        endpoint_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Cursor>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(endpoint) = tx
            .query_opt(
                "SELECT environment_id, cursor_xid::text, cursor_seq FROM outbound_endpoints
                 WHERE endpoint_id = $1 FOR UPDATE",
                &[&endpoint_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let environment_id: String = endpoint.try_get(0)?;
        let current = Cursor {
            xid: parse_xid(endpoint.try_get(1)?)?,
            seq: endpoint.try_get(2)?,
        };
        let first = tx
            .query_opt(
                "SELECT xid::text, seq FROM events
                 WHERE environment_id = $1 AND received_at >= $2
                 ORDER BY xid, seq LIMIT 1",
                &[&environment_id, &since],
            )
            .await?;
        let target = match first {
            Some(row) => Cursor {
                xid: parse_xid(row.try_get(0)?)?,
                seq: row.try_get::<_, i64>(1)? - 1,
            }
            .min(current),
            None => current,
        };
        tx.execute(
            "UPDATE outbound_endpoints
             SET cursor_xid = $2::text::xid8, cursor_seq = $3, lease_epoch = lease_epoch + 1,
                 lease_owner = NULL, lease_until = NULL
             WHERE endpoint_id = $1",
            &[&endpoint_id, &target.xid.to_string(), &target.seq],
        )
        .await?;
        tx.execute(
            "DELETE FROM outbound_deliveries
             WHERE endpoint_id = $1 AND (event_xid, event_seq) > ($2::text::xid8, $3)",
            &[&endpoint_id, &target.xid.to_string(), &target.seq],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(target))
    }

    /// How many visible events of an environment are after `cursor`, and the oldest one's
    /// receive time.
    pub async fn outbound_lag(&self, environment_id: &str, cursor: Cursor) -> Result<Lag> {
        let client = self.reader().await?;
        let horizon = Self::horizon(&client).await?;
        let row = client
            .query_one(
                "SELECT count(*), min(received_at) FROM events
                 WHERE environment_id = $1 AND (xid, seq) > ($2::text::xid8, $3)
                   AND xid < $4::text::xid8",
                &[
                    &environment_id,
                    &cursor.xid.to_string(),
                    &cursor.seq,
                    &horizon.to_string(),
                ],
            )
            .await?;
        Ok(Lag {
            events: row.try_get(0)?,
            oldest_received_at: row.try_get(1)?,
        })
    }

    /// The event at a position, if it is still stored.
    pub async fn event_at(&self, position: Cursor) -> Result<Option<StoredEvent>> {
        let row = self
            .reader()
            .await?
            .query_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = $1"),
                &[&position.seq],
            )
            .await?;
        row.as_ref().map(stored_event).transpose()
    }
}
