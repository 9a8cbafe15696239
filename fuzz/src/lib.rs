//! What Tidings' fuzz targets run. One binary (`fuzz_targets/all.rs`) serves every target: the
//! environment variable `TIDINGS_FUZZ_TARGET` names the one a run fuzzes, and [`run`] sends each
//! input to its function here. There is a `provider_<id>` target for every registered provider.
//!
//! Every function takes the raw fuzz input and must return normally for any input: a panic, an
//! abort, a hang or running out of memory is a finding. Inputs are free-form bytes, but each
//! target reads them in the shape its seeds (`tidings-bench fuzz-seeds`) are written in, so
//! that mutations of real provider requests reach deep code:
//!
//! | target | input |
//! |---|---|
//! | `provider_<id>` | `<content type>\n<url>\n<Header: value\n>*\n<body>` (`-`: none) |
//! | `signature_headers` | `<kind byte><text>`, see [`signature_headers`] |
//! | `sns_cert_url` | a URL |
//! | `form` | `<content type>\n<body>` |
//! | `router` | `<METHOD> <path>\n<Header: value\n>*\n<body>` |

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};

pub mod form;
pub mod provider;
pub mod router;
pub mod signature_headers;
pub mod sns_cert_url;

/// The environment variable naming the target a run of the fuzz binary fuzzes.
pub const TARGET_VARIABLE: &str = "TIDINGS_FUZZ_TARGET";

/// The targets besides one `provider_<id>` per registered provider.
pub const FIXED_TARGETS: &[&str] = &["signature_headers", "sns_cert_url", "form", "router"];

/// The target named by [`TARGET_VARIABLE`]. A missing or unknown name is a mistake in how the
/// binary was started, not a finding, so it stops the run at once.
pub fn target_from_env() -> String {
    let target = std::env::var(TARGET_VARIABLE).unwrap_or_default();
    let known = FIXED_TARGETS.contains(&target.as_str())
        || target
            .strip_prefix("provider_")
            .is_some_and(|id| tidings_core::registry().get(id).is_some());
    if !known {
        eprintln!("set {TARGET_VARIABLE} to a fuzz target (`cargo xtask fuzz` lists them), not `{target}`");
        std::process::exit(2);
    }
    target
}

/// Runs one input of `target`.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "signature_headers" => signature_headers::run(data),
        "sns_cert_url" => sns_cert_url::run(data),
        "form" => form::run(data),
        "router" => router::run(data),
        other => match other.strip_prefix("provider_") {
            Some(id) => provider::run(id, data),
            None => {
                eprintln!("no fuzz target `{other}`");
                std::process::exit(2)
            }
        },
    }
}

/// The receive time of every fuzzed request (the fixtures' default): an input replays the same.
pub(crate) fn received_at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

/// Splits `<line>\n<line>\n...\n\n<body>` into its head lines and body; `None` when there is no
/// empty line or the head is not UTF-8.
pub(crate) fn head_and_body(data: &[u8]) -> Option<(std::str::Split<'_, char>, &[u8])> {
    let at = data.windows(2).position(|w| w == b"\n\n")?;
    let head = std::str::from_utf8(data.get(..at)?).ok()?;
    Some((head.split('\n'), data.get(at + 2..)?))
}

/// Parses `Name: value` lines into headers. Values may hold any byte an HTTP/1.1 server lets
/// through (obs-text included); lines that are not a valid header are skipped.
pub(crate) fn headers<'a>(lines: impl Iterator<Item = &'a str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim().as_bytes()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    headers
}
