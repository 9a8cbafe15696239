//! Two `tidings serve` instances on one PostgreSQL database: SendGrid deliveries split across
//! both, duplicated and reordered, end with every event stored once and every message in the
//! state a single instance reaches. Runs when `TIDINGS_TEST_POSTGRES_URL` is set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tidings_store::{Store, StoreOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POSTGRES_URL_ENV: &str = "TIDINGS_TEST_POSTGRES_URL";
const SECRET: &str = "scale-out-secret";
const PATH: &str = "/v2/inbound-webhooks/delivery-providers/acme/sendgrid";

/// A running `tidings serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(dir: &Path, name: &str, database_url: &str) -> Server {
    start_with(dir, name, database_url, "")
}

/// [`start`] with more configuration appended (outbound endpoints).
pub(crate) fn start_with(dir: &Path, name: &str, database_url: &str, extra: &str) -> Server {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"

[store]
url = "{database_url}"
pool_size = 4

[log]
level = "warn"

[[environments]]
id = "acme"
secret_key = "{SECRET}"

[[integrations]]
id = "sendgrid"
environment = "acme"
provider = "sendgrid"
"#
        ) + extra,
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("TIDINGS_DATABASE_URL")
        .env_remove("TIDINGS_LOG")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("listening on ") {
                let _ = tx.send(address.to_owned());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{name} did not start; see {}", dir.display()));
    Server { child, address }
}

struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

async fn post(address: &str, body: &str, idempotency_key: Option<&str>) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let key = idempotency_key
        .map(|k| format!("Idempotency-Key: {k}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {address}\r\nAuthorization: ApiKey {SECRET}\r\n\
         Content-Type: application/json\r\n{key}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let headers = String::from_utf8_lossy(&response[..split]).to_lowercase();
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    Answer {
        status,
        headers,
        body: response[split + 4..].to_vec(),
    }
}

/// Posts until the service takes it (a 503 asks for a retry, as providers do).
pub(crate) async fn deliver(address: &str, body: &str) {
    for _ in 0..50 {
        let answer = post(address, body, None).await;
        match answer.status {
            200 => return,
            503 => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!(
                "{other}: {}",
                String::from_utf8_lossy(&answer.body).into_owned()
            ),
        }
    }
    panic!("the service kept answering 503");
}

/// SendGrid events for `messages` messages, each a small story told out of order. SendGrid
/// gives each delivery attempt a new `sg_event_id`, so the retries below differ in it.
fn sendgrid_events(messages: usize) -> Vec<serde_json::Value> {
    let stories: [&[(&str, Option<&str>)]; 5] = [
        &[
            ("processed", None),
            ("delivered", None),
            ("open", None),
            ("click", None),
        ],
        &[
            ("processed", None),
            ("deferred", None),
            ("delivered", None),
            ("bounce", Some("bounce")),
        ],
        &[("processed", None), ("dropped", None)],
        &[
            ("processed", None),
            ("delivered", None),
            ("spamreport", None),
            ("unsubscribe", None),
        ],
        &[
            ("processed", None),
            ("bounce", Some("blocked")),
            ("deferred", None),
            ("delivered", None),
        ],
    ];
    let mut out = Vec::new();
    for m in 0..messages {
        for (step, (event, kind)) in stories[m % stories.len()].iter().enumerate() {
            let mut value = serde_json::json!({
                "email": format!("user{m}@example.com"),
                // Ties on purpose: some steps share a second.
                "timestamp": 1_700_000_000 + (m as i64) * 100 + (step as i64 / 2),
                "event": event,
                "sg_message_id": format!("sg-{m}.filter0001"),
                "id": format!("msg-{m}"),
            });
            if let Some(kind) = kind {
                value["type"] = (*kind).into();
            }
            if *event == "click" {
                value["url"] = "https://example.com/a".into();
            }
            out.push(value);
        }
    }
    out
}

/// Splits `events` into JSON array bodies of one to three events.
fn bodies(events: &[serde_json::Value], salt: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut n = salt;
    while i < events.len() {
        n = (n * 7 + 3) % 11;
        let size = (1 + n % 3).min(events.len() - i);
        let chunk: Vec<_> = events[i..i + size]
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["sg_event_id"] = format!("attempt-{salt}-{i}").into();
                e
            })
            .collect();
        out.push(serde_json::to_string(&chunk).unwrap());
        i += size;
    }
    out
}

pub(crate) fn with_schema(base: &str, schema: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

pub(crate) async fn fresh_schema(base: &str, name: &str) -> String {
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {POSTGRES_URL_ENV}: {e}"));
    tokio::spawn(connection);
    let schema = format!("tidings_e2e_{name}_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    schema
}

/// The PostgreSQL URL for a test that needs one, or `None` (said on stderr) when
/// [`POSTGRES_URL_ENV`] is unset; under `CI=true` a missing PostgreSQL fails instead.
pub(crate) fn postgres_url(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{POSTGRES_URL_ENV} is not set: CI runs {test}")
        }
        Err(_) => {
            eprintln!("skipped: set {POSTGRES_URL_ENV} to run {test}");
            None
        }
    }
}

pub(crate) async fn drop_schema(base: &str, schema: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(base, tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_end_as_one() {
    let Some(base) = tidings_fixtures::optional::postgres_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let shared_schema = fresh_schema(&base, "shared").await;
    let single_schema = fresh_schema(&base, "single").await;
    let shared_url = with_schema(&base, &shared_schema);
    let single_url = with_schema(&base, &single_schema);
    let events = sendgrid_events(20);

    // The reference: one instance, every event once, in order.
    {
        let single = start(dir.path(), "single", &single_url);
        for body in bodies(&events, 1) {
            deliver(&single.address, &body).await;
        }
    }

    // Two instances started together, sharing one database.
    let (a, b) = (
        start(dir.path(), "a", &shared_url),
        start(dir.path(), "b", &shared_url),
    );
    let mut reversed = events.clone();
    reversed.reverse();
    let mut rotated = events.clone();
    rotated.rotate_left(events.len() / 3);
    // Three deliveries of everything (the provider retrying), in three orders, grouped
    // differently, alternating between the instances, all at once.
    let mut tasks = Vec::new();
    for (round, order) in [&events, &reversed, &rotated].into_iter().enumerate() {
        for (i, body) in bodies(order, round + 2).into_iter().enumerate() {
            let address = if (i + round) % 2 == 0 {
                a.address.clone()
            } else {
                b.address.clone()
            };
            tasks.push(tokio::spawn(async move { deliver(&address, &body).await }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }

    // Idempotency holds across instances: replayed byte for byte by the other one.
    let body = bodies(&events[..2], 9).remove(0);
    let resent = serde_json::from_str::<Vec<serde_json::Value>>(&body)
        .unwrap()
        .len();
    let first = post(&a.address, &body, Some("key-1")).await;
    assert_eq!(first.status, 200);
    let replay = post(&b.address, &body, Some("key-1")).await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body);
    assert!(replay.headers.contains("idempotency-replay: true"));
    assert!(replay.headers.contains("idempotency-key: key-1"));
    let other = bodies(&events[2..4], 9).remove(0);
    assert_eq!(post(&b.address, &other, Some("key-1")).await.status, 422);
    drop((a, b));

    let options = StoreOptions::default();
    let shared = Store::open(&shared_url, options.clone()).await.unwrap();
    let single = Store::open(&single_url, options).await.unwrap();

    let shared_events = shared.events(None, None, 0, 100_000).await.unwrap();
    let single_events = single.events(None, None, 0, 100_000).await.unwrap();
    assert_eq!(single_events.len(), events.len());
    let mut shared_keys: Vec<_> = shared_events.iter().map(|e| &e.dedup_key).collect();
    let mut single_keys: Vec<_> = single_events.iter().map(|e| &e.dedup_key).collect();
    shared_keys.sort();
    single_keys.sort();
    assert_eq!(shared_keys, single_keys, "every event stored exactly once");
    let duplicates: i64 = shared_events.iter().map(|e| e.duplicates).sum();
    // Three deliveries of each event, plus the idempotent request's (stored once, replayed).
    assert_eq!(duplicates as usize, 2 * events.len() + resent);

    let shared_messages = shared.messages(None, None).await.unwrap();
    let single_messages = single.messages(None, None).await.unwrap();
    assert_eq!(shared_messages.len(), 20);
    let view = |rows: &[tidings_store::MessageRow]| {
        rows.iter()
            .map(|m| (m.id.clone(), m.state.clone(), m.events))
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&shared_messages), view(&single_messages));

    // The suppression list, too, is the one a single instance folds from the same events.
    let shared_list = suppression_view(&shared).await;
    assert_eq!(shared_list, suppression_view(&single).await);
    assert!(
        shared_list
            .iter()
            .any(|(_, reason, _)| reason == "complaint"),
        "{shared_list:?}"
    );

    drop_schema(&base, &shared_schema).await;
    drop_schema(&base, &single_schema).await;
}

/// Each suppressed recipient of `acme` with its reason and the message that caused it.
async fn suppression_view(store: &Store) -> Vec<(String, String, Option<String>)> {
    let page = store
        .suppressions(&tidings_store::SuppressionQuery {
            environment_id: "acme".into(),
            after: None,
            limit: 1000,
            reason: None,
            channel: None,
            since: None,
            now: chrono::Utc::now(),
        })
        .await
        .unwrap();
    page.data
        .into_iter()
        .map(|s| {
            (
                s.recipient,
                s.reason.as_str().to_owned(),
                s.cause.message_id,
            )
        })
        .collect()
}

/// A TCP relay to PostgreSQL that the test can cut and restore, to take the database away from
/// a running instance without stopping it for everyone else.
struct Relay {
    address: String,
    upstream: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(upstream: &str) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            address: listener.local_addr().unwrap().to_string(),
            upstream: upstream.to_owned(),
            tasks: Default::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream.clone();
        let tasks = std::sync::Arc::clone(&self.tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(pipe.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(&self.address).await.unwrap();
        self.serve(listener);
    }
}

/// `base` with its `host:port` replaced by `address`, and the `host:port` it had.
fn through(base: &str, address: &str) -> (String, String) {
    let start = base.find("://").unwrap() + 3;
    let end = base[start..].find('/').map_or(base.len(), |i| start + i);
    let authority = &base[start..end];
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let upstream = match hostport {
        "" => "127.0.0.1:5432".to_owned(),
        h if h.contains(':') => h.to_owned(),
        h => format!("{h}:5432"),
    };
    (
        format!("{}{userinfo}{address}{}", &base[..start], &base[end..]),
        upstream,
    )
}

async fn get(address: &str, path: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_lowercase();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    Answer {
        status,
        headers: text,
        body: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_503_with_retry_after_until_it_returns() {
    let Some(base) = tidings_fixtures::optional::postgres_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = fresh_schema(&base, "outage").await;
    let (_, upstream) = through(&base, "unused:0");
    let relay = Relay::start(&upstream).await;
    let (relayed, _) = through(&base, &relay.address);
    let server = start(dir.path(), "outage", &with_schema(&relayed, &schema));
    let events = sendgrid_events(2);
    let (first, second) = (
        serde_json::to_string(&events[..1]).unwrap(),
        serde_json::to_string(&events[1..2]).unwrap(),
    );
    assert_eq!(post(&server.address, &first, None).await.status, 200);
    assert_eq!(get(&server.address, "/readyz").await.status, 200);

    relay.cut();
    let refused = post(&server.address, &second, Some("during-outage")).await;
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert!(refused.headers.contains("retry-after: 1"));
    let ready = get(&server.address, "/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(ready.headers.contains("retry-after"));
    assert_eq!(get(&server.address, "/healthz").await.status, 200);

    relay.restore().await;
    // The provider's retry goes through once the database is back, with the same key.
    let mut status = 0;
    for _ in 0..100 {
        status = post(&server.address, &second, Some("during-outage"))
            .await
            .status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(get(&server.address, "/readyz").await.status, 200);
    drop(server);

    let store = Store::open(&with_schema(&base, &schema), StoreOptions::default())
        .await
        .unwrap();
    let stored = store.events(None, None, 0, 100).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|e| e.duplicates == 0));
    drop_schema(&base, &schema).await;
}
