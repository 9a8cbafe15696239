//! Postal event → Tidings status.

use tidings_core::{Failure, Status};

/// What a Postal event means, or `None` for events that map to no status. Status events share
/// one payload whose `status` decides; a payload that carries a `bounce` is a bounce whatever the
/// event is named.
///
/// | `event` (`payload.status`) | status | note |
/// |---|---|---|
/// | `MessageSent` (`Sent`) | delivered | the receiving server accepted the message |
/// | `MessageDelayed` (`SoftFail`) | delayed | temporary failure, Postal retries |
/// | `MessageDeliveryFailed` (`HardFail`) | bounced, permanent | the receiving server refused it |
/// | `MessageHeld` (`Held`) | blocked, temporary | Postal held it (suppression list, limits, development mode) until released |
/// | `MessageBounced` | bounced, permanent | a bounce message arrived after delivery |
/// | `MessageLinkClicked` | clicked | |
/// | `MessageLoaded` | opened | the tracking pixel was loaded |
/// | `DomainDNSError`, `SendLimitApproaching`, `SendLimitExceeded`, anything else | ignored | about the server, not a message |
pub(crate) fn classify(
    event: &str,
    status: Option<&str>,
    has_bounce: bool,
) -> Option<(Status, Option<Failure>)> {
    if has_bounce || event == "MessageBounced" {
        return Some((Status::Bounced, Some(Failure::Permanent)));
    }
    let status_event = matches!(
        event,
        "MessageSent" | "MessageDelayed" | "MessageDeliveryFailed" | "MessageHeld"
    );
    let key = match status {
        Some(s @ ("Sent" | "SoftFail" | "HardFail" | "Held")) if status_event => s,
        _ => event,
    };
    Some(match key {
        "Sent" | "MessageSent" => (Status::Delivered, None),
        "SoftFail" | "MessageDelayed" => (Status::Delayed, Some(Failure::Temporary)),
        "HardFail" | "MessageDeliveryFailed" => (Status::Bounced, Some(Failure::Permanent)),
        "Held" | "MessageHeld" => (Status::Blocked, Some(Failure::Temporary)),
        "MessageLinkClicked" => (Status::Clicked, None),
        "MessageLoaded" => (Status::Opened, None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decides_and_bounce_payloads_win() {
        let status = |e, s, b| classify(e, s, b).map(|c| c.0);
        assert_eq!(
            status("MessageSent", Some("Sent"), false),
            Some(Status::Delivered)
        );
        assert_eq!(status("MessageDelayed", None, true), Some(Status::Bounced));
        assert_eq!(status("MessageHeld", None, false), Some(Status::Blocked));
        assert_eq!(status("DomainDNSError", None, false), None);
    }
}
