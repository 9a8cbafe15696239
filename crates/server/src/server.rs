//! The listener: HTTP/1.1 and h2c over hyper, connection limits and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use tidings::app::App;

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
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let header_timeout = Duration::from_secs(limits.header_timeout_secs);
    let graceful = GracefulShutdown::new();
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
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, std::convert::Infallible>(app.handle(request).await) }
        });
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's header timeout only starts once the protocol is known; until then a
            // client that sends nothing would hold its connection (and its slot) forever.
            if !protocol_known(&stream, header_timeout).await {
                return;
            }
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let _ = watcher.watch(connection).await;
            drop(permit);
        });
    }
    drop(listener);
    app.begin_shutdown();
    tracing::info!("Shutting down: finishing in-flight requests.");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("All connections closed."),
        () = tokio::time::sleep(Duration::from_secs(limits.shutdown_grace_secs)) => {
            tracing::warn!("Grace period over; closing remaining connections.");
        }
    }
    Ok(())
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

/// Waits, at most `timeout`, until the client has sent enough to tell HTTP/1.1 from h2c (what
/// hyper-util's protocol detection reads before hyper's own header timeout starts). Peeks: the
/// bytes stay for hyper. `false`: the client stalled, or the connection failed; close it.
async fn protocol_known(stream: &tokio::net::TcpStream, timeout: Duration) -> bool {
    let detect = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            let n = stream.peek(&mut buf).await?;
            let seen = buf.get(..n).unwrap_or_default();
            if n == 0 || n == H2_PREFACE.len() || !H2_PREFACE.starts_with(seen) {
                // Closed (hyper sees the EOF), complete, or not h2c: hyper takes it from here.
                return Ok::<bool, std::io::Error>(true);
            }
            // A prefix of the h2c preface ("P", "PRI * ..."): wait for more without spinning.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    matches!(tokio::time::timeout(timeout, detect).await, Ok(Ok(true)))
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
