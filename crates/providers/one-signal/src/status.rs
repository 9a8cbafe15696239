//! OneSignal events → Tidings status.

use tidings_core::{Failure, Status};

/// A OneSignal event: a web push webhook or an Event Stream event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A web push webhook's `event` and `actionId`.
    WebPush(&'a str, Option<&'a str>),
    /// An Event Stream `event.kind`.
    Stream(&'a str),
}

/// What a OneSignal event means, or `None` for events that map to no status.
///
/// Web push webhooks:
///
/// | `event` | status | note |
/// |---|---|---|
/// | `notification.willDisplay`, `notification.displayed` | delivered | shown by the browser (`displayed` is the pre-v16 SDK name) |
/// | `notification.clicked`, non-empty `actionId` | clicked | an action button |
/// | `notification.clicked`, `actionId` `""` or absent | opened | the notification body: it opens the URL |
/// | `notification.dismissed` | dismissed | closed by the user, or expired (Chrome only) |
/// | anything else | ignored | |
///
/// Event Stream events (why the others are ignored: [`ignore_reason`]):
///
/// | `event.kind` | status | note |
/// |---|---|---|
/// | `message.push.received` | delivered | Confirmed Delivery: the device got it |
/// | `message.push.clicked` | clicked | OneSignal does not tell body taps from buttons here |
/// | `message.push.failed` | failed | no reason in the event: see the message report |
/// | `message.push.sent` | ignored | handed to FCM / APNs: not a push status |
/// | `message.push.unsubscribed` | ignored | the subscription changed, not this message |
/// | `message.email.*`, `message.sms.*`, `message.iam.*`, ... | ignored | not push |
pub(crate) fn classify(event: Source<'_>) -> Option<(Status, Option<Failure>)> {
    let status = match event {
        Source::WebPush("notification.willDisplay" | "notification.displayed", _) => {
            Status::Delivered
        }
        Source::WebPush("notification.clicked", Some(action)) if !action.is_empty() => {
            Status::Clicked
        }
        Source::WebPush("notification.clicked", _) => Status::Opened,
        Source::WebPush("notification.dismissed", _) => Status::Dismissed,
        Source::Stream("message.push.received") => Status::Delivered,
        Source::Stream("message.push.clicked") => Status::Clicked,
        Source::Stream("message.push.failed") => Status::Failed,
        _ => return None,
    };
    Some((status, None))
}

/// Why an Event Stream kind that [`classify`] does not map is ignored.
pub(crate) fn ignore_reason(kind: &str) -> &'static str {
    match kind {
        "message.push.sent" => "handed to FCM / APNs: push has no `sent` status",
        "message.push.unsubscribed" => {
            "the subscription unsubscribed: not a delivery status of this message"
        }
        kind if kind.starts_with("message.push.") => "push event kind maps to no status",
        _ => "not a push event (this integration is the push channel)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_clicks_are_opens_and_button_clicks_are_clicks() {
        let status = |event| classify(event).map(|(status, _)| status);
        let click = |action| status(Source::WebPush("notification.clicked", action));
        assert_eq!(click(Some("track")), Some(Status::Clicked));
        assert_eq!(click(Some("")), Some(Status::Opened));
        assert_eq!(click(None), Some(Status::Opened));
        assert_eq!(
            status(Source::WebPush("notification.displayed", None)),
            Some(Status::Delivered)
        );
        assert_eq!(status(Source::Stream("message.push.sent")), None);
        assert_eq!(status(Source::Stream("message.email.opened")), None);
    }
}
