//! One provider's parser and verifier on a request:
//!
//! ```text
//! <content type>\n<url>\n<Header: value\n>*\n<body>
//! ```
//!
//! with `-` for no content type or no URL (what `tidings-bench fuzz-seeds` writes from the
//! provider's fixtures). An input without that shape is all body, sent as JSON.
//!
//! The verifier runs with every set of credentials the provider's fixtures were signed with
//! (signing key, options, fetched certificates), with and without the timestamp window, so
//! mutations of a signed fixture reach the signature code and not just the header checks.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use tidings_core::{Credentials, Freshness, ProviderParser, RawRequest, Secret, registry};
use tidings_providers as _;

/// What a provider's fixtures verify with.
#[derive(PartialEq)]
struct CredentialSet {
    keys: Vec<Secret>,
    options: BTreeMap<String, String>,
    fetched: BTreeMap<String, Vec<u8>>,
}

/// Every provider's distinct credential sets, from the fixtures.
fn credentials() -> &'static BTreeMap<String, Vec<CredentialSet>> {
    static SETS: OnceLock<BTreeMap<String, Vec<CredentialSet>>> = OnceLock::new();
    SETS.get_or_init(|| {
        let mut map: BTreeMap<String, Vec<CredentialSet>> = BTreeMap::new();
        for fixture in tidings_fixtures::all() {
            let set = CredentialSet {
                keys: fixture
                    .meta
                    .signing_key
                    .iter()
                    .map(|k| Secret::new(k.as_str()))
                    .collect(),
                options: fixture.meta.options.clone(),
                fetched: fixture.fetched.clone(),
            };
            if set.keys.is_empty() && set.options.is_empty() && set.fetched.is_empty() {
                continue;
            }
            let sets = map.entry(fixture.provider.clone()).or_default();
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        map
    })
}

/// The parser registered as `id`. A target for an unknown id is a build mistake, not a finding
/// in the code under test, so it stops the run at once.
fn parser(id: &str) -> &'static dyn ProviderParser {
    match registry().get(id) {
        Some(parser) => parser,
        None => {
            eprintln!("no provider `{id}` is registered");
            std::process::exit(2)
        }
    }
}

/// Runs provider `id` on one input.
pub fn run(id: &str, data: &[u8]) {
    let parser = parser(id);
    let (content_type, url, headers, body) = match crate::head_and_body(data) {
        Some((mut lines, body)) => {
            let content_type = lines.next().filter(|c| *c != "-");
            let url = lines.next().filter(|u| *u != "-");
            (content_type, url, crate::headers(lines), body)
        }
        None => (Some("application/json"), None, http::HeaderMap::new(), data),
    };
    let raw = RawRequest {
        method: "POST",
        body,
        content_type,
        headers: &headers,
        url,
        received_at: crate::received_at(),
    };
    if let Ok(parsed) = parser.read(&raw) {
        // What the handler answers with and stores.
        let _ = parsed.results_json();
        let _ = serde_json::to_string(&parsed.events);
        let _ = serde_json::to_string(&parsed.ignored);
    }
    let _ = parser.remote_keys(&raw);
    let none = [CredentialSet {
        keys: Vec::new(),
        options: BTreeMap::new(),
        fetched: BTreeMap::new(),
    }];
    let sets = credentials()
        .get(parser.id())
        .map_or(&none[..], Vec::as_slice);
    for set in sets {
        for freshness in [Freshness::Unchecked, Freshness::ProviderDefault] {
            let credentials = Credentials {
                signing_keys: &set.keys,
                options: &set.options,
                fetched: &set.fetched,
                freshness,
            };
            let _ = parser.verify(&raw, &credentials);
        }
    }
}
