//! Mailgun: <one line on what this provider's webhook sends>.
//!
//! Docs: <https://link-to-the-provider's-webhook-docs>.
//!
//! - Body: <JSON object / array / form; batch or single>.
//! - Ids: <which field is the message id; where the sender's own id travels>.
//! - `date`: <which field, in which format>.
//! - Dedup: <the provider's stable event id, or the fields hashed when it has none>.
//! - Signature: <scheme, signed bytes, headers, tolerance> (or: none; use ApiKey or Basic auth).

mod status;
mod wire;

use tidings_core::{
    Channel, Credentials, Error, Event, EventBody, Ignored, MediaType, Parsed, ProviderParser,
    RawRequest, Result, Signature, ids, time,
};

use crate::wire::WireEvent;

const ID: &str = "mailgun";

/// Mailgun webhooks.
pub struct Mailgun;

tidings_core::register_provider!(Mailgun);

impl ProviderParser for Mailgun {
    fn id(&self) -> &'static str {
        ID
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn signature(&self) -> Signature {
        Signature::None
    }

    fn verify(&self, _request: &RawRequest<'_>, _credentials: &Credentials<'_>) -> Result<()> {
        // No signature scheme: the integration authenticates with ApiKey or Basic auth.
        Err(Error::NoSigningKey)
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if request.media_type() != MediaType::Json {
            return Err(request.unsupported(ID));
        }
        let rows: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(request.body).map_err(|e| Error::json(ID, &e))?;
        let mut parsed = Parsed::default();
        for row in rows {
            let event: WireEvent =
                serde_json::from_str(row.get()).map_err(|e| Error::json(ID, &e))?;
            let Some(status) = status::classify(&event.event) else {
                parsed.ignored.push(Ignored {
                    provider_event: event.event.clone(),
                    id: Some(event.message_id.0.clone()),
                    reason: "event type maps to no delivery status".into(),
                });
                continue;
            };
            let date = event
                .timestamp
                .and_then(time::from_unix_seconds)
                .unwrap_or(request.received_at);
            parsed.events.push(Event {
                id: event.message_id.0.clone(),
                body: EventBody {
                    status,
                    date,
                    external_id: Some(event.message_id.0.clone()),
                    attempts: None,
                    response: None,
                    row: Some(row.get().to_owned()),
                },
                dedup_key: ids::dedup_from_fields(
                    ID,
                    &[&event.message_id.0, &event.event, &date.to_rfc3339()],
                ),
                provider_event: event.event,
                recipient: None,
                failure: None,
                code: None,
                automated: None,
            });
        }
        Ok(parsed)
    }
}
