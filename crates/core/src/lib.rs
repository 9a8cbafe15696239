//! The core of Tidings: the normalized event model, the [`ProviderParser`] contract every
//! provider crate implements, the provider registry, the signature helpers providers share and
//! the order-independent message status fold.
//!
//! Everything here is pure: no I/O, no async, no clock. The time a request was received comes in
//! through [`RawRequest::received_at`], so parsing is deterministic.
//!
//! A provider crate declares itself once with [`provider!`] (its id, channel, signature scheme,
//! media types and options, registered in the process-wide [`registry`]) and implements
//! [`ProviderParser`] on the struct it declared:
//!
//! ```ignore
//! tidings_core::provider! {
//!     /// The SendGrid Event Webhook.
//!     pub struct SendGrid;
//!     id: "sendgrid",
//!     channel: Email,
//!     signature: Signature::Keyed("ecdsa-p256-sha256"),
//!     media_types: [Json, Text, Missing],
//! }
//! ```
//!
//! Its `parse` says what each provider event is in a [`Draft`]; core assembles the [`Event`]
//! (the result id, the date's fallback to the receive time, the dedup key) the same way for
//! every provider.

mod assemble;
mod declaration;
mod error;
mod event;
pub mod fold;
pub mod ids;
pub mod json;
mod provider;
pub mod recipient;
mod registry;
mod request;
pub mod signature;
mod status;
pub mod suppression;
pub mod time;

pub use assemble::{Draft, non_empty};
pub use declaration::{Declaration, Declared};
pub use error::{Error, Rejection, Result};
pub use event::{Control, Event, EventBody, Failure, Ignored, Parsed, WebhookResult, wire_date};
pub use provider::{Credentials, Freshness, Handshake, Nonce, ProviderParser, Signature};
pub use registry::{Registration, Registry, registry};
pub use request::{Form, MediaType, RawRequest};
pub use signature::Secret;
pub use status::{Channel, Status};

#[doc(hidden)]
pub mod __private {
    pub use inventory;

    /// The demo options a provider declared (`[options]`), or none (`[]`).
    pub const fn declared_or_none(
        declared: &'static [&'static [(&'static str, &'static str)]],
    ) -> &'static [(&'static str, &'static str)] {
        match declared {
            [options, ..] => options,
            [] => &[],
        }
    }
}
