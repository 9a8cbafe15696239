//! The baseline durable ingest is measured against: a bare hyper server in a process of its
//! own that reads each request's body, parses the same SendGrid batch with serde_json, and
//! answers the Novu-shaped 200 body, storing nothing. `e2e --only bare,single` prints both
//! and their ratio (the performance goal is durable single-event ingest at 0.5x this or better).

use std::process::Command;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::server::Server;

/// `tidings-bench bare-server`: serves until killed; prints `listening on ADDR` first.
pub fn serve() -> Result<()> {
    // As many workers as the real server has (Tokio's default: one per core).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the baseline server")?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(answer);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Starts the baseline server (this binary, `bare-server`).
pub fn start() -> Result<Server> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("bare-server");
    Server::spawn(command)
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    let (status, answer) = match respond(&body) {
        Some(answer) => (200, answer),
        None => (400, b"{\"message\":\"not a SendGrid batch\"}".to_vec()),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(answer)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// What Tidings answers, from the same fields: id, status, date, external id and the row.
fn respond(body: &[u8]) -> Option<Vec<u8>> {
    let rows: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).ok()?;
    let mut results = Vec::with_capacity(rows.len());
    for row in rows {
        let event: Value = serde_json::from_str(row.get()).ok()?;
        let status = match event.get("event")?.as_str()? {
            "processed" => "sent",
            "delivered" => "delivered",
            "open" => "opened",
            _ => "unknown",
        };
        let date = chrono::DateTime::from_timestamp(event.get("timestamp")?.as_i64()?, 0)?
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        results.push(serde_json::json!({
            "id": event.get("id").or_else(|| event.get("sg_message_id"))?,
            "event": {
                "status": status,
                "date": date,
                "externalId": event.get("sg_message_id")?,
                "row": row.get(),
            }
        }));
    }
    serde_json::to_vec(&results).ok()
}
