//! Configuration: a TOML file with `${ENV_VAR}` interpolation, or the embedded local demo.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use tidings_core::{Secret, Signature, registry};

/// The demo environment's secret key, printed with a warning at start.
pub const DEMO_SECRET: &str = "dev-secret";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The public base URL providers call (`https://hooks.example.com`); URL-signed schemes
    /// (Twilio, Mandrill, Plivo) verify against it.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Storage.
    #[serde(default)]
    pub store: StoreConfig,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Fetching signing certificates (Amazon SNS).
    #[serde(default)]
    pub certificates: CertificatesConfig,
    /// Where and to whom `/metrics` is served.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Environments: who may call.
    #[serde(default)]
    pub environments: Vec<Environment>,
    /// Integrations: which provider sends to which path, with its credentials.
    #[serde(default)]
    pub integrations: Vec<Integration>,
    /// Outbound endpoints: where stored events are pushed, signed (see docs/outbound.md).
    #[serde(default)]
    pub endpoints: Vec<tidings_outbound::EndpointConfig>,
    /// The suppression list's thresholds.
    #[serde(default)]
    pub suppressions: SuppressionsConfig,
}

/// `[suppressions]`: when temporary failures suppress, and how phone numbers are normalized.
/// Defaults and their reasons: `tidings_core::suppression::Policy` and docs/suppressions.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuppressionsConfig {
    /// `[suppressions.email]`.
    pub email: ThresholdConfig,
    /// `[suppressions.sms]`.
    pub sms: ThresholdConfig,
    /// `[suppressions.push]`.
    pub push: ThresholdConfig,
    /// Days after its latest failure a temporary suppression lapses.
    pub temporary_expiry_days: u32,
    /// The country calling code of national phone numbers (`44`, `+1`); without it, numbers
    /// with a trunk `0` are not normalized and do not feed the list.
    pub default_country_code: Option<String>,
}

/// Temporary failures that suppress on one channel: `failures` within `window_days`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// How many.
    pub failures: u32,
    /// Within how many days (by event time).
    pub window_days: u32,
}

impl From<tidings_core::suppression::Threshold> for ThresholdConfig {
    fn from(t: tidings_core::suppression::Threshold) -> ThresholdConfig {
        ThresholdConfig {
            failures: t.failures,
            window_days: u32::try_from(t.window.num_days()).unwrap_or(u32::MAX),
        }
    }
}

impl ThresholdConfig {
    fn threshold(self) -> tidings_core::suppression::Threshold {
        tidings_core::suppression::Threshold {
            failures: self.failures,
            window: chrono::Duration::days(i64::from(self.window_days)),
        }
    }
}

impl Default for SuppressionsConfig {
    fn default() -> SuppressionsConfig {
        let policy = tidings_core::suppression::Policy::default();
        SuppressionsConfig {
            email: policy.email.into(),
            sms: policy.sms.into(),
            push: policy.push.into(),
            temporary_expiry_days: u32::try_from(policy.temporary_expiry.num_days()).unwrap_or(30),
            default_country_code: None,
        }
    }
}

impl SuppressionsConfig {
    /// The settings the store folds with.
    pub fn settings(&self) -> tidings_store::SuppressionSettings {
        tidings_store::SuppressionSettings {
            policy: tidings_core::suppression::Policy {
                email: self.email.threshold(),
                sms: self.sms.threshold(),
                push: self.push.threshold(),
                temporary_expiry: chrono::Duration::days(i64::from(self.temporary_expiry_days)),
            },
            phone: self
                .default_country_code
                .as_deref()
                .and_then(tidings_core::recipient::PhoneDefaults::from_country_code)
                .unwrap_or_default(),
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, t) in [
            ("email", self.email),
            ("sms", self.sms),
            ("push", self.push),
        ] {
            if t.failures == 0 || t.window_days == 0 {
                problems.push(format!(
                    "suppressions.{name}: failures and window_days must be above 0"
                ));
            }
        }
        if self.temporary_expiry_days == 0 {
            problems.push("suppressions.temporary_expiry_days must be above 0".into());
        }
        if let Some(code) = &self.default_country_code
            && tidings_core::recipient::PhoneDefaults::from_country_code(code).is_none()
        {
            problems.push(format!(
                "suppressions.default_country_code: `{code}` is not a calling code like 44 or +1"
            ));
        }
        problems
    }
}

fn default_listen() -> String {
    "127.0.0.1:3000".into()
}

/// `[store]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` or `postgres://user:password@host:port/database`.
    /// `TIDINGS_DATABASE_URL` overrides it.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// SQLite: `full` (default: a 200 survives power loss) or `normal` (survives a process crash).
    #[serde(default = "default_synchronous")]
    pub synchronous: String,
    /// PostgreSQL: connections in this instance's pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Days raw requests, events and idempotency records are kept; 0 keeps them forever.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

// By hand: the URL may hold the database password.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &tidings_store::redact_url(&self.url))
            .field("synchronous", &self.synchronous)
            .field("pool_size", &self.pool_size)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

/// The environment variable that overrides `store.url` (so the password need not be in a file).
pub const DATABASE_URL_ENV: &str = "TIDINGS_DATABASE_URL";

fn default_pool_size() -> usize {
    8
}

fn default_retention_days() -> u32 {
    30
}

fn default_store_url() -> String {
    "sqlite://./tidings-data/tidings.db".into()
}

fn default_synchronous() -> String {
    "full".into()
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            url: default_store_url(),
            synchronous: default_synchronous(),
            pool_size: default_pool_size(),
            retention_days: default_retention_days(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Seconds a client has to send its request headers.
    pub header_timeout_secs: u64,
    /// Seconds a request (body included) may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// Seconds the body of a request may take to arrive, once its headers are in (408 beyond).
    pub body_timeout_secs: u64,
    /// Open connections at most; further ones are answered 503 and closed.
    pub max_connections: usize,
    /// Requests processed at once at most; further ones are answered 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// Seconds to finish in-flight requests on shutdown.
    pub shutdown_grace_secs: u64,
    /// h2c: seconds a connection may have no open stream before it is told to go away (and
    /// closed if it does not). Before its first request the deadline is `header_timeout_secs`.
    pub h2_idle_timeout_secs: u64,
    /// h2c: seconds between keep-alive pings; a ping unanswered for as long closes the
    /// connection. 0 turns pings off.
    pub h2_keep_alive_secs: u64,
    /// h2c: streams (requests) open at once on one connection.
    pub h2_max_streams: u32,
    /// Bytes of request bodies all requests together may hold in memory; a request that would
    /// pass it is answered 503 with `Retry-After`.
    pub max_buffered_body_bytes: usize,
    /// Provider events one request may carry (413 beyond).
    pub max_events_per_request: usize,
    /// `/readyz`: not ready while a request has waited this many milliseconds or more in the
    /// commit queue.
    pub ready_max_queue_age_ms: u64,
    /// `/readyz`: not ready while the last commit failed and one failed within this many
    /// seconds.
    pub ready_failure_window_secs: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 1024 * 1024,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            body_timeout_secs: 10,
            max_connections: 4096,
            max_in_flight: 1024,
            shutdown_grace_secs: 10,
            h2_idle_timeout_secs: 30,
            h2_keep_alive_secs: 20,
            h2_max_streams: 32,
            max_buffered_body_bytes: 8 * 1024 * 1024,
            max_events_per_request: 10_000,
            ready_max_queue_age_ms: 2000,
            ready_failure_window_secs: 5,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: String,
    /// A `tracing` filter, e.g. `info` or `tidings=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            format: "human".into(),
            level: "info".into(),
        }
    }
}

/// `[certificates]`: how signing certificates (Amazon SNS's `SigningCertURL`) are fetched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificatesConfig {
    /// PEM file of the CA certificates to trust; default: the Mozilla roots built in.
    pub ca_file: Option<PathBuf>,
    /// Seconds a fetch may take.
    pub timeout_secs: u64,
    /// Host name → address overrides (`"sns.us-east-1.amazonaws.com" = "10.0.0.5:443"`), for
    /// networks where a proxy or split-horizon DNS serves these hosts.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// Seconds a failed fetch is remembered: requests for that URL meanwhile get 503 at once,
    /// without a fetch. 0 remembers nothing.
    pub failure_cache_secs: u64,
    /// Fetches running at once at most; a request that needs one more gets 503.
    pub max_concurrent_fetches: usize,
}

impl Default for CertificatesConfig {
    fn default() -> CertificatesConfig {
        CertificatesConfig {
            ca_file: None,
            timeout_secs: 5,
            resolve: BTreeMap::new(),
            failure_cache_secs: 10,
            max_concurrent_fetches: 4,
        }
    }
}

/// `[metrics]`: `/metrics` aggregates every environment, so it can be kept off the public
/// address or behind a token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` only on this address (e.g. `127.0.0.1:9100`), not on `listen`.
    pub listen: Option<String>,
    /// Require `Authorization: Bearer <token>` for `/metrics`.
    pub token: Option<Secret>,
}

/// `[[environments]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The id in the path.
    pub id: String,
    /// The secret key callers send as `Authorization: ApiKey <secret>`.
    #[serde(default)]
    pub secret_key: Option<Secret>,
    /// More keys accepted alongside `secret_key` (all of them, so a key can be rotated).
    #[serde(default)]
    pub secret_keys: Vec<Secret>,
}

impl Environment {
    /// Every accepted secret key.
    pub fn keys(&self) -> impl Iterator<Item = &Secret> {
        self.secret_key.iter().chain(&self.secret_keys)
    }

    /// Whether `presented` is one of the environment's keys. Every key is compared in constant
    /// time, with no early exit, so the time taken does not tell which key came close.
    pub fn accepts(&self, presented: &str) -> bool {
        self.keys().fold(false, |found, key| {
            found | tidings_core::signature::ct_eq(presented.as_bytes(), key.expose().as_bytes())
        })
    }
}

/// The fewest characters a secret (environment key, signing key, Basic password) may have: an
/// empty `${VAR}` or a placeholder is a mistake, and an empty HMAC key lets anyone sign.
pub const MIN_SECRET_CHARS: usize = 8;

/// The problem with one secret, if any: empty, too short, or the public demo key.
fn secret_problem(name: &str, secret: &Secret) -> Option<String> {
    let value = secret.expose();
    if value.trim().is_empty() {
        Some(format!(
            "{name} is empty (is its environment variable set to an empty string?)"
        ))
    } else if value == DEMO_SECRET {
        Some(format!(
            "{name} is the public demo key `{DEMO_SECRET}`; generate a real one (e.g. `openssl rand -hex 32`)"
        ))
    } else if value.chars().count() < MIN_SECRET_CHARS {
        Some(format!(
            "{name} must be at least {MIN_SECRET_CHARS} characters"
        ))
    } else {
        None
    }
}

/// `[[integrations]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// The id in the path.
    pub id: String,
    /// The environment it belongs to.
    pub environment: String,
    /// The provider id or alias.
    pub provider: String,
    /// The provider's signing key (or several, during a rotation).
    #[serde(default)]
    pub signing_key: Option<Secret>,
    /// More signing keys accepted alongside `signing_key`.
    #[serde(default)]
    pub signing_keys: Vec<Secret>,
    /// Seconds a signed timestamp may be off (default: the provider's own window).
    #[serde(default)]
    pub signature_tolerance_secs: Option<i64>,
    /// HTTP Basic credentials the provider embeds in the URL.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Accept requests with no credentials at all. Off by default.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Whether this integration's events feed the suppression list. Absent: only events of
    /// authenticated requests (API key, Basic, verified signature); `true`: also unauthenticated
    /// ones; `false`: none.
    #[serde(default)]
    pub suppressions: Option<bool>,
    /// Seconds without an event after which the integration's health is `quiet` (off when
    /// absent: some integrations are quiet for days by nature).
    #[serde(default)]
    pub quiet_after_secs: Option<u64>,
    /// `enforce` (the default): a request that fails verification is refused. `shadow`: it is
    /// verified, a failure recorded as a rejection would be, and the request accepted anyway.
    #[serde(default)]
    pub verify: Verify,
    /// Provider-specific settings.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// What a failed verification does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Refuse the request.
    #[default]
    Enforce,
    /// Record the failure and accept the request: for rolling out a signature safely.
    Shadow,
}

/// `basic_auth = { username = "...", password = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

impl Integration {
    /// Every signing key.
    pub fn keys(&self) -> impl Iterator<Item = &Secret> {
        self.signing_key.iter().chain(&self.signing_keys)
    }
}

/// Interpolates `${VAR}` in every string of a TOML value.
fn interpolate_strings(value: &mut toml::Value) -> Result<(), Vec<String>> {
    match value {
        toml::Value::String(text) => {
            *text = interpolate(text, |name| std::env::var(name).ok())?;
        }
        toml::Value::Array(items) => items.iter_mut().try_for_each(interpolate_strings)?,
        toml::Value::Table(table) => table
            .iter_mut()
            .try_for_each(|(_, value)| interpolate_strings(value))?,
        _ => {}
    }
    Ok(())
}

/// Whether `listen` is a loopback address (`127.0.0.1:3000`, `[::1]:3000`, `localhost:3000`).
pub fn is_loopback(listen: &str) -> bool {
    match listen.parse::<SocketAddr>() {
        Ok(address) => address.ip().is_loopback(),
        Err(_) => listen
            .rsplit_once(':')
            .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
    }
}

/// Why the demo (no configuration) may not listen on `listen`, if it may not: it serves the
/// public key `dev-secret`, so only this machine may reach it.
pub fn demo_listen_problem(listen: &str) -> Option<String> {
    (!is_loopback(listen)).then(|| {
        format!(
            "`{listen}` is not a loopback address. Without a configuration Tidings serves the demo, whose key `{DEMO_SECRET}` is public, so it listens only on 127.0.0.1, [::1] or localhost. To listen on other addresses, write a configuration (see tidings.example.toml) and pass --config."
        )
    })
}

/// Replaces `${NAME}` with the environment variable `NAME`; every missing variable is reported.
/// Comment lines are left as they are.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                missing.push("an unterminated `${`".to_owned());
                rest = "";
                break;
            };
            let name = &after[..end];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => missing.push(format!("environment variable `{name}` is not set")),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

impl Config {
    /// Reads a config file, interpolating `${ENV}`; every problem at once.
    pub fn load(path: &std::path::Path) -> Result<Config, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        Config::parse(&text)
    }

    /// Parses config text, interpolating `${ENV}`, then validates it.
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        let text = interpolate(text, |name| std::env::var(name).ok())?;
        let mut config: Config = toml::from_str(&text).map_err(|e| vec![e.to_string()])?;
        config.apply_env();
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Reads only the `[store]` table of a config file, for the commands that only read the
    /// store: `${VAR}`s elsewhere (the secrets) need not be set. A file that is not TOML before
    /// interpolation (a `${VAR}` outside a string) is read whole, as `serve` reads it.
    pub fn load_store(path: &std::path::Path) -> Result<StoreConfig, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        let Ok(mut table) = toml::from_str::<toml::Table>(&text) else {
            return Config::parse(&text).map(|config| config.store);
        };
        let mut store = table
            .remove("store")
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        interpolate_strings(&mut store)?;
        let mut config = Config::demo();
        config.store = store.try_into().map_err(|e| vec![format!("store: {e}")])?;
        config.apply_env();
        if tidings_store::backend_of(&config.store.url).is_none() {
            return Err(vec![format!(
                "store.url: `{}` is not supported (use sqlite://path/to/file.db or postgres://user@host/database)",
                tidings_store::redact_url(&config.store.url)
            )]);
        }
        Ok(config.store)
    }

    /// Applies environment overrides: `TIDINGS_DATABASE_URL` replaces `store.url`.
    pub fn apply_env(&mut self) {
        if let Ok(url) = std::env::var(DATABASE_URL_ENV)
            && !url.trim().is_empty()
        {
            self.store.url = url.trim().to_owned();
        }
    }

    /// The local demo: environment `dev` with secret `dev-secret`, one integration per provider.
    pub fn demo() -> Config {
        Config {
            listen: default_listen(),
            public_url: None,
            store: StoreConfig::default(),
            limits: Limits::default(),
            log: LogConfig::default(),
            certificates: CertificatesConfig::default(),
            metrics: MetricsConfig::default(),
            environments: vec![Environment {
                id: "dev".into(),
                secret_key: Some(Secret::new(DEMO_SECRET)),
                secret_keys: Vec::new(),
            }],
            // One integration per provider id, and one per alias (`brevo`, `vonage`, ...), so
            // whichever name a newcomer knows works as the integration id.
            integrations: registry()
                .iter()
                .flat_map(|p| {
                    std::iter::once(p.id())
                        .chain(p.aliases().iter().copied())
                        .map(move |id| (id, p))
                })
                .map(|(id, provider)| Integration {
                    id: id.into(),
                    environment: "dev".into(),
                    provider: provider.id().into(),
                    signing_key: None,
                    signing_keys: Vec::new(),
                    signature_tolerance_secs: None,
                    basic_auth: None,
                    allow_unauthenticated: false,
                    suppressions: None,
                    quiet_after_secs: None,
                    verify: Verify::Enforce,
                    // What the provider's checks need, with values that say they are the demo's
                    // (Amazon SNS: a topic wildcard).
                    options: provider
                        .demo_options()
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                        .collect(),
                })
                .collect(),
            suppressions: SuppressionsConfig::default(),
            endpoints: Vec::new(),
        }
    }

    /// What works but deserves a look: said by `check-config` and at start.
    pub fn warnings(&self) -> Vec<String> {
        self.integrations
            .iter()
            .filter(|i| i.verify == Verify::Shadow)
            .map(|i| {
                format!(
                    "integration `{}` of environment `{}` verifies in shadow mode: requests that fail verification are recorded as rejections and accepted anyway; set verify = \"enforce\" once none fail",
                    i.id, i.environment
                )
            })
            .collect()
    }

    /// Every problem with this configuration.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "listen: `{}` is not an address like 127.0.0.1:3000",
                self.listen
            ));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push(format!(
                "public_url: `{url}` must start with https:// or http://"
            ));
        }
        if tidings_store::backend_of(&self.store.url).is_none() {
            problems.push(format!(
                "store.url: `{}` is not supported (use sqlite://path/to/file.db or postgres://user@host/database)",
                tidings_store::redact_url(&self.store.url)
            ));
        }
        if self.store.pool_size == 0 {
            problems.push("store.pool_size must be above 0".into());
        }
        if !matches!(self.store.synchronous.as_str(), "full" | "normal") {
            problems.push(format!(
                "store.synchronous: `{}` must be full or normal",
                self.store.synchronous
            ));
        }
        if self.limits.max_body_bytes == 0
            || self.limits.max_in_flight == 0
            || self.limits.max_connections == 0
        {
            problems.push(
                "limits: max_body_bytes, max_in_flight and max_connections must be above 0".into(),
            );
        }
        if self.limits.max_buffered_body_bytes < self.limits.max_body_bytes
            || self.limits.max_events_per_request == 0
        {
            problems.push(
                "limits: max_buffered_body_bytes must be at least max_body_bytes, and max_events_per_request above 0".into(),
            );
        }
        if self.limits.header_timeout_secs == 0
            || self.limits.request_timeout_secs == 0
            || self.limits.body_timeout_secs == 0
            || self.limits.h2_idle_timeout_secs == 0
            || self.limits.h2_max_streams == 0
        {
            problems.push(
                "limits: header_timeout_secs, request_timeout_secs, body_timeout_secs, h2_idle_timeout_secs and h2_max_streams must be above 0".into(),
            );
        }
        if let Some(listen) = &self.metrics.listen
            && listen.parse::<SocketAddr>().is_err()
        {
            problems.push(format!(
                "metrics.listen: `{listen}` is not an address like 127.0.0.1:9100"
            ));
        }
        problems.extend(
            self.metrics
                .token
                .iter()
                .filter_map(|token| secret_problem("metrics.token", token)),
        );
        if let Some(path) = &self.certificates.ca_file
            && !path.is_file()
        {
            problems.push(format!(
                "certificates.ca_file: {} is not a file",
                path.display()
            ));
        }
        if !matches!(self.log.format.as_str(), "human" | "json") {
            problems.push(format!(
                "log.format: `{}` must be human or json",
                self.log.format
            ));
        }
        problems.extend(self.suppressions.problems());
        if self.environments.is_empty() {
            problems.push(
                "environments: none is defined, so no request can be accepted; add an [[environments]] table with an id and a secret_key".into(),
            );
        }
        let mut env_ids = std::collections::BTreeSet::new();
        for env in &self.environments {
            if !env_ids.insert(env.id.as_str()) {
                problems.push(format!("environments: `{}` is defined twice", env.id));
            }
            let name = format!("environments.{}", env.id);
            if env.keys().next().is_none() {
                problems.push(format!("{name}: set secret_key (or secret_keys)"));
            }
            problems.extend(
                env.secret_key
                    .iter()
                    .filter_map(|key| secret_problem(&format!("{name}: secret_key"), key)),
            );
            problems.extend(
                env.secret_keys.iter().enumerate().filter_map(|(i, key)| {
                    secret_problem(&format!("{name}: secret_keys[{i}]"), key)
                }),
            );
        }
        let mut integration_ids = std::collections::BTreeSet::new();
        for integration in &self.integrations {
            let name = format!("integrations.{}", integration.id);
            if !integration_ids.insert((integration.environment.as_str(), integration.id.as_str()))
            {
                problems.push(format!(
                    "{name}: defined twice in environment `{}`",
                    integration.environment
                ));
            }
            // The handler turns it into a duration on every request: one chrono cannot hold
            // would panic there.
            if let Some(secs) = integration.signature_tolerance_secs
                && (secs < 0 || chrono::Duration::try_seconds(secs).is_none())
            {
                problems.push(format!(
                    "{name}: signature_tolerance_secs must be 0 or more seconds (at most {})",
                    i64::MAX / 1000
                ));
            }
            problems.extend(
                integration
                    .signing_key
                    .iter()
                    .filter_map(|key| secret_problem(&format!("{name}: signing_key"), key)),
            );
            problems.extend(
                integration
                    .signing_keys
                    .iter()
                    .enumerate()
                    .filter_map(|(i, key)| {
                        secret_problem(&format!("{name}: signing_keys[{i}]"), key)
                    }),
            );
            if let Some(basic) = &integration.basic_auth {
                if basic.username.is_empty() || basic.username.contains(':') {
                    problems.push(format!(
                        "{name}: basic_auth.username must be set and hold no `:`"
                    ));
                }
                problems.extend(secret_problem(
                    &format!("{name}: basic_auth.password"),
                    &basic.password,
                ));
            }
            if !env_ids.contains(integration.environment.as_str()) {
                problems.push(format!(
                    "{name}: environment `{}` is not defined",
                    integration.environment
                ));
            }
            match registry().get(&integration.provider) {
                None => problems.push(format!(
                    "{name}: unknown provider `{}` (see `tidings providers`)",
                    integration.provider
                )),
                Some(parser) => {
                    // Parsing here keeps each key parsed in the configuration (`Secret::parsed`): the
                    // service's copies carry it, so no request decodes a key again.
                    for (index, key) in integration.keys().enumerate() {
                        if let Some(problem) = parser.key_problem(key) {
                            problems.push(format!(
                                "{name}: signing key {} cannot be used: {problem}",
                                index + 1
                            ));
                        }
                    }
                    problems.extend(
                        parser
                            .option_problems(&integration.options)
                            .into_iter()
                            .map(|problem| format!("{name}: {problem}")),
                    );
                    if matches!(parser.signature(), Signature::None)
                        && integration.keys().next().is_some()
                    {
                        problems.push(format!(
                            "{name}: provider `{}` does not sign its requests; use basic_auth instead of signing_key",
                            parser.id()
                        ));
                    }
                    if parser.signs_url()
                        && integration.keys().next().is_some()
                        && self.public_url.is_none()
                    {
                        problems.push(format!(
                            "{name}: provider `{}` signs the URL it calls, so its signatures cannot be verified without public_url (the base URL the provider calls, e.g. https://hooks.example.com)",
                            parser.id()
                        ));
                    }
                    let known = parser.option_keys();
                    for key in integration.options.keys() {
                        if !known.contains(&key.as_str()) {
                            problems.push(if known.is_empty() {
                                format!(
                                    "{name}: unknown option `{key}`: provider `{}` takes no options",
                                    parser.id()
                                )
                            } else {
                                format!(
                                    "{name}: unknown option `{key}` for provider `{}` (it takes: {})",
                                    parser.id(),
                                    known.join(", ")
                                )
                            });
                        }
                    }
                }
            }
        }
        let environments: Vec<&str> = env_ids.iter().copied().collect();
        let mut endpoint_ids = std::collections::BTreeSet::new();
        for endpoint in &self.endpoints {
            if !endpoint_ids.insert(endpoint.id.as_str()) {
                problems.push(format!("endpoints: `{}` is defined twice", endpoint.id));
            }
            problems.extend(endpoint.problems(&environments));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_valid() {
        use tidings_providers as _;
        let text = include_str!("../../../tidings.example.toml");
        // Outbound endpoint secrets are `whsec_` + base64; SendGrid's key is a public key (its
        // documented sample here); every other secret is free text.
        let text = interpolate(text, |name| {
            Some(if name.ends_with("_WHSEC") {
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()
            } else if name == "SENDGRID_WEBHOOK_PUBLIC_KEY" {
                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
                    .into()
            } else {
                "example-secret-value".into()
            })
        })
        .unwrap();
        let config: Config = toml::from_str(&text).unwrap();
        assert_eq!(config.problems(), Vec::<String>::new());
    }

    #[test]
    fn suppression_settings_are_checked() {
        use tidings_providers as _;
        let text = r#"
            [[environments]]
            id = "a"
            secret_key = "a-long-enough-secret"
            [suppressions]
            temporary_expiry_days = 0
            default_country_code = "UK"
            [suppressions.sms]
            failures = 0
            window_days = 3
        "#;
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(
            config.problems(),
            [
                "suppressions.sms: failures and window_days must be above 0",
                "suppressions.temporary_expiry_days must be above 0",
                "suppressions.default_country_code: `UK` is not a calling code like 44 or +1",
            ]
        );
        let good: Config = toml::from_str(
            r#"
            [suppressions]
            default_country_code = "+44"
            [suppressions.email]
            failures = 5
            window_days = 14
            "#,
        )
        .unwrap();
        let settings = good.suppressions.settings();
        assert_eq!(settings.policy.email.failures, 5);
        assert_eq!(settings.policy.email.window, chrono::Duration::days(14));
        assert_eq!(settings.policy.sms.failures, 3);
        assert_eq!(settings.phone.country_code.as_deref(), Some("44"));
    }

    #[test]
    fn endpoints_are_checked() {
        let text = r#"
            [[environments]]
            id = "prod"
            secret_key = "a-long-enough-key"
            [[endpoints]]
            id = "app"
            environment = "prod"
            url = "https://app.example.com/hooks"
            secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
            [[endpoints]]
            id = "app"
            environment = "staging"
            url = "ftp://app.example.com/hooks"
            secrets = ["whsec_c2hvcnQ="]
        "#;
        let config: Config = toml::from_str(text).unwrap();
        let problems = config.problems().join("\n");
        for expected in [
            "endpoints: `app` is defined twice",
            "environment `staging` is not configured",
            "must start with http:// or https://",
            "decodes to 5 bytes",
        ] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
        assert_eq!(problems.lines().count(), 4, "{problems}");
        let typo = text.replace("secrets =", "secret =");
        assert!(
            toml::from_str::<Config>(&typo).is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        use tidings_providers as _;
        let text = r#"
            listen = "nowhere"
            [store]
            url = "mysql://x"
            [[environments]]
            id = "a"
            secret_key = "short"
            [[integrations]]
            id = "i"
            environment = "missing"
            provider = "no-such-provider"
        "#;
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.problems().len(), 5, "{:?}", config.problems());
    }

    #[test]
    fn a_tolerance_chrono_cannot_hold_is_a_problem_not_a_panic_per_request() {
        use tidings_providers as _;
        for (secs, ok) in [
            ("0", true),
            ("300", true),
            ("9223372036854775", true),
            ("9223372036854776", false),
            ("9223372036854775807", false),
            ("-1", false),
        ] {
            let text = format!(
                "[[environments]]\nid = \"e\"\nsecret_key = \"long-enough\"\n\
                 [[integrations]]\nid = \"i\"\nenvironment = \"e\"\nprovider = \"mailgun\"\n\
                 signing_key = \"long-enough-key\"\nsignature_tolerance_secs = {secs}\n"
            );
            let config: Config = toml::from_str(&text).unwrap();
            assert_eq!(
                config.problems().is_empty(),
                ok,
                "{secs}: {:?}",
                config.problems()
            );
        }
    }

    const ENVIRONMENT: &str = "[[environments]]\nid = \"e\"\nsecret_key = \"long-enough\"\n";

    #[test]
    fn an_option_the_provider_does_not_declare_is_a_problem() {
        use tidings_providers as _;
        let config = |options: &str| -> Config {
            toml::from_str(&format!(
                "{ENVIRONMENT}[[integrations]]\nid = \"i\"\nenvironment = \"e\"\nprovider = \"ses\"\n\
                 options = {{ {options} }}\n"
            ))
            .unwrap()
        };
        let typo = config("topic_arn = \"arn:aws:sns:us-east-1:123456789012:mine\"");
        let problems = typo.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown option `topic_arn`") && p.contains("topic_arns")),
            "{problems:?}"
        );
        let right = config(
            "topic_arns = \"arn:aws:sns:us-east-1:123456789012:mine\", auto_confirm = \"true\"",
        );
        assert!(
            !right.problems().iter().any(|p| p.contains("option")),
            "{:?}",
            right.problems()
        );
    }

    #[test]
    fn an_environment_accepts_each_of_its_keys_and_nothing_else() {
        let config = Config::parse(
            "[[environments]]\nid = \"e\"\nsecret_key = \"first-key-1\"\nsecret_keys = [\"second-key-2\", \"third-key-3\"]\n",
        )
        .unwrap();
        let env = &config.environments[0];
        for key in ["first-key-1", "second-key-2", "third-key-3"] {
            assert!(env.accepts(key), "{key}");
        }
        for key in ["", "first-key", "second-key-2 ", "dev-secret"] {
            assert!(!env.accepts(key), "{key:?}");
        }
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let config = Config::parse(&format!(
            "[store]\nurl = \"postgres://app:db-password@db/t\"\n{ENVIRONMENT}\
             [[integrations]]\nid = \"i\"\nenvironment = \"e\"\nprovider = \"postmark\"\n\
             basic_auth = {{ username = \"u\", password = \"basic-password\" }}\n"
        ));
        let shown = format!("{config:?}");
        for secret in ["db-password", "basic-password", "long-enough"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn ses_and_sns_integrations_need_a_topic_allow_list() {
        use tidings_providers as _;
        for (provider, options, ok) in [
            ("ses", "", false),
            ("sns", "", false),
            ("amazon-ses", "options = { auto_confirm = \"true\" }", false),
            ("ses", "options = { topic_arns = \" , \" }", false),
            ("ses", "options = { topic_arns = \"SES_Events\" }", false),
            (
                "ses",
                "options = { topic_arns = \"arn:aws:sns:us-east-1:123456789012:a, arn:aws:sns:us-east-1:123456789012:b\" }",
                true,
            ),
            (
                "sns",
                "options = { topic_arns = \"any-topic-of-any-aws-account\" }",
                true,
            ),
            ("sendgrid", "", true),
        ] {
            let text = format!(
                "{ENVIRONMENT}[[integrations]]\nid = \"i\"\nenvironment = \"e\"\nprovider = \"{provider}\"\n{options}\n"
            );
            let config: Config = toml::from_str(&text).unwrap();
            let problems = config.problems();
            assert_eq!(
                problems.is_empty(),
                ok,
                "{provider} {options}: {problems:?}"
            );
            assert!(
                problems.iter().all(|p| p.contains("topic_arns")),
                "{problems:?}"
            );
        }
        // The demo's SNS-delivered integrations say what their wildcard is.
        let demo = Config::demo();
        let ses = demo.integrations.iter().find(|i| i.id == "ses").unwrap();
        assert_eq!(
            ses.options.get("topic_arns").map(String::as_str),
            Some("any-topic-of-any-aws-account")
        );
    }

    #[test]
    fn only_loopback_addresses_are_loopback() {
        for (listen, loopback) in [
            ("127.0.0.1:3000", true),
            ("127.1.2.3:0", true),
            ("[::1]:3000", true),
            ("localhost:3000", true),
            ("0.0.0.0:3000", false),
            ("[::]:3000", false),
            ("192.168.1.5:3000", false),
            ("example.com:3000", false),
        ] {
            assert_eq!(is_loopback(listen), loopback, "{listen}");
        }
    }

    #[test]
    fn the_demo_answers_to_provider_aliases() {
        use tidings_providers as _;
        let demo = Config::demo();
        for (id, provider) in [
            ("brevo", "sendinblue"),
            ("vonage", "nexmo"),
            ("bird", "messagebird"),
            ("sendgrid", "sendgrid"),
        ] {
            assert!(
                demo.integrations
                    .iter()
                    .any(|i| i.id == id && i.provider == provider),
                "{id}"
            );
        }
    }

    #[test]
    fn interpolation_reports_every_missing_variable() {
        let lookup = |name: &str| (name == "A").then(|| "x".to_owned());
        assert_eq!(
            interpolate("k = \"${A}-${A}\"", lookup).unwrap(),
            "k = \"x-x\""
        );
        assert_eq!(interpolate("${B} ${C}", lookup).unwrap_err().len(), 2);
        assert_eq!(
            interpolate("# ${B}\nk = 1", lookup).unwrap(),
            "# ${B}\nk = 1"
        );
    }

    #[test]
    fn both_store_backends_are_accepted() {
        if std::env::var(DATABASE_URL_ENV).is_ok() {
            return; // The override would replace every URL below.
        }
        for url in [
            "sqlite://./data/tidings.db",
            "postgres://tidings@db.internal:5432/tidings",
            "postgresql://tidings:pw@db/tidings?sslmode=disable",
        ] {
            let config = Config::parse(&format!(
                "[store]\nurl = \"{url}\"\npool_size = 4\nretention_days = 7\n{ENVIRONMENT}"
            ));
            assert_eq!(config.map(|c| c.store.url).ok().as_deref(), Some(url));
        }
        for (url, shown) in [
            ("mysql://x:secret@h/db", "mysql://x:***@h/db"),
            (
                "host=h user=x password=secret",
                "host=h user=x password=***",
            ),
        ] {
            let problems =
                Config::parse(&format!("[store]\nurl = \"{url}\"\n{ENVIRONMENT}")).unwrap_err();
            assert!(problems.iter().any(|p| p.contains(shown)), "{problems:?}");
            assert!(problems.iter().all(|p| !p.contains("secret")));
        }
    }
}
