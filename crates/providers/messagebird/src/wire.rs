//! MessageBird's SMS status report fields, by name. MessageBird sends them as the query string
//! of a GET request; the same names arrive as form fields or a flat JSON object when a relay
//! posts them on.

use std::collections::BTreeMap;

use tidings_core::Form;

/// One status report: one message to one recipient.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The MessageBird message id.
    pub(crate) id: Option<String>,
    /// The sender's own reference given at send time (reports are only sent for messages with
    /// one).
    pub(crate) reference: Option<String>,
    pub(crate) recipient: Option<String>,
    pub(crate) status: Option<String>,
    /// RFC 3339 with an offset.
    pub(crate) status_datetime: Option<String>,
    pub(crate) status_reason: Option<String>,
    pub(crate) status_error_code: Option<String>,
    /// The fields as a JSON object, for `row`.
    pub(crate) row: String,
}

impl Report {
    /// Reads the fields of a query string or form body (the first value of each name).
    pub(crate) fn from_form(form: &Form<'_>) -> Report {
        let mut fields = BTreeMap::new();
        for (name, value) in form.iter() {
            fields
                .entry(name.to_owned())
                .or_insert_with(|| serde_json::Value::String(value.to_owned()));
        }
        Report::from_fields(fields.into_iter().collect(), None)
    }

    /// Reads a flat JSON object; scalars of any type are kept as text.
    pub(crate) fn from_json(
        object: serde_json::Map<String, serde_json::Value>,
        row: &str,
    ) -> Report {
        Report::from_fields(object, Some(row))
    }

    fn from_fields(
        fields: serde_json::Map<String, serde_json::Value>,
        row: Option<&str>,
    ) -> Report {
        let text = |name: &str| match fields.get(name) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Report {
            id: text("id"),
            reference: text("reference"),
            recipient: text("recipient"),
            status: text("status"),
            status_datetime: text("statusDatetime"),
            status_reason: text("statusReason"),
            status_error_code: text("statusErrorCode"),
            row: row
                .map(str::to_owned)
                .unwrap_or_else(|| serde_json::Value::Object(fields.clone()).to_string()),
        }
    }
}
