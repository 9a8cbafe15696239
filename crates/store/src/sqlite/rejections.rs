//! Recording and reading refused requests (see `crate::rejection`).

use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter};

use super::{SqliteStore, format_time, parse_time};
use crate::rejection::{Rejection, RejectionBatch, RejectionCount, RejectionQuery, RejectionRow};
use crate::{Error, Result};

/// Hourly counts older than this are deleted as new ones are written.
const COUNTS_KEPT_DAYS: i64 = 31;

impl SqliteStore {
    /// Writes one batch in its own short transaction, on the connection retention uses, so the
    /// ingest writer is never held behind it for longer than one small insert.
    pub fn record_rejections(&self, batch: &RejectionBatch) -> Result<()> {
        let mut conn = self.pruner.lock().map_err(|_| Error::Unavailable)?;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO rejections (environment_id, integration_id, provider, at, reason,
                     status, message, method, path, headers, body, body_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for r in &batch.rows {
                insert.execute(params![
                    r.environment_id,
                    r.integration_id,
                    r.provider,
                    format_time(&r.at),
                    r.reason,
                    r.status,
                    r.message,
                    r.method,
                    r.path,
                    r.headers_json,
                    r.body,
                    r.body_bytes.map(|b| b as i64),
                ])?;
            }
            let mut trim = tx.prepare_cached(
                "DELETE FROM rejections WHERE environment_id = ?1 AND integration_id = ?2
                   AND seq <= (SELECT seq FROM rejections
                               WHERE environment_id = ?1 AND integration_id = ?2
                               ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
            )?;
            let mut trimmed: Vec<(&str, &str)> = Vec::new();
            for r in &batch.rows {
                let key = (r.environment_id.as_str(), r.integration_id.as_str());
                if !trimmed.contains(&key) {
                    trim.execute(params![key.0, key.1, batch.keep as i64])?;
                    trimmed.push(key);
                }
            }
            let mut count = tx.prepare_cached(
                "INSERT INTO rejection_counts (environment_id, integration_id, reason, hour, count)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (environment_id, integration_id, reason, hour)
                 DO UPDATE SET count = count + excluded.count",
            )?;
            for c in &batch.counts {
                count.execute(params![
                    c.environment_id,
                    c.integration_id,
                    c.reason,
                    format_time(&c.hour),
                    c.count
                ])?;
            }
            if let Some(newest) = batch.counts.iter().map(|c| c.hour).max() {
                let cutoff = newest - chrono::Duration::days(COUNTS_KEPT_DAYS);
                tx.execute(
                    "DELETE FROM rejection_counts WHERE hour < ?1",
                    params![format_time(&cutoff)],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Recorded rejections, newest first.
    pub fn rejections(&self, query: &RejectionQuery) -> Result<Vec<RejectionRow>> {
        let mut sql = String::from(
            "SELECT seq, environment_id, integration_id, provider, at, reason, status, message,
                    method, path, headers, body, body_bytes
             FROM rejections WHERE environment_id = ?",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![query.environment_id.clone().into()];
        if let Some(integration) = &query.integration_id {
            sql.push_str(" AND integration_id = ?");
            args.push(integration.clone().into());
        }
        if let Some(reason) = &query.reason {
            sql.push_str(" AND reason = ?");
            args.push(reason.clone().into());
        }
        if let Some(before) = query.before {
            sql.push_str(" AND seq < ?");
            args.push(before.into());
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        args.push((query.limit as i64).into());
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(RejectionRow {
                    seq: row.get(0)?,
                    rejection: Rejection {
                        environment_id: row.get(1)?,
                        integration_id: row.get(2)?,
                        provider: row.get(3)?,
                        at: parse_time(&row.get::<_, String>(4)?)?,
                        reason: row.get(5)?,
                        status: row.get(6)?,
                        message: row.get(7)?,
                        method: row.get(8)?,
                        path: row.get(9)?,
                        headers_json: row.get(10)?,
                        body: row.get(11)?,
                        body_bytes: row.get::<_, Option<i64>>(12)?.map(|b| b as u64),
                    },
                });
            }
            Ok(out)
        })
    }

    /// Counts per integration, reason and clock hour, for hours starting at `since` or later.
    pub fn rejection_counts(
        &self,
        environment_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RejectionCount>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT integration_id, reason, hour, count FROM rejection_counts
                 WHERE environment_id = ?1 AND hour >= ?2
                 ORDER BY integration_id, reason, hour",
            )?;
            let mut rows = stmt.query(params![environment_id, format_time(&since)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(RejectionCount {
                    environment_id: environment_id.to_owned(),
                    integration_id: row.get(0)?,
                    reason: row.get(1)?,
                    hour: parse_time(&row.get::<_, String>(2)?)?,
                    count: row.get(3)?,
                });
            }
            Ok(out)
        })
    }
}
