//! `tidings reparse`: the stored raw requests through today's parsers, so that a mapping fix
//! applies to history. New events are stored, changed ones supersede the stored record (with a
//! new position, so the read API's cursor and outbound delivery see them again), and every
//! message touched is folded again from all of its events. Unchanged events are left alone, so
//! a second run changes nothing.
//!
//! On SQLite it needs the store to itself (a running server owns it); on PostgreSQL it may run
//! beside the servers (each message it folds again is locked while it does).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tidings_core::{RawRequest, registry};
use tidings_store::{RawRequestFilter, Reparsed, Store, StoreLock, StoreOptions, StoredRequest};

use tidings::config::Config;

/// Raw requests read per page.
const PAGE: usize = 200;
/// Parse failures named one by one; the rest are only counted.
const FAILURES_SHOWN: usize = 20;

/// `tidings reparse` arguments.
#[derive(clap::Args, Debug)]
pub struct ReparseArgs {
    #[arg(long, env = "TIDINGS_CONFIG")]
    config: Option<PathBuf>,
    /// Only this environment.
    #[arg(long)]
    environment: Option<String>,
    /// Only this integration.
    #[arg(long)]
    integration: Option<String>,
    /// Only requests received at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Say what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What changed for one integration.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Changes {
    provider: String,
    requests: usize,
    /// New events, per status.
    added: BTreeMap<&'static str, usize>,
    /// Changed events, per `old -> new` status.
    changed: BTreeMap<String, usize>,
    unchanged: usize,
    messages_refolded: usize,
    /// Requests today's parser refuses (they stay as they are).
    unparsable: usize,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    dry_run: bool,
    requests: usize,
    /// Per `environment/integration`.
    integrations: BTreeMap<String, Changes>,
    /// The first refusals: request seq, integration and the parser's error.
    failures: Vec<String>,
}

pub fn run(args: ReparseArgs) -> Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|problems| anyhow!("{}", problems.join("\n")))?,
        None => {
            let mut config = Config::demo();
            config.apply_env();
            config
        }
    };
    let since = args
        .since
        .as_deref()
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .context("--since must be RFC 3339 (e.g. 2026-01-31T00:00:00Z)")
        })
        .transpose()?;
    let _lock = match config.store.url.strip_prefix("sqlite://") {
        Some(path) => Some(StoreLock::acquire(Path::new(path)).map_err(|err| {
            anyhow!(
                "{err}. A running server owns the store: stop it, re-parse, then start it again."
            )
        })?),
        None => None,
    };
    let filter = RawRequestFilter {
        environment_id: args.environment.clone(),
        integration_id: args.integration.clone(),
        since,
    };
    let summary = crate::block_on(async {
        let options = StoreOptions {
            suppressions: config.suppressions.settings(),
            ..StoreOptions::default()
        };
        let store = Store::open(&config.store.url, options).await?;
        reparse(&store, &config, &filter, args.dry_run).await
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        write_text(&mut out, &summary)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn reparse(
    store: &Store,
    config: &Config,
    filter: &RawRequestFilter,
    dry_run: bool,
) -> Result<Summary> {
    let mut summary = Summary {
        dry_run,
        ..Summary::default()
    };
    let mut after = 0;
    loop {
        let page = store.raw_requests(filter, after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(summary);
        };
        after = last.seq;
        for request in page {
            summary.requests += 1;
            let name = format!("{}/{}", request.environment_id, request.integration_id);
            let changes = summary.integrations.entry(name.clone()).or_default();
            changes.provider.clone_from(&request.provider);
            changes.requests += 1;
            let events = match parse(&request, config) {
                Ok(events) => events,
                Err(problem) => {
                    changes.unparsable += 1;
                    if summary.failures.len() < FAILURES_SHOWN {
                        summary
                            .failures
                            .push(format!("request {} ({name}): {problem}", request.seq));
                    }
                    continue;
                }
            };
            let reparsed = Reparsed {
                request_seq: request.seq,
                environment_id: request.environment_id,
                integration_id: request.integration_id,
                provider: request.provider,
                received_at: request.received_at,
                authentication: request.authentication,
                events,
            };
            let outcome = store.supersede(reparsed, dry_run).await?;
            for status in outcome.added {
                *changes.added.entry(status.as_str()).or_default() += 1;
            }
            for (old, new) in outcome.replaced {
                *changes
                    .changed
                    .entry(format!("{} -> {}", old.as_str(), new.as_str()))
                    .or_default() += 1;
            }
            changes.unchanged += outcome.unchanged;
            changes.messages_refolded += outcome.refolded;
        }
    }
}

/// One stored request through today's parser for its provider.
fn parse(request: &StoredRequest, config: &Config) -> Result<Vec<tidings_core::Event>, String> {
    let parser = registry()
        .get(&request.provider)
        .ok_or_else(|| format!("no provider `{}` in this build", request.provider))?;
    let header_map = tidings::rejections::stored_headers(&request.headers_json)
        .ok_or("stored headers unreadable")?;
    // The URL as the service rebuilt it on receipt (a GET receipt's fields are its query).
    let url = request.url.as_deref().map(|path| {
        let base = config
            .public_url
            .as_deref()
            .unwrap_or("http://localhost")
            .trim_end_matches('/');
        format!("{base}{path}")
    });
    let raw = RawRequest {
        method: &request.method,
        body: &request.body,
        content_type: request.content_type.as_deref(),
        headers: &header_map,
        url: url.as_deref(),
        received_at: request.received_at,
    };
    parser
        .read(&raw)
        .map(|parsed| parsed.events)
        .map_err(|e| e.to_string())
}

fn write_text(out: &mut impl std::io::Write, summary: &Summary) -> Result<()> {
    let verb = if summary.dry_run { "would be" } else { "were" };
    writeln!(
        out,
        "{} raw request(s) re-parsed{}.",
        summary.requests,
        if summary.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    )?;
    for (name, changes) in &summary.integrations {
        let added: usize = changes.added.values().sum();
        let changed: usize = changes.changed.values().sum();
        writeln!(
            out,
            "{name} ({}): {} request(s); {added} new event(s), {changed} changed, {} unchanged; {} message(s) {verb} folded again; {} unparsable",
            changes.provider,
            changes.requests,
            changes.unchanged,
            changes.messages_refolded,
            changes.unparsable,
        )?;
        for (status, count) in &changes.added {
            writeln!(out, "  new {status}: {count}")?;
        }
        for (change, count) in &changes.changed {
            writeln!(out, "  changed {change}: {count}")?;
        }
    }
    for failure in &summary.failures {
        writeln!(out, "unparsable: {failure}")?;
    }
    Ok(())
}
