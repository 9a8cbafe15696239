//! Vonage delivery receipt and Messages API status → Tidings status.

use tidings_core::{Failure, Status};

/// A Vonage status: an SMS API delivery receipt's `status` and `err-code`, or a Messages API
/// `status`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A delivery receipt's `status` and `err-code`.
    Receipt(&'a str, Option<&'a str>),
    /// A Messages API status callback's `status`.
    Message(&'a str),
}

/// What a Vonage status means, or `None` for statuses that say nothing.
///
/// SMS API delivery receipts (the failure kind from `err-code`, see [`dlr_failure`]):
///
/// | `status` | status | note |
/// |---|---|---|
/// | `accepted` | sent | the downstream carrier accepted it (not the API) |
/// | `buffered` | sent | the carrier holds it for a handset that is off or out of coverage |
/// | `delivered` | delivered | |
/// | `expired` | undelivered | the carrier gave up before the handset came back |
/// | `failed` | undelivered | the carrier reported it not delivered |
/// | `rejected` | rejected | refused before a delivery attempt (barred, spam, unroutable) |
/// | `unknown`, anything else | ignored | the carrier did not say; the current status stands |
///
/// Messages API statuses:
///
/// | `status` | status | note |
/// |---|---|---|
/// | `submitted` | sent | handed to the carrier or channel (SMS is charged here) |
/// | `delivered` | delivered | multi-part SMS receipts are aggregated into one callback |
/// | `read` | delivered | WhatsApp, Messenger, RCS read receipt; the read is kept as the provider event |
/// | `rejected` | rejected | refused by Vonage or the channel (permanent) |
/// | `undeliverable` | failed | the carrier or channel could not deliver it |
/// | anything else | ignored | |
pub(crate) fn classify(source: Source<'_>) -> Option<(Status, Option<Failure>)> {
    match source {
        Source::Receipt(status, err_code) => {
            let status = match status.to_ascii_lowercase().as_str() {
                "accepted" | "buffered" => Status::Sent,
                "delivered" => Status::Delivered,
                "expired" | "failed" => Status::Undelivered,
                "rejected" => Status::Rejected,
                _ => return None,
            };
            Some((status, dlr_failure(status, err_code)))
        }
        Source::Message(status) => Some(match status.to_ascii_lowercase().as_str() {
            "submitted" => (Status::Sent, None),
            "delivered" | "read" => (Status::Delivered, None),
            "rejected" => (Status::Rejected, Some(Failure::Permanent)),
            "undeliverable" => (Status::Failed, None),
            _ => return None,
        }),
    }
}

/// Whether a delivery receipt failure is worth retrying, from its `err-code`.
///
/// | `err-code` | failure | meaning |
/// |---|---|---|
/// | 2, 7, 8, 15 | temporary | absent subscriber (temporary), handset busy, network error, pre-paid funds exhausted |
/// | 3, 4, 5, 6, 9, 10, 11, 13, 14 | permanent | absent subscriber (permanent), barred by user, portability error, anti-spam rejection, illegal number, illegal message, unroutable, age restriction, blocked by carrier |
/// | 0, 1, 12, 99, others | unknown | delivered, unknown, destination unreachable, general error |
fn dlr_failure(status: Status, err_code: Option<&str>) -> Option<Failure> {
    if !matches!(status, Status::Undelivered | Status::Rejected) {
        return None;
    }
    match err_code? {
        "2" | "7" | "8" | "15" => Some(Failure::Temporary),
        "3" | "4" | "5" | "6" | "9" | "10" | "11" | "13" | "14" => Some(Failure::Permanent),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let dlr = |s| classify(Source::Receipt(s, None)).map(|c| c.0);
        assert_eq!(dlr("accepted"), Some(Status::Sent));
        assert_eq!(dlr("unknown"), None);
        assert_eq!(
            dlr_failure(Status::Undelivered, Some("2")),
            Some(Failure::Temporary)
        );
        assert_eq!(dlr_failure(Status::Delivered, Some("2")), None);
        assert_eq!(
            classify(Source::Message("undeliverable")).map(|c| c.0),
            Some(Status::Failed)
        );
    }
}
