//! Recording and reading refused requests (see `crate::rejection`).

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::Result;
use crate::rejection::{Rejection, RejectionBatch, RejectionCount, RejectionQuery, RejectionRow};

/// Migration 6: refused requests, the newest per integration in full, and counts per hour.
pub(super) const MIGRATION: &str = "CREATE TABLE rejections (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        reason TEXT NOT NULL,
        status INTEGER NOT NULL,
        message TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        headers TEXT NOT NULL,
        body BYTEA NOT NULL,
        body_bytes BIGINT
    );
    CREATE INDEX rejections_by_integration ON rejections (environment_id, integration_id, seq);
    CREATE TABLE rejection_counts (
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        hour TIMESTAMPTZ NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (environment_id, integration_id, reason, hour)
    );";

/// Hourly counts older than this are deleted as new ones are written.
const COUNTS_KEPT_DAYS: i64 = 31;

impl PgStore {
    /// Writes one batch in its own short transaction, apart from the ingest commits.
    pub async fn record_rejections(&self, batch: &RejectionBatch) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO rejections (environment_id, integration_id, provider, at, reason,
                     status, message, method, path, headers, body, body_bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .await?;
        for r in &batch.rows {
            let status = i32::from(r.status);
            let body_bytes = r.body_bytes.map(|b| b as i64);
            tx.execute(
                &insert,
                &[
                    &r.environment_id,
                    &r.integration_id,
                    &r.provider,
                    &r.at,
                    &r.reason,
                    &status,
                    &r.message,
                    &r.method,
                    &r.path,
                    &r.headers_json,
                    &r.body,
                    &body_bytes,
                ],
            )
            .await?;
        }
        let mut trimmed: Vec<(&str, &str)> = Vec::new();
        let keep = batch.keep as i64;
        for r in &batch.rows {
            let key = (r.environment_id.as_str(), r.integration_id.as_str());
            if !trimmed.contains(&key) {
                tx.execute(
                    "DELETE FROM rejections WHERE environment_id = $1 AND integration_id = $2
                       AND seq <= (SELECT seq FROM rejections
                                   WHERE environment_id = $1 AND integration_id = $2
                                   ORDER BY seq DESC LIMIT 1 OFFSET $3)",
                    &[&key.0, &key.1, &keep],
                )
                .await?;
                trimmed.push(key);
            }
        }
        for c in &batch.counts {
            tx.execute(
                "INSERT INTO rejection_counts (environment_id, integration_id, reason, hour, count)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (environment_id, integration_id, reason, hour)
                 DO UPDATE SET count = rejection_counts.count + excluded.count",
                &[
                    &c.environment_id,
                    &c.integration_id,
                    &c.reason,
                    &c.hour,
                    &c.count,
                ],
            )
            .await?;
        }
        if let Some(newest) = batch.counts.iter().map(|c| c.hour).max() {
            let cutoff = newest - chrono::Duration::days(COUNTS_KEPT_DAYS);
            tx.execute("DELETE FROM rejection_counts WHERE hour < $1", &[&cutoff])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Recorded rejections, newest first.
    pub async fn rejections(&self, query: &RejectionQuery) -> Result<Vec<RejectionRow>> {
        let client = self.reader().await?;
        let limit = query.limit as i64;
        let mut sql = String::from(
            "SELECT seq, environment_id, integration_id, provider, at, reason, status, message,
                    method, path, headers, body, body_bytes
             FROM rejections WHERE environment_id = $1",
        );
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&query.environment_id];
        if let Some(integration) = &query.integration_id {
            args.push(integration);
            sql.push_str(&format!(" AND integration_id = ${}", args.len()));
        }
        if let Some(reason) = &query.reason {
            args.push(reason);
            sql.push_str(&format!(" AND reason = ${}", args.len()));
        }
        if let Some(before) = &query.before {
            args.push(before);
            sql.push_str(&format!(" AND seq < ${}", args.len()));
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", args.len()));
        let rows = client.query(&sql, &args).await?;
        rows.iter()
            .map(|row| {
                Ok(RejectionRow {
                    seq: row.try_get(0)?,
                    rejection: Rejection {
                        environment_id: row.try_get(1)?,
                        integration_id: row.try_get(2)?,
                        provider: row.try_get(3)?,
                        at: row.try_get(4)?,
                        reason: row.try_get(5)?,
                        status: u16::try_from(row.try_get::<_, i32>(6)?).unwrap_or(0),
                        message: row.try_get(7)?,
                        method: row.try_get(8)?,
                        path: row.try_get(9)?,
                        headers_json: row.try_get(10)?,
                        body: row.try_get(11)?,
                        body_bytes: row.try_get::<_, Option<i64>>(12)?.map(|b| b as u64),
                    },
                })
            })
            .collect()
    }

    /// Counts per integration, reason and clock hour, for hours starting at `since` or later.
    pub async fn rejection_counts(
        &self,
        environment_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RejectionCount>> {
        let client = self.reader().await?;
        let rows = client
            .query(
                "SELECT integration_id, reason, hour, count FROM rejection_counts
                 WHERE environment_id = $1 AND hour >= $2
                 ORDER BY integration_id, reason, hour",
                &[&environment_id, &since],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RejectionCount {
                    environment_id: environment_id.to_owned(),
                    integration_id: row.try_get(0)?,
                    reason: row.try_get(1)?,
                    hour: row.try_get(2)?,
                    count: row.try_get(3)?,
                })
            })
            .collect()
    }
}
