//! The one error type of the core crate and every provider crate.
//!
//! Variants carry `&'static str` field and header names, never secrets. Parse errors may quote
//! the provider's payload (it is the caller's own data); verification errors never do.

/// A result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request could not be verified or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // --- The body is not what the provider sends (answered 400). ---
    /// The body is not valid JSON, or not of the shape this provider sends.
    #[error("body is not a valid {provider} payload: {reason}")]
    Malformed {
        /// The provider whose format was expected.
        provider: &'static str,
        /// What was wrong, with the position in the body where known.
        reason: String,
    },
    /// A field the provider always sends is missing.
    #[error("body is missing the field `{0}`")]
    MissingField(&'static str),
    /// A field has a value this provider never sends.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The form or multipart encoding itself is broken.
    #[error("body is not valid {0}")]
    Encoding(&'static str),

    // --- The body's media type is not one this provider sends (answered 415). ---
    /// This provider never sends this media type.
    #[error("{provider} does not send `{media_type}` bodies")]
    UnsupportedMediaType {
        /// The provider.
        provider: &'static str,
        /// The media type received (type and subtype only).
        media_type: String,
    },

    // --- The request is not proven genuine (answered 401). ---
    /// The signature header this scheme requires is absent.
    #[error("missing signature header `{0}`")]
    MissingHeader(&'static str),
    /// A signature field in the body is absent.
    #[error("missing signature field `{0}`")]
    MissingSignatureField(&'static str),
    /// A signature header or field is not in the scheme's format.
    #[error("signature `{0}` is not in the expected format")]
    MalformedSignature(&'static str),
    /// The signature does not match the body with any configured key.
    #[error(
        "signature does not match the request (wrong signing key, or a body or URL changed in transit)"
    )]
    SignatureMismatch,
    /// The signed timestamp is outside the allowed window.
    #[error(
        "signed timestamp is {age_seconds} s away from the receive time (allowed: {tolerance_seconds} s)"
    )]
    Stale {
        /// Distance between the signed timestamp and the receive time, in seconds.
        age_seconds: i64,
        /// The allowed distance, in seconds.
        tolerance_seconds: i64,
    },
    /// The integration has no key to verify this scheme with.
    #[error("no signing key is configured for this integration")]
    NoSigningKey,
    /// A configured key is not in the format this scheme needs.
    #[error("the configured signing key is not a valid {0}")]
    InvalidKey(&'static str),
    /// The verification needs the public URL the provider called, and it is not known.
    #[error(
        "the public URL the provider called is needed to verify this signature (set public_url)"
    )]
    MissingUrl,
    /// A certificate or key the scheme points at is not trusted.
    #[error("untrusted signing certificate: {0}")]
    Untrusted(&'static str),
}

/// How the service answers an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 400: malformed body.
    BadRequest,
    /// 401: not authenticated.
    Unauthorized,
    /// 415: media type not accepted.
    UnsupportedMediaType,
}

impl Error {
    /// The HTTP answer this error calls for.
    pub fn rejection(&self) -> Rejection {
        match self {
            Error::Malformed { .. }
            | Error::MissingField(_)
            | Error::InvalidField { .. }
            | Error::Encoding(_) => Rejection::BadRequest,
            Error::UnsupportedMediaType { .. } => Rejection::UnsupportedMediaType,
            Error::MissingHeader(_)
            | Error::MissingSignatureField(_)
            | Error::MalformedSignature(_)
            | Error::SignatureMismatch
            | Error::Stale { .. }
            | Error::NoSigningKey
            | Error::InvalidKey(_)
            | Error::MissingUrl
            | Error::Untrusted(_) => Rejection::Unauthorized,
        }
    }

    /// Why the request was refused, as a stable code for operators (the service records
    /// refused requests under these codes).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Malformed { .. }
            | Error::MissingField(_)
            | Error::InvalidField { .. }
            | Error::Encoding(_) => "unparsable_body",
            Error::UnsupportedMediaType { .. } => "unsupported_media_type",
            Error::MissingHeader(_) | Error::MissingSignatureField(_) => "missing_credentials",
            Error::MalformedSignature(_) => "malformed_signature",
            Error::SignatureMismatch => "bad_signature",
            Error::Stale { .. } => "stale_timestamp",
            Error::NoSigningKey | Error::InvalidKey(_) | Error::MissingUrl => "not_configured",
            Error::Untrusted(_) => "untrusted_sender",
        }
    }

    /// A [`Error::Malformed`] from a serde_json error.
    pub fn json(provider: &'static str, err: &serde_json::Error) -> Error {
        Error::Malformed {
            provider,
            reason: err.to_string(),
        }
    }

    /// A [`Error::Malformed`] with a fixed reason.
    pub fn malformed(provider: &'static str, reason: impl Into<String>) -> Error {
        Error::Malformed {
            provider,
            reason: reason.into(),
        }
    }
}
