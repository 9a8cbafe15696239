//! The listener: HTTP/1.1 and h2c over hyper, connection limits and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use tidings::app::{App, Body};

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 82\r\nConnection: close\r\n\r\n{\"statusCode\":503,\"message\":\"Too many connections.\",\"error\":\"Service Unavailable\"}";

/// Serves until SIGINT or SIGTERM, then finishes in-flight requests within the grace period.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> anyhow::Result<()> {
    let limits = app.config().limits.clone();
    if let Some(open_files) = open_files_limit()
        && open_files < limits.max_connections as u64 + RESERVED_FILES
    {
        // Past the descriptor limit accept() fails and connections wait in the backlog
        // instead of getting the canned 503.
        tracing::warn!(
            open_files,
            max_connections = limits.max_connections,
            "The open-files limit (ulimit -n) is below max_connections plus {RESERVED_FILES}; \
             raise it or lower limits.max_connections."
        );
    }
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs))
        .max_buf_size(64 * 1024);
    let keep_alive =
        (limits.h2_keep_alive_secs > 0).then(|| Duration::from_secs(limits.h2_keep_alive_secs));
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .keep_alive_interval(keep_alive);
    if let Some(interval) = keep_alive {
        http2.keep_alive_timeout(interval);
    }
    let builder = Arc::new(builder);
    let deadlines = Deadlines {
        first_request: Duration::from_secs(limits.header_timeout_secs),
        idle: Duration::from_secs(limits.h2_idle_timeout_secs),
        // After GOAWAY a connection with nothing open should close at once; one that does not
        // (a client that stopped reading) is closed hard after this.
        go_away: Duration::from_secs(limits.header_timeout_secs),
    };
    if let Some(address) = &app.config().metrics.listen {
        let metrics = TcpListener::bind(address)
            .await
            .map_err(|err| anyhow::anyhow!("cannot listen on metrics.listen `{address}`: {err}"))?;
        let bound = metrics.local_addr()?;
        tracing::info!(address = %bound, "Metrics are served on their own address.");
        // Tests and scripts read the bound address (useful with port 0) from this line.
        println!("metrics listening on {bound}");
        tokio::spawn(serve_metrics(
            Arc::clone(&app),
            metrics,
            deadlines.first_request,
        ));
    }
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream.write_all(BUSY).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let app = Arc::clone(&app);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            // hyper's header timeout only starts once the protocol is known; until then a
            // client that sends nothing would hold its connection (and its slot) forever.
            let Some(protocol) = protocol_of(&stream, deadlines.first_request).await else {
                return;
            };
            let activity = Arc::new(Activity::new());
            let service = {
                let app = Arc::clone(&app);
                let activity = Arc::clone(&activity);
                service_fn(move |request| {
                    let app = Arc::clone(&app);
                    // Taken when the request's headers are complete, released when its
                    // response body is done or dropped: an open event stream is activity.
                    let open = OpenStream::begin(&activity);
                    async move {
                        let response = app.handle(request).await;
                        Ok::<_, std::convert::Infallible>(
                            response.map(|body| Tracked { body, _open: open }.boxed()),
                        )
                    }
                })
            };
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            drive(
                connection,
                |connection| connection.graceful_shutdown(),
                protocol == Protocol::H2c,
                &activity,
                deadlines,
                app.shutdown_signal(),
            )
            .await;
            drop(permit);
        });
    }
    drop(listener);
    app.begin_shutdown();
    tracing::info!("Shutting down: finishing in-flight requests.");
    // Every connection holds a permit until it ends: all of them back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = connections.acquire_many(all) => tracing::info!("All connections closed."),
        () = tokio::time::sleep(Duration::from_secs(limits.shutdown_grace_secs)) => {
            tracing::warn!("Grace period over; closing remaining connections.");
        }
    }
    Ok(())
}

/// The metrics listener: HTTP/1.1, `/metrics` only, a few connections at a time.
async fn serve_metrics(app: Arc<App>, listener: TcpListener, header_timeout: Duration) {
    let connections = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            continue;
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, std::convert::Infallible>(app.handle_metrics(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// Connections the metrics listener serves at once (scrapers are few).
const METRICS_CONNECTIONS: usize = 16;

/// How long an h2c connection may stay without an open request.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// Before its first request (the HTTP/1.1 header timeout).
    first_request: Duration,
    /// After a request ended.
    idle: Duration,
    /// After GOAWAY, before the connection is dropped.
    go_away: Duration,
}

/// Runs one connection until it ends, the server stops, or (h2c) it has been idle too long.
///
/// hyper's HTTP/2 server has keep-alive pings but no idle or header timeout, and real clients
/// answer pings: without this an h2c client that sends only the preface, or a HEADERS frame
/// that never ends, holds its connection forever.
async fn drive<C>(
    connection: C,
    shut_down: impl Fn(std::pin::Pin<&mut C>),
    h2c: bool,
    activity: &Activity,
    deadlines: Deadlines,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    C: std::future::Future,
{
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    let mut closed_hard_at: Option<tokio::time::Instant> = None;
    loop {
        let wake = match closed_hard_at {
            Some(at) => at,
            None if h2c => activity
                .idle_deadline(deadlines)
                .map(tokio::time::Instant::from_std)
                // Streams are open: look again in a while.
                .unwrap_or_else(|| tokio::time::Instant::now() + deadlines.idle),
            None => tokio::time::Instant::now() + Duration::from_secs(24 * 3600),
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = stop.wait_for(|stopped| *stopped), if !stopping => {
                stopping = true;
                shut_down(connection.as_mut());
            }
            () = tokio::time::sleep_until(wake) => {
                if closed_hard_at.is_some() {
                    tracing::debug!("An h2c connection did not close after GOAWAY; closed.");
                    return;
                }
                if h2c && activity.idle_deadline(deadlines).is_some_and(|at| at <= std::time::Instant::now()) {
                    shut_down(connection.as_mut());
                    closed_hard_at = Some(tokio::time::Instant::now() + deadlines.go_away);
                }
            }
        }
    }
}

/// The open requests of one connection, and when the last one ended.
struct Activity {
    state: std::sync::Mutex<ActivityState>,
}

struct ActivityState {
    open: usize,
    requests: u64,
    since: std::time::Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: std::sync::Mutex::new(ActivityState {
                open: 0,
                requests: 0,
                since: std::time::Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the connection will have been idle too long; `None` while a request is open.
    fn idle_deadline(&self, deadlines: Deadlines) -> Option<std::time::Instant> {
        let state = self.lock();
        (state.open == 0).then(|| {
            state.since
                + if state.requests == 0 {
                    deadlines.first_request
                } else {
                    deadlines.idle
                }
        })
    }
}

/// One open request of a connection, until dropped.
struct OpenStream {
    activity: Arc<Activity>,
}

impl OpenStream {
    fn begin(activity: &Arc<Activity>) -> OpenStream {
        let mut state = activity.lock();
        state.open += 1;
        state.requests += 1;
        drop(state);
        OpenStream {
            activity: Arc::clone(activity),
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut state = self.activity.lock();
        state.open = state.open.saturating_sub(1);
        state.since = std::time::Instant::now();
    }
}

/// A response body that keeps its request counted as open until it is done or dropped.
struct Tracked {
    body: Body,
    _open: OpenStream,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Descriptors kept for the store, certificate fetches and logs, beyond client connections.
const RESERVED_FILES: u64 = 64;

/// The soft open-files limit, where the platform says (Linux's `/proc/self/limits`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .strip_prefix("Max open files")?
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

/// The HTTP/2 connection preface: the first bytes of an h2c connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// HTTP/1.1 (or bytes hyper will refuse, or an early EOF hyper will see).
    Http1,
    /// HTTP/2 with prior knowledge.
    H2c,
}

/// Waits, at most `timeout`, until the client has sent enough to tell HTTP/1.1 from h2c (what
/// hyper-util's protocol detection reads before hyper's own header timeout starts). Peeks: the
/// bytes stay for hyper. `None`: the client stalled, or the connection failed; close it.
async fn protocol_of(stream: &tokio::net::TcpStream, timeout: Duration) -> Option<Protocol> {
    let detect = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            let n = stream.peek(&mut buf).await?;
            let seen = buf.get(..n).unwrap_or_default();
            if seen == H2_PREFACE {
                return Ok::<Protocol, std::io::Error>(Protocol::H2c);
            }
            if n == 0 || n == H2_PREFACE.len() || !H2_PREFACE.starts_with(seen) {
                // Closed (hyper sees the EOF) or not h2c: hyper takes it from here.
                return Ok(Protocol::Http1);
            }
            // A prefix of the h2c preface ("P", "PRI * ..."): wait for more without spinning.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(timeout, detect).await.ok()?.ok()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
