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
use tidings_store::{Admission, Claim, IdempotencyRecord, Ingest, Store, StoredResponse};
use tokio::sync::Semaphore;

use crate::certs::CertFetcher;
use crate::config::{Config, Integration, Verify};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// The longest a commit group may take (the store's commit timeout with its default settings).
const COMMIT_BOUND: Duration = Duration::from_secs(10);

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
    /// Bytes of request bodies all requests may hold in memory at once.
    body_budget: Semaphore,
    certs: CertFetcher,
    integrations: BTreeMap<(String, String), IntegrationRoute>,
    /// Turns true when the server stops: live streams end.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Refused webhooks, recorded in the background.
    rejections: crate::rejections::Recorder,
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
    /// Refused webhooks of an environment, newest first.
    Rejections,
    /// The dashboard page.
    Dashboard,
    /// One of the dashboard's script and style files.
    DashboardAsset,
    /// The OpenAPI document.
    OpenApi,
    /// Whether one recipient is suppressed, and why.
    Suppression,
    /// One recipient's suppression records, manual ones included.
    SuppressionHistory,
    /// The suppression list, by cursor.
    Suppressions,
    /// Suppresses a recipient by hand.
    SuppressionPut,
    /// Lifts a recipient's suppression by hand.
    SuppressionDelete,
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
    // Receipts that providers send as GET (MessageBird, Vonage, Plivo): the provider must
    // declare it; for any other, ingest answers 405.
    Route {
        method: Method::GET,
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
        path: "/v1/environments/{environmentId}/rejections",
        endpoint: Endpoint::Rejections,
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
    Route {
        method: Method::GET,
        path: "/v1/environments/{environmentId}/suppressions",
        endpoint: Endpoint::Suppressions,
    },
    Route {
        method: Method::GET,
        path: "/v1/environments/{environmentId}/suppressions/{recipient}",
        endpoint: Endpoint::Suppression,
    },
    Route {
        method: Method::PUT,
        path: "/v1/environments/{environmentId}/suppressions/{recipient}",
        endpoint: Endpoint::SuppressionPut,
    },
    Route {
        method: Method::DELETE,
        path: "/v1/environments/{environmentId}/suppressions/{recipient}",
        endpoint: Endpoint::SuppressionDelete,
    },
    Route {
        method: Method::GET,
        path: "/v1/environments/{environmentId}/suppressions/{recipient}/history",
        endpoint: Endpoint::SuppressionHistory,
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
                    (i.clone(), parser, i.keys().cloned().collect()),
                ))
            })
            .collect();
        App {
            in_flight: Semaphore::new(config.limits.max_in_flight),
            body_budget: Semaphore::new(
                config
                    .limits
                    .max_buffered_body_bytes
                    .min(Semaphore::MAX_PERMITS),
            ),
            config,
            store,
            metrics: Metrics::default(),
            outbound_metrics: Arc::default(),
            certs,
            integrations,
            shutdown: tokio::sync::watch::Sender::new(false),
            rejections: crate::rejections::Recorder::default(),
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
                // Kept for a refusal's record; both clones share the request's own buffers.
                let method = request.method().clone();
                let uri = request.uri().clone();
                let timeout = Duration::from_secs(self.config.limits.request_timeout_secs);
                let outcome = tokio::time::timeout(
                    timeout,
                    Arc::clone(&self).ingest(request, &env, &integration),
                )
                .await
                .unwrap_or_else(|_| Err(ApiError::timeout()));
                let (provider, response) = match outcome {
                    Ok((provider, response)) => (provider, response),
                    Err(err) => {
                        if let (Some(provider), Some(reason), Some(refused)) =
                            (err.provider, err.reason(), err.refused_request())
                        {
                            let called = crate::rejections::Called {
                                environment: &env,
                                integration: &integration,
                                provider,
                                method: method.as_str(),
                                path: uri.path_and_query().map_or(path.as_str(), |p| p.as_str()),
                            };
                            self.rejections.record(
                                &self.store,
                                &called,
                                reason,
                                refused,
                                err.status().as_u16(),
                                err.detail(),
                            );
                        }
                        (err.provider.unwrap_or("unknown"), err.into_response(&path))
                    }
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
            Endpoint::Readyz => {
                // "A write would succeed soon": judged from the writer's recent commits and its
                // queue, not by writing.
                let limits = &self.config.limits;
                let readiness = self.store.readiness(
                    Duration::from_millis(limits.ready_max_queue_age_ms),
                    Duration::from_secs(limits.ready_failure_window_secs),
                );
                match self.store.ping().await {
                    Err(_) => Err(ApiError::unavailable("The store is not reachable.")),
                    Ok(()) if self.store.is_saturated() => {
                        Err(ApiError::unavailable("The store is saturated."))
                    }
                    Ok(()) => match readiness {
                        Ok(()) => Ok(text(StatusCode::OK, "ready\n", "text/plain")),
                        Err(why) => Err(ApiError::unavailable(format!("Not ready: {why}."))),
                    },
                }
            }
            // Served on its own address when `metrics.listen` is set.
            Endpoint::Metrics if self.config.metrics.listen.is_some() => {
                Err(ApiError::new(StatusCode::NOT_FOUND, "Not found."))
            }
            Endpoint::Metrics => self.metrics_page(request.headers()),
            Endpoint::Dashboard => Ok(crate::dashboard::page()),
            Endpoint::DashboardAsset => crate::dashboard::asset(&param(0)),
            Endpoint::Events
            | Endpoint::EventStream
            | Endpoint::Message
            | Endpoint::Messages
            | Endpoint::Integrations
            | Endpoint::Rejections => crate::api::answer(&self, endpoint, &params, &request).await,
            Endpoint::Suppression
            | Endpoint::SuppressionHistory
            | Endpoint::Suppressions
            | Endpoint::SuppressionPut
            | Endpoint::SuppressionDelete => {
                crate::suppressions::answer(&self, endpoint, &params, request).await
            }
        };
        response.unwrap_or_else(|err| err.into_response(&path))
    }

    /// `/metrics`, with `Authorization: Bearer <metrics.token>` when a token is set.
    fn metrics_page(&self, headers: &HeaderMap) -> Result<Response<Body>, ApiError> {
        if let Some(token) = &self.config.metrics.token {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| strip_scheme(v, "bearer"))
                .unwrap_or_default();
            if !ct_eq(given.as_bytes(), token.expose().as_bytes()) {
                return Err(ApiError::unauthorized(
                    "Send `Authorization: Bearer <metrics token>`.",
                ));
            }
        }
        let mut body = self.metrics.render(self.store.stats());
        self.outbound_metrics.render(&mut body);
        Ok(text(StatusCode::OK, &body, "text/plain; version=0.0.4"))
    }

    /// Answers a request on the metrics listener (`metrics.listen`): `/metrics` only.
    pub async fn handle_metrics<B>(self: Arc<Self>, request: Request<B>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let answer = if request.method() == Method::GET && path == "/metrics" {
            self.metrics_page(request.headers())
        } else {
            Err(ApiError::new(StatusCode::NOT_FOUND, "Not found."))
        };
        answer.unwrap_or_else(|err| err.into_response(&path))
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
        let environment = self.config.environments.iter().find(|e| e.id == env);
        let route = self
            .integrations
            .get(&(env.to_owned(), integration_id.to_owned()));
        let (environment, (integration, parser, keys)) = match (environment, route) {
            (Some(environment), Some(route)) => (environment, route),
            (environment, _) => {
                // Only a caller holding the environment's key learns which part is unknown;
                // to anyone else an unknown environment and an unknown integration look alike.
                let keyed = environment.is_some_and(|e| {
                    api_key(request.headers()).is_some_and(|key| e.accepts(key.trim()))
                });
                let message = if keyed {
                    format!("Integration `{integration_id}` was not found in environment `{env}`.")
                } else {
                    "No such environment or integration.".to_owned()
                };
                return Err(ApiError::new(StatusCode::NOT_FOUND, message));
            }
        };
        let provider = parser.id();
        let with_provider = |e: ApiError| e.for_provider(provider);
        if request.method() == Method::GET && !parser.accepts_get() {
            return Err(with_provider(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{provider} delivers webhooks with POST; use POST for this path."),
            )));
        }

        let (parts, body) = request.into_parts();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let url = self.request_url(&parts.method, &parts.uri, &parts.headers);
        // What the headers alone tell, before a byte of the body is read (docs/api.md lists the
        // order of the checks).
        let head = RawRequest {
            method: parts.method.as_str(),
            body: &[],
            content_type: content_type.as_deref(),
            headers: &parts.headers,
            url: url.as_deref(),
            received_at: Utc::now(),
        };
        // An API key or Basic credentials are decided here; a request that has neither and
        // cannot carry a signature is refused without its body being read.
        let header_auth =
            authenticate_headers(&parts.headers, environment, integration, *parser, keys)
                .map_err(|e| with_provider(e.with_request(&parts.headers, None)));
        // A provider's registration handshake is answered without credentials; its headers say
        // whether the request may be one (the body decides), and only then is a 401 deferred.
        let header_auth = match header_auth {
            Err(err) if parser.handshake(&head).is_none() => return Err(err),
            other => other,
        };
        // Refuse at once rather than queue without bound: providers retry on 503.
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| ApiError::unavailable("Too many requests in flight; retry shortly."))?;
        if MediaType::of(content_type.as_deref()) == MediaType::Other {
            return Err(with_provider(
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Send application/json, application/x-www-form-urlencoded, multipart/form-data or text/plain.",
                )
                .because("unsupported_media_type")
                .with_request(&parts.headers, None),
            ));
        }
        let idempotency_key = match parts.headers.get("idempotency-key") {
            None => None,
            Some(value) => {
                let key = value.to_str().map_err(|_| {
                    with_provider(
                        ApiError::bad_request("Idempotency-Key must be visible ASCII.")
                            .because("invalid_request")
                            .with_request(&parts.headers, None),
                    )
                })?;
                if key.len() > IDEMPOTENCY_KEY_MAX {
                    return Err(with_provider(
                        ApiError::bad_request(format!(
                            "Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX} characters."
                        ))
                        .because("invalid_request")
                        .with_request(&parts.headers, None),
                    ));
                }
                // An empty key is no key: it must not become one that every caller shares.
                (!key.trim().is_empty()).then(|| key.to_owned())
            }
        };
        let limit = self.config.limits.max_body_bytes;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = declared
            && length > limit as u64
        {
            return Err(with_provider(
                ApiError::too_large(limit)
                    .because("too_large")
                    .with_request(&parts.headers, None),
            ));
        }
        // Bodies held in memory by all requests together stay within one budget: a declared
        // length is reserved before reading, a chunked body as it arrives; 503 when it is spent.
        let mut budget = BodyBudget::new(&self.body_budget);
        if let Some(length) = declared {
            budget.take(usize::try_from(length).unwrap_or(usize::MAX))?;
        }
        // The body has its own deadline, shorter than the request's: a client trickling its
        // body holds a slot for at most this long.
        let body_timeout = Duration::from_secs(self.config.limits.body_timeout_secs);
        let reserved = declared.is_some();
        let body = tokio::time::timeout(
            body_timeout,
            read_limited(body, limit, &mut budget, reserved),
        )
        .await
        .map_err(|_| {
            with_provider(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "The request body was not received in time.",
            ))
        })?
        .map_err(|e| with_provider(e.with_request(&parts.headers, None)))?;
        // From here a refusal is recorded with the body.
        let refused = |e: ApiError| with_provider(e.with_request(&parts.headers, Some(&body)));
        let received_at = Utc::now();
        let raw = RawRequest {
            method: parts.method.as_str(),
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
        let verified = match header_auth? {
            Some(auth) => Ok(auth),
            None => {
                self.verify_signature(integration, *parser, keys, &raw)
                    .await
            }
        };
        let auth = match verified {
            Ok(auth) => auth,
            // Shadow mode: the verdict is recorded as a rejection would be, and the request
            // goes on as unauthenticated (it never confirms a subscription).
            Err(err) if integration.verify == Verify::Shadow && err.reason().is_some() => {
                let reason = err.reason().unwrap_or("bad_signature");
                self.metrics.shadow_failure(env, integration_id, reason);
                let called = crate::rejections::Called {
                    environment: env,
                    integration: integration_id,
                    provider,
                    method: parts.method.as_str(),
                    path: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                };
                let refused = crate::rejections::Refused {
                    headers: parts.headers.clone(),
                    body: Some(body.clone()),
                };
                self.rejections.record(
                    &self.store,
                    &called,
                    reason,
                    &refused,
                    200,
                    &format!("Accepted in shadow mode: {}", err.detail()),
                );
                Auth::ShadowFailed
            }
            Err(err) => return Err(refused(err)),
        };

        // One raw request is kept per distinct request (repeats are counted), and idempotency
        // keys and nonces compare requests by this hash: the body's, or for a GET, whose fields
        // are in the query string, the method, path and query with the body.
        let body_hash = if parts.method == Method::GET {
            let mut hasher = Sha256::new();
            hasher.update(b"GET ");
            hasher.update(path_and_query(&parts.uri).as_bytes());
            hasher.update(b"\n");
            hasher.update(&body);
            hasher.finalize().to_vec()
        } else {
            Sha256::digest(&body).to_vec()
        };
        let nonce = match auth {
            Auth::Signature => nonce_record(integration, *parser, keys, &raw),
            _ => None,
        };
        let idempotency = match idempotency_key {
            None => None,
            Some(key) => {
                let body_hash = body_hash.clone();
                match self
                    .claim(env, integration_id, &key, &body_hash)
                    .await
                    .map_err(refused)?
                {
                    Ok(guard) => Some((key, body_hash, guard)),
                    Err(replay) => return Ok((provider, replay)),
                }
            }
        };

        let mut parsed = parser.read(&raw).map_err(|err| {
            let status = match err.rejection() {
                Rejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
                Rejection::BadRequest => StatusCode::BAD_REQUEST,
            };
            refused(ApiError::new(status, err.to_string()).because(err.reason()))
        })?;
        let max_events = self.config.limits.max_events_per_request;
        let carried = parsed.events.len() + parsed.ignored.len();
        if carried > max_events {
            return Err(refused(
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "This request carries {carried} events; at most {max_events} are accepted in one request (limits.max_events_per_request). Send them in smaller batches."
                    ),
                )
                .because("too_large"),
            ));
        }
        let controls = std::mem::take(&mut parsed.controls);
        let response_body = parsed.results_json().map_err(|e| ApiError::internal(&e))?;
        let statuses: Vec<&'static str> = parsed
            .events
            .iter()
            .map(|e| e.body.status.as_str())
            .collect();
        // Cancelled if this request is dropped (timed out, client gone) before the writer takes
        // it into a commit group; once there it is committed, and the idempotency claim is kept
        // until the writer answers.
        let admission = Admission::new();
        let _cancel_on_drop = CancelOnDrop(admission.clone());
        let mut idempotency = idempotency;
        if let Some((_, _, guard)) = &mut idempotency {
            guard.admission = Some(admission.clone());
        }
        let ingest = Ingest {
            admission,
            environment_id: env.to_owned(),
            integration_id: integration_id.to_owned(),
            provider: provider.to_owned(),
            received_at,
            content_type: content_type.clone(),
            method: parts.method.as_str().to_owned(),
            url: path_and_query(&parts.uri).to_owned(),
            authentication: auth.name().to_owned(),
            headers_json: headers_json(&parts.headers, *parser),
            body: body.to_vec(),
            body_hash,
            nonce,
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
            // A request that failed shadow verification never suppresses anyone.
            feeds_suppressions: auth != Auth::ShadowFailed
                && integration
                    .suppressions
                    .unwrap_or(auth != Auth::Unauthenticated),
        };
        let outcome = self.store.ingest(ingest).await.map_err(|err| {
            tracing::error!(provider, error = %err, "Store refused the request.");
            with_provider(ApiError::unavailable(
                "Storage is unavailable; retry shortly.",
            ))
        })?;
        if outcome.nonce_reused {
            tracing::warn!(
                provider,
                integration = integration_id,
                "A signature's one-time token came again with another body (a replay); refused."
            );
            return Err(refused(
                ApiError::unauthorized(INVALID_CREDENTIALS)
                    .because("replayed_signature")
                    .detailed("The signature's one-time token was used before with another body (a replay)."),
            ));
        }
        self.metrics
            .events(provider, statuses.into_iter(), outcome.duplicates);
        // Acted on only once the request is durably stored.
        for control in &controls {
            self.act_on(control, integration, *parser, auth, provider)
                .await;
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
        Some(format!("{base}{}", path_and_query(uri)))
    }

    /// The URL a parser sees: under `public_url` when it is set; otherwise, for a GET, rebuilt
    /// from the `Host` header, which is enough for reading the receipt's query string
    /// (URL-signed schemes need `public_url`, and configuration checks require it for them).
    fn request_url(&self, method: &Method, uri: &http::Uri, headers: &HeaderMap) -> Option<String> {
        if let Some(url) = self.public_url(uri) {
            return Some(url);
        }
        if method != Method::GET {
            return None;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| uri.authority().map(http::uri::Authority::as_str))
            .unwrap_or("localhost");
        Some(format!("http://{host}{}", path_and_query(uri)))
    }

    /// Confirms an SNS-style subscription when the integration allows it and the request was
    /// proven by the provider's own signature; otherwise logs what a person must do.
    async fn act_on(
        &self,
        control: &Control,
        integration: &Integration,
        parser: &dyn ProviderParser,
        auth: Auth,
        provider: &str,
    ) {
        match control {
            Control::ConfirmSubscription { url, topic } => {
                let enabled = integration
                    .options
                    .get("auto_confirm")
                    .is_some_and(|v| v == "true");
                // Only a topic the integration names itself: never one a wildcard let in.
                let named = parser.may_confirm(topic, &integration.options);
                if enabled && !named && auth == Auth::Signature {
                    tracing::warn!(provider, topic, subscribe_url = %url,
                        "Not confirming a subscription to a topic the integration does not list by name in options.topic_arns; visit the URL to confirm it by hand.");
                } else if enabled && auth == Auth::Signature {
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

    /// Proves the request with the provider's own signature: the request had neither an API
    /// key nor Basic credentials, and [`authenticate_headers`] found a signature can verify it.
    async fn verify_signature(
        &self,
        integration: &Integration,
        parser: &dyn ProviderParser,
        keys: &[Secret],
        raw: &RawRequest<'_>,
    ) -> Result<Auth, ApiError> {
        let freshness = freshness(integration);
        let no_documents = BTreeMap::new();
        let local = Credentials {
            signing_keys: keys,
            options: &integration.options,
            fetched: &no_documents,
            freshness,
        };
        // Why is logged for the operator; the caller gets the one answer every credential
        // failure gets, which does not tell how the integration authenticates.
        let failed = |e: tidings_core::Error| {
            tracing::warn!(
                provider = parser.id(),
                integration = integration.id,
                reason = %e,
                "Signature verification failed."
            );
            ApiError::unauthorized(INVALID_CREDENTIALS)
                .because(e.reason())
                .detailed(format!("Signature verification failed: {e}."))
        };
        let urls = parser.remote_keys(raw).map_err(failed)?;
        // Everything checkable here is checked before anything is fetched: a request that
        // cannot verify must not cost an outbound request.
        if !urls.is_empty() {
            parser.precheck(raw, &local).map_err(failed)?;
        }
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
        let credentials = Credentials {
            fetched: &fetched,
            ..local
        };
        parser
            .verify(raw, &credentials)
            .map(|()| Auth::Signature)
            .map_err(failed)
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
                admission: None,
                // The claim's own expiry (see `open_store`): the request timeout plus the
                // longest a commit may take.
                wait_limit: Duration::from_secs(self.config.limits.request_timeout_secs)
                    + COMMIT_BOUND,
            })),
            Claim::InFlight => Err(ApiError::conflict()),
            Claim::Mismatch => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was already used with a different request body.",
            )
            .because("idempotency_conflict")),
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
    /// Verification failed on a `verify = "shadow"` integration, which accepts it anyway.
    ShadowFailed,
}

impl Auth {
    /// Its name where requests and events are stored and shown.
    fn name(self) -> &'static str {
        match self {
            Auth::ApiKey => "api_key",
            Auth::Basic => "basic",
            Auth::Signature => "signature",
            Auth::Unauthenticated => "none",
            Auth::ShadowFailed => "shadow_failed",
        }
    }
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
/// the request's future, and the guard with it). A request dropped after the writer took it into
/// a commit group keeps its claim until the writer answers: releasing it earlier would let a
/// retry with another body in while this one commits.
struct ClaimGuard {
    store: Store,
    entry: (String, String, String),
    /// The request's place in the writer's queue, once it was sent there.
    admission: Option<Admission>,
    /// How long to wait for the writer's answer before releasing anyway (the claim timeout).
    wait_limit: Duration,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let (env, integration, key) = std::mem::take(&mut self.entry);
        let store = self.store.clone();
        let committing = self
            .admission
            .as_ref()
            .filter(|admission| !admission.cancel() && !admission.is_answered())
            .cloned();
        // Nothing being committed and a backend that needs no round trip: release at once.
        if committing.is_none() && store.release_idempotency_at_once(&env, &integration, &key) {
            return;
        }
        // After the writer's answer, or a database round trip: in the background. Until it
        // lands, other instances answer 409; if it never does, the claim is abandoned after the
        // request timeout.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let wait_limit = self.wait_limit;
            runtime.spawn(async move {
                if let Some(admission) = committing {
                    admission.answered(wait_limit).await;
                }
                if let Err(err) = store.release_idempotency(&env, &integration, &key).await {
                    tracing::warn!(error = %err, "Cannot release an idempotency key.");
                }
            });
        }
    }
}

/// Cancels a queued request when its future is dropped (a no-op once the writer answered).
struct CancelOnDrop(Admission);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Authenticates a request from its headers alone: `Some` for a valid API key or Basic
/// credentials, or for an integration that allows unauthenticated requests; `None` when the
/// provider's signature must decide (after the body is read); 401 when nothing can succeed.
fn authenticate_headers(
    headers: &HeaderMap,
    environment: &crate::config::Environment,
    integration: &Integration,
    parser: &dyn ProviderParser,
    keys: &[Secret],
) -> Result<Option<Auth>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or("");
        if let Some(secret) = strip_scheme(value, "apikey") {
            return if environment.accepts(secret.trim()) {
                Ok(Some(Auth::ApiKey))
            } else {
                Err(
                    ApiError::unauthorized("The API key is not valid for this environment.")
                        .because("bad_credentials"),
                )
            };
        }
        if let Some(encoded) = strip_scheme(value, "basic") {
            let Some(expected) = &integration.basic_auth else {
                return Err(ApiError::unauthorized(INVALID_CREDENTIALS)
                    .because("bad_credentials")
                    .detailed(
                        "Basic credentials were sent, but the integration has none configured.",
                    ));
            };
            let decoded = tidings_core::signature::base64_decode(encoded)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::unauthorized("Malformed Basic credentials.")
                        .because("bad_credentials")
                })?;
            // RFC 7617: `user:password`. Without the colon there is no password to check
            // (reading it as an empty one would let `Basic base64(user)` in).
            let (user, password) = decoded.split_once(':').ok_or_else(|| {
                ApiError::unauthorized("Malformed Basic credentials.").because("bad_credentials")
            })?;
            let user_ok = ct_eq(user.as_bytes(), expected.username.as_bytes());
            let password_ok = ct_eq(password.as_bytes(), expected.password.expose().as_bytes());
            return if user_ok & password_ok {
                Ok(Some(Auth::Basic))
            } else {
                Err(ApiError::unauthorized(INVALID_CREDENTIALS)
                    .because("bad_credentials")
                    .detailed("The Basic credentials are not valid."))
            };
        }
        // Other schemes (a provider's own bearer token) fall through to the signature.
    }
    let verifiable = !keys.is_empty() || matches!(parser.signature(), Signature::Keyless(_));
    if verifiable {
        return Ok(None);
    }
    if integration.allow_unauthenticated {
        return Ok(Some(Auth::Unauthenticated));
    }
    Err(ApiError::unauthorized(INVALID_CREDENTIALS)
        .because("missing_credentials")
        .detailed("No credentials: neither `Authorization: ApiKey <secret key>` nor Basic credentials, and the integration has no signing key."))
}

/// The nonce of a request verified by its signature, scoped to the signing key that verified it
/// (so a rotated key starts afresh), for providers whose signature leaves the body out.
fn nonce_record(
    integration: &Integration,
    parser: &dyn ProviderParser,
    keys: &[Secret],
    raw: &RawRequest<'_>,
) -> Option<tidings_store::NonceRecord> {
    let no_documents = BTreeMap::new();
    let credentials = |signing_keys| Credentials {
        signing_keys,
        options: &integration.options,
        fetched: &no_documents,
        freshness: freshness(integration),
    };
    let nonce = parser.nonce(raw, &credentials(keys))?;
    let key = keys.iter().find(|key| {
        parser
            .verify(raw, &credentials(std::slice::from_ref(*key)))
            .is_ok()
    })?;
    Some(tidings_store::NonceRecord {
        scope: hex::encode(Sha256::digest(key.expose().as_bytes()).get(..16)?),
        value: nonce.value,
        expires_at: nonce.expires_at,
    })
}

/// How an integration's signed timestamps are checked.
fn freshness(integration: &Integration) -> Freshness {
    integration
        .signature_tolerance_secs
        .map(|s| Freshness::Within(chrono::Duration::seconds(s)))
        .unwrap_or_default()
}

/// The secret of an `Authorization: ApiKey <secret>` header.
fn api_key(headers: &HeaderMap) -> Option<&str> {
    strip_scheme(headers.get(header::AUTHORIZATION)?.to_str().ok()?, "apikey")
}

/// The one answer to credentials that do not let a request in (other than a wrong API key):
/// it does not tell how the integration authenticates.
const INVALID_CREDENTIALS: &str = "Missing or invalid credentials: send `Authorization: ApiKey <secret key>`, or the provider's own signature or Basic credentials.";

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

/// Reads the body, stopping with 413 as soon as it passes the limit, and with 503 when the
/// bytes it holds would pass the global budget (taken as it arrives unless `reserved`).
async fn read_limited<B>(
    body: B,
    limit: usize,
    budget: &mut BodyBudget<'_>,
    reserved: bool,
) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(Limited::new(body, limit));
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(ApiError::too_large(limit).because("too_large"));
            }
            Err(_) => return Err(ApiError::bad_request("The request body could not be read.")),
        };
        if let Ok(data) = frame.into_data() {
            let held = collected.len() + data.len();
            // A declared length was reserved up front; a body longer than declared takes more.
            if !reserved || held > budget.held {
                budget.take(held.saturating_sub(budget.held))?;
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// Bytes of request bodies held in memory by one request, taken from the global budget
/// (`limits.max_buffered_body_bytes`) and given back when the request ends.
struct BodyBudget<'a> {
    budget: &'a Semaphore,
    held: usize,
}

impl<'a> BodyBudget<'a> {
    fn new(budget: &'a Semaphore) -> BodyBudget<'a> {
        BodyBudget { budget, held: 0 }
    }

    /// Takes `bytes` more, or 503 when the budget cannot spare them now.
    fn take(&mut self, bytes: usize) -> Result<(), ApiError> {
        let busy = || {
            ApiError::unavailable(
                "Too many request bodies are held in memory at once; retry shortly.",
            )
        };
        let count = u32::try_from(bytes).map_err(|_| busy())?;
        self.budget
            .try_acquire_many(count)
            .map_err(|_| busy())?
            .forget();
        self.held += bytes;
        Ok(())
    }
}

impl Drop for BodyBudget<'_> {
    fn drop(&mut self) {
        self.budget.add_permits(self.held);
    }
}

/// Request headers worth keeping with the raw request: everything but credentials, those of
/// HTTP and those the provider declares (a shared secret sent as a header).
fn headers_json(headers: &HeaderMap, parser: &dyn ProviderParser) -> String {
    let mut map = BTreeMap::new();
    let provider_credentials = parser.credential_headers();
    for (name, value) in headers {
        if name == header::AUTHORIZATION
            || name == header::PROXY_AUTHORIZATION
            || name == header::COOKIE
            || provider_credentials
                .iter()
                .any(|credential| name.as_str().eq_ignore_ascii_case(credential))
        {
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

/// The request's path and query, as sent.
fn path_and_query(uri: &http::Uri) -> &str {
    uri.path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tidings_providers as _;

    #[test]
    fn stored_headers_leave_out_every_credential() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "ApiKey secret-one"),
            ("proxy-authorization", "Basic c2VjcmV0LXR3bw=="),
            ("cookie", "session=secret-three"),
            ("verification-token", "secret-four"),
            ("user-agent", "RingCentral-Webhook"),
        ] {
            headers.insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        let ring_central = registry().get("ring-central").unwrap();
        let stored = headers_json(&headers, ring_central);
        for secret in [
            "secret-one",
            "c2VjcmV0LXR3bw",
            "secret-three",
            "secret-four",
        ] {
            assert!(!stored.contains(secret), "{secret} in {stored}");
        }
        assert!(stored.contains("RingCentral-Webhook"));
        // Declared names match however the request spells them.
        for parser in registry().iter() {
            for name in parser.credential_headers() {
                assert!(
                    http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
                    "{name}"
                );
            }
        }
    }
}
