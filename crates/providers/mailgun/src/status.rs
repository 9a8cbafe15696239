//! Mailgun event → Tidings status.

use tidings_core::{Failure, Status};

/// What a Mailgun event means, or `None` for events that map to no status. One table serves both
/// webhook generations: the legacy names that differ (`bounced`, `dropped`) never occur in v3.
///
/// | event | status | note |
/// |---|---|---|
/// | `accepted` | sent | Mailgun queued the message for delivery |
/// | `rejected` | rejected | Mailgun refused the send request (sandbox limits, invalid message); permanent |
/// | `delivered` | delivered | the receiving server answered 250 |
/// | `failed`, `severity=permanent`, `reason=suppress-*` | dropped | suppressed address (previous bounce, complaint, unsubscribe): never attempted |
/// | `failed`, `severity=permanent` | bounced | hard bounce, or retries exhausted; also when `severity` is missing |
/// | `failed`, `severity=temporary` | deferred | soft failure (greylisting, no MX yet); Mailgun retries |
/// | `opened` | opened | `client-info.bot` marks machine opens |
/// | `clicked` | clicked | |
/// | `unsubscribed` | unsubscribed | |
/// | `complained` | complaint | the recipient reported spam (feedback loop) |
/// | legacy `bounced` | bounced | permanent |
/// | legacy `dropped` | dropped | suppressed (`605` bounced, `607` spam) or given up (`499`); never delivered |
/// | `stored`, `list_member_uploaded`, anything else | ignored | not a delivery state of a sent message |
pub(crate) fn classify(
    event: &str,
    severity: Option<&str>,
    reason: Option<&str>,
) -> Option<(Status, Option<Failure>)> {
    Some(match event {
        "accepted" => (Status::Sent, None),
        "rejected" => (Status::Rejected, Some(Failure::Permanent)),
        "delivered" => (Status::Delivered, None),
        "failed" if severity.is_some_and(|s| s.eq_ignore_ascii_case("temporary")) => {
            (Status::Deferred, Some(Failure::Temporary))
        }
        "failed" if reason.is_some_and(|r| r.starts_with("suppress")) => {
            (Status::Dropped, Some(Failure::Permanent))
        }
        "failed" | "bounced" => (Status::Bounced, Some(Failure::Permanent)),
        "dropped" => (Status::Dropped, Some(Failure::Permanent)),
        "opened" => (Status::Opened, None),
        "clicked" => (Status::Clicked, None),
        "unsubscribed" => (Status::Unsubscribed, None),
        "complained" => (Status::Complaint, None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_split_on_severity_and_reason() {
        let status = |severity, reason| classify("failed", severity, reason).map(|c| c.0);
        assert_eq!(
            status(Some("permanent"), Some("bounce")),
            Some(Status::Bounced)
        );
        assert_eq!(
            status(Some("permanent"), Some("suppress-unsubscribe")),
            Some(Status::Dropped)
        );
        assert_eq!(
            status(Some("temporary"), Some("greylisted")),
            Some(Status::Deferred)
        );
        assert_eq!(status(None, None), Some(Status::Bounced));
        assert_eq!(classify("stored", None, None), None);
    }
}
