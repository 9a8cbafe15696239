//! The service's request handler ([`tidings::app::App::handle`]: routing, limits, auth,
//! idempotency, parsing and the durable commit) on one request:
//!
//! ```text
//! <METHOD> <path and query>\n<Header: value\n>*\n<body>
//! ```
//!
//! An input without that shape is a JSON body posted, with the demo's API key, to the
//! integration its first byte picks.
//!
//! The app is built once per process: the local demo configuration (environment `dev`, one
//! integration per provider named by its id) with the key `fuzz-secret-key` (the configuration
//! check refuses the public demo key), plus an integration
//! `<id>-signed` per provider with the signing key and options of its fixtures (a wide timestamp
//! window, so that recorded requests verify), `basic` (SendGrid with Basic credentials
//! `fuzz:fuzz-password`) and `open` (Postmark, unauthenticated). The store is SQLite in a
//! temporary directory; certificates are never fetched: the fixtures' ones are served offline.
//!
//! Besides never panicking, the handler must never answer 500, and every error it answers must
//! be Novu's JSON error shape with the same status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tidings::app::App;
use tidings::certs::CertFetcher;
use tidings::config::{BasicAuth, Config, Integration, Verify};
use tidings_core::{Secret, registry};
use tidings_providers as _;
use tidings_store::{Store, StoreOptions};

/// The demo environment's path prefix, for seeds.
pub const WEBHOOKS: &str = "/v2/inbound-webhooks/delivery-providers/dev";
/// The harness environment's secret key.
const SECRET_KEY: &str = "fuzz-secret-key";
/// The harness environment's `Authorization` header value.
pub const API_KEY: &str = "ApiKey fuzz-secret-key";
/// A timestamp window wide enough for every recorded fixture (about a century).
const WIDE_WINDOW_SECS: i64 = 100 * 366 * 24 * 3600;

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: Arc<App>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| match build() {
        Ok(harness) => harness,
        Err(err) => {
            eprintln!("cannot build the app: {err}");
            std::process::exit(2)
        }
    })
}

fn config(documents: &mut BTreeMap<String, Vec<u8>>) -> Config {
    let mut config = Config::demo();
    config.public_url = Some("https://hooks.example.com".into());
    for environment in &mut config.environments {
        environment.secret_key = Some(Secret::new(SECRET_KEY));
    }
    let mut signed = BTreeMap::new();
    for fixture in tidings_fixtures::all() {
        documents.extend(fixture.fetched.clone());
        if fixture.meta.signing_key.is_none() && fixture.meta.fetched.is_empty() {
            continue;
        }
        signed.entry(fixture.provider.clone()).or_insert_with(|| {
            let mut options = fixture.meta.options.clone();
            let declared = registry()
                .get(&fixture.provider)
                .is_some_and(|p| p.option_keys().contains(&"auto_confirm"));
            if declared {
                options.insert("auto_confirm".into(), "true".into());
            }
            Integration {
                signing_key: fixture.meta.signing_key.as_deref().map(Secret::new),
                signature_tolerance_secs: Some(WIDE_WINDOW_SECS),
                options,
                ..integration(&format!("{}-signed", fixture.provider), &fixture.provider)
            }
        });
    }
    config.integrations.extend(signed.into_values());
    config.integrations.push(Integration {
        basic_auth: Some(BasicAuth {
            username: "fuzz".into(),
            password: Secret::new("fuzz-password"),
        }),
        ..integration("basic", "sendgrid")
    });
    config.integrations.push(Integration {
        allow_unauthenticated: true,
        ..integration("open", "postmark")
    });
    // Verified in shadow mode: failures are recorded and accepted.
    config.integrations.push(Integration {
        signing_key: Some(Secret::new("fuzz-mailgun-signing-key")),
        verify: Verify::Shadow,
        ..integration("shadow", "mailgun")
    });
    config
}

/// An integration of the `dev` environment with no credentials.
fn integration(id: &str, provider: &str) -> Integration {
    Integration {
        id: id.into(),
        environment: "dev".into(),
        provider: provider.into(),
        signing_key: None,
        signing_keys: Vec::new(),
        signature_tolerance_secs: None,
        basic_auth: None,
        allow_unauthenticated: false,
        suppressions: None,
        quiet_after_secs: None,
        verify: Verify::Enforce,
        options: BTreeMap::new(),
    }
}

/// A directory for this process's database, in the system's temporary directory. Directories
/// of processes that are gone are removed first: a fuzzer never exits through destructors.
fn store_dir() -> std::io::Result<PathBuf> {
    let parent = std::env::temp_dir().join("tidings-fuzz-router");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let gone = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
                .is_some_and(|pid| !PathBuf::from(format!("/proc/{pid}")).exists());
            if gone && PathBuf::from("/proc/self").exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = parent.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn build() -> Result<Harness, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut documents = BTreeMap::new();
    let config = config(&mut documents);
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(problems.join("; ").into());
    }
    let url = format!("sqlite://{}", store_dir()?.join("tidings.db").display());
    let options = StoreOptions {
        // Nothing here needs to survive a power loss.
        synchronous_full: false,
        ..StoreOptions::default()
    };
    let store = runtime.block_on(Store::open(&url, options))?;
    let certs = CertFetcher::offline(documents)?;
    let app = Arc::new(App::new(config, store, certs));
    Ok(Harness { runtime, app })
}

/// The request an input describes, or `None` for one no HTTP server would hand on.
fn request(data: &[u8]) -> Option<Request<Full<Bytes>>> {
    let Some((mut lines, body)) = crate::head_and_body(data) else {
        let providers = registry().ids();
        let index = usize::from(data.first().copied().unwrap_or(0)) % providers.len().max(1);
        let provider = providers.get(index)?;
        return Request::post(format!("{WEBHOOKS}/{provider}"))
            .header("authorization", API_KEY)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(
                data.get(1..).unwrap_or_default(),
            )))
            .ok();
    };
    let (method, target) = lines.next()?.split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let mut request = Request::builder()
        .method(method)
        .uri(target)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .ok()?;
    *request.headers_mut() = crate::headers(lines);
    Some(request)
}

/// Runs one input through the handler.
pub fn run(data: &[u8]) {
    let Some(request) = request(data) else {
        return;
    };
    let harness = harness();
    let app = Arc::clone(&harness.app);
    let (status, body) = harness.runtime.block_on(async move {
        let response = app.handle(request).await;
        let status = response.status();
        // The live stream never ends by itself: its status is checked, its body is not read.
        let streaming = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
        if streaming {
            return (status, Bytes::new());
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, body)
    });
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "answered 500: {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_client_error() || status.is_server_error() {
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(
            error.get("statusCode").and_then(serde_json::Value::as_u64),
            Some(u64::from(status.as_u16())),
            "an error answer not in Novu's shape: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
