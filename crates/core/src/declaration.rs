//! What a provider is, declared once: [`Declaration`] and the [`provider!`](crate::provider)
//! macro that declares and registers a provider in one place.

use crate::{Channel, MediaType, Signature};

/// Everything about a provider that is a fact rather than code: its names, channel, signature
/// scheme, the requests it sends and the options an integration may set. Written once, in the
/// provider crate's [`provider!`](crate::provider) invocation; the service, `check-config`,
/// `tidings providers` and the conformance suite all read it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declaration {
    /// The provider id, as Novu names it (`sendgrid`, `ses`, `nexmo`, ...). It is also the
    /// crate's directory under `crates/providers` and its fixtures folder.
    pub id: &'static str,
    /// Other names users know the provider by (`vonage`, `brevo`).
    pub aliases: &'static [&'static str],
    /// The channel the provider delivers on.
    pub channel: Channel,
    /// The provider's signature scheme.
    pub signature: Signature,
    /// The body media types the provider sends; any other is refused with 415 before `parse`.
    pub media_types: &'static [MediaType],
    /// Whether the provider may deliver with `GET`, the fields in the query string and no body
    /// (MessageBird's status reports, Vonage and Plivo receipts when set to GET). The service
    /// answers `405` to a `GET` for any other provider.
    pub accepts_get: bool,
    /// Whether the signature covers the URL the provider called (Twilio, Plivo, Mandrill,
    /// MessageBird): such an integration with a signing key needs the service's `public_url`,
    /// which configuration checks require.
    pub signs_url: bool,
    /// The `options` keys an integration of this provider may set; any other key is a
    /// configuration error (a typo such as `topic_arn` must not be silently ignored).
    pub options: &'static [&'static str],
    /// Options the local demo gives this provider's integration (the demo has no configuration
    /// file), chosen so that they pass the provider's option checks and say what they are.
    pub demo_options: &'static [(&'static str, &'static str)],
    /// Request headers that carry a credential (a shared secret, a token): never stored with
    /// the raw request nor logged. Lower case. `Authorization` and `Cookie` are always left out.
    pub credential_headers: &'static [&'static str],
}

impl Declaration {
    /// Whether the provider sends bodies of this media type.
    pub fn accepts(&self, media_type: MediaType) -> bool {
        self.media_types.contains(&media_type)
    }
}

/// Gives a provider's [`Declaration`]. Written by [`provider!`](crate::provider); a provider
/// crate never implements it by hand.
pub trait Declared {
    /// The provider's declaration.
    fn declaration(&self) -> &'static Declaration;
}

/// Declares a provider and registers it in the process-wide [`registry`](crate::registry): the
/// unit struct, its [`Declaration`] and its registration, in one place per provider crate. The
/// crate then implements [`ProviderParser`](crate::ProviderParser) (`parse`, and `verify` for a
/// signed provider) on the struct.
///
/// The fields come in this order; those marked optional may be left out (empty or `false`):
///
/// ```ignore
/// tidings_core::provider! {
///     /// The SendGrid Event Webhook.
///     pub struct SendGrid;
///     id: "sendgrid",
///     aliases: ["twilio-sendgrid"],                // optional
///     channel: Email,                              // a `Channel` variant
///     signature: Signature::Keyed("ecdsa-p256-sha256"), // a `Signature`
///     media_types: [Json, Text, Missing],          // `MediaType` variants
///     accepts_get: true,                           // optional
///     signs_url: true,                             // optional
///     options: ["topic_arns"],                     // optional
///     demo_options: &[("topic_arns", "*")],        // optional
///     credential_headers: ["verification-token"],  // optional
/// }
/// ```
#[macro_export]
macro_rules! provider {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        id: $id:expr,
        $(aliases: [$($alias:expr),* $(,)?],)?
        channel: $channel:ident,
        signature: $signature:expr,
        media_types: [$($media_type:ident),* $(,)?],
        $(accepts_get: $accepts_get:literal,)?
        $(signs_url: $signs_url:literal,)?
        $(options: [$($option:expr),* $(,)?],)?
        $(demo_options: $demo_options:expr,)?
        $(credential_headers: [$($credential_header:expr),* $(,)?],)?
    ) => {
        $(#[$meta])*
        $vis struct $name;

        impl $name {
            /// What this provider is (see [`tidings_core::Declaration`]).
            pub const DECLARATION: $crate::Declaration = $crate::Declaration {
                id: $id,
                aliases: &[$($($alias),*)?],
                channel: $crate::Channel::$channel,
                signature: {
                    #[allow(unused_imports)]
                    use $crate::Signature;
                    $signature
                },
                media_types: &[$($crate::MediaType::$media_type),*],
                accepts_get: false $(|| $accepts_get)?,
                signs_url: false $(|| $signs_url)?,
                options: &[$($($option),*)?],
                demo_options: $crate::__private::declared_or_none(&[$($demo_options)?]),
                credential_headers: &[$($($credential_header),*)?],
            };
        }

        impl $crate::Declared for $name {
            fn declaration(&self) -> &'static $crate::Declaration {
                &Self::DECLARATION
            }
        }

        $crate::__private::inventory::submit! {
            $crate::Registration::new(&$name)
        }
    };
}
