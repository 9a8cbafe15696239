//! SendGrid's event JSON, field for field. Unknown fields are kept in the raw row only.

use std::borrow::Cow;

use serde::Deserialize;

/// One event of the batch SendGrid posts. Custom args are flattened into the same object, so
/// `id` and `novuMessageId` are the sender's own ids when it set them.
#[derive(Debug, Deserialize)]
pub(crate) struct SendGridEvent<'a> {
    #[serde(borrow)]
    pub(crate) event: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(crate) email: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) timestamp: Option<Lenient>,
    #[serde(default)]
    pub(crate) sg_message_id: Option<String>,
    // `sg_event_id` is deliberately not read: it changes between SendGrid's retries.
    #[serde(default, rename = "smtp-id")]
    pub(crate) smtp_id: Option<String>,
    /// Custom arg `id` (Novu sets it to its message id).
    #[serde(default)]
    pub(crate) id: Option<Lenient>,
    #[serde(default, rename = "novuMessageId")]
    pub(crate) novu_message_id: Option<Lenient>,
    #[serde(default)]
    pub(crate) attempt: Option<Lenient>,
    #[serde(default)]
    pub(crate) response: Option<String>,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    /// Enhanced SMTP status code of a bounce (`5.1.1`).
    #[serde(default)]
    pub(crate) status: Option<Lenient>,
    /// `bounce` or `blocked` on bounce events.
    #[serde(default, rename = "type", borrow)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) bounce_classification: Option<String>,
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// Apple Mail Privacy Protection pre-fetch (sent as a bool or 0/1).
    #[serde(default)]
    pub(crate) sg_machine_open: Option<Lenient>,
}

/// A scalar SendGrid sends as a string in some events and a number or bool in others. Anything
/// else (an object, an array) reads as absent instead of failing the whole batch.
#[derive(Debug)]
pub(crate) enum Lenient {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lenient, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(match value {
            serde_json::Value::String(s) => Lenient::Text(s),
            serde_json::Value::Bool(b) => Lenient::Bool(b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Lenient::Int(i),
                (None, Some(u), _) => Lenient::Text(u.to_string()),
                (None, None, Some(f)) => Lenient::Float(f),
                _ => Lenient::Other,
            },
            _ => Lenient::Other,
        })
    }
}

impl Lenient {
    /// The value as text: strings as they are, integers exactly.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Lenient::Text(s) if !s.is_empty() => Some(s.clone()),
            Lenient::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Lenient::Int(i) => Some(*i),
            Lenient::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Some(*f as i64)
            }
            Lenient::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn truthy(&self) -> bool {
        match self {
            Lenient::Bool(b) => *b,
            Lenient::Int(i) => *i != 0,
            Lenient::Text(s) => matches!(s.as_str(), "1" | "true" | "True"),
            _ => false,
        }
    }
}
