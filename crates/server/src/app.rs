//! The request handler: routing, limits, auth, idempotency, parsing and the durable commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use tidings_core::{
    Control, Credentials, Freshness, MediaType, ProviderParser, RawRequest, Rejection, Secret,
    Signature, registry, signature::ct_eq,
};
use tidings_store::{Claim, IdempotencyRecord, Ingest, Store, StoredResponse};
use tokio::sync::Semaphore;

use crate::certs::CertFetcher;
use crate::config::{Config, Integration};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Longest accepted `Idempotency-Key`.
const IDEMPOTENCY_KEY_MAX: usize = 255;

/// Everything a request needs, shared by all connections.
pub struct App {
    config: Config,
    store: Store,
    pub(crate) metrics: Metrics,
    /// Outbound delivery's metrics, rendered with the rest.
    pub(crate) outbound_metrics: Arc<tidings_outbound::Metrics>,
    in_flight: Semaphore,
    certs: CertFetcher,
    integrations: BTreeMap<(String, String), IntegrationRoute>,
    /// Turns true when the server stops: live streams end.
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// What an `(environment, integration)` path leads to: the integration, its parser, its keys.
type IntegrationRoute = (Integration, &'static dyn ProviderParser, Vec<Secret>);

/// The response body type: a whole body, or a stream (Server-Sent Events).
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A whole response body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// What answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Novu's webhook endpoint.
    Ingest,
    /// Liveness.
    Healthz,
    /// Readiness.
    Readyz,
    /// Prometheus metrics.
    Metrics,
    /// An environment's events, by cursor.
    Events,
    /// An environment's events as Server-Sent Events.
    EventStream,
    /// One message of one integration, with its timeline.
    Message,
    /// Messages found by id, or listed by status.
    Messages,
    /// Each integration of an environment with its recent activity and health.
    Integrations,
    /// The dashboard page.
    Dashboard,
    /// One of the dashboard's script and style files.
    DashboardAsset,
    /// The OpenAPI document.
    OpenApi,
}

/// One route: a method and a path whose `{name}` segments match any one segment.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method it answers.
    pub method: Method,
    /// The path pattern.
    pub path: &'static str,
    /// What answers it.
    pub endpoint: Endpoint,
}

/// Every route Tidings serves. The OpenAPI document lists each of them (a test checks it).
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::POST,
        path: "/v2/inbound-webhooks/delivery-providers/{environmentId}/{integrationId}",
        endpoint: Endpoint::Ingest,
    },
    Route {
        method: Method::GET,
        path: "/v1/environments/{environmentId}/events",
        endpoint: Endpoint::Events,
    },
    Route {
        method: Method::GET,
        path: "/v1/environments/{environmentId}/events/stream",
        endpoint: Endpoint::EventStream,
    },
    Route {
        method: Method::GET,
        path: "/v1/environments/{environmentId}/integrations/{integrationId}/messages/{messageId}",
        endpoint: Endpoint::Message,
    },
    Route {
        method: Method::GET,
        path: "/v1/environments/{environmentId}/messages",
        endpoint: Endpoint::Messages,
    },
    Route {
        method: Method::GET,
        path: "/v1/environments/{environmentId}/integrations",
        endpoint: Endpoint::Integrations,
    },
    Route {
        method: Method::GET,
        path: "/",
        endpoint: Endpoint::Dashboard,
    },
    Route {
        method: Method::GET,
        path: "/dashboard/{asset}",
        endpoint: Endpoint::DashboardAsset,
    },
    Route {
        method: Method::GET,
        path: "/healthz",
        endpoint: Endpoint::Healthz,
    },
    Route {
        method: Method::GET,
        path: "/readyz",
        endpoint: Endpoint::Readyz,
    },
    Route {
        method: Method::GET,
        path: "/metrics",
        endpoint: Endpoint::Metrics,
    },
    Route {
        method: Method::GET,
        path: "/openapi.json",
        endpoint: Endpoint::OpenApi,
    },
];

/// The route for a request and its path parameters (as sent), or the 404 / 405 answer.
pub fn route<'p>(method: &Method, path: &'p str) -> Result<(Endpoint, Vec<&'p str>), ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut allowed: Vec<&str> = Vec::new();
    for candidate in ROUTES {
        let pattern: Vec<&str> = candidate.path.trim_matches('/').split('/').collect();
        if pattern.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let matched = pattern.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                params.push(*s);
                !s.is_empty()
            } else {
                p == s
            }
        });
        if !matched {
            continue;
        }
        if candidate.method == *method {
            return Ok((candidate.endpoint, params));
        }
        allowed.push(candidate.method.as_str());
    }
    if allowed.is_empty() {
        Err(ApiError::new(StatusCode::NOT_FOUND, "Not found."))
    } else {
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Use {} for this path.", allowed.join(" or ")),
        ))
    }
}

impl App {
    /// Builds the app from a validated configuration and an open store.
    pub fn new(config: Config, store: Store, certs: CertFetcher) -> App {
        let integrations = config
            .integrations
            .iter()
            .filter_map(|i| {
                let parser = registry().get(&i.provider)?;
                Some((
                    (i.environment.clone(), i.id.clone()),
                    (i.clone(), parser, i.keys()),
                ))
            })
            .collect();
        App {
            in_flight: Semaphore::new(config.limits.max_in_flight),
            config,
            store,
            metrics: Metrics::default(),
            outbound_metrics: Arc::default(),
            certs,
            integrations,
            shutdown: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Ends live streams: called when the server starts shutting down, so that graceful
    /// shutdown does not wait on them.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Turns true once the server stops.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Outbound delivery's metrics, for the delivery engine to fill.
    pub fn outbound_metrics(&self) -> Arc<tidings_outbound::Metrics> {
        Arc::clone(&self.outbound_metrics)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Answers one request. Generic over the request body: the listener passes hyper's
    /// `Incoming`, the router fuzz target an in-memory body.
    pub async fn handle<B>(self: Arc<Self>, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let (endpoint, params) = match route(request.method(), &path) {
            Ok(found) => found,
            Err(err) => return err.into_response(&path),
        };
        let param = |index: usize| params.get(index).copied().unwrap_or_default().to_owned();
        let response = match endpoint {
            Endpoint::Ingest => {
                let (env, integration) = (param(0), param(1));
                let timeout = Duration::from_secs(self.config.limits.request_timeout_secs);
                let outcome = tokio::time::timeout(
                    timeout,
                    Arc::clone(&self).ingest(request, &env, &integration),
                )
                .await
                .unwrap_or_else(|_| Err(ApiError::timeout()));
                let (provider, response) = match outcome {
                    Ok((provider, response)) => (provider, response),
                    Err(err) => (err.provider.unwrap_or("unknown"), err.into_response(&path)),
                };
                let latency = started.elapsed();
                self.metrics
                    .request(provider, response.status().as_u16(), latency);
                let counts = response
                    .extensions()
                    .get::<Counts>()
                    .copied()
                    .unwrap_or_default();
                tracing::info!(
                    provider,
                    environment = env,
                    integration,
                    status = response.status().as_u16(),
                    events = counts.events,
                    duplicates = counts.duplicates,
                    latency_ms = latency.as_secs_f64() * 1000.0,
                    "Webhook answered."
                );
                return response;
            }
            Endpoint::OpenApi => Ok(openapi()),
            Endpoint::Healthz => Ok(text(StatusCode::OK, "ok\n", "text/plain")),
            Endpoint::Readyz => match self.store.ping().await {
                Ok(()) if self.store.is_saturated() => {
                    Err(ApiError::unavailable("The store is saturated."))
                }
                Ok(()) => Ok(text(StatusCode::OK, "ready\n", "text/plain")),
                Err(_) => Err(ApiError::unavailable("The store is not reachable.")),
            },
            Endpoint::Metrics => {
                let mut body = self.metrics.render(self.store.stats());
                self.outbound_metrics.render(&mut body);
                Ok(text(StatusCode::OK, &body, "text/plain; version=0.0.4"))
            }
            Endpoint::Dashboard => Ok(crate::dashboard::page()),
            Endpoint::DashboardAsset => crate::dashboard::asset(&param(0)),
            Endpoint::Events
            | Endpoint::EventStream
            | Endpoint::Message
            | Endpoint::Messages
            | Endpoint::Integrations => {
                crate::api::answer(&self, endpoint, &params, &request).await
            }
        };
        response.unwrap_or_else(|err| err.into_response(&path))
    }

    async fn ingest<B>(
        self: Arc<Self>,
        request: Request<B>,
        env: &str,
        integration_id: &str,
    ) -> Result<(&'static str, Response<Body>), ApiError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Refuse at once rather than queue without bound: providers retry on 503.
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| ApiError::unavailable("Too many requests in flight; retry shortly."))?;
        let environment = self
            .config
            .environments
            .iter()
            .find(|e| e.id == env)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("Environment `{env}` was not found."),
                )
            })?;
        let (integration, parser, keys) = self
            .integrations
            .get(&(env.to_owned(), integration_id.to_owned()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("Integration `{integration_id}` was not found in environment `{env}`."),
                )
            })?;
        let provider = parser.id();
        let with_provider = |e: ApiError| e.for_provider(provider);

        let (parts, body) = request.into_parts();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if MediaType::of(content_type.as_deref()) == MediaType::Other {
            return Err(with_provider(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Send application/json, application/x-www-form-urlencoded, multipart/form-data or text/plain.",
            )));
        }
        let idempotency_key = match parts.headers.get("idempotency-key") {
            None => None,
            Some(value) => {
                let key = value.to_str().map_err(|_| {
                    with_provider(ApiError::bad_request(
                        "Idempotency-Key must be visible ASCII.",
                    ))
                })?;
                if key.len() > IDEMPOTENCY_KEY_MAX {
                    return Err(with_provider(ApiError::bad_request(format!(
                        "Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX} characters."
                    ))));
                }
                // An empty key is no key: it must not become one that every caller shares.
                (!key.trim().is_empty()).then(|| key.to_owned())
            }
        };
        let limit = self.config.limits.max_body_bytes;
        if let Some(length) = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && length > limit as u64
        {
            return Err(with_provider(ApiError::too_large(limit)));
        }
        let body = read_limited(body, limit).await.map_err(with_provider)?;
        let received_at = Utc::now();
        let url = self.public_url(&parts.uri);
        let raw = RawRequest {
            body: &body,
            content_type: content_type.as_deref(),
            headers: &parts.headers,
            url: url.as_deref(),
            received_at,
        };
        // An endpoint-registration handshake carries no event and may not be signed: answer it
        // as the provider requires, before authentication, and store nothing.
        if let Some(handshake) = parser.handshake(&raw) {
            let mut response = text(StatusCode::OK, "", "text/plain");
            for (name, value) in handshake.headers {
                let name = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| with_provider(ApiError::internal(&e)))?;
                let value = http::HeaderValue::from_str(&value).map_err(|_| {
                    with_provider(ApiError::bad_request(
                        "The handshake token is not a valid header value.",
                    ))
                })?;
                response.headers_mut().insert(name, value);
            }
            tracing::info!(
                provider,
                integration = integration_id,
                "Handshake answered."
            );
            return Ok((provider, response));
        }
        let auth = self
            .authenticate(
                &parts.headers,
                environment,
                integration,
                *parser,
                keys,
                &raw,
            )
            .await
            .map_err(with_provider)?;

        // Hashed only for an idempotency key: nothing else needs it on the hot path.
        let idempotency = match idempotency_key {
            None => None,
            Some(key) => {
                let body_hash = Sha256::digest(&body).to_vec();
                match self
                    .claim(env, integration_id, &key, &body_hash)
                    .await
                    .map_err(with_provider)?
                {
                    Ok(guard) => Some((key, body_hash, guard)),
                    Err(replay) => return Ok((provider, replay)),
                }
            }
        };

        let mut parsed = parser.parse(&raw).map_err(|err| {
            let status = match err.rejection() {
                Rejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
                Rejection::BadRequest => StatusCode::BAD_REQUEST,
            };
            with_provider(ApiError::new(status, err.to_string()))
        })?;
        let controls = std::mem::take(&mut parsed.controls);
        let response_body = parsed.results_json().map_err(|e| ApiError::internal(&e))?;
        let statuses: Vec<&'static str> = parsed
            .events
            .iter()
            .map(|e| e.body.status.as_str())
            .collect();
        let ingest = Ingest {
            environment_id: env.to_owned(),
            integration_id: integration_id.to_owned(),
            provider: provider.to_owned(),
            received_at,
            content_type: content_type.clone(),
            headers_json: headers_json(&parts.headers),
            body: body.to_vec(),
            events: parsed.events,
            ignored_json: serde_json::to_string(&parsed.ignored).unwrap_or_else(|_| "[]".into()),
            idempotency: idempotency
                .as_ref()
                .map(|(key, body_hash, _)| IdempotencyRecord {
                    key: key.clone(),
                    body_hash: body_hash.clone(),
                    status: 200,
                    response: response_body.clone(),
                }),
        };
        let outcome = self.store.ingest(ingest).await.map_err(|err| {
            tracing::error!(provider, error = %err, "Store refused the request.");
            with_provider(ApiError::unavailable(
                "Storage is unavailable; retry shortly.",
            ))
        })?;
        self.metrics
            .events(provider, statuses.into_iter(), outcome.duplicates);
        // Acted on only once the request is durably stored.
        for control in &controls {
            self.act_on(control, integration, auth, provider).await;
        }
        let mut response = Response::new(full(response_body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(Counts {
            events: outcome.stored + outcome.duplicates,
            duplicates: outcome.duplicates,
        });
        Ok((provider, response))
    }

    fn public_url(&self, uri: &http::Uri) -> Option<String> {
        let base = self.config.public_url.as_deref()?.trim_end_matches('/');
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Some(format!("{base}{path}"))
    }

    /// Confirms an SNS-style subscription when the integration allows it and the request was
    /// proven by the provider's own signature; otherwise logs what a person must do.
    async fn act_on(
        &self,
        control: &Control,
        integration: &Integration,
        auth: Auth,
        provider: &str,
    ) {
        match control {
            Control::ConfirmSubscription { url, topic } => {
                let enabled = integration
                    .options
                    .get("auto_confirm")
                    .is_some_and(|v| v == "true");
                if enabled && auth == Auth::Signature {
                    match self.certs.fetch(url).await {
                        Ok(_) => tracing::info!(provider, topic, "Subscription confirmed."),
                        Err(err) => tracing::warn!(provider, topic, error = %err,
                            "Confirming the subscription failed; the provider will ask again."),
                    }
                } else {
                    tracing::warn!(provider, topic, subscribe_url = %url,
                        "The provider asks to confirm a subscription: visit the URL to confirm it \
                         (or set options.auto_confirm = \"true\" on a signature-verified integration).");
                }
            }
            Control::Unsubscribed { topic } => {
                tracing::warn!(
                    provider,
                    topic,
                    "The provider says this endpoint was unsubscribed."
                );
            }
        }
    }

    async fn authenticate(
        &self,
        headers: &HeaderMap,
        environment: &crate::config::Environment,
        integration: &Integration,
        parser: &dyn ProviderParser,
        keys: &[Secret],
        raw: &RawRequest<'_>,
    ) -> Result<Auth, ApiError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or("");
            if let Some(secret) = strip_scheme(value, "apikey") {
                return if environment.accepts(secret.trim()) {
                    Ok(Auth::ApiKey)
                } else {
                    Err(ApiError::unauthorized(
                        "The API key is not valid for this environment.",
                    ))
                };
            }
            if let Some(encoded) = strip_scheme(value, "basic") {
                let Some(expected) = &integration.basic_auth else {
                    return Err(ApiError::unauthorized(
                        "This integration has no Basic credentials configured.",
                    ));
                };
                let decoded = tidings_core::signature::base64_decode(encoded)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::unauthorized("Malformed Basic credentials."))?;
                // RFC 7617: `user:password`. Without the colon there is no password to check
                // (reading it as an empty one would let `Basic base64(user)` in).
                let (user, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| ApiError::unauthorized("Malformed Basic credentials."))?;
                let user_ok = ct_eq(user.as_bytes(), expected.username.as_bytes());
                let password_ok = ct_eq(password.as_bytes(), expected.password.expose().as_bytes());
                return if user_ok & password_ok {
                    Ok(Auth::Basic)
                } else {
                    Err(ApiError::unauthorized(
                        "The Basic credentials are not valid.",
                    ))
                };
            }
            // Other schemes (a provider's own bearer token) fall through to the signature.
        }
        let verifiable = !keys.is_empty() || matches!(parser.signature(), Signature::Keyless(_));
        if verifiable {
            let urls = parser.remote_keys(raw).map_err(|e| {
                ApiError::unauthorized(format!("Signature verification failed: {e}."))
            })?;
            let mut fetched = BTreeMap::new();
            for url in urls {
                let document = self.certs.fetch(&url).await.map_err(|err| {
                    tracing::warn!(url, error = %err, "Fetching a signing certificate failed.");
                    ApiError::unavailable(
                        "The provider's signing certificate could not be fetched; retry shortly.",
                    )
                })?;
                fetched.insert(url, document.to_vec());
            }
            let freshness = integration
                .signature_tolerance_secs
                .map(|s| Freshness::Within(chrono::Duration::seconds(s)))
                .unwrap_or_default();
            let credentials = Credentials {
                signing_keys: keys,
                options: &integration.options,
                fetched: &fetched,
                freshness,
            };
            return parser
                .verify(raw, &credentials)
                .map(|()| Auth::Signature)
                .map_err(|e| {
                    ApiError::unauthorized(format!("Signature verification failed: {e}."))
                });
        }
        if integration.allow_unauthenticated {
            return Ok(Auth::Unauthenticated);
        }
        Err(ApiError::unauthorized(
            "Missing credentials: send `Authorization: ApiKey <secret key>`, or configure the integration's signing key or Basic credentials.",
        ))
    }

    /// Claims the key in the store (for every instance sharing it): a guard that releases it when
    /// the request ends, the stored response to replay, or the error the key calls for.
    async fn claim(
        &self,
        env: &str,
        integration: &str,
        key: &str,
        body_hash: &[u8],
    ) -> Result<Result<ClaimGuard, Response<Body>>, ApiError> {
        let claim = self
            .store
            .claim_idempotency(env, integration, key, body_hash, Utc::now())
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "Store refused an idempotency claim.");
                ApiError::unavailable("Storage is unavailable; retry shortly.")
            })?;
        match claim {
            Claim::Claimed => Ok(Ok(ClaimGuard {
                store: self.store.clone(),
                entry: (env.to_owned(), integration.to_owned(), key.to_owned()),
            })),
            Claim::InFlight => Err(ApiError::conflict()),
            Claim::Mismatch => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was already used with a different request body.",
            )),
            Claim::Replay(stored) => Ok(Err(replay(key, stored))),
        }
    }
}

/// What a request stored, for its log line.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Normalized events in the request.
    events: usize,
    /// Of those, events already stored (provider retries).
    duplicates: usize,
}

/// How a request proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// The environment's secret key.
    ApiKey,
    /// The integration's Basic credentials.
    Basic,
    /// The provider's own signature.
    Signature,
    /// Nothing: the integration allows it.
    Unauthenticated,
}

/// The stored response, byte for byte, marked as a replay.
fn replay(key: &str, stored: StoredResponse) -> Response<Body> {
    let mut response = Response::new(full(stored.response));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = http::HeaderValue::from_str(key) {
        headers.insert("idempotency-key", value);
    }
    headers.insert("idempotency-replay", http::HeaderValue::from_static("true"));
    response
}

/// Releases a claimed idempotency key when the request ends, however it ends (a timeout drops
/// the request's future, and the guard with it).
struct ClaimGuard {
    store: Store,
    entry: (String, String, String),
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let (env, integration, key) = std::mem::take(&mut self.entry);
        match &self.store {
            // In memory: release at once.
            Store::Sqlite(sqlite) => {
                let _ = sqlite.release_idempotency(&env, &integration, &key);
            }
            // A database round trip: in the background. Until it lands, other instances answer
            // 409; if it never does, the claim is abandoned after the request timeout.
            Store::Postgres(_) => {
                let store = self.store.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(err) = store.release_idempotency(&env, &integration, &key).await
                        {
                            tracing::warn!(error = %err, "Cannot release an idempotency key.");
                        }
                    });
                }
            }
        }
    }
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

/// Reads the body, stopping with 413 as soon as it passes the limit.
async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::too_large(limit))
        }
        Err(_) => Err(ApiError::bad_request("The request body could not be read.")),
    }
}

/// Request headers worth keeping with the raw request: everything but credentials.
fn headers_json(headers: &HeaderMap) -> String {
    let mut map = BTreeMap::new();
    for (name, value) in headers {
        if name == header::AUTHORIZATION || name == header::COOKIE {
            continue;
        }
        if let Ok(value) = value.to_str() {
            map.insert(name.as_str().to_owned(), value.to_owned());
        }
    }
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

fn text(status: StatusCode, body: &str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// The OpenAPI 3.1 document of every endpoint, hand-maintained beside this file; the tests
/// check it against the router, Novu's published operation and an OpenAPI validator.
const OPENAPI: &str = include_str!("openapi.json");

fn openapi() -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(OPENAPI.as_bytes())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
