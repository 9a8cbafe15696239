//! The read API under `/v1/environments/{environmentId}/...`: events by cursor, the live stream
//! of them (Server-Sent Events), and messages. Authenticated with the environment's API key,
//! exactly as ingest is; without a valid key of that environment every answer is 401, so a
//! caller learns nothing about what exists.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Frame;
use tidings_core::Status;
use tidings_store::{
    Activity, Cursor, EventPage, EventQuery, EventView, MessageQuery, MessageView, Store,
    StoredEvent, Window,
};
use tokio::sync::mpsc;

use crate::app::{App, Body, Endpoint, full};
use crate::error::ApiError;

/// Events per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
const MAX_LIMIT: usize = 1000;
/// Events a stream reads from the store at a time.
const STREAM_PAGE: usize = 500;
/// Frames buffered per stream subscriber.
const STREAM_BUFFER: usize = 256;
/// A subscriber that takes no frame for this long is dropped; it resumes with its cursor.
const SLOW_SUBSCRIBER: Duration = Duration::from_secs(10);
/// A comment is sent when nothing else was for this long, so idle proxies keep the stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Answers a read API request (the route matched `endpoint` with `params`).
pub async fn answer<B>(
    app: &App,
    endpoint: Endpoint,
    params: &[&str],
    request: &Request<B>,
) -> Result<Response<Body>, ApiError> {
    let env = params.first().copied().unwrap_or_default();
    authorize(app, env, request.headers())?;
    let query = Query::parse(request.uri().query())?;
    let store = app.store();
    match endpoint {
        Endpoint::Events => {
            let events = query.events(env, query.after(store).await?, query.limit()?)?;
            let page = store.read_events(&events).await.map_err(unavailable)?;
            json(&EventsBody::new(&page, query.include_row()))
        }
        Endpoint::EventStream => {
            let after = match request.headers().get("last-event-id") {
                Some(value) => parse_cursor(value.to_str().unwrap_or(""))?,
                None => query.after(store).await?,
            };
            let events = query.events(env, after, STREAM_PAGE)?;
            Ok(stream(app, events, query.include_row()))
        }
        Endpoint::Message => {
            let integration = decode(params.get(1).copied().unwrap_or_default())?;
            let id = decode(params.get(2).copied().unwrap_or_default())?;
            let Some(message) = store
                .message(env, &integration, &id)
                .await
                .map_err(unavailable)?
            else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("No message `{id}` in integration `{integration}`."),
                ));
            };
            let timeline = store
                .timeline(env, &message.integration_id, &message.id)
                .await
                .map_err(unavailable)?;
            json(&MessageView::new(&message, Some(&timeline)))
        }
        Endpoint::Messages => {
            if let Some(id) = query.get("id") {
                let found = store.find_messages(env, id).await.map_err(unavailable)?;
                let data: Vec<MessageView<'_>> =
                    found.iter().map(|m| MessageView::new(m, None)).collect();
                return json(&serde_json::json!({ "data": data }));
            }
            let messages = MessageQuery {
                environment_id: env.to_owned(),
                after: query.after(store).await?,
                limit: query.limit()?,
                statuses: query.statuses()?,
                integration: query.get("integration").map(str::to_owned),
                since: query.time("since")?,
            };
            let page = store.list_messages(&messages).await.map_err(unavailable)?;
            let data: Vec<MessageView<'_>> = page
                .messages
                .iter()
                .map(|m| MessageView::new(m, None))
                .collect();
            json(&serde_json::json!({ "data": data, "next": page.next }))
        }
        Endpoint::Integrations => {
            let end = query.time("at")?.unwrap_or_else(Utc::now);
            let activity = store
                .activity(env, Window::ending(end))
                .await
                .map_err(unavailable)?;
            let refused = RefusedCounts::read(store, env, end).await?;
            let data: Vec<IntegrationHealth<'_>> = app
                .config()
                .integrations
                .iter()
                .filter(|i| i.environment == env)
                .map(|i| IntegrationHealth::new(i, &activity, &refused, end))
                .collect();
            json(&serde_json::json!({ "data": data, "at": end }))
        }
        Endpoint::Rejections => {
            let limit = query.limit()?;
            let before = match query.get("before") {
                None => None,
                Some(text) => Some(text.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("`before` must be a position from a previous page.")
                })?),
            };
            let reason = query.get("reason").map(str::to_owned);
            if let Some(reason) = &reason
                && !crate::rejections::REASONS.iter().any(|(r, _)| r == reason)
            {
                return Err(ApiError::bad_request(format!(
                    "Unknown reason `{reason}`; the reasons are {}.",
                    crate::rejections::REASONS
                        .iter()
                        .map(|(r, _)| *r)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let rows = store
                .rejections(tidings_store::RejectionQuery {
                    environment_id: env.to_owned(),
                    integration_id: query.get("integration").map(str::to_owned),
                    reason,
                    before,
                    limit,
                })
                .await
                .map_err(unavailable)?;
            let next = (rows.len() == limit)
                .then(|| rows.last().map(|r| r.seq.to_string()))
                .flatten();
            let public_url = app.config().public_url.as_deref();
            let data: Vec<serde_json::Value> =
                rows.iter()
                    .map(|row| {
                        let integration =
                            app.config().integrations.iter().find(|i| {
                                i.environment == env && i.id == row.rejection.integration_id
                            });
                        crate::rejections::view(row, public_url, integration)
                    })
                    .collect();
            let mut body = serde_json::json!({ "data": data });
            if let (Some(next), Some(map)) = (next, body.as_object_mut()) {
                map.insert("next".into(), next.into());
            }
            json(&body)
        }
        Endpoint::Ingest
        | Endpoint::Dashboard
        | Endpoint::DashboardAsset
        | Endpoint::Healthz
        | Endpoint::Readyz
        | Endpoint::Metrics
        | Endpoint::OpenApi
        | Endpoint::Suppression
        | Endpoint::SuppressionHistory
        | Endpoint::Suppressions
        | Endpoint::SuppressionPut
        | Endpoint::SuppressionDelete => Err(ApiError::new(StatusCode::NOT_FOUND, "Not found.")),
    }
}

/// Accepts only `Authorization: ApiKey <secret>` of this environment. An unknown environment
/// gets the same answer as a wrong key.
pub(crate) fn authorize(app: &App, env: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let denied = || {
        ApiError::unauthorized(
            "Send `Authorization: ApiKey <secret key>` with a secret key of this environment.",
        )
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
        .map(|(_, secret)| secret.trim())
        .ok_or_else(denied)?;
    let environment = app
        .config()
        .environments
        .iter()
        .find(|e| e.id == env)
        .ok_or_else(denied)?;
    if environment.accepts(given) {
        Ok(())
    } else {
        Err(denied())
    }
}

/// The `{"data": [...], "next": "..."}` answer of the events list.
#[derive(serde::Serialize)]
struct EventsBody<'a> {
    data: Vec<EventView<'a>>,
    next: Cursor,
}

impl<'a> EventsBody<'a> {
    fn new(page: &'a EventPage, include_row: bool) -> EventsBody<'a> {
        EventsBody {
            data: page
                .events
                .iter()
                .map(|e| EventView::new(e, include_row))
                .collect(),
            next: page.next,
        }
    }
}

/// One integration's health: what it received in the last hour and day, and its state.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct IntegrationHealth<'a> {
    id: &'a str,
    provider: &'a str,
    /// `ok`; `quiet` when nothing arrived for longer than its `quiet_after_secs`; `failing` when
    /// at least 5 webhooks were refused in the last hour and they are half or more of what came.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    quiet_after_secs: Option<u64>,
    /// The latest event received in the last day.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_event_at: Option<DateTime<Utc>>,
    last_hour: Counts,
    last_day: Counts,
    /// Webhooks refused in the clock hours overlapping the last hour, per reason.
    refused_last_hour: RefusedCount,
    /// Webhooks refused in the clock hours overlapping the last day, per reason.
    refused_last_day: RefusedCount,
}

/// Refused webhooks, in all and per reason.
#[derive(Default, serde::Serialize)]
struct RefusedCount {
    requests: u64,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    reasons: std::collections::BTreeMap<String, u64>,
}

/// An environment's refusal counts per integration, reason and clock hour.
struct RefusedCounts {
    counts: Vec<tidings_store::RejectionCount>,
    /// The first clock hour counted as "last hour".
    hour: DateTime<Utc>,
}

impl RefusedCounts {
    async fn read(store: &Store, env: &str, end: DateTime<Utc>) -> Result<RefusedCounts, ApiError> {
        let day = tidings_store::hour_of(end - chrono::Duration::hours(23));
        let counts = store
            .rejection_counts(env, day)
            .await
            .map_err(unavailable)?
            .into_iter()
            .filter(|c| c.hour <= end)
            .collect();
        Ok(RefusedCounts {
            counts,
            hour: tidings_store::hour_of(end - chrono::Duration::hours(1)),
        })
    }
}

/// A failing integration: at least this many refusals in the last hour ...
const FAILING_MIN_REFUSALS: u64 = 5;
/// ... and at least this share of what it received.
const FAILING_SHARE: f64 = 0.5;

/// Events received in a window, in all and per status, and how many repeats came with them.
#[derive(Default, serde::Serialize)]
struct Counts {
    events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicates: Option<u64>,
    statuses: std::collections::BTreeMap<String, u64>,
}

impl<'a> IntegrationHealth<'a> {
    fn new(
        integration: &'a crate::config::Integration,
        activity: &[Activity],
        refused: &RefusedCounts,
        end: DateTime<Utc>,
    ) -> IntegrationHealth<'a> {
        let mut health = IntegrationHealth {
            id: &integration.id,
            provider: &integration.provider,
            state: "ok",
            quiet_after_secs: integration.quiet_after_secs,
            last_event_at: None,
            last_hour: Counts::default(),
            last_day: Counts {
                duplicates: Some(0),
                ..Counts::default()
            },
            refused_last_hour: RefusedCount::default(),
            refused_last_day: RefusedCount::default(),
        };
        for count in refused
            .counts
            .iter()
            .filter(|c| c.integration_id == integration.id)
        {
            let n = u64::try_from(count.count).unwrap_or(0);
            let mut windows = vec![&mut health.refused_last_day];
            if count.hour >= refused.hour {
                windows.push(&mut health.refused_last_hour);
            }
            for window in windows {
                window.requests += n;
                *window.reasons.entry(count.reason.clone()).or_default() += n;
            }
        }
        for row in activity
            .iter()
            .filter(|a| a.integration_id == integration.id)
        {
            health.last_event_at = health.last_event_at.max(Some(row.last_received_at));
            for (counts, n) in [
                (&mut health.last_hour, row.last_hour),
                (&mut health.last_day, row.last_day),
            ] {
                if n > 0 {
                    counts.events += n;
                    *counts.statuses.entry(row.status.clone()).or_default() += n;
                }
            }
            if let Some(duplicates) = &mut health.last_day.duplicates {
                *duplicates += row.duplicates;
            }
        }
        // The window is a day: a longer `quiet_after_secs` is judged over that day.
        if let Some(secs) = integration.quiet_after_secs {
            let quiet_since = end
                - chrono::Duration::seconds(
                    i64::try_from(secs).unwrap_or(i64::MAX / 1000).min(86_400),
                );
            if health.last_event_at.is_none_or(|at| at < quiet_since) {
                health.state = "quiet";
            }
        }
        let refusals = health.refused_last_hour.requests;
        let received = health.last_hour.events + refusals;
        if refusals >= FAILING_MIN_REFUSALS && refusals as f64 >= FAILING_SHARE * received as f64 {
            health.state = "failing";
        }
        health
    }
}

/// A query string's parameters; repeated names are kept in order.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        Ok(Query(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// `after`: a position, `latest` (only what is stored from now on), or the start.
    async fn after(&self, store: &Store) -> Result<Cursor, ApiError> {
        match self.get("after") {
            None => Ok(Cursor::START),
            Some("latest") => store.end().await.map_err(unavailable),
            Some(text) => parse_cursor(text),
        }
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("`limit` must be between 1 and {MAX_LIMIT}."))
                }),
        }
    }

    fn statuses(&self) -> Result<Vec<Status>, ApiError> {
        self.all("status")
            .map(|s| {
                Status::from_wire(s).ok_or_else(|| {
                    ApiError::bad_request(format!("`{s}` is not a status Tidings reports."))
                })
            })
            .collect()
    }

    pub(crate) fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(name)
            .map(|text| {
                DateTime::parse_from_rfc3339(text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "`{name}` must be an RFC 3339 time, e.g. 2024-01-02T03:04:05Z."
                        ))
                    })
            })
            .transpose()
    }

    fn include_row(&self) -> bool {
        self.all("include").any(|v| v == "row")
    }

    /// The event filters of the list and the stream.
    fn events(&self, env: &str, after: Cursor, limit: usize) -> Result<EventQuery, ApiError> {
        Ok(EventQuery {
            environment_id: env.to_owned(),
            after,
            limit,
            statuses: self.statuses()?,
            provider: self.get("provider").map(str::to_owned),
            integration: self.get("integration").map(str::to_owned),
            message: self.get("message").map(str::to_owned),
            recipient: self.get("recipient").map(str::to_owned),
            since: self.time("since")?,
            until: self.time("until")?,
        })
    }
}

fn parse_cursor(text: &str) -> Result<Cursor, ApiError> {
    text.parse()
        .map_err(|e: tidings_store::BadCursor| ApiError::bad_request(e.to_string()))
}

/// A path segment, percent-decoded (message ids such as `<abc@example.com>` arrive encoded).
pub(crate) fn decode(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request("A path segment is not UTF-8 once decoded."))
}

pub(crate) fn unavailable(err: tidings_store::Error) -> ApiError {
    tracing::error!(error = %err, "A read failed.");
    ApiError::unavailable("Storage is unavailable; retry shortly.")
}

pub(crate) fn json(value: &impl serde::Serialize) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::internal(&e))?;
    let mut response = Response::new(full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The Server-Sent Events answer: a task reads the store after the cursor and sends each event
/// as one message whose `id` is its position, then waits for more.
fn stream(app: &App, query: EventQuery, include_row: bool) -> Response<Body> {
    let (frames, receiver) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(feed(
        app.store().clone(),
        query,
        include_row,
        frames,
        app.shutdown_signal(),
    ));
    let mut response = Response::new(ChannelBody(receiver).boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    // Proxies that buffer (nginx) would hold events back.
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

/// One SSE message for one event.
fn frame(event: &StoredEvent, include_row: bool) -> Bytes {
    let data = serde_json::to_string(&EventView::new(event, include_row)).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: message.{}\ndata: {data}\n\n",
        event.position,
        event.event.body.status.as_str()
    ))
}

/// Feeds one subscriber until it goes away, is too slow, the store fails, or the server stops.
async fn feed(
    store: Store,
    mut query: EventQuery,
    include_row: bool,
    frames: mpsc::Sender<Bytes>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut changes = store.subscribe();
    let poll = store.poll_interval();
    if *shutdown.borrow_and_update() {
        return;
    }
    // The first bytes go out at once, so the client knows the stream is open.
    if frames
        .send(Bytes::from_static(b": connected\n\n"))
        .await
        .is_err()
    {
        return;
    }
    let mut last_sent = tokio::time::Instant::now();
    loop {
        let page = match store.read_events(&query).await {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(error = %err, "A stream's read failed; closing it.");
                return;
            }
        };
        for event in &page.events {
            let sent =
                tokio::time::timeout(SLOW_SUBSCRIBER, frames.send(frame(event, include_row)));
            match sent.await {
                Ok(Ok(())) => last_sent = tokio::time::Instant::now(),
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!("A stream subscriber fell behind and was dropped.");
                    return;
                }
            }
        }
        query.after = page.next;
        if page.events.len() >= query.limit {
            continue;
        }
        let heartbeat_at = last_sent + HEARTBEAT;
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(poll) => {}
            () = tokio::time::sleep_until(heartbeat_at) => {
                if frames.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
                last_sent = tokio::time::Instant::now();
            }
            stopping = shutdown.changed() => {
                if stopping.is_err() || *shutdown.borrow() {
                    return;
                }
            }
            () = frames.closed() => return,
        }
    }
}

/// A response body fed by a channel: the stream ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}
