//! OneSignal events → Tidings status.

use tidings_core::Status;

/// What a web push webhook means.
///
/// | `event` | status | note |
/// |---|---|---|
/// | `notification.willDisplay`, `notification.displayed` | delivered | shown by the browser (`displayed` is the pre-v16 SDK name) |
/// | `notification.clicked`, non-empty `actionId` | clicked | an action button |
/// | `notification.clicked`, `actionId` `""` or absent | opened | the notification body: it opens the URL |
/// | `notification.dismissed` | dismissed | closed by the user, or expired (Chrome only) |
/// | anything else | ignored | |
pub(crate) fn classify_web_push(event: &str, action_id: Option<&str>) -> Option<Status> {
    Some(match event {
        "notification.willDisplay" | "notification.displayed" => Status::Delivered,
        "notification.clicked" if action_id.is_some_and(|a| !a.is_empty()) => Status::Clicked,
        "notification.clicked" => Status::Opened,
        "notification.dismissed" => Status::Dismissed,
        _ => return None,
    })
}

/// What an Event Stream event means, or why it maps to no status.
///
/// | `event.kind` | status | note |
/// |---|---|---|
/// | `message.push.received` | delivered | Confirmed Delivery: the device got it |
/// | `message.push.clicked` | clicked | OneSignal does not tell body taps from buttons here |
/// | `message.push.failed` | failed | no reason in the event: see the message report |
/// | `message.push.sent` | ignored | handed to FCM / APNs: not a push status |
/// | `message.push.unsubscribed` | ignored | the subscription changed, not this message |
/// | `message.email.*`, `message.sms.*`, `message.iam.*`, ... | ignored | not push |
pub(crate) fn classify_stream(kind: &str) -> Result<Status, &'static str> {
    match kind {
        "message.push.received" => Ok(Status::Delivered),
        "message.push.clicked" => Ok(Status::Clicked),
        "message.push.failed" => Ok(Status::Failed),
        "message.push.sent" => Err("handed to FCM / APNs: push has no `sent` status"),
        "message.push.unsubscribed" => {
            Err("the subscription unsubscribed: not a delivery status of this message")
        }
        kind if kind.starts_with("message.push.") => Err("push event kind maps to no status"),
        _ => Err("not a push event (this integration is the push channel)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_clicks_are_opens_and_button_clicks_are_clicks() {
        let click = |action| classify_web_push("notification.clicked", action);
        assert_eq!(click(Some("track")), Some(Status::Clicked));
        assert_eq!(click(Some("")), Some(Status::Opened));
        assert_eq!(click(None), Some(Status::Opened));
        assert_eq!(
            classify_web_push("notification.displayed", None),
            Some(Status::Delivered)
        );
        assert!(classify_stream("message.push.sent").is_err());
        assert!(classify_stream("message.email.opened").is_err());
    }
}
