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
    pub(crate) email: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(crate) timestamp: Option<Lenient<'a>>,
    #[serde(default, borrow)]
    pub(crate) sg_message_id: Option<Str<'a>>,
    // `sg_event_id` is deliberately not read: it changes between SendGrid's retries.
    #[serde(default, rename = "smtp-id", borrow)]
    pub(crate) smtp_id: Option<Str<'a>>,
    /// Custom arg `id` (Novu sets it to its message id).
    #[serde(default, borrow)]
    pub(crate) id: Option<Lenient<'a>>,
    #[serde(default, rename = "novuMessageId", borrow)]
    pub(crate) novu_message_id: Option<Lenient<'a>>,
    #[serde(default, borrow)]
    pub(crate) attempt: Option<Lenient<'a>>,
    #[serde(default, borrow)]
    pub(crate) response: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(crate) reason: Option<Str<'a>>,
    /// Enhanced SMTP status code of a bounce (`5.1.1`).
    #[serde(default, borrow)]
    pub(crate) status: Option<Lenient<'a>>,
    /// `bounce` or `blocked` on bounce events.
    #[serde(default, rename = "type", borrow)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(crate) bounce_classification: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(crate) url: Option<Str<'a>>,
    /// Apple Mail Privacy Protection pre-fetch (sent as a bool or 0/1).
    #[serde(default, borrow)]
    pub(crate) sg_machine_open: Option<Lenient<'a>>,
}

/// A string field, borrowed from the body when it has no escapes. (`Option<Cow<str>>` never
/// borrows with serde: `#[serde(borrow)]` does not reach through the `Option`.)
#[derive(Debug)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// A scalar SendGrid sends as a string in some events and a number or bool in others. Anything
/// else (an object, an array) reads as absent instead of failing the whole batch. Read straight
/// from the JSON (no `serde_json::Value` in between), strings borrowed where they have no
/// escapes.
#[derive(Debug)]
pub(crate) enum Lenient<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lenient<'a>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Lenient<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Lenient::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Lenient::Text(Cow::Owned(v)))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Lenient::Bool(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Lenient::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                // Above i64::MAX: kept exactly, as text.
                Ok(i64::try_from(v)
                    .map_or_else(|_| Lenient::Text(Cow::Owned(v.to_string())), Lenient::Int))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Lenient::Float(v))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Lenient::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Lenient::Other)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Lenient<'_> {
    /// The value as text: strings as they are, integers exactly.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Lenient::Text(s) if !s.is_empty() => Some(s.to_string()),
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
            Lenient::Text(s) => matches!(s.as_ref(), "1" | "true" | "True"),
            _ => false,
        }
    }
}
