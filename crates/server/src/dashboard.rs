//! The dashboard page at `/`: one HTML file, a script and a style sheet embedded in the binary
//! (no build step, nothing fetched from elsewhere). It reads the read API with the environment
//! key the person enters, so it shows nothing a caller without a key could not see.
//!
//! It renders attacker-controlled text (recipients, provider events, responses): the script
//! inserts text only as text, and a strict Content Security Policy forbids inline scripts and
//! any other origin.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::app::{Body, full};
use crate::error::ApiError;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// Scripts, styles and requests only from this server; no frames, forms or plugins elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

/// The page.
pub fn page() -> Response<Body> {
    file(PAGE, "text/html; charset=utf-8")
}

/// `/dashboard/{asset}`: the script or the style sheet.
pub fn asset(name: &str) -> Result<Response<Body>, ApiError> {
    match name {
        "app.js" => Ok(file(SCRIPT, "text/javascript; charset=utf-8")),
        "style.css" => Ok(file(STYLE, "text/css; charset=utf-8")),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "Not found.")),
    }
}

fn file(content: &'static str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(content.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
