//! `tidings`: the service (`serve`) and its command line (`providers`, `parse`, `check-config`,
//! `events`, `messages`, `endpoints`, `deliveries`, `redrive`, `suppressions`, `reparse`).

// A binary crate: `pub` marks each module's interface to the rest of the binary.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use tidings_core::{Credentials, Freshness, RawRequest, Secret, registry};
use tidings_store::{EventView, MessageView, Store, StoreLock, StoreOptions};

use tidings::config::{self, Config};
use tidings::{app, certs};
use tidings_providers as _;

mod cli_reparse;
mod cli_suppressions;
mod log_writer;
mod server;

#[derive(Parser)]
#[command(
    name = "tidings",
    version,
    about = "Receives, verifies and normalizes delivery webhooks of email, SMS and push providers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the service. With no configuration: a local demo (environment `dev`, key `dev-secret`).
    Serve {
        /// The configuration file (default: $TIDINGS_CONFIG, else the demo).
        #[arg(long, env = "TIDINGS_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, overriding the configuration.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Checks a configuration file and reports every problem at once.
    CheckConfig {
        /// The configuration file.
        #[arg(long, env = "TIDINGS_CONFIG")]
        config: PathBuf,
    },
    /// Lists every provider: id, aliases, channel, signature scheme.
    Providers {
        /// As a JSON array of {id, aliases, channel, signature, options}.
        #[arg(long)]
        json: bool,
    },
    /// Prints the 200 response body the endpoint would give for a recorded request.
    Parse(ParseArgs),
    /// Prints stored events as JSON lines, oldest first.
    Events {
        #[arg(long, env = "TIDINGS_CONFIG")]
        config: Option<PathBuf>,
        /// Only this environment.
        #[arg(long)]
        environment: Option<String>,
        /// Only this message id.
        #[arg(long)]
        message: Option<String>,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Prints refused webhooks, newest first, as JSON lines: reason, hint, redacted request.
    Rejections {
        #[arg(long, env = "TIDINGS_CONFIG")]
        config: Option<PathBuf>,
        /// The environment.
        #[arg(long)]
        environment: String,
        /// Only this integration.
        #[arg(long)]
        integration: Option<String>,
        /// Only this reason (see docs/operations.md for the list).
        #[arg(long)]
        reason: Option<String>,
        /// Most rejections printed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Prints each message's current status, milestone times and flags as JSON lines.
    Messages {
        #[arg(long, env = "TIDINGS_CONFIG")]
        config: Option<PathBuf>,
        /// Only this environment.
        #[arg(long)]
        environment: Option<String>,
        /// Only this message id.
        #[arg(long)]
        message: Option<String>,
    },
    /// The suppression list: list, check, add, remove, export and import (CSV).
    Suppressions {
        #[command(subcommand)]
        command: cli_suppressions::Suppressions,
    },
    /// Runs stored raw requests through today's parsers: new and changed events are stored,
    /// the messages they touch folded again; prints what changed per integration.
    Reparse(cli_reparse::ReparseArgs),
    /// Prints each outbound endpoint's progress as JSON lines: cursor, lag in events and
    /// seconds, events in retry and dead-lettered, last success, last error.
    Endpoints {
        #[command(flatten)]
        args: OutboundArgs,
    },
    /// Prints outbound deliveries not delivered yet (held, waiting for a retry, or
    /// dead-lettered) as JSON lines: attempts, last answer, next try.
    Deliveries {
        #[command(flatten)]
        args: OutboundArgs,
        /// Only this endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only dead-lettered deliveries.
        #[arg(long)]
        failed: bool,
    },
    /// Delivers events to an endpoint again: its dead letters (`--dead`), or every event received
    /// since a time (`--since 2026-01-01T00:00:00Z`, the replay after an outage).
    Redrive {
        #[command(flatten)]
        args: OutboundArgs,
        /// The endpoint.
        #[arg(long)]
        endpoint: String,
        /// Every event of its environment received at or after this time (RFC 3339).
        #[arg(long, conflicts_with = "dead", required_unless_present = "dead")]
        since: Option<String>,
        /// Its dead-lettered events.
        #[arg(long)]
        dead: bool,
    },
}

/// Outbound delivery commands.
#[derive(clap::Args)]
struct OutboundArgs {
    #[arg(long, env = "TIDINGS_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, listen } => serve(config.as_deref(), listen),
        Command::CheckConfig { config } => check_config(&config),
        Command::Providers { json } => providers(json).map(|()| ExitCode::SUCCESS),
        Command::Parse(args) => parse(args),
        Command::Events {
            config,
            environment,
            message,
            after,
        } => events(
            config.as_deref(),
            environment.as_deref(),
            message.as_deref(),
            after,
        ),
        Command::Rejections {
            config,
            environment,
            integration,
            reason,
            limit,
        } => rejections(
            config.as_deref(),
            tidings_store::RejectionQuery {
                environment_id: environment,
                integration_id: integration,
                reason,
                before: None,
                limit,
            },
        ),
        Command::Messages {
            config,
            environment,
            message,
        } => messages(
            config.as_deref(),
            environment.as_deref(),
            message.as_deref(),
        ),
        Command::Suppressions { command } => cli_suppressions::run(command),
        Command::Reparse(args) => cli_reparse::run(args),
        Command::Endpoints { args } => endpoints(args.config.as_deref()),
        Command::Deliveries {
            args,
            endpoint,
            failed,
        } => deliveries(args.config.as_deref(), endpoint.as_deref(), failed),
        Command::Redrive {
            args,
            endpoint,
            since,
            dead,
        } => redrive(args.config.as_deref(), &endpoint, since.as_deref(), dead),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`tidings events | head`): nothing more to say to anyone.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        None => {
            let mut config = Config::demo();
            config.apply_env();
            Ok(config)
        }
        Some(path) => Config::load(path).map_err(|problems| anyhow!("{}", problems.join("\n"))),
    }
}

/// Opens the configured store for `serve`, with retention.
async fn open_store(config: &Config) -> Result<Store> {
    let defaults = StoreOptions::default();
    // A claim is taken as abandoned only once its request cannot still be committing: the
    // request's own timeout, plus the longest a commit group it joined may take (a request
    // that timed out after joining one is still committed, and keeps its claim until then).
    let claim_timeout = std::time::Duration::from_secs(config.limits.request_timeout_secs)
        + defaults.timeout.max(std::time::Duration::from_secs(1)) * 2;
    let options = StoreOptions {
        synchronous_full: config.store.synchronous != "normal",
        pool_size: config.store.pool_size,
        claim_timeout,
        retention: (config.store.retention_days > 0)
            .then(|| chrono::Duration::days(i64::from(config.store.retention_days))),
        suppressions: config.suppressions.settings(),
        ..defaults
    };
    Ok(Store::open(&config.store.url, options).await?)
}

/// For `serve` on SQLite: the lock that keeps a second server off the same database file.
fn lock_store(config: &Config) -> Result<Option<StoreLock>> {
    let Some(path) = config.store.url.strip_prefix("sqlite://") else {
        return Ok(None);
    };
    match StoreLock::acquire(Path::new(path)) {
        Ok(lock) => Ok(Some(lock)),
        Err(err @ tidings_store::Error::Locked { .. }) => Err(anyhow!(
            "{err}. One server owns a SQLite database: stop the other one, or give this one its own `[store] url`. (Reading with `tidings events` / `tidings messages` works while it runs.)"
        )),
        Err(err) => Err(err.into()),
    }
}

/// Opens the store for a command that only reads it: only the store settings are read from
/// the configuration, and nothing is created or migrated. No store is an error that says where
/// the command looked and why there.
async fn open_store_to_read(config_path: Option<&Path>) -> Result<Store> {
    let (store, source) = match config_path {
        Some(path) => (
            Config::load_store(path).map_err(|problems| anyhow!("{}", problems.join("\n")))?,
            format!("the configuration {}", path.display()),
        ),
        None => {
            let mut demo = Config::demo();
            demo.apply_env();
            (demo.store, "the demo's default (no --config)".to_owned())
        }
    };
    let source = if std::env::var(config::DATABASE_URL_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        format!("{} (it is set)", config::DATABASE_URL_ENV)
    } else {
        source
    };
    let options = StoreOptions::default();
    match Store::open_existing(&store.url, &options).await {
        Ok(store) => Ok(store),
        Err(err @ tidings_store::Error::NoStore { .. }) => {
            let absolute = store
                .url
                .strip_prefix("sqlite://")
                .filter(|p| Path::new(p).is_relative())
                .and_then(|p| {
                    std::env::current_dir()
                        .ok()
                        .map(|dir| dir.join(p.trim_start_matches("./")))
                })
                .map(|p| format!(" ({})", p.display()))
                .unwrap_or_default();
            Err(anyhow!(
                "{err}{absolute}.\nLooked there because of {source}. Run this where `tidings serve` ran, or pass the server's --config (or set {}); `tidings serve` creates the store.",
                config::DATABASE_URL_ENV
            ))
        }
        Err(err) => Err(err.into()),
    }
}

/// A small runtime for the commands that read the store.
fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(future)
}

fn serve(config_path: Option<&Path>, listen: Option<String>) -> Result<ExitCode> {
    let mut config = load_config(config_path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if config_path.is_none()
        && let Some(problem) = config::demo_listen_problem(&config.listen)
    {
        return Err(anyhow!("{problem}"));
    }
    // Held until the process ends: drains the log queue on the way out.
    let _log = init_logging(&config);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    if config_path.is_none() {
        tracing::warn!(
            "No configuration: serving the local demo. Environment `dev`, secret key `{}`, one integration per provider named by its id. For local use only.",
            config::DEMO_SECRET
        );
    }
    let certs = certs::CertFetcher::new(&config.certificates)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // Held until the process ends.
    let _lock = lock_store(&config)?;
    runtime.block_on(async move {
        let store = open_store(&config).await?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|err| listen_error(&config.listen, &err))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, store = store.backend(), "Tidings is listening.");
        // Tests and scripts read the bound address (useful with port 0) from this line.
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on {address}").and_then(|()| stdout.flush());
        let endpoints = config.endpoints.clone();
        let app = Arc::new(app::App::new(config, store.clone(), certs));
        let outbound = tidings_outbound::Outbound::start(
            store,
            &endpoints,
            app.outbound_metrics(),
            tidings_outbound::engine::Settings::default(),
        )
        .await?;
        tokio::spawn(tidings::health::watch(Arc::clone(&app)));
        let served = server::serve(app, listener).await;
        outbound.shutdown().await;
        served
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Why the listen address could not be bound, and what to do about it.
fn listen_error(listen: &str, err: &std::io::Error) -> anyhow::Error {
    match err.kind() {
        std::io::ErrorKind::AddrInUse => anyhow!(
            "cannot listen on {listen}: the address is already in use (another Tidings, or another program). Choose another with `--listen 127.0.0.1:3001` or `listen = \"...\"` in the configuration, or stop what holds it."
        ),
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "cannot listen on {listen}: permission denied (ports below 1024 need privileges). Choose another with `--listen` or `listen = \"...\"` in the configuration."
        ),
        std::io::ErrorKind::AddrNotAvailable => anyhow!(
            "cannot listen on {listen}: no network interface of this machine has that address. Choose another with `--listen` or `listen = \"...\"` in the configuration."
        ),
        _ => anyhow!(
            "cannot listen on {listen}: {err}. Choose another address with `--listen` or `listen = \"...\"` in the configuration."
        ),
    }
}

/// Sets up the log: lines go to stderr from a thread of their own (the per-request line is
/// written off the request's worker). The guard drains what is queued when dropped.
fn init_logging(config: &Config) -> Option<log_writer::Guard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDINGS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colour only for a person at a terminal: escape codes in a log file are noise.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    let json = config.log.format == "json";
    match log_writer::start() {
        Some((writer, guard)) => {
            let builder = builder.with_writer(writer);
            if json {
                builder.json().init();
            } else {
                builder.init();
            }
            Some(guard)
        }
        None => {
            let builder = builder.with_writer(std::io::stderr);
            if json {
                builder.json().init();
            } else {
                builder.init();
            }
            None
        }
    }
}

fn check_config(path: &Path) -> Result<ExitCode> {
    match Config::load(path) {
        Ok(config) => {
            for warning in config.warnings() {
                eprintln!("{}: warning: {warning}", path.display());
            }
            writeln!(
                std::io::stdout(),
                "{}: ok ({} environments, {} integrations, {} endpoints)",
                path.display(),
                config.environments.len(),
                config.integrations.len(),
                config.endpoints.len()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{}: {problem}", path.display());
            }
            Ok(ExitCode::from(2))
        }
    }
}

fn providers(json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<_> = registry()
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id(),
                    "aliases": p.aliases(),
                    "channel": p.channel(),
                    "signature": p.signature().name(),
                    "options": p.option_keys(),
                    "media_types": p
                        .declaration()
                        .media_types
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>(),
                    "accepts_get": p.accepts_get(),
                    "signs_url": p.signs_url(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<18} {:<7} {:<24} aliases",
        "id", "channel", "signature"
    )?;
    for p in registry().iter() {
        writeln!(
            out,
            "{:<18} {:<7} {:<24} {}",
            p.id(),
            p.channel().as_str(),
            p.signature().name().unwrap_or("none"),
            p.aliases().join(", ")
        )?;
    }
    Ok(())
}

/// `tidings parse`: one recorded request through a provider's parser (and verifier).
#[derive(clap::Args, Debug)]
struct ParseArgs {
    /// Provider id or alias.
    #[arg(long)]
    provider: String,
    /// The HTTP method: `GET` reads the fields from the query string of `--url` (MessageBird,
    /// Vonage and Plivo receipts), and the body file may be left out.
    #[arg(long, default_value = "POST", value_parser = ["POST", "GET"], ignore_case = true)]
    method: String,
    /// Content type (default: from the file extension: .json, .form, .txt).
    #[arg(long)]
    content_type: Option<String>,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// The URL the provider called, with its query (URL-signed schemes and GET receipts).
    #[arg(long)]
    url: Option<String>,
    /// Verify the signature with this key first (exit 3 when it does not verify).
    #[arg(long)]
    signing_key: Option<String>,
    /// The receive time (RFC 3339). Also turns on the signature's timestamp window.
    #[arg(long)]
    received_at: Option<String>,
    /// The body file, or `-` for standard input (none for a GET receipt).
    file: Option<PathBuf>,
}

fn parse(args: ParseArgs) -> Result<ExitCode> {
    let parser = registry().get(&args.provider).ok_or_else(|| {
        anyhow!(
            "unknown provider `{}` (see `tidings providers`)",
            args.provider
        )
    })?;
    let method = args.method.to_ascii_uppercase();
    if method == "GET" && args.url.is_none() {
        return Err(anyhow!(
            "--method GET reads the fields from the query string: pass the URL with --url"
        ));
    }
    let body = match &args.file {
        None if method == "GET" => Vec::new(),
        None => return Err(anyhow!("name the body file, or `-` for standard input")),
        Some(file) if file.as_os_str() == "-" => {
            let mut body = Vec::new();
            std::io::stdin().read_to_end(&mut body)?;
            body
        }
        Some(file) => std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
    };
    let extension = args.file.as_deref().and_then(|f| f.extension());
    let content_type = args.content_type.or_else(|| {
        match extension.and_then(|e| e.to_str()) {
            Some("json") => Some("application/json"),
            Some("form") => Some("application/x-www-form-urlencoded"),
            Some("txt") => Some("text/plain"),
            _ => None,
        }
        .map(str::to_owned)
    });
    let mut headers = http::HeaderMap::new();
    for line in &args.headers {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("--header must look like `Name: value`"))?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).context("bad header name")?,
            http::HeaderValue::from_str(value.trim()).context("bad header value")?,
        );
    }
    let received_at = match &args.received_at {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .context("--received-at must be RFC 3339")?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let request = RawRequest {
        method: &method,
        body: &body,
        content_type: content_type.as_deref(),
        headers: &headers,
        url: args.url.as_deref(),
        received_at,
    };
    if let Some(key) = &args.signing_key {
        let keys = [Secret::new(key.as_str())];
        let options = BTreeMap::new();
        let fetched = BTreeMap::new();
        let credentials = Credentials {
            signing_keys: &keys,
            options: &options,
            fetched: &fetched,
            // A recorded request is old: its timestamp is only checked against an explicit time.
            freshness: if args.received_at.is_some() {
                Freshness::ProviderDefault
            } else {
                Freshness::Unchecked
            },
        };
        if let Err(err) = parser.verify(&request, &credentials) {
            if err == tidings_core::Error::MissingUrl {
                eprintln!(
                    "signature rejected: `{}` signs the URL it called; pass that URL with --url (e.g. --url 'https://hooks.example.com/v2/inbound-webhooks/delivery-providers/ENV/ID')",
                    parser.id()
                );
            } else {
                eprintln!("signature rejected: {err}");
            }
            return Ok(ExitCode::from(3));
        }
    }
    match parser.read(&request) {
        Ok(parsed) => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string_pretty(&parsed.results())?)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("cannot parse: {err}");
            Ok(ExitCode::from(2))
        }
    }
}

fn events(
    config: Option<&Path>,
    environment: Option<&str>,
    message: Option<&str>,
    after: i64,
) -> Result<ExitCode> {
    block_on(async {
        let store = open_store_to_read(config).await?;
        let mut out = std::io::stdout().lock();
        let mut cursor = after;
        loop {
            let page = store.events(environment, message, cursor, 1000).await?;
            let Some(last) = page.last() else {
                break;
            };
            cursor = last.seq;
            for event in &page {
                let view = EventView::new(event, true);
                writeln!(out, "{}", with_environment(&view, &event.environment_id)?)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn rejections(config: Option<&Path>, query: tidings_store::RejectionQuery) -> Result<ExitCode> {
    block_on(async {
        let store = open_store_to_read(config).await?;
        let mut out = std::io::stdout().lock();
        for row in store.rejections(query).await? {
            writeln!(out, "{}", tidings::rejections::view(&row, None, None))?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn messages(
    config: Option<&Path>,
    environment: Option<&str>,
    message: Option<&str>,
) -> Result<ExitCode> {
    block_on(async {
        let store = open_store_to_read(config).await?;
        let mut out = std::io::stdout().lock();
        for row in store.messages(environment, message).await? {
            let view = MessageView::new(&row, None);
            writeln!(out, "{}", with_environment(&view, &row.environment_id)?)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn endpoints(config: Option<&Path>) -> Result<ExitCode> {
    block_on(async {
        let store = open_store_to_read(config).await?;
        let mut out = std::io::stdout().lock();
        let now = chrono::Utc::now();
        for progress in store.outbound_endpoints().await? {
            let lag = store
                .outbound_lag(&progress.environment_id, progress.cursor)
                .await?;
            let mut line = serde_json::to_value(&progress)?;
            if let serde_json::Value::Object(fields) = &mut line {
                fields.insert("lagEvents".into(), lag.events.into());
                let seconds = lag
                    .oldest_received_at
                    .map_or(0, |at| (now - at).num_seconds().max(0));
                fields.insert("lagSeconds".into(), seconds.into());
            }
            writeln!(out, "{line}")?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn deliveries(config: Option<&Path>, endpoint: Option<&str>, failed: bool) -> Result<ExitCode> {
    block_on(async {
        let store = open_store_to_read(config).await?;
        let mut out = std::io::stdout().lock();
        let rows = store.outbound_deliveries(endpoint, failed).await?;
        let listed = rows.len();
        for row in rows {
            writeln!(out, "{}", serde_json::to_string(&row)?)?;
        }
        if listed >= tidings_store::DELIVERIES_MAX {
            eprintln!("(the first {listed} only; narrow with --endpoint or redrive what is dead)");
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn redrive(
    config: Option<&Path>,
    endpoint: &str,
    since: Option<&str>,
    dead: bool,
) -> Result<ExitCode> {
    let since = since
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    anyhow!("--since `{text}` is not an RFC 3339 time like 2026-01-01T00:00:00Z")
                })
        })
        .transpose()?;
    block_on(async {
        // Read first: a missing store is reported the way the read commands report it, and
        // nothing is created.
        let url = open_store_to_read(config)
            .await
            .map(|_| store_url(config))??;
        let store = Store::open(&url, StoreOptions::default()).await?;
        let known = store
            .outbound_endpoints()
            .await?
            .into_iter()
            .any(|p| p.endpoint_id == endpoint);
        if !known {
            return Err(anyhow!(
                "no endpoint `{endpoint}` in the store (see `tidings endpoints`); an endpoint is recorded when `tidings serve` first starts with it"
            ));
        }
        let mut out = std::io::stdout().lock();
        if dead {
            let n = store
                .outbound_redrive_dead(endpoint, chrono::Utc::now())
                .await?;
            writeln!(
                out,
                "{n} dead-lettered deliveries of `{endpoint}` queued again"
            )?;
        } else if let Some(since) = since {
            let cursor = store.outbound_redrive_since(endpoint, since).await?;
            writeln!(
                out,
                "`{endpoint}` rewound to {}: every event received since {} is delivered again",
                cursor.map(|c| c.to_string()).unwrap_or_default(),
                since.to_rfc3339()
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The store URL the configuration (or the demo default) names.
fn store_url(config_path: Option<&Path>) -> Result<String> {
    Ok(match config_path {
        Some(path) => {
            Config::load_store(path)
                .map_err(|problems| anyhow!("{}", problems.join("\n")))?
                .url
        }
        None => {
            let mut demo = Config::demo();
            demo.apply_env();
            demo.store.url
        }
    })
}

/// What the read API answers for one record, with its environment added (the command line
/// lists every environment).
fn with_environment(view: &impl serde::Serialize, environment: &str) -> Result<String> {
    let mut map = serde_json::Map::new();
    map.insert("environment".into(), environment.into());
    if let serde_json::Value::Object(fields) = serde_json::to_value(view)? {
        map.extend(fields);
    }
    Ok(serde_json::Value::Object(map).to_string())
}
