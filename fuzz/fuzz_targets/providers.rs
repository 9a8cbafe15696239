//! One target for every provider's parser and verifier. The input is a request:
//!
//! ```text
//! <provider id>\n<content type>\n<url>\n<Header: value\n>*\n<body>
//! ```
//!
//! with `-` for no content type or no URL
//!
//! (what `tidings-bench fuzz-seeds` writes from the fixtures); an input without that shape
//! picks the provider from its first byte and is all body. The verifier runs with the signing
//! key of the provider's fixtures, so mutations of a signed fixture reach the signature code.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tidings_core::{Credentials, Freshness, ProviderParser, RawRequest, Secret, registry};
use tidings_providers as _;

struct Keys {
    signing_keys: Vec<Secret>,
    options: BTreeMap<String, String>,
}

fn keys() -> &'static BTreeMap<String, Keys> {
    static KEYS: OnceLock<BTreeMap<String, Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut map = BTreeMap::new();
        for fixture in tidings_fixtures::all() {
            if let Some(key) = &fixture.meta.signing_key {
                map.entry(fixture.provider.clone()).or_insert_with(|| Keys {
                    signing_keys: vec![Secret::new(key.as_str())],
                    options: fixture.meta.options.clone(),
                });
            }
        }
        map
    })
}

struct Request<'a> {
    parser: &'static dyn ProviderParser,
    content_type: Option<&'a str>,
    url: Option<&'a str>,
    headers: http::HeaderMap,
    body: &'a [u8],
}

fn split(data: &[u8]) -> Option<Request<'_>> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (data.get(..at)?, data.get(at + 2..)?),
        None => return None,
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let parser = registry().get(lines.next()?)?;
    let content_type = lines.next().filter(|c| *c != "-");
    let url = lines.next().filter(|u| *u != "-");
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        let value = http::HeaderValue::from_str(value.trim()).ok()?;
        headers.append(name, value);
    }
    Some(Request {
        parser,
        content_type,
        url,
        headers,
        body,
    })
}

fuzz_target!(|data: &[u8]| {
    let request = split(data).unwrap_or_else(|| {
        let providers: Vec<_> = registry().iter().collect();
        let index = usize::from(data.first().copied().unwrap_or(0)) % providers.len();
        Request {
            parser: providers[index],
            content_type: Some("application/json"),
            url: None,
            headers: http::HeaderMap::new(),
            body: data.get(1..).unwrap_or_default(),
        }
    });
    let raw = RawRequest {
        body: request.body,
        content_type: request.content_type,
        headers: &request.headers,
        url: request.url,
        received_at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
    };
    if let Ok(parsed) = request.parser.parse(&raw) {
        let _ = serde_json::to_vec(&parsed.results());
    }
    let empty = BTreeMap::new();
    let fetched = BTreeMap::new();
    let (signing_keys, options) = keys()
        .get(request.parser.id())
        .map_or((&[][..], &empty), |k| (&k.signing_keys[..], &k.options));
    for freshness in [Freshness::Unchecked, Freshness::ProviderDefault] {
        let credentials = Credentials {
            signing_keys,
            options,
            fetched: &fetched,
            freshness,
        };
        let _ = request.parser.verify(&raw, &credentials);
    }
});
