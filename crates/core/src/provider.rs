//! The contract every provider crate implements.

use std::collections::BTreeMap;

use chrono::Duration;

use crate::{Channel, Declared, Error, Parsed, RawRequest, Result, Secret};

/// The signature scheme a provider uses, as listed by `tidings providers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// The provider does not sign its requests (protect them with an API key or Basic auth).
    None,
    /// Verified with a key configured on the integration (`signing_key`). The text names the
    /// scheme, e.g. `hmac-sha256`.
    Keyed(&'static str),
    /// Verified without a configured key (the request carries a certificate URL the verifier
    /// checks against a fixed trust rule, as Amazon SNS does).
    Keyless(&'static str),
}

impl Signature {
    /// The scheme's name, or `None`.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Signature::None => None,
            Signature::Keyed(name) | Signature::Keyless(name) => Some(name),
        }
    }
}

/// How strictly signed timestamps are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// The provider's own documented tolerance (or its default, where the provider names none).
    #[default]
    ProviderDefault,
    /// A configured tolerance.
    Within(Duration),
    /// Timestamps are not checked (verifying a recorded request offline).
    Unchecked,
}

impl Freshness {
    /// The tolerance to apply, given the provider's default (`None`: the provider documents no
    /// window and its own libraries check none).
    pub fn tolerance(self, provider_default: Option<Duration>) -> Option<Duration> {
        match self {
            Freshness::ProviderDefault => provider_default,
            Freshness::Within(tolerance) => Some(tolerance),
            Freshness::Unchecked => None,
        }
    }
}

/// What an integration holds for verifying its provider's signatures.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The signing keys; a request is genuine if it verifies with any of them (key rotation).
    pub signing_keys: &'a [Secret],
    /// Provider-specific settings from the integration's configuration (for example an
    /// allow-list of topics), by name.
    pub options: &'a BTreeMap<String, String>,
    /// Documents the service fetched for this request, keyed by the URLs
    /// [`ProviderParser::remote_keys`] named (signing certificates).
    pub fetched: &'a BTreeMap<String, Vec<u8>>,
    /// How signed timestamps are checked.
    pub freshness: Freshness,
}

impl<'a> Credentials<'a> {
    /// Tries `verify_with` for every signing key: `Ok` as soon as one verifies, else the error of
    /// the last key, or [`Error::NoSigningKey`] when there are none.
    pub fn any_key(&self, mut verify_with: impl FnMut(&Secret) -> Result<()>) -> Result<()> {
        let mut last = Error::NoSigningKey;
        for key in self.signing_keys {
            match verify_with(key) {
                Ok(()) => return Ok(()),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// [`any_key`](Self::any_key) for schemes that compute and compare: `Ok` as soon as
    /// `matches` holds for a key, else [`Error::SignatureMismatch`] (or
    /// [`Error::NoSigningKey`] when there are none).
    pub fn any_key_matches(&self, mut matches: impl FnMut(&Secret) -> bool) -> Result<()> {
        self.any_key(|key| {
            if matches(key) {
                Ok(())
            } else {
                Err(Error::SignatureMismatch)
            }
        })
    }

    /// A provider-specific option.
    pub fn option(&self, name: &str) -> Option<&'a str> {
        self.options.get(name).map(String::as_str)
    }
}

/// The answer to a provider's endpoint-registration handshake: a request that carries no event
/// and must be answered in a set way before the provider sends any (RingCentral's
/// `Validation-Token` echo). Handshakes are answered before authentication, since the provider
/// may not sign them; nothing is stored, and the answer only echoes what the request sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Response headers to set, as (name, value).
    pub headers: Vec<(&'static str, String)>,
}

/// A signed one-time value (see [`ProviderParser::nonce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce {
    /// The value as signed.
    pub value: String,
    /// Until when a reuse is a replay.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl Nonce {
    /// "Never" for a nonce: the last second of year 9999, which every store can hold and order.
    pub const NEVER: chrono::DateTime<chrono::Utc> =
        match chrono::DateTime::from_timestamp(253_402_300_799, 0) {
            Some(time) => time,
            None => chrono::DateTime::<chrono::Utc>::MIN_UTC,
        };
}

/// A provider's webhook parser and verifier. Implementations are unit structs declared and
/// registered with [`provider!`](crate::provider), which also writes their [`Declared`] part:
/// synchronous, pure and total (any bytes give `Ok` or `Err`, never a panic).
pub trait ProviderParser: Declared + Send + Sync + 'static {
    /// Why this request, refused for a bad signature, most likely failed, when the provider
    /// can tell more than the generic hint (a body re-encoded in transit that verifies once
    /// restored, a key of the wrong kind). Computed only when a person reads the rejection, so
    /// it may repeat the signature check on variants of the request.
    fn refusal_hint(
        &self,
        _request: &RawRequest<'_>,
        _credentials: &Credentials<'_>,
    ) -> Option<String> {
        None
    }

    /// URLs of documents (signing certificates) the service must fetch before calling
    /// [`verify`](Self::verify). Each URL must already be checked against the provider's trust
    /// rule here: the service fetches exactly what this returns.
    fn remote_keys(&self, _request: &RawRequest<'_>) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Everything [`verify`](Self::verify) checks that needs no fetched document (the signature's
    /// form, allow-lists, the timestamp window). The service calls it before fetching what
    /// [`remote_keys`](Self::remote_keys) names, so a request that cannot verify costs no
    /// outbound fetch. `verify` must still check all of it.
    fn precheck(&self, _request: &RawRequest<'_>, _credentials: &Credentials<'_>) -> Result<()> {
        Ok(())
    }

    /// Parses a signing key into the form [`verify`](Self::verify) uses and keeps it in the
    /// secret ([`Secret::parsed`]). The service calls it for every key when the configuration
    /// loads, so no request decodes a key again and a malformed key (of the wrong kind or
    /// format) is a configuration error, reported by `check-config`, instead of a stream of 401s.
    /// Providers whose keys are used as text keep the default.
    fn load_key(&self, _key: &Secret) -> Result<()> {
        Ok(())
    }

    /// Problems with an integration's provider-specific options, reported by `check-config`: a
    /// required option that is missing, or a value the provider cannot use.
    fn option_problems(&self, _options: &BTreeMap<String, String>) -> Vec<String> {
        Vec::new()
    }

    /// Whether, with these options, the service may itself act on a verified request's
    /// [`Control::ConfirmSubscription`](crate::Control::ConfirmSubscription) for `topic` (visit
    /// its URL). No provider's subscription is confirmed unless it says so here.
    fn may_confirm(&self, _topic: &str, _options: &BTreeMap<String, String>) -> bool {
        false
    }

    /// The signed one-time value of a request whose signature does not cover its body (Mailgun
    /// signs only `timestamp + token`), and until when it must be remembered (the end of the
    /// signature's timestamp window, with these credentials). The service stores it with the
    /// request and refuses a second request that reuses it with another body. Called only
    /// after [`verify`](Self::verify) succeeded.
    fn nonce(&self, _request: &RawRequest<'_>, _credentials: &Credentials<'_>) -> Option<Nonce> {
        None
    }

    /// Proves the request genuine with the provider's own signature, over the exact raw bytes, in
    /// constant time. Errors say precisely why, and never echo a secret. Providers without a
    /// scheme keep the default: their integrations authenticate with an API key or Basic auth.
    fn verify(&self, _request: &RawRequest<'_>, _credentials: &Credentials<'_>) -> Result<()> {
        Err(Error::NoSigningKey)
    }

    /// Recognizes an endpoint-registration handshake, answered with 200 and
    /// [`Handshake::headers`] before authentication and without storing anything. Most
    /// providers have none.
    fn handshake(&self, _request: &RawRequest<'_>) -> Option<Handshake> {
        None
    }

    /// Normalizes the request into events. Unknown or unmapped provider events are
    /// [`Parsed::ignored`], never an error; a body that is not this provider's format is an error.
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed>;
}

/// The declared facts of any provider, read through its [`Declaration`](crate::Declaration), and the one way the
/// service reads a request.
impl dyn ProviderParser {
    /// The provider id.
    pub fn id(&self) -> &'static str {
        self.declaration().id
    }

    /// Other names users know the provider by.
    pub fn aliases(&self) -> &'static [&'static str] {
        self.declaration().aliases
    }

    /// The channel the provider delivers on.
    pub fn channel(&self) -> Channel {
        self.declaration().channel
    }

    /// The provider's signature scheme.
    pub fn signature(&self) -> Signature {
        self.declaration().signature
    }

    /// Whether the signature covers the URL the provider called.
    pub fn signs_url(&self) -> bool {
        self.declaration().signs_url
    }

    /// Whether the provider may deliver with `GET`.
    pub fn accepts_get(&self) -> bool {
        self.declaration().accepts_get
    }

    /// The `options` keys an integration of this provider may set.
    pub fn option_keys(&self) -> &'static [&'static str] {
        self.declaration().options
    }

    /// Options the local demo gives this provider's integration.
    pub fn demo_options(&self) -> &'static [(&'static str, &'static str)] {
        self.declaration().demo_options
    }

    /// Request headers that carry a credential.
    pub fn credential_headers(&self) -> &'static [&'static str] {
        self.declaration().credential_headers
    }

    /// Why `key` cannot be this provider's signing key, for `check-config`.
    pub fn key_problem(&self, key: &Secret) -> Option<String> {
        self.load_key(key).err().map(|err| err.to_string())
    }

    /// Normalizes a request: a body of a media type the provider does not declare is refused
    /// (415) before [`parse`](ProviderParser::parse) sees it. Everything that reads a request
    /// (the service, re-parse, `tidings parse`, the conformance suite) goes through here.
    pub fn read(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let declaration = self.declaration();
        if request.is_get() {
            if !declaration.accepts_get {
                return Err(Error::malformed(
                    declaration.id,
                    "the provider does not deliver with GET",
                ));
            }
        } else if !declaration.accepts(request.media_type()) {
            return Err(request.unsupported(declaration.id));
        }
        self.parse(request)
    }
}
