//! Prometheus metrics: requests, events, ingest latency and store commits.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    events: BTreeMap<(String, String), u64>,
    duplicates: BTreeMap<String, u64>,
    latency_buckets: [u64; LATENCY_BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    /// Integrations with `quiet_after_secs`, by (environment, integration): quiet or not.
    quiet: BTreeMap<(String, String), bool>,
    /// Requests of `verify = "shadow"` integrations that failed verification, by
    /// (environment, integration, reason).
    shadow_failures: BTreeMap<(String, String, &'static str), u64>,
}

/// Counters shared by every request.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one answered request.
    pub fn request(&self, provider: &str, status: u16, latency: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        *inner
            .requests
            .entry((provider.to_owned(), status))
            .or_default() += 1;
        let seconds = latency.as_secs_f64();
        for (bucket, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound
                && let Some(count) = inner.latency_buckets.get_mut(bucket)
            {
                *count += 1;
            }
        }
        inner.latency_count += 1;
        inner.latency_sum += seconds;
    }

    /// Records stored events.
    pub fn events(
        &self,
        provider: &str,
        statuses: impl Iterator<Item = &'static str>,
        duplicates: usize,
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for status in statuses {
            *inner
                .events
                .entry((provider.to_owned(), status.to_owned()))
                .or_default() += 1;
        }
        if duplicates > 0 {
            *inner.duplicates.entry(provider.to_owned()).or_default() += duplicates as u64;
        }
    }

    /// Records whether a watched integration is quiet; true when that changed its state (the
    /// first check of a quiet integration counts as a change, an active one's does not).
    pub fn set_quiet(&self, environment: &str, integration: &str, quiet: bool) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        let key = (environment.to_owned(), integration.to_owned());
        let before = inner.quiet.insert(key, quiet);
        before.unwrap_or(false) != quiet
    }

    /// Records a request of a shadow integration that failed verification.
    pub fn shadow_failure(&self, environment: &str, integration: &str, reason: &'static str) {
        if let Ok(mut inner) = self.inner.lock() {
            *inner
                .shadow_failures
                .entry((environment.to_owned(), integration.to_owned(), reason))
                .or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, commits: tidings_store::CommitStats) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        let _ = writeln!(
            out,
            "# HELP tidings_requests_total Webhook requests answered, by provider and status code."
        );
        let _ = writeln!(out, "# TYPE tidings_requests_total counter");
        for ((provider, code), n) in &inner.requests {
            let _ = writeln!(
                out,
                "tidings_requests_total{{provider=\"{provider}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tidings_events_total Normalized events received, by provider and status."
        );
        let _ = writeln!(out, "# TYPE tidings_events_total counter");
        for ((provider, status), n) in &inner.events {
            let _ = writeln!(
                out,
                "tidings_events_total{{provider=\"{provider}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tidings_duplicate_events_total Events a provider delivered again, stored once."
        );
        let _ = writeln!(out, "# TYPE tidings_duplicate_events_total counter");
        for (provider, n) in &inner.duplicates {
            let _ = writeln!(
                out,
                "tidings_duplicate_events_total{{provider=\"{provider}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tidings_shadow_failures_total Requests of verify = \"shadow\" integrations that failed verification and were accepted, by reason."
        );
        let _ = writeln!(out, "# TYPE tidings_shadow_failures_total counter");
        for ((environment, integration, reason), n) in &inner.shadow_failures {
            let _ = writeln!(
                out,
                "tidings_shadow_failures_total{{environment=\"{environment}\",integration=\"{integration}\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tidings_ingest_seconds Webhook request latency."
        );
        let _ = writeln!(out, "# TYPE tidings_ingest_seconds histogram");
        for (bound, count) in LATENCY_BUCKETS.iter().zip(inner.latency_buckets) {
            let _ = writeln!(
                out,
                "tidings_ingest_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "tidings_ingest_seconds_bucket{{le=\"+Inf\"}} {}",
            inner.latency_count
        );
        let _ = writeln!(out, "tidings_ingest_seconds_sum {}", inner.latency_sum);
        let _ = writeln!(out, "tidings_ingest_seconds_count {}", inner.latency_count);
        let _ = writeln!(
            out,
            "# HELP tidings_store_commits_total Store transactions (one per group of requests)."
        );
        let _ = writeln!(out, "# TYPE tidings_store_commits_total counter");
        let _ = writeln!(out, "tidings_store_commits_total {}", commits.commits);
        let _ = writeln!(
            out,
            "# HELP tidings_store_committed_requests_total Requests committed."
        );
        let _ = writeln!(out, "# TYPE tidings_store_committed_requests_total counter");
        let _ = writeln!(
            out,
            "tidings_store_committed_requests_total {}",
            commits.requests
        );
        let _ = writeln!(
            out,
            "# HELP tidings_store_commit_seconds_total Time spent committing."
        );
        let _ = writeln!(out, "# TYPE tidings_store_commit_seconds_total counter");
        let _ = writeln!(
            out,
            "tidings_store_commit_seconds_total {}",
            commits.commit_micros as f64 / 1e6
        );
        if !inner.quiet.is_empty() {
            let _ = writeln!(
                out,
                "# HELP tidings_integration_quiet 1 while an integration has had no event for longer than its quiet_after_secs."
            );
            let _ = writeln!(out, "# TYPE tidings_integration_quiet gauge");
            for ((environment, integration), quiet) in &inner.quiet {
                let _ = writeln!(
                    out,
                    "tidings_integration_quiet{{environment=\"{environment}\",integration=\"{integration}\"}} {}",
                    u8::from(*quiet)
                );
            }
        }
        out
    }
}
