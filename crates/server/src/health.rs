//! Integrations that went quiet: every integration with `quiet_after_secs` is checked against
//! the store (so events taken by any instance count), and a change of state is logged at warn
//! and shown as the gauge `tidings_integration_quiet`, for an existing alerting stack to page on.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tidings_store::Window;

use crate::app::App;

/// The most often a check runs, and the least: half the shortest `quiet_after_secs`, within these.
const FASTEST: Duration = Duration::from_secs(1);
const SLOWEST: Duration = Duration::from_secs(60);

/// Checks until the server stops. Does nothing when no integration sets `quiet_after_secs`.
pub async fn watch(app: Arc<App>) {
    let watched: Vec<_> = app
        .config()
        .integrations
        .iter()
        .filter_map(|i| Some((i.environment.clone(), i.id.clone(), i.quiet_after_secs?)))
        .collect();
    let Some(shortest) = watched.iter().map(|(_, _, secs)| *secs).min() else {
        return;
    };
    let every = (Duration::from_secs(shortest) / 2).clamp(FASTEST, SLOWEST);
    let mut shutdown = app.shutdown_signal();
    loop {
        for (environment, integration, secs) in &watched {
            let end = Utc::now();
            let since =
                end - chrono::Duration::seconds(i64::try_from(*secs).unwrap_or(86_400).min(86_400));
            let window = Window {
                day: since,
                hour: since,
                end,
            };
            let activity = match app.store().activity(environment, window).await {
                Ok(activity) => activity,
                Err(err) => {
                    tracing::warn!(error = %err, "The quiet-integration check could not read the store.");
                    continue;
                }
            };
            let quiet = !activity.iter().any(|a| &a.integration_id == integration);
            if app.metrics.set_quiet(environment, integration, quiet) {
                if quiet {
                    tracing::warn!(
                        environment,
                        integration,
                        quiet_after_secs = secs,
                        "Integration went quiet: no event for longer than its quiet_after_secs."
                    );
                } else {
                    tracing::warn!(
                        environment,
                        integration,
                        "Integration receives events again."
                    );
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
