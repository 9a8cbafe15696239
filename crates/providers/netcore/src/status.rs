//! Netcore Email API event → Tidings status.

use tidings_core::{Failure, Status};

/// What a Netcore `EVENT` means, or `None` for events that map to no status. Netcore documents
/// the past-tense names; the short names (`send`, `open`, ...) are the ones Novu's parser
/// expects and are accepted too.
///
/// | `EVENT` | status | note |
/// |---|---|---|
/// | `sent`, `delivered` | delivered | documented as "delivered to the receiving server", with its SMTP 250 reply |
/// | `send` | sent | Novu's spelling, never documented: read as accepted, not yet delivered |
/// | `bounced`, `bounce` | bounced | `BOUNCE_TYPE` `SOFTBOUNCE` is temporary, otherwise permanent |
/// | `dropped`, `drop` | dropped | suppressed (earlier unsubscribe, bounce or complaint): never sent |
/// | `invalid` | dropped | syntactically invalid address: never sent |
/// | `opened`, `open` | opened | |
/// | `clicked`, `click` | clicked | |
/// | `unsubscribed`, `unsubscribe`, `unsub` | unsubscribed | |
/// | `abuse`, `spam` | spam | the recipient marked it as spam |
/// | anything else | ignored | |
pub(crate) fn classify(
    event: &str,
    bounce_type: Option<&str>,
) -> Option<(Status, Option<Failure>)> {
    let soft = bounce_type.is_some_and(|t| t.trim().eq_ignore_ascii_case("SOFTBOUNCE"));
    Some(match event.trim().to_ascii_lowercase().as_str() {
        "sent" | "delivered" => (Status::Delivered, None),
        "send" => (Status::Sent, None),
        "bounced" | "bounce" if soft => (Status::Bounced, Some(Failure::Temporary)),
        "bounced" | "bounce" => (Status::Bounced, Some(Failure::Permanent)),
        "dropped" | "drop" | "invalid" => (Status::Dropped, Some(Failure::Permanent)),
        "opened" | "open" => (Status::Opened, None),
        "clicked" | "click" => (Status::Clicked, None),
        "unsubscribed" | "unsubscribe" | "unsub" => (Status::Unsubscribed, None),
        "abuse" | "spam" => (Status::Spam, None),
        _ => return None,
    })
}
