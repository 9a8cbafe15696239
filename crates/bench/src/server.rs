//! Starting the real `tidings` binary on a temporary store, and watching its memory.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The environment's secret key in generated configurations.
pub const SECRET: &str = "bench-secret-key";
/// The path every benchmark request posts to.
pub const PATH: &str = "/v2/inbound-webhooks/delivery-providers/bench/sendgrid";

/// A scratch directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after the process and a tag.
    pub fn new(tag: &str) -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("tidings-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a configuration: one environment `bench`, one SendGrid integration `sendgrid`
/// (authenticated with `Authorization: ApiKey`), the store in `dir`.
pub fn write_config(dir: &Path, synchronous: &str, limits: &str) -> Result<PathBuf> {
    let store = format!("sqlite://{}", dir.join("tidings.db").display());
    write_config_with_store(dir, &store, synchronous, limits)
}

/// [`write_config`] with another store URL (PostgreSQL).
pub fn write_config_with_store(
    dir: &Path,
    store: &str,
    synchronous: &str,
    limits: &str,
) -> Result<PathBuf> {
    let path = dir.join("tidings.toml");
    // TIDINGS_BENCH_SUPPRESSIONS=false: the integration does not feed the suppression list, to
    // measure what feeding it costs.
    let suppressions = match std::env::var("TIDINGS_BENCH_SUPPRESSIONS").as_deref() {
        Ok("false") => "suppressions = false\n",
        _ => "",
    };
    let text = format!(
        r#"listen = "127.0.0.1:0"

[store]
url = "{store}"
synchronous = "{synchronous}"

[log]
level = "warn"

[limits]
{limits}

[[environments]]
id = "bench"
secret_key = "{SECRET}"

[[integrations]]
id = "sendgrid"
environment = "bench"
provider = "sendgrid"
{suppressions}"#
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Drops and recreates `schema` in the PostgreSQL database at `url`, and returns the store URL
/// that uses it, so each run starts on an empty store.
pub fn fresh_pg_schema(url: &str, schema: &str) -> Result<String> {
    let status = Command::new("psql")
        .env("PGOPTIONS", "--client-min-messages=warning")
        .args([
            url,
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"),
        ])
        .status()
        .context("running psql to reset the schema")?;
    anyhow::ensure!(status.success(), "psql could not reset schema {schema}");
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
}

/// A running server.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// From spawn to the `listening on` line.
    pub ready_after: Duration,
}

impl Server {
    /// Starts `binary serve --config config` and waits for its `listening on` line.
    pub fn start(binary: &Path, config: &Path) -> Result<Server> {
        let mut command = Command::new(binary);
        command.arg("serve").arg("--config").arg(config);
        Server::spawn(command)
    }

    /// Starts `command` and waits for the `listening on ADDR` line it prints.
    pub fn spawn(mut command: Command) -> Result<Server> {
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server exited before listening");
            };
            if let Some(addr) = line?.strip_prefix("listening on ") {
                break addr.trim().parse()?;
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server {
            child,
            addr,
            ready_after: started.elapsed(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_field(self.pid(), "VmHWM:")
    }

    /// Bytes written so far: those sent to the storage layer (`write_bytes`), or, where the
    /// kernel does not count them, those passed to `write` (`wchar`, sockets included).
    pub fn written_bytes(&self) -> Option<u64> {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.pid())).ok()?;
        let field = |name: &str| {
            io.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        field("write_bytes:")
            .filter(|&b| b > 0)
            .or_else(|| field("wchar:"))
    }

    /// CPU time (user + system) so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / 100.0)
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
