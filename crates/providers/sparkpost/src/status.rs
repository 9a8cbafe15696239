//! SparkPost event → Tidings status.

use tidings_core::{Failure, Status};

/// What a SparkPost event means, or `None` for events that map to no status.
///
/// | `type` | status | note |
/// |---|---|---|
/// | `injection` | sent | SparkPost accepted the message |
/// | `delivery` | delivered | |
/// | `delay` | delayed | temporary failure, SparkPost retries |
/// | `bounce`, `out_of_band` | see [`bounce`] | refined by `bounce_class`; out-of-band bounces arrive after delivery |
/// | `spam_complaint` | spam | |
/// | `policy_rejection` | rejected | SparkPost's own policy refused it |
/// | `generation_failure`, `generation_rejection` | rejected | the template could not be rendered |
/// | `open`, `initial_open`, `amp_open`, `amp_initial_open` | opened | `initial_open` is the top-of-message pixel |
/// | `click`, `amp_click` | clicked | |
/// | `list_unsubscribe`, `link_unsubscribe` | unsubscribed | |
/// | `sms_status`, `relay_*`, `ab_test_*`, anything else | ignored | inbound relay and A/B test events are about no sent message |
pub(crate) fn classify(
    kind: &str,
    bounce_class: Option<&str>,
) -> Option<(Status, Option<Failure>)> {
    Some(match kind {
        "injection" => (Status::Sent, None),
        "delivery" => (Status::Delivered, None),
        "delay" => (Status::Delayed, Some(Failure::Temporary)),
        "bounce" | "out_of_band" => return bounce(bounce_class),
        "spam_complaint" => (Status::Spam, None),
        "policy_rejection" | "generation_failure" | "generation_rejection" => {
            (Status::Rejected, Some(Failure::Permanent))
        }
        "open" | "initial_open" | "amp_open" | "amp_initial_open" => (Status::Opened, None),
        "click" | "amp_click" => (Status::Clicked, None),
        "list_unsubscribe" | "link_unsubscribe" => (Status::Unsubscribed, None),
        _ => return None,
    })
}

/// A bounce by its `bounce_class` (SparkPost's bounce classification codes).
///
/// | class | meaning | status |
/// |---|---|---|
/// | 10, 30 | invalid recipient, no such recipient | bounced, permanent |
/// | 20–24, 40, 70 | soft bounce, DNS failure, mailbox full, too large, timeout, generic soft, transient | deferred, temporary |
/// | 25 | admin failure (SparkPost's configured policy refused it) | blocked, permanent |
/// | 26 | Smart Send suppression | dropped, permanent: never sent |
/// | 50, 51, 52, 54 | mail block, spam block, spam content, relaying denied | blocked, temporary: the receiver's verdict, not the address |
/// | 53 | prohibited attachment | bounced, permanent: the same message will fail again |
/// | 90 | unsubscribe request by reply | unsubscribed |
/// | 60, 80, 100 | auto-reply, subscribe request, challenge-response | ignored: not a delivery failure |
/// | 1, absent, other | undetermined | bounced |
pub(crate) fn bounce(bounce_class: Option<&str>) -> Option<(Status, Option<Failure>)> {
    let class = bounce_class.and_then(|c| c.trim().parse::<u16>().ok());
    Some(match class {
        Some(10 | 30) => (Status::Bounced, Some(Failure::Permanent)),
        Some(20..=24 | 40 | 70) => (Status::Deferred, Some(Failure::Temporary)),
        Some(25) => (Status::Blocked, Some(Failure::Permanent)),
        Some(26) => (Status::Dropped, Some(Failure::Permanent)),
        Some(50..=52 | 54) => (Status::Blocked, Some(Failure::Temporary)),
        Some(53) => (Status::Bounced, Some(Failure::Permanent)),
        Some(90) => (Status::Unsubscribed, None),
        Some(60 | 80 | 100) => return None,
        _ => (Status::Bounced, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_classes() {
        let status = |class| classify("bounce", Some(class)).map(|c| c.0);
        assert_eq!(status("10"), Some(Status::Bounced));
        assert_eq!(status("22"), Some(Status::Deferred));
        assert_eq!(status("51"), Some(Status::Blocked));
        assert_eq!(status("25"), Some(Status::Blocked));
        assert_eq!(status("60"), None);
        assert_eq!(status("x"), Some(Status::Bounced));
        assert_eq!(
            classify("out_of_band", None).map(|c| c.0),
            Some(Status::Bounced)
        );
        assert_eq!(classify("relay_delivery", None), None);
    }
}
