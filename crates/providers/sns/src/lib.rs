//! Amazon SMS delivery events: AWS End User Messaging SMS (formerly Pinpoint SMS) event records
//! published to an Amazon SNS topic with an HTTP(S) subscription, and the legacy Amazon SNS SMS
//! delivery-status log record forwarded from CloudWatch Logs.
//!
//! Docs: <https://docs.aws.amazon.com/sms-voice/latest/userguide/configuration-sets-event-format.html>,
//! <https://docs.aws.amazon.com/sms-voice/latest/userguide/configuration-sets-event-types.html> and
//! <https://docs.aws.amazon.com/sns/latest/dg/sms_stats_cloudwatch.html>.
//!
//! - Body: one JSON object. An SNS envelope (`text/plain`) whose `Message` is the event record as
//!   a JSON string, or the record itself (SNS raw message delivery, or a forwarder). Records are
//!   either `{eventType, messageId, destinationPhoneNumber, eventTimestamp, messageStatus, ...}`
//!   or the legacy log `{notification: {messageId, timestamp}, delivery: {destination,
//!   providerResponse}, status}`. SNS subscription messages are handled by [`tidings_sns`].
//! - Ids: the sender's own id is the `context` key `id`, `novuMessageId` or `__nvMessageId`
//!   (the `Context` set on `SendTextMessage`); else `messageId`, always the `externalId`. A
//!   record without `messageId` is kept (under the own id, else its dedup key) when it names
//!   a recipient; with neither it is ignored.
//! - `date`: `eventTimestamp` (Unix ms) or the log's `notification.timestamp` (UTC), else the SNS
//!   `Timestamp`; the receive time only when none is present.
//! - Dedup: the SNS `MessageId`; for a bare record, a hash of message id, event type, recipient
//!   and event time.
//! - Signature: Amazon SNS (RSA SHA1/SHA256 with the certificate at a trusted `SigningCertURL`,
//!   required `topic_arns` allow-list, 1 h `Timestamp` window); see [`tidings_sns::verify`].
//!   Bare records are unsigned: protect them with Basic auth or an API key.

mod status;
mod wire;

use chrono::{DateTime, Utc};

use tidings_core::ids::OWN_ID_KEYS;
use tidings_core::{Draft, Error, Parsed, ProviderParser, RawRequest, Result, Status, time};
use tidings_sns::Inbound;

use crate::wire::{Record, SmsEvent};

const ID: &str = "sns";

tidings_core::provider! {
    /// Amazon SNS / AWS End User Messaging SMS delivery events.
    pub struct Sns;
    id: ID,
    aliases: ["aws-sms", "end-user-messaging-sms"],
    channel: Sms,
    signature: tidings_sns::SIGNATURE,
    media_types: [Json, Text, Missing],
    options: [tidings_sns::TOPIC_ARNS_OPTION, tidings_sns::AUTO_CONFIRM_OPTION],
    demo_options: tidings_sns::DEMO_OPTIONS,
}

impl ProviderParser for Sns {
    tidings_sns::delivered_through_sns!();

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let mut parsed = Parsed::default();
        match tidings_sns::inbound(ID, request)? {
            Inbound::Handled(handled) => return Ok(handled),
            Inbound::Notification { envelope, message } => {
                let row = message.trim_end();
                match serde_json::from_str::<Record>(row) {
                    Ok(record) => {
                        let origin = Origin {
                            row,
                            sns_message_id: Some(envelope.id()),
                            published: envelope.timestamp.as_deref(),
                        };
                        normalize(request, &origin, record, &mut parsed);
                    }
                    Err(_) => parsed.ignore(
                        "Notification",
                        None,
                        "the SNS message is not an SMS delivery event",
                    ),
                }
            }
            Inbound::Raw => {
                let row = request.text(ID)?;
                let record: Record = serde_json::from_str(row).map_err(|_| {
                    Error::malformed(
                        ID,
                        "neither an SNS envelope, an SMS event record (eventType) nor an SMS delivery log (notification, status)",
                    )
                })?;
                let origin = Origin {
                    row,
                    sns_message_id: None,
                    published: None,
                };
                normalize(request, &origin, record, &mut parsed);
            }
        }
        Ok(parsed)
    }
}

/// Where a record came from.
struct Origin<'a> {
    row: &'a str,
    /// The SNS `MessageId`, stable across SNS's retries.
    sns_message_id: Option<&'a str>,
    /// The SNS publish time.
    published: Option<&'a str>,
}

/// One record, reduced to what the event needs.
struct Fields {
    provider_event: String,
    classified: Option<(Status, Option<tidings_core::Failure>)>,
    message_id: Option<String>,
    own_id: Option<String>,
    recipient: Option<String>,
    time: Option<DateTime<Utc>>,
    time_text: String,
    code: Option<String>,
    response: Option<String>,
}

fn fields(record: Record) -> Fields {
    match record {
        Record::Event(event) => {
            let time = event.event_timestamp.as_ref().and_then(|n| n.as_i64());
            Fields {
                classified: status::classify(&event.event_type),
                own_id: own_id(&event),
                message_id: event.message_id,
                recipient: event.destination_phone_number,
                time: time.and_then(time::from_unix_millis),
                time_text: time.map(|t| t.to_string()).unwrap_or_default(),
                code: event.message_status,
                response: event.message_status_description,
                provider_event: event.event_type,
            }
        }
        Record::Log(log) => Fields {
            classified: status::classify(&log.status),
            own_id: None,
            message_id: log.notification.message_id,
            recipient: log.delivery.destination,
            time: log.notification.timestamp.as_deref().and_then(time::parse),
            time_text: log.notification.timestamp.unwrap_or_default(),
            code: None,
            response: log.delivery.provider_response,
            provider_event: log.status,
        },
    }
}

fn normalize(request: &RawRequest<'_>, origin: &Origin<'_>, record: Record, parsed: &mut Parsed) {
    let f = fields(record);
    let message_id = f.message_id.filter(|m| !m.is_empty());
    let id = f.own_id.or_else(|| message_id.clone());
    if id.is_none() && tidings_core::non_empty(f.recipient.as_deref()).is_none() {
        parsed.ignore(
            f.provider_event,
            None,
            "the record carries no messageId and no recipient",
        );
        return;
    }
    let Some((status, failure)) = f.classified else {
        let reason = if f.provider_event.starts_with("VOICE_") {
            "voice events are not SMS delivery states"
        } else if f.provider_event.ends_with("_UNKNOWN") {
            "AWS reports UNKNOWN when no final receipt came within 72 h: the status stays as it was"
        } else {
            "event type maps to no delivery status"
        };
        parsed.ignore(f.provider_event, id, reason);
        return;
    };
    let date = f.time.or_else(|| origin.published.and_then(time::parse));
    let draft = Draft::new(ID, status, &f.provider_event);
    let draft = match origin.sns_message_id {
        Some(sns_id) => draft.dedup_id(sns_id),
        None => draft.dedup_fields(&[
            message_id.as_deref().or(id.as_deref()).unwrap_or(""),
            &f.provider_event,
            f.recipient.as_deref().unwrap_or_default(),
            &f.time_text,
        ]),
    };
    let failed = matches!(
        status,
        Status::Rejected | Status::Undelivered | Status::Failed
    );
    // A record without a messageId is kept all the same, reported under its own id or its
    // dedup key: it still says something true about its recipient.
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(message_id)
            .date(date)
            .recipient(f.recipient)
            .failure(failure)
            .code(f.code.filter(|_| failed))
            .response(f.response.filter(|r| !r.is_empty()))
            .row(origin.row),
    );
}

/// The sender's own id from the event's `context`.
fn own_id(event: &SmsEvent) -> Option<String> {
    OWN_ID_KEYS
        .iter()
        .filter_map(|key| event.context.get(*key))
        .filter_map(|value| match value {
            serde_json::Value::String(text) if !text.trim().is_empty() => {
                Some(text.trim().to_owned())
            }
            serde_json::Value::Number(number) if number.is_u64() || number.is_i64() => {
                Some(number.to_string())
            }
            _ => None,
        })
        .next()
}
