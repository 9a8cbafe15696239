//! `memory`: the server's resident memory under the loads of issue 14 item 7, with the default
//! limits (only the store is configured):
//!
//! - `held`: 1,000 connections without credentials each send the head of a 1 MiB body and
//!   all of it but its last byte, then hold; half to an integration authenticated by API key,
//!   half to one verified by the provider's signature (whose body must be read before it can
//!   be checked).
//! - `batches`: 100 connections at once, each posting (with the API key) a 1 MB SendGrid batch
//!   of tiny events (about 22,000, over the events-per-request bound), three rounds.
//! - `stored`: the same with 1 MB batches of ordinary events (about 2,300 of some 430 bytes,
//!   within the bound), which are parsed and stored.
//!
//! For each: peak RSS (VmHWM) during the load, RSS once every connection is closed, and how the
//! requests were answered.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::Options;
use crate::server::{SECRET, Scratch, Server};

/// SendGrid's public key of the official signed vector: any request without its signature fails.
const SENDGRID_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";

pub fn run(options: &Options) -> Result<()> {
    let binary = options.server_binary()?;
    println!(
        "# memory: default limits, SQLite synchronous=full; load {}",
        crate::load_average()
    );
    held(&binary)?;
    batches(&binary)?;
    Ok(())
}

fn start(binary: &std::path::Path, scratch: &Scratch) -> Result<Server> {
    let config = scratch.0.join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"

[store]
url = "sqlite://{}"

[log]
level = "error"

[[environments]]
id = "bench"
secret_key = "{SECRET}"

[[integrations]]
id = "sendgrid"
environment = "bench"
provider = "sendgrid"

[[integrations]]
id = "sendgrid-signed"
environment = "bench"
provider = "sendgrid"
signing_key = "{SENDGRID_KEY}"
"#,
            scratch.0.join("tidings.db").display()
        ),
    )
    .context("writing the configuration")?;
    Server::start(binary, &config)
}

fn rss_kib(server: &Server) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The status code of the answer on `stream`, if one came.
fn status(stream: &mut TcpStream) -> Option<u16> {
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).ok()?;
    let text = String::from_utf8_lossy(buf.get(..n)?);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn held(binary: &std::path::Path) -> Result<()> {
    let scratch = Scratch::new("memory-held")?;
    let server = start(binary, &scratch)?;
    let idle = rss_kib(&server);
    let size = 1024 * 1024;
    let body = vec![b' '; size - 1];
    let mut streams = Vec::new();
    for n in 0..1000 {
        let integration = if n % 2 == 0 {
            "sendgrid"
        } else {
            "sendgrid-signed"
        };
        let Ok(mut stream) = TcpStream::connect(server.addr) else {
            continue;
        };
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let head = format!(
            "POST /v2/inbound-webhooks/delivery-providers/bench/{integration} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        );
        // The server may answer and stop reading at any point: what is not sent is not sent.
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
        streams.push(stream);
    }
    std::thread::sleep(Duration::from_secs(2));
    let during = rss_kib(&server);
    let peak = server.peak_rss_kib().unwrap_or(0);
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for stream in &mut streams {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        let key = status(stream).map_or_else(|| "held".to_owned(), |s| s.to_string());
        *answers.entry(key).or_default() += 1;
    }
    drop(streams);
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib(&server);
    println!(
        "held         connections=1000 body=1MiB idle_rss={:.1}MiB rss_while_held={:.1}MiB peak_rss={:.1}MiB rss_after_close={:.1}MiB answers={answers:?}",
        mib(idle),
        mib(during),
        mib(peak),
        mib(after)
    );
    server.kill();
    Ok(())
}

/// A SendGrid batch of events of about 430 bytes (a user agent and a URL, as opens and clicks
/// carry), about `size` bytes.
fn ordinary_batch(size: usize, round: usize, connection: usize) -> String {
    let mut body = String::with_capacity(size + 512);
    body.push('[');
    let mut n = 0;
    while body.len() < size - 512 {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"email":"someone-{n}@example.com","timestamp":1700000000,"event":"click","sg_message_id":"m{round}-{connection}-{n}.filter","sg_event_id":"e{round}-{connection}-{n}","useragent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","url":"https://example.com/newsletter/2024/11/some-article-with-a-long-slug?utm_source=newsletter&utm_medium=email&utm_campaign=november","ip":"203.0.113.7","category":["newsletter"]}}"#
        ));
        n += 1;
    }
    body.push(']');
    body
}

/// A SendGrid batch of tiny events, about `size` bytes.
fn tiny_batch(size: usize, round: usize, connection: usize) -> String {
    let mut body = String::with_capacity(size + 64);
    body.push('[');
    let mut n = 0;
    while body.len() < size - 64 {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"event":"open","sg_message_id":"m{round}-{connection}-{n}"}}"#
        ));
        n += 1;
    }
    body.push(']');
    body
}

fn post(addr: SocketAddr, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let head = format!(
        "POST /v2/inbound-webhooks/delivery-providers/bench/sendgrid HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    let _ = stream.write_all(body.as_bytes());
    let code = status(&mut stream);
    // Read the whole answer, as a provider would.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    code
}

fn batches(binary: &std::path::Path) -> Result<()> {
    batches_of("batches", binary, tiny_batch)?;
    batches_of("stored", binary, ordinary_batch)
}

fn batches_of(
    name: &str,
    binary: &std::path::Path,
    batch: fn(usize, usize, usize) -> String,
) -> Result<()> {
    let scratch = Scratch::new("memory-batches")?;
    let server = start(binary, &scratch)?;
    let idle = rss_kib(&server);
    let events = batch(1_000_000, 0, 0).matches("\"event\"").count();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..3 {
        let bodies: Vec<String> = (0..100).map(|c| batch(1_000_000, round, c)).collect();
        let codes: Vec<Option<u16>> = std::thread::scope(|scope| {
            let senders: Vec<_> = bodies
                .iter()
                .map(|body| scope.spawn(|| post(server.addr, body)))
                .collect();
            senders
                .into_iter()
                .map(|s| s.join().ok().flatten())
                .collect()
        });
        for code in codes {
            let key = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
            *answers.entry(key).or_default() += 1;
        }
    }
    let peak = server.peak_rss_kib().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib(&server);
    println!(
        "{name:<12} connections=100 rounds=3 body=1MB events_per_request={events} idle_rss={:.1}MiB peak_rss={:.1}MiB rss_after={:.1}MiB answers={answers:?}",
        mib(idle),
        mib(peak),
        mib(after)
    );
    server.kill();
    Ok(())
}
