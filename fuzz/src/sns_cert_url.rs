//! The SNS trust rule for the URLs Tidings fetches: `SigningCertURL`
//! ([`tidings_sns::trust::signing_cert_url`]) and `SubscribeURL`
//! ([`tidings_sns::trust::sns_endpoint`]), on a URL as text.
//!
//! Besides never panicking, whatever the rule trusts must be trusted for the right reason: the
//! service fetches it with another parser (`http::Uri`, in its certificate fetcher), so the URL
//! must mean the same host there, over https on the default port. A disagreement would let a
//! crafted URL pass the check and be fetched from another host; it fails the run.

use tidings_sns::trust::{signing_cert_url, sns_endpoint};

/// Runs the trust checks on one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(trusted) = signing_cert_url(text) {
        assert_eq!(
            trusted, text,
            "the certificate URL must be returned unchanged"
        );
        fetched_from_sns(trusted);
        assert!(
            !trusted.contains('?') && !trusted.contains('#') && trusted.ends_with(".pem"),
            "{trusted:?}: a certificate URL names a .pem file, with no query or fragment"
        );
    }
    if let Some(endpoint) = sns_endpoint(text) {
        fetched_from_sns(&endpoint);
        // Normalized once, it stays as it is.
        assert_eq!(
            sns_endpoint(&endpoint).as_deref(),
            Some(endpoint.as_str()),
            "{text:?}: normalizing again changed the URL"
        );
    }
}

/// Checks that the certificate fetcher, given `url`, would connect to an Amazon SNS host over
/// https on port 443.
fn fetched_from_sns(url: &str) {
    let Ok(uri) = url.parse::<http::Uri>() else {
        // The fetcher refuses it (not https): nothing is fetched.
        return;
    };
    assert_eq!(uri.scheme_str(), Some("https"), "{url:?}");
    assert_eq!(
        uri.port_u16(),
        None,
        "{url:?}: a port other than the default"
    );
    let host = uri.host().unwrap_or_default();
    let parsed = url::Url::parse(url).ok();
    assert_eq!(
        Some(host),
        parsed.as_ref().and_then(url::Url::host_str),
        "{url:?}: the trust check and the fetcher see different hosts"
    );
    let region = host
        .strip_prefix("sns.")
        .and_then(|rest| {
            rest.strip_suffix(".amazonaws.com")
                .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
        })
        .unwrap_or_default();
    assert!(
        !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{url:?}: {host:?} is not sns.<region>.amazonaws.com[.cn]"
    );
}
