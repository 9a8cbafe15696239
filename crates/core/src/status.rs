//! The normalized delivery status and the channel a provider serves.

use serde::{Deserialize, Serialize};

/// A message's delivery status as Novu names it: the union of Novu's email, SMS and push enums,
/// serialized lowercase. Every provider event maps to one of these or is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The message was opened (email tracking pixel, push notification tapped open).
    Opened,
    /// The provider refused the message before sending it (policy, content, rendering).
    Rejected,
    /// The provider accepted the message and handed it to the next hop.
    Sent,
    /// Delivery failed temporarily and the provider will retry ("deferred" in its own words).
    Deferred,
    /// The receiving server, carrier or device accepted the message.
    Delivered,
    /// The receiving server refused the message permanently, possibly after first accepting it.
    Bounced,
    /// The provider did not send because the address is suppressed (earlier bounce, unsubscribe).
    Dropped,
    /// A link in the message was clicked (email link, push action button).
    Clicked,
    /// The receiver or the provider blocked the message (reputation, block list, content filter).
    Blocked,
    /// The recipient marked the message as spam (the provider calls it "spam").
    Spam,
    /// The recipient unsubscribed through the message.
    Unsubscribed,
    /// Delivery is delayed and still being retried ("delay" in the provider's own words).
    Delayed,
    /// The recipient complained about the message (the provider calls it "complaint").
    Complaint,
    /// The message was created at the provider but not yet queued (SMS).
    Created,
    /// The provider accepted the request to send (SMS).
    Accepted,
    /// The message waits in the provider's queue (SMS).
    Queued,
    /// The provider is handing the message to the carrier (SMS).
    Sending,
    /// Sending failed: the provider or carrier could not send it (SMS, push).
    Failed,
    /// The carrier could not deliver the message to the handset (SMS).
    Undelivered,
    /// The recipient dismissed the notification without opening it (push).
    Dismissed,
}

impl Status {
    /// Every status, in the order of the wire contract.
    pub const ALL: [Status; 20] = [
        Status::Opened,
        Status::Rejected,
        Status::Sent,
        Status::Deferred,
        Status::Delivered,
        Status::Bounced,
        Status::Dropped,
        Status::Clicked,
        Status::Blocked,
        Status::Spam,
        Status::Unsubscribed,
        Status::Delayed,
        Status::Complaint,
        Status::Created,
        Status::Accepted,
        Status::Queued,
        Status::Sending,
        Status::Failed,
        Status::Undelivered,
        Status::Dismissed,
    ];

    /// The wire name: lowercase, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Opened => "opened",
            Status::Rejected => "rejected",
            Status::Sent => "sent",
            Status::Deferred => "deferred",
            Status::Delivered => "delivered",
            Status::Bounced => "bounced",
            Status::Dropped => "dropped",
            Status::Clicked => "clicked",
            Status::Blocked => "blocked",
            Status::Spam => "spam",
            Status::Unsubscribed => "unsubscribed",
            Status::Delayed => "delayed",
            Status::Complaint => "complaint",
            Status::Created => "created",
            Status::Accepted => "accepted",
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Failed => "failed",
            Status::Undelivered => "undelivered",
            Status::Dismissed => "dismissed",
        }
    }

    /// The index in [`Status::ALL`]: declaration order, the same order as `Ord`. Storage backends
    /// that fold in SQL compare statuses by it.
    pub fn ordinal(self) -> u8 {
        self as u8
    }

    /// Parses a wire name.
    pub fn from_wire(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of channel a provider delivers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Email service providers.
    Email,
    /// SMS and other carrier messaging.
    Sms,
    /// Mobile and web push.
    Push,
    /// Chat platforms.
    Chat,
}

impl Channel {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Chat => "chat",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for status in Status::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(Status::from_wire(status.as_str()), Some(status));
        }
        let names: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names.join(" "),
            "opened rejected sent deferred delivered bounced dropped clicked blocked spam \
             unsubscribed delayed complaint created accepted queued sending failed undelivered \
             dismissed"
        );
    }

    #[test]
    fn ordinal_is_the_index_in_all_and_follows_ord() {
        for (index, status) in Status::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(status.ordinal()), index);
        }
        for a in Status::ALL {
            for b in Status::ALL {
                assert_eq!(a.cmp(&b), a.ordinal().cmp(&b.ordinal()));
            }
        }
    }
}
