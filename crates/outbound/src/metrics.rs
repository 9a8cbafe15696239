//! Outbound metrics, rendered into the service's `/metrics`: deliveries by endpoint and
//! result, attempt latency, and each endpoint's lag.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// A gauge's name, help text, and reading.
type Gauge = (&'static str, &'static str, fn(&LagGauge) -> f64);

/// One endpoint's lag, as last measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LagGauge {
    /// Events after its cursor.
    pub events: i64,
    /// Age of the oldest of them, in seconds.
    pub seconds: f64,
    /// Events waiting for a retry.
    pub retrying: i64,
    /// Events dead-lettered.
    pub dead: i64,
}

#[derive(Default)]
struct Inner {
    deliveries: BTreeMap<(String, &'static str), u64>,
    latency: BTreeMap<String, Histogram>,
    lag: BTreeMap<String, LagGauge>,
}

/// Outbound counters, shared by every endpoint's tasks.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    /// 2xx.
    Delivered,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Failed for the last time: dead-lettered.
    Dead,
}

impl Result {
    fn label(self) -> &'static str {
        match self {
            Result::Delivered => "delivered",
            Result::Retry => "retry",
            Result::Dead => "dead",
        }
    }
}

impl Metrics {
    /// Records one attempt.
    pub fn attempt(&self, endpoint: &str, result: Result, latency: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        *inner
            .deliveries
            .entry((endpoint.to_owned(), result.label()))
            .or_default() += 1;
        let histogram = inner.latency.entry(endpoint.to_owned()).or_default();
        let seconds = latency.as_secs_f64();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Records an endpoint's lag.
    pub fn set_lag(&self, endpoint: &str, lag: LagGauge) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.lag.insert(endpoint.to_owned(), lag);
        }
    }

    /// How many attempts of an endpoint ended with `result` so far.
    pub fn count(&self, endpoint: &str, result: Result) -> u64 {
        self.inner.lock().map_or(0, |inner| {
            inner
                .deliveries
                .get(&(endpoint.to_owned(), result.label()))
                .copied()
                .unwrap_or(0)
        })
    }

    /// Appends the Prometheus text exposition; nothing when no endpoint is configured.
    pub fn render(&self, out: &mut String) {
        let Ok(inner) = self.inner.lock() else {
            return;
        };
        if inner.deliveries.is_empty() && inner.lag.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP tidings_outbound_deliveries_total Delivery attempts, by endpoint and result (delivered, retry, dead)."
        );
        let _ = writeln!(out, "# TYPE tidings_outbound_deliveries_total counter");
        for ((endpoint, result), n) in &inner.deliveries {
            let _ = writeln!(
                out,
                "tidings_outbound_deliveries_total{{endpoint=\"{endpoint}\",result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tidings_outbound_attempt_seconds Delivery attempt latency, by endpoint."
        );
        let _ = writeln!(out, "# TYPE tidings_outbound_attempt_seconds histogram");
        for (endpoint, h) in &inner.latency {
            for (bound, count) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "tidings_outbound_attempt_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "tidings_outbound_attempt_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "tidings_outbound_attempt_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "tidings_outbound_attempt_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                h.count
            );
        }
        let gauges: [Gauge; 4] = [
            (
                "tidings_outbound_lag_events",
                "Events of the endpoint's environment after its cursor.",
                |l| l.events as f64,
            ),
            (
                "tidings_outbound_lag_seconds",
                "Age of the oldest event after the endpoint's cursor.",
                |l| l.seconds,
            ),
            (
                "tidings_outbound_retrying",
                "Events waiting for another attempt.",
                |l| l.retrying as f64,
            ),
            (
                "tidings_outbound_dead_letters",
                "Events dead-lettered, kept until redriven.",
                |l| l.dead as f64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (endpoint, lag) in &inner.lag {
                let _ = writeln!(out, "{name}{{endpoint=\"{endpoint}\"}} {}", value(lag));
            }
        }
    }
}
