//! Postmark record → Tidings status.

use tidings_core::{Failure, Status};

/// What a Postmark record means, or `None` for records that map to no status.
///
/// | `RecordType` / `Type` | status | note |
/// |---|---|---|
/// | `Delivery` | delivered | |
/// | `Open` | opened | |
/// | `Click` | clicked | |
/// | `SpamComplaint` | spam | |
/// | `SubscriptionChange`, `SuppressSending: true` | by `SuppressionReason`: `HardBounce` → bounced, `SpamComplaint` → spam, else (`ManualSuppression`) unsubscribed | |
/// | `SubscriptionChange`, `SuppressSending: false` | ignored | a reactivation (resubscribe) is not a delivery state |
/// | `Bounce` `HardBounce`, `VirusNotification` | bounced | permanent |
/// | `Bounce` `SoftBounce` | bounced | temporary (mailbox full, ...) but Postmark does not retry it, so the message is not "deferred" |
/// | `Bounce` `Transient`, `DnsError`, `OpenRelayTest` | deferred | temporary; the receiver may accept it later |
/// | `Bounce` `SpamNotification`, `SpamComplaint` | spam | a feedback-loop report |
/// | `Bounce` `Blocked` | blocked | the receiver blocked it (reputation, content); Postmark keeps the address active, so temporary |
/// | `Bounce` `ManuallyDeactivated`, `DMARCPolicy` | blocked | the address was deactivated, or the sender's domain policy refused it |
/// | `Bounce` `BadEmailAddress`, `SMTPApiError`, `TemplateRenderingFailed`, `Unconfirmed` | rejected | never sent |
/// | `Bounce` `Unsubscribe`, `ManualSuppression` | unsubscribed | |
/// | `Bounce` `AutoResponder`, `AddressChange`, `ChallengeVerification`, `Subscribe`, `Unknown` | ignored | replies and notices, not failures |
/// | `Inbound`, anything else | ignored | |
pub(crate) fn classify(
    record_type: &str,
    bounce_type: Option<&str>,
    suppress_sending: Option<bool>,
    suppression_reason: Option<&str>,
) -> Option<(Status, Option<Failure>)> {
    use Failure::{Permanent, Temporary};
    Some(match record_type {
        "Delivery" => (Status::Delivered, None),
        "Open" => (Status::Opened, None),
        "Click" => (Status::Clicked, None),
        "SpamComplaint" => (Status::Spam, None),
        "SubscriptionChange" if suppress_sending == Some(true) => match suppression_reason {
            Some("HardBounce") => (Status::Bounced, Some(Permanent)),
            Some("SpamComplaint") => (Status::Spam, None),
            _ => (Status::Unsubscribed, None),
        },
        "Bounce" => match bounce_type? {
            "HardBounce" | "VirusNotification" => (Status::Bounced, Some(Permanent)),
            "SoftBounce" => (Status::Bounced, Some(Temporary)),
            "Transient" | "DnsError" | "OpenRelayTest" => (Status::Deferred, Some(Temporary)),
            "SpamNotification" | "SpamComplaint" => (Status::Spam, None),
            "Blocked" => (Status::Blocked, Some(Temporary)),
            "ManuallyDeactivated" | "DMARCPolicy" => (Status::Blocked, Some(Permanent)),
            "BadEmailAddress" | "SMTPApiError" | "TemplateRenderingFailed" | "Unconfirmed" => {
                (Status::Rejected, Some(Permanent))
            }
            "Unsubscribe" | "ManualSuppression" => (Status::Unsubscribed, None),
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_types_and_subscription_changes() {
        let status = |r, t, s, why| classify(r, t, s, why).map(|c| c.0);
        assert_eq!(
            status("Bounce", Some("Transient"), None, None),
            Some(Status::Deferred)
        );
        assert_eq!(
            status("Bounce", Some("DMARCPolicy"), None, None),
            Some(Status::Blocked)
        );
        assert_eq!(status("Bounce", Some("AutoResponder"), None, None), None);
        assert_eq!(status("Bounce", None, None, None), None);
        assert_eq!(
            status(
                "SubscriptionChange",
                None,
                Some(true),
                Some("SpamComplaint")
            ),
            Some(Status::Spam)
        );
        assert_eq!(status("SubscriptionChange", None, Some(false), None), None);
        assert_eq!(status("Inbound", None, None, None), None);
    }
}
