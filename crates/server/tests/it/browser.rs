//! The dashboard in a real browser: headless Chromium driven over WebDriver (`chromedriver`,
//! Debian's `chromium-driver`), against a running server with fixture webhooks. Skipped, with a
//! line saying so, where Chromium is not installed; under `CI=true` that fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, fixture};

const SG: &str = "/v2/inbound-webhooks/delivery-providers/prod/sg";
const KEY: &str = "ApiKey prod-secret-key";

/// `chromedriver` and the browser it drives, when installed.
fn installed() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|path| path.is_file())
            })
        })
    };
    let driver = find(&["chromedriver"]);
    let browser = find(&["chromium", "chromium-browser", "google-chrome"]);
    match (driver, browser) {
        (Some(driver), Some(browser)) => Some((driver, browser)),
        _ => {
            tidings_fixtures::optional::skip(
                "the dashboard's browser test",
                "chromedriver or Chromium is not installed",
                "apt-get install chromium chromium-driver",
            );
            None
        }
    }
}

/// A running `chromedriver` and one browser session of it.
struct Browser {
    driver: Child,
    address: String,
    session: String,
}

impl Browser {
    fn start(driver: &PathBuf, browser: &PathBuf) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser_session = Browser {
            driver,
            address,
            session: String::new(),
        };
        // A phone-width window: the page must work there.
        let created = browser_session.call(
            "POST",
            "/session",
            &json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": browser,
                    // CI runs as root, where Chromium's sandbox cannot start.
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=390,844"]
                }
            }}}),
        );
        browser_session.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser_session
    }

    /// One WebDriver command. chromedriver keeps connections open whatever `Connection` says,
    /// so the answer is read up to its `Content-Length`.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer).unwrap();
        let value: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        assert!(
            status_line.contains(" 200 "),
            "{method} {path}: {status_line} {value}"
        );
        value["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", &json!({ "url": url }));
    }

    fn run(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": [] }),
        )
    }

    /// Waits until `script` returns a truthy value; returns it.
    fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.run(script);
            if !(value.is_null() || value == false || value == "") {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never happened; the page says {}",
                self.run("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &path, &Value::Null)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn post(server: &Server, body: &str) {
    let answer = server.post(
        SG,
        &[("Authorization", KEY), ("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn the_dashboard_shows_integrations_live_events_and_messages_without_running_their_text() {
    let Some((driver, browser_binary)) = installed() else {
        return;
    };
    let server = Server::start();
    // SendGrid's documented batch: every event type, of one message.
    post(
        &server,
        &String::from_utf8(
            std::fs::read(fixture("sendgrid/docs-batch-all-event-types.json")).unwrap(),
        )
        .unwrap(),
    );
    // A refused webhook whose body is a script: shown with its reason and hint, never run.
    let refused = server.post(
        SG,
        &[("Content-Type", "application/json")],
        br#"[{"email":"<img src=x onerror=\"window.__ran=3\">","event":"delivered"}]"#,
    );
    assert_eq!(refused.status, 401);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let browser = Browser::start(&driver, &browser_binary);
    // The key arrives in the fragment (never sent to the server) and leaves the address bar.
    browser.open(&format!(
        "http://{}/#env=prod&key=prod-secret-key",
        server.address
    ));
    let integrations = browser.wait_for(
        "the integrations table lists sg with its events",
        "const t = document.querySelector('#integrations tbody').innerText; \
         return t.includes('sendgrid') && t.includes('sg') && t.includes('10') ? t : null",
    );
    assert!(
        integrations.as_str().unwrap().contains("ok"),
        "{integrations}"
    );
    assert_eq!(
        browser.run("return location.hash"),
        "",
        "the key is gone from the address"
    );
    assert_eq!(
        browser.run("return sessionStorage.getItem('tidings.key')"),
        "prod-secret-key"
    );
    let rates = browser.wait_for(
        "the rates show SendGrid's statuses",
        "const t = document.getElementById('rates').innerText; return t.includes('bounced') ? t : null",
    );
    assert!(rates.as_str().unwrap().contains('%'), "{rates}");
    let rejections = browser.wait_for(
        "the refused webhook with its reason and hint",
        "const t = document.querySelector('#rejections tbody').innerText; \
         return t.includes('missing_credentials') ? t : null",
    );
    assert!(
        rejections.as_str().unwrap().contains("signing key"),
        "the hint says what to do: {rejections}"
    );

    // Live: an event stored after the page connected appears in the feed. Its recipient is a
    // script that must show as text and never run.
    browser.wait_for(
        "the stream is open",
        "return document.getElementById('feed-state').innerText.startsWith('Live')",
    );
    let hostile = r#"<img src=x onerror=\"window.__ran=1\"><script>window.__ran=2</script>"#;
    post(
        &server,
        &format!(
            r#"[{{"email":"{hostile}","event":"bounce","sg_message_id":"live-1.filter0001","sg_event_id":"live-ev-1","timestamp":1700000000,"reason":"550 5.1.1 no such user"}}]"#
        ),
    );
    let feed = browser.wait_for(
        "the live event appears",
        "const t = document.querySelector('#feed tbody').innerText; return t.includes('live-1') ? t : null",
    );
    assert!(feed.as_str().unwrap().contains("<img src=x"), "{feed}");
    assert_eq!(browser.run("return window.__ran === undefined"), true);
    assert_eq!(
        browser.run("return document.querySelectorAll('main img, main script').length"),
        0
    );

    // Message lookup: the folded status and the timeline.
    browser.run(
        "document.getElementById('message-id').value = 'live-1.filter0001'; \
         document.getElementById('lookup').requestSubmit();",
    );
    let message = browser.wait_for(
        "the message and its timeline",
        "const t = document.getElementById('message').innerText; return t.includes('550') ? t : null",
    );
    assert!(message.as_str().unwrap().contains("bounced"), "{message}");

    // A phone-width screen: nothing overflows the page itself (tables scroll in their boxes).
    let overflow = browser
        .run("return document.documentElement.scrollWidth - document.documentElement.clientWidth");
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is wider than the screen by {overflow}px"
    );

    // `TIDINGS_SCREENSHOT=docs/dashboard.png` refreshes the README's picture.
    if let Some(path) = std::env::var_os("TIDINGS_SCREENSHOT") {
        browser.session_call(
            "POST",
            "/window/rect",
            &json!({"width": 1280, "height": 1100}),
        );
        let png = browser.session_call("GET", "/screenshot", &Value::Null);
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            png.as_str().unwrap(),
        )
        .unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}
