//! `[[endpoints]]`: where events go, signed with which secrets, filtered how, retried when.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use tidings_core::{Channel, Status, registry};

use crate::{Error, Result};

/// The fewest and most bytes a `whsec_` secret may decode to (Standard Webhooks: 24 to 64).
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// One endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Names the endpoint and its stored progress: renaming it starts over.
    pub id: String,
    /// Only this environment's events are sent.
    pub environment: String,
    /// `http://` or `https://`; requests go only here, and redirects are not followed.
    pub url: String,
    /// `whsec_` + base64; several during a rotation (each signs every request).
    pub secrets: Vec<WebhookSecret>,
    /// Only these statuses (`delivered`, `bounced`, ...); all when empty.
    #[serde(default)]
    pub statuses: Vec<String>,
    /// Only these channels (`email`, `sms`, `push`); all when empty.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Only these providers (ids or aliases); all when empty.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Only these integrations; all when empty.
    #[serde(default)]
    pub integrations: Vec<String>,
    /// Only these event types (`message.delivered`, ...); all when empty.
    #[serde(default)]
    pub types: Vec<String>,
    /// The whole attempt (connect, send, answer) must finish within this.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Attempts in flight at once; 1 keeps `seq` order (a failing event then holds the
    /// endpoint until it is delivered or dead-lettered).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// A disabled endpoint is skipped (its progress is kept).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where a new endpoint starts: `now` (only events stored from now on) or `beginning`.
    #[serde(default)]
    pub start: Start,
    /// Whether events carry the provider's own text of the event (`row`).
    #[serde(default)]
    pub include_row: bool,
    /// Seconds before the 2nd, 3rd, ... attempt (the first is immediate); after the last the
    /// event is dead-lettered. Default: Svix's schedule.
    #[serde(default = "default_retry_secs")]
    pub retry_schedule_secs: Vec<u64>,
    /// The longest `Retry-After` honoured.
    #[serde(default = "default_retry_after_max_secs")]
    pub retry_after_max_secs: u64,
}

fn default_timeout_secs() -> u64 {
    15
}

fn default_max_in_flight() -> usize {
    16
}

fn default_true() -> bool {
    true
}

/// Where a new endpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Only events stored from the endpoint's first start on.
    #[default]
    Now,
    /// Every stored event of its environment.
    Beginning,
}

/// Which events an endpoint gets; an empty list lets everything through.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only these statuses (`delivered`, `bounced`, ...).
    pub statuses: Vec<String>,
    /// Only these channels (`email`, `sms`, `push`).
    pub channels: Vec<String>,
    /// Only these providers (ids or aliases).
    pub providers: Vec<String>,
    /// Only these integrations.
    pub integrations: Vec<String>,
    /// Only these event types (`message.delivered`, ...).
    pub types: Vec<String>,
}

/// Svix's schedule between attempts: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (the first
/// attempt is immediate), eight attempts in all.
pub const DEFAULT_RETRY_SECS: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// When failed attempts are retried: each delay is drawn uniformly between 0 and the
/// schedule's value (full jitter); an answer's `Retry-After` is honoured up to a cap.
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    /// Seconds before the 2nd, 3rd, ... attempt; the first is immediate. After the last the
    /// event is dead-lettered.
    pub retry_schedule_secs: Vec<u64>,
    /// The longest `Retry-After` honoured.
    pub retry_after_max_secs: u64,
}

fn default_retry_secs() -> Vec<u64> {
    DEFAULT_RETRY_SECS.to_vec()
}

fn default_retry_after_max_secs() -> u64 {
    3600
}

impl Default for RetrySchedule {
    fn default() -> RetrySchedule {
        RetrySchedule {
            retry_schedule_secs: default_retry_secs(),
            retry_after_max_secs: default_retry_after_max_secs(),
        }
    }
}

impl RetrySchedule {
    /// Attempts made at most.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.retry_schedule_secs.len())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1)
    }

    /// The delay after failed attempt number `attempts` (1 = the first), or `None` when it
    /// was the last. `jitter` is uniform in `[0, 1)`; `retry_after` is the answer's, if any.
    pub fn delay(
        &self,
        attempts: u32,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
        let base = *self.retry_schedule_secs.get(index)?;
        let jittered = Duration::from_secs_f64(base as f64 * jitter.clamp(0.0, 1.0));
        let honoured = retry_after
            .map(|wait| wait.min(Duration::from_secs(self.retry_after_max_secs)))
            .unwrap_or_default();
        Some(jittered.max(honoured))
    }
}

/// A Standard Webhooks secret: `whsec_` + base64 of 24 to 64 random bytes. Neither its text
/// nor its bytes ever print.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<WebhookSecret, D::Error> {
        String::deserialize(d).map(|text| WebhookSecret { text })
    }
}

impl WebhookSecret {
    /// Wraps a secret's text (checked by [`WebhookSecret::key`]).
    pub fn new(text: impl Into<String>) -> WebhookSecret {
        WebhookSecret { text: text.into() }
    }

    /// The HMAC key: the base64 after `whsec_`, decoded. The error never quotes the secret.
    pub fn key(&self) -> Result<Vec<u8>> {
        let encoded = self.text.strip_prefix("whsec_").ok_or_else(|| {
            Error::Secret("does not start with `whsec_` (Standard Webhooks secrets do)".into())
        })?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Error::Secret("is not `whsec_` followed by base64".into()))?;
        if !SECRET_BYTES.contains(&key.len()) {
            return Err(Error::Secret(format!(
                "decodes to {} bytes; it must be {} to {} (e.g. `whsec_$(openssl rand -base64 32)`)",
                key.len(),
                SECRET_BYTES.start(),
                SECRET_BYTES.end()
            )));
        }
        Ok(key)
    }
}

impl Filters {
    /// Every filter value this build does not know, as problems.
    fn problems(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for status in &self.statuses {
            if Status::from_wire(status).is_none() {
                out.push(format!("{name}: unknown status `{status}` in statuses"));
            }
        }
        for channel in &self.channels {
            if parse_channel(channel).is_none() {
                out.push(format!(
                    "{name}: unknown channel `{channel}` in channels (email, sms, push)"
                ));
            }
        }
        for provider in &self.providers {
            if registry().get(provider).is_none() {
                out.push(format!(
                    "{name}: unknown provider `{provider}` in providers"
                ));
            }
        }
        for kind in &self.types {
            let known = kind
                .strip_prefix("message.")
                .is_some_and(|s| Status::from_wire(s).is_some());
            if !known {
                out.push(format!(
                    "{name}: unknown event type `{kind}` in types (message.<status>)"
                ));
            }
        }
        out
    }

    /// Whether an event passes.
    pub fn accepts(
        &self,
        status: Status,
        channel: Option<Channel>,
        provider: &str,
        integration: &str,
    ) -> bool {
        let provider_id = registry().get(provider).map_or(provider, |p| p.id());
        (self.statuses.is_empty() || self.statuses.iter().any(|s| s == status.as_str()))
            && (self.channels.is_empty()
                || channel
                    .is_some_and(|c| self.channels.iter().any(|s| parse_channel(s) == Some(c))))
            && (self.providers.is_empty()
                || self
                    .providers
                    .iter()
                    .any(|p| registry().get(p).map_or(p.as_str(), |p| p.id()) == provider_id))
            && (self.integrations.is_empty() || self.integrations.iter().any(|i| i == integration))
            && (self.types.is_empty()
                || self
                    .types
                    .iter()
                    .any(|t| t.strip_prefix("message.") == Some(status.as_str())))
    }
}

fn parse_channel(text: &str) -> Option<Channel> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

impl EndpointConfig {
    /// The endpoint's filters.
    pub fn filters(&self) -> Filters {
        Filters {
            statuses: self.statuses.clone(),
            channels: self.channels.clone(),
            providers: self.providers.clone(),
            integrations: self.integrations.clone(),
            types: self.types.clone(),
        }
    }

    /// The endpoint's retry schedule.
    pub fn retry(&self) -> RetrySchedule {
        RetrySchedule {
            retry_schedule_secs: self.retry_schedule_secs.clone(),
            retry_after_max_secs: self.retry_after_max_secs,
        }
    }

    /// Everything wrong with this endpoint, given the configured environments.
    pub fn problems(&self, environments: &[&str]) -> Vec<String> {
        let name = format!("endpoint `{}`", self.id);
        let mut out = Vec::new();
        if self.id.trim().is_empty() {
            out.push("an endpoint has an empty id".into());
        }
        if !environments.contains(&self.environment.as_str()) {
            out.push(format!(
                "{name}: environment `{}` is not configured",
                self.environment
            ));
        }
        if let Err(err) = self.uri() {
            out.push(format!("{name}: {err}"));
        }
        if self.secrets.is_empty() {
            out.push(format!(
                "{name}: needs at least one secret (`whsec_` + base64)"
            ));
        }
        for (index, secret) in self.secrets.iter().enumerate() {
            if let Err(err) = secret.key() {
                out.push(format!("{name}: secret {} {err}", index + 1));
            }
        }
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            out.push(format!("{name}: timeout_secs must be 1 to 300"));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 1024 {
            out.push(format!("{name}: max_in_flight must be 1 to 1024"));
        }
        if self.retry_schedule_secs.len() > 100 {
            out.push(format!(
                "{name}: retry_schedule_secs has more than 100 entries"
            ));
        }
        if self.retry_schedule_secs.iter().any(|s| *s > 7 * 24 * 3600) {
            out.push(format!(
                "{name}: a retry delay longer than a week is a mistake"
            ));
        }
        out.extend(self.filters().problems(&name));
        out
    }

    /// The URL, checked: `http` or `https`, with a host, no credentials.
    pub fn uri(&self) -> Result<http::Uri> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|_| Error::Url(format!("url `{}` is not a URL", self.shown_url())))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(Error::Url(format!(
                    "url `{}` must start with http:// or https://",
                    self.shown_url()
                )));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(Error::Url(format!(
                "url `{}` has no host",
                self.shown_url()
            )));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(Error::Url(format!(
                "url `{}` must not carry credentials; the signature authenticates Tidings",
                self.shown_url()
            )));
        }
        Ok(uri)
    }

    /// The URL without its query (which may hold a token), for messages and logs.
    pub fn shown_url(&self) -> String {
        let end = self.url.find(['?', '#']).unwrap_or(self.url.len());
        let mut shown: String = self.url.chars().take(end.min(200)).collect();
        if let Some(at) = shown.find('@') {
            // `https://user:pass@host`: keep the scheme and what follows the credentials.
            let scheme_end = shown.find("://").map_or(0, |i| i + 3);
            if at > scheme_end {
                shown.replace_range(scheme_end..=at, "[redacted]@");
            }
        }
        shown
    }

    /// The HMAC keys of every secret that decodes (check-config reports the others).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.secrets.iter().filter_map(|s| s.key().ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn endpoint(toml_text: &str) -> EndpointConfig {
        toml::from_str(toml_text).unwrap()
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn defaults_are_svix_schedule_sixteen_in_flight_from_now() {
        let e = endpoint(&format!(
            "id = 'a'\nenvironment = 'prod'\nurl = 'https://example.com/hooks'\nsecrets = ['{SECRET}']"
        ));
        assert_eq!(e.max_in_flight, 16);
        assert_eq!(e.start, Start::Now);
        assert!(e.enabled && !e.include_row);
        assert_eq!(e.retry().attempts(), 8);
        assert!(
            e.problems(&["prod"]).is_empty(),
            "{:?}",
            e.problems(&["prod"])
        );
        assert_eq!(e.keys().len(), 1);
    }

    #[test]
    fn every_problem_is_reported() {
        let e = endpoint(
            "id = 'a'\nenvironment = 'nope'\nurl = 'ftp://user:pw@example.com/x?token=hide'\n\
             secrets = ['whsec_c2hvcnQ=', 'plain', 'whsec_!!!']\nstatuses = ['gone']\n\
             channels = ['fax']\ntypes = ['suppression.x']\nmax_in_flight = 0\ntimeout_secs = 0",
        );
        let problems = e.problems(&["prod"]);
        let text = problems.join("\n");
        for expected in [
            "environment `nope`",
            "http:// or https://",
            "secret 1 decodes to 5 bytes",
            "secret 2 does not start with `whsec_`",
            "secret 3 is not `whsec_` followed by base64",
            "unknown status `gone`",
            "unknown channel `fax`",
            "unknown event type `suppression.x`",
            "max_in_flight",
            "timeout_secs",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        assert!(!text.contains("hide") && !text.contains("pw@"), "{text}");
        assert!(
            !format!("{e:?}").contains("whsec_c2"),
            "secrets never print"
        );
    }

    #[test]
    fn delays_follow_the_schedule_with_full_jitter_and_a_capped_retry_after() {
        let schedule = RetrySchedule {
            retry_schedule_secs: vec![5, 300],
            retry_after_max_secs: 3600,
        };
        assert_eq!(schedule.attempts(), 3);
        assert_eq!(schedule.delay(1, 1.0, None), Some(Duration::from_secs(5)));
        assert_eq!(schedule.delay(1, 0.0, None), Some(Duration::ZERO));
        assert_eq!(schedule.delay(2, 0.5, None), Some(Duration::from_secs(150)));
        assert_eq!(schedule.delay(3, 0.5, None), None, "the last attempt");
        assert_eq!(schedule.delay(0, 0.5, None), None);
        assert_eq!(
            schedule.delay(1, 0.0, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            schedule.delay(1, 0.0, Some(Duration::from_secs(86_400))),
            Some(Duration::from_secs(3600)),
            "Retry-After is capped"
        );
    }

    #[test]
    fn filters_match_each_dimension() {
        let filters = Filters {
            statuses: vec!["bounced".into(), "delivered".into()],
            channels: vec!["email".into()],
            providers: vec!["sendinblue".into()],
            integrations: vec![],
            types: vec![],
        };
        assert!(filters.accepts(Status::Bounced, Some(Channel::Email), "sendinblue", "x"));
        assert!(!filters.accepts(Status::Opened, Some(Channel::Email), "sendinblue", "x"));
        assert!(!filters.accepts(Status::Bounced, Some(Channel::Sms), "sendinblue", "x"));
        assert!(!filters.accepts(Status::Bounced, Some(Channel::Email), "sendgrid", "x"));
        let types = Filters {
            types: vec!["message.opened".into()],
            integrations: vec!["main".into()],
            ..Filters::default()
        };
        assert!(types.accepts(Status::Opened, None, "sendgrid", "main"));
        assert!(!types.accepts(Status::Opened, None, "sendgrid", "other"));
        assert!(!types.accepts(Status::Clicked, None, "sendgrid", "main"));
        assert!(Filters::default().accepts(Status::Sent, None, "any", "any"));
    }
}
