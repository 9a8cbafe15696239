//! Africa's Talking delivery report fields, by name (a form body, one report per request).

use tidings_core::Form;

/// One delivery report: one message to one phone number.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The Africa's Talking message id (`ATXid_...`) returned at send time.
    pub(crate) id: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) phone_number: Option<String>,
    /// Only on `Rejected` and `Failed`.
    pub(crate) failure_reason: Option<String>,
    /// How many times Africa's Talking retried the message.
    pub(crate) retry_count: Option<u32>,
    /// The fields as a JSON object, for `row`.
    pub(crate) row: String,
}

impl Report {
    /// Reads the fields (the first value of each name; empty values count as absent).
    pub(crate) fn from_form(form: &Form<'_>) -> Report {
        let text = |name: &str| tidings_core::non_empty(form.first(name)).map(str::to_owned);
        Report {
            id: text("id"),
            status: text("status"),
            phone_number: text("phoneNumber"),
            failure_reason: text("failureReason"),
            retry_count: text("retryCount").and_then(|n| n.parse().ok()),
            row: tidings_core::json::form_fields(form),
        }
    }
}
