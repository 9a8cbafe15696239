//! Which URLs in an SNS message may be fetched: the signing certificate and the subscription
//! confirmation link must both point at Amazon SNS itself.
//!
//! The rule (AWS, "Verifying the signatures of Amazon SNS messages"): `https`, host exactly
//! `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn`, the default port, no user
//! info. A certificate URL must also name a `.pem` file, with no query or fragment, and be written
//! in canonical form (so that what was checked is byte for byte what gets fetched).

use tidings_core::{Error, Result};
use url::{Host, Url};

/// Checks a `SigningCertURL` against the trust rule and returns it unchanged, or
/// [`Error::Untrusted`] without anything being fetched.
pub fn signing_cert_url(text: &str) -> Result<&str> {
    let url = sns_url(text).ok_or(Error::Untrusted(
        "SigningCertURL is not an https URL on sns.<region>.amazonaws.com",
    ))?;
    if url.as_str() != text {
        return Err(Error::Untrusted(
            "SigningCertURL is not in canonical form (escapes, dot segments or case changes)",
        ));
    }
    if !url.path().ends_with(".pem") || url.query().is_some() {
        return Err(Error::Untrusted("SigningCertURL does not name a .pem file"));
    }
    Ok(text)
}

/// The URL, normalized, when it is an https URL on an Amazon SNS regional endpoint (the rule for
/// `SubscribeURL`); `None` otherwise.
pub fn sns_endpoint(text: &str) -> Option<String> {
    sns_url(text).map(String::from)
}

fn sns_url(text: &str) -> Option<Url> {
    let url = Url::parse(text).ok()?;
    let host_ok = matches!(url.host(), Some(Host::Domain(host)) if is_sns_host(host));
    let plain = url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && url.fragment().is_none();
    (plain && host_ok).then_some(url)
}

/// `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn`, the region one DNS label of
/// lowercase letters, digits and inner dashes (`us-east-1`, `cn-north-1`, `us-gov-west-1`).
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let Some(region) = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    !region.is_empty()
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn genuine_certificate_urls_are_trusted() {
        for url in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
            "https://sns.eu-west-3.amazonaws.com/SimpleNotificationService-TEST-ONLY.pem",
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        ] {
            assert_eq!(signing_cert_url(url), Ok(url), "{url}");
        }
    }

    #[test]
    fn everything_else_is_untrusted() {
        for url in [
            // Wrong scheme.
            "http://sns.us-east-1.amazonaws.com/cert.pem",
            "ftp://sns.us-east-1.amazonaws.com/cert.pem",
            "file:///etc/ssl/cert.pem",
            // Other AWS hosts anyone can write to, or other services.
            "https://s3.amazonaws.com/attacker/cert.pem",
            "https://attacker.s3.amazonaws.com/cert.pem",
            "https://sns.amazonaws.com/cert.pem",
            "https://sqs.us-east-1.amazonaws.com/cert.pem",
            "https://xsns.us-east-1.amazonaws.com/cert.pem",
            // Look-alike and attacker hosts.
            "https://sns.us-east-1.amazonaws.com.attacker.example/cert.pem",
            "https://sns.us-east-1.amazonaws.co/cert.pem",
            "https://sns.us-east-1.amazonaws.com.cn.attacker.example/cert.pem",
            "https://sns.attacker.example/cert.pem",
            "https://attacker.example/sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.evil.us-east-1.amazonaws.com/cert.pem",
            "https://sns..amazonaws.com/cert.pem",
            "https://sns.-x.amazonaws.com/cert.pem",
            "https://sns.us_east_1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com./cert.pem",
            // User info and ports.
            "https://sns.us-east-1.amazonaws.com@attacker.example/cert.pem",
            "https://user:pass@sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
            "https://sns.us-east-1.amazonaws.com:443/cert.pem",
            "https://attacker.example#@sns.us-east-1.amazonaws.com/cert.pem",
            "https://attacker.example\\@sns.us-east-1.amazonaws.com/cert.pem",
            // Encodings and normalization.
            "https://sns.us-east-1.amazonaws.com%2eattacker.example/cert.pem",
            "https://SNS.US-EAST-1.AMAZONAWS.COM/cert.pem",
            "https://sns.us-east-1.amazonaws.com/a/../cert.pem",
            "https://sns.us-east-1.amazonaws.com/cert%2epem",
            " https://sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com\t.attacker.example/cert.pem",
            "https://[::1]/cert.pem",
            "https://52.94.0.1/cert.pem",
            // Not a certificate file.
            "https://sns.us-east-1.amazonaws.com/cert.txt",
            "https://sns.us-east-1.amazonaws.com/",
            "https://sns.us-east-1.amazonaws.com/cert.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/cert.pem#frag",
            // Not URLs.
            "",
            "sns.us-east-1.amazonaws.com/cert.pem",
            "//sns.us-east-1.amazonaws.com/cert.pem",
        ] {
            assert!(
                matches!(signing_cert_url(url), Err(Error::Untrusted(_))),
                "{url:?} must be untrusted"
            );
        }
    }

    #[test]
    fn subscribe_urls_follow_the_host_rule_only() {
        let url = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:T&Token=2336412f37";
        assert_eq!(sns_endpoint(url).as_deref(), Some(url));
        assert!(
            sns_endpoint("https://sns.cn-northwest-1.amazonaws.com.cn/?Action=ConfirmSubscription")
                .is_some()
        );
        for bad in [
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://attacker.example/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com.attacker.example/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com@attacker.example/",
            "https://sns.us-west-2.amazonaws.com:444/?Action=ConfirmSubscription",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            assert_eq!(sns_endpoint(bad), None, "{bad}");
        }
    }
}
