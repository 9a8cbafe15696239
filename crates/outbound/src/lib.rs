//! Outbound delivery: each stored event pushed to the user's own endpoints as one clean,
//! normalized JSON object with the message's folded status attached, signed per Standard
//! Webhooks 1.0, at least once, never skipping one.
//!
//! - [`config`]: the `[[endpoints]]` configuration and its checks;
//! - [`sign`]: `webhook-id`, `webhook-timestamp` and `webhook-signature`;
//! - [`payload`]: the body, the same bytes for every attempt of one event;
//! - [`client`]: a small HTTP client on hyper (connect and total timeouts, no redirects, a
//!   bounded answer);
//! - [`engine`]: one delivery loop per endpoint, its progress stored (see
//!   `tidings_store::outbound`), so a crash or restart resumes where it stopped.

pub mod client;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod payload;
pub mod sign;

pub use config::{EndpointConfig, Filters, RetrySchedule, Start, WebhookSecret};
pub use engine::Outbound;
pub use metrics::Metrics;

/// What went wrong in outbound delivery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `whsec_` secret that is not one.
    #[error("{0}")]
    Secret(String),
    /// An endpoint URL that cannot be used.
    #[error("{0}")]
    Url(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] tidings_store::Error),
    /// A payload could not be built.
    #[error("cannot build the payload: {0}")]
    Payload(String),
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// A result with the outbound [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
