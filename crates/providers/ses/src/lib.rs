//! Amazon SES: sending events (configuration-set event publishing) and identity notifications,
//! delivered through an Amazon SNS HTTP(S) subscription, SNS raw message delivery, or an
//! EventBridge API destination.
//!
//! Docs: <https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html>,
//! <https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html> and
//! <https://docs.aws.amazon.com/ses/latest/dg/monitoring-eventbridge.html>.
//!
//! - Body: one JSON object. An SNS envelope (`text/plain`) whose `Message` is the SES event as a
//!   JSON string; or the SES event itself (raw message delivery); or an EventBridge event whose
//!   `detail` is the SES event. The type is `eventType` (event publishing) or `notificationType`
//!   (notifications). One event per affected recipient (`bounce.bouncedRecipients`,
//!   `complaint.complainedRecipients`, `delivery.recipients`, `deliveryDelay.delayedRecipients`,
//!   else `mail.destination`). SNS subscription messages are handled by [`tidings_sns`].
//! - Ids: the sender's own id is the message tag `id`, `novuMessageId` or `__nvMessageId`
//!   (`mail.tags`), or the original header `X-Novu-Message-Id` (`mail.headers`); else
//!   `mail.messageId`, which is always the `externalId`. An event without it (a complaint
//!   with no `mail` object) is reported under its dedup key.
//! - `date`: the event's own timestamp (`bounce.timestamp`, `delivery.timestamp`,
//!   `open.timestamp`, ...), else `mail.timestamp`, else the SNS `Timestamp`; the receive time
//!   only when none is present.
//! - Dedup: the SNS `MessageId` (or the EventBridge `id`) plus the recipient's index; for raw
//!   delivery, a hash of `mail.messageId`, event type, recipient, event time and clicked link.
//! - Signature: Amazon SNS (RSA SHA1/SHA256 with the certificate at a trusted `SigningCertURL`,
//!   required `topic_arns` allow-list, 1 h `Timestamp` window); see [`tidings_sns::verify`].
//!   Raw delivery and EventBridge are unsigned: protect them with Basic auth or an API key.

mod status;
mod wire;

use tidings_core::ids::OWN_ID_KEYS;
use tidings_core::{Draft, Error, Parsed, ProviderParser, RawRequest, Result, json, time};
use tidings_sns::Inbound;

use crate::wire::{EventBridge, Recipient, SesEvent};

const ID: &str = "ses";
const OWN_ID_HEADER: &str = "X-Novu-Message-Id";

tidings_core::provider! {
    /// Amazon SES event notifications.
    pub struct Ses;
    id: ID,
    aliases: ["amazon-ses"],
    channel: Email,
    signature: tidings_sns::SIGNATURE,
    media_types: [Json, Text, Missing],
    options: [tidings_sns::TOPIC_ARNS_OPTION, tidings_sns::AUTO_CONFIRM_OPTION],
    demo_options: tidings_sns::DEMO_OPTIONS,
}

impl ProviderParser for Ses {
    tidings_sns::delivered_through_sns!();

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let mut parsed = Parsed::default();
        match tidings_sns::inbound(ID, request)? {
            Inbound::Handled(handled) => return Ok(handled),
            Inbound::Notification { envelope, message } => {
                let row = message.trim_end();
                match serde_json::from_str::<SesEvent>(row) {
                    Ok(event) if event.event_type.is_some() || event.notification_type.is_some() => {
                        let origin = Origin {
                            row,
                            event_id: Some(envelope.id()),
                            published: envelope.timestamp.as_deref(),
                        };
                        normalize(request, &origin, event, &mut parsed);
                    }
                    _ => parsed.ignore(
                        "Notification",
                        None,
                        "the SNS message is not an SES event (such as SES's topic validation notice)",
                    ),
                }
            }
            Inbound::Raw => {
                let body = request.text(ID)?;
                let (row, event_id) = match serde_json::from_str::<EventBridge<'_>>(body) {
                    Ok(bridge) => (bridge.detail.get(), bridge.id),
                    Err(_) => (body, None),
                };
                let event: SesEvent = json::read(ID, row)?;
                if event.event_type.is_none() && event.notification_type.is_none() {
                    return Err(Error::MissingField("eventType"));
                }
                let origin = Origin {
                    row,
                    event_id: event_id.as_deref(),
                    published: None,
                };
                normalize(request, &origin, event, &mut parsed);
            }
        }
        Ok(parsed)
    }
}

/// Where an SES event came from.
struct Origin<'a> {
    /// The SES event's JSON text.
    row: &'a str,
    /// The transport's stable id for this delivery (SNS `MessageId`, EventBridge `id`).
    event_id: Option<&'a str>,
    /// The SNS publish time.
    published: Option<&'a str>,
}

/// One affected recipient: address, code and response text.
type Target = (Option<String>, Option<String>, Option<String>);

fn normalize(request: &RawRequest<'_>, origin: &Origin<'_>, event: SesEvent, parsed: &mut Parsed) {
    let kind = event
        .event_type
        .clone()
        .or_else(|| event.notification_type.clone())
        .unwrap_or_default();
    let bounce = event.bounce.as_ref();
    let bounce_type = bounce.and_then(|b| b.bounce_type.as_deref());
    let bounce_sub_type = bounce.and_then(|b| b.bounce_sub_type.as_deref());
    let provider_event = match bounce {
        Some(_) if kind == "Bounce" => format!(
            "Bounce ({}/{})",
            bounce_type.unwrap_or("?"),
            bounce_sub_type.unwrap_or("?")
        ),
        _ => kind.clone(),
    };
    // A complaint may come without the `mail` object (no message id): it still says something
    // true about its recipients, so it is kept, reported under its dedup key.
    let message_id = event.mail.message_id.clone().filter(|m| !m.is_empty());
    let id = own_id(&event).or_else(|| message_id.clone());
    let unsubscribes = event
        .subscription
        .as_ref()
        .is_some_and(wire::Subscription::is_unsubscribe);
    let Some((status, failure)) =
        status::classify(&kind, bounce_type, bounce_sub_type, unsubscribes)
    else {
        let reason = match kind.as_str() {
            "Subscription" => "a subscription preference change that does not opt out",
            "Received" => "inbound mail (email receiving), not a delivery event",
            _ => "event type maps to no delivery status",
        };
        parsed.ignore(provider_event, id, reason);
        return;
    };
    let event_time = event_time(&event);
    let stamp = event_time.or(event.mail.timestamp.as_deref());
    let date = stamp.or(origin.published).and_then(time::parse);
    let link = event.click.as_ref().and_then(|c| c.link.as_deref());
    for (index, (recipient, code, response)) in targets(&event, &kind).into_iter().enumerate() {
        let draft = Draft::new(ID, status, provider_event.as_str());
        let draft = match origin.event_id {
            Some(event_id) => draft.dedup_id(format!("{event_id}/{index}")),
            None => draft.dedup_fields(&[
                message_id.as_deref().unwrap_or_default(),
                &kind,
                recipient.as_deref().unwrap_or_default(),
                stamp.unwrap_or_default(),
                link.unwrap_or_default(),
            ]),
        };
        parsed.push(
            request,
            draft
                .own_id(id.clone())
                .external_id(message_id.clone())
                .date(date)
                .recipient(recipient)
                .failure(failure)
                .code(code)
                .response(response)
                .row(origin.row),
        );
    }
}

/// The sender's own id: a message tag, else the `X-Novu-Message-Id` header.
fn own_id(event: &SesEvent) -> Option<String> {
    let mail = &event.mail;
    OWN_ID_KEYS
        .iter()
        .filter_map(|tag| mail.tags.get(*tag))
        .flatten()
        .chain(
            mail.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(OWN_ID_HEADER))
                .map(|h| &h.value),
        )
        .map(|value| value.trim())
        .find(|value| !value.is_empty())
        .map(str::to_owned)
}

/// The event's own timestamp (`Send`, `Reject` and `Rendering Failure` have none).
fn event_time(event: &SesEvent) -> Option<&str> {
    [
        event.bounce.as_ref().and_then(|b| b.timestamp.as_deref()),
        event
            .complaint
            .as_ref()
            .and_then(|c| c.timestamp.as_deref()),
        event.delivery.as_ref().and_then(|d| d.timestamp.as_deref()),
        event
            .delivery_delay
            .as_ref()
            .and_then(|d| d.timestamp.as_deref()),
        event.open.as_ref().and_then(|o| o.timestamp.as_deref()),
        event.click.as_ref().and_then(|c| c.timestamp.as_deref()),
        event
            .subscription
            .as_ref()
            .and_then(|s| s.timestamp.as_deref()),
    ]
    .into_iter()
    .flatten()
    .next()
}

/// The recipients an event is about, each with its code and response text.
fn targets(event: &SesEvent, kind: &str) -> Vec<Target> {
    let detailed = |recipients: &[Recipient], fallback: Option<&String>| -> Vec<Target> {
        recipients
            .iter()
            .map(|r| {
                (
                    r.email_address.clone(),
                    r.status.clone(),
                    r.diagnostic_code.clone().or_else(|| fallback.cloned()),
                )
            })
            .collect()
    };
    let mut targets: Vec<Target> = match kind {
        "Bounce" => event
            .bounce
            .as_ref()
            .map(|b| detailed(&b.bounced_recipients, None))
            .unwrap_or_default(),
        "DeliveryDelay" => event
            .delivery_delay
            .as_ref()
            .map(|d| detailed(&d.delayed_recipients, d.delay_type.as_ref()))
            .unwrap_or_default(),
        "Complaint" => event
            .complaint
            .as_ref()
            .map(|c| {
                c.complained_recipients
                    .iter()
                    .map(|r| {
                        let code = c.complaint_feedback_type.clone();
                        (r.email_address.clone(), code, None)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        "Delivery" => event
            .delivery
            .as_ref()
            .map(|d| {
                let response = &d.smtp_response;
                d.recipients
                    .iter()
                    .map(|r| (Some(r.clone()), None, response.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if targets.is_empty() {
        let response = match kind {
            "Reject" => event.reject.as_ref().and_then(|r| r.reason.clone()),
            "Rendering Failure" => event.failure.as_ref().and_then(|f| f.error_message.clone()),
            _ => None,
        };
        targets = event
            .mail
            .destination
            .iter()
            .map(|d| (Some(d.clone()), None, response.clone()))
            .collect();
        if targets.is_empty() {
            targets.push((None, None, response));
        }
    }
    targets
}
