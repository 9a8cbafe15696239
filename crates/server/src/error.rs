//! Error responses in Novu's shape: `{"statusCode", "message", "error", "timestamp", "path"}`.

use http::{Response, StatusCode, header};

/// An error answer. Messages never contain secrets.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
    error_id: Option<String>,
    pub(crate) provider: Option<&'static str>,
    /// Set when the error refuses a webhook: why, and what to record (boxed: most errors are
    /// not refusals, and errors travel in every `Result` of the request path).
    refusal: Option<Box<Refusal>>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            error_id: None,
            provider: None,
            refusal: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 409 for a key still in flight.
    pub fn conflict() -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "A request with this Idempotency-Key is still being processed.",
            )
        }
    }

    /// 413.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {limit} bytes."),
        )
    }

    /// 408.
    pub fn timeout() -> ApiError {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "The request took too long.")
    }

    /// 503 with `Retry-After`: the provider should retry.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// 500 for a bug, with an id to find it in the logs.
    pub fn internal(err: &dyn std::fmt::Display) -> ApiError {
        let error_id = format!(
            "{:016x}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        tracing::error!(error_id, error = %err, "Internal error.");
        ApiError {
            error_id: Some(error_id),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error, contact support and provide them with the errorId",
            )
        }
    }

    /// Tags the error with the provider, for metrics and logs.
    pub fn for_provider(mut self, provider: &'static str) -> ApiError {
        self.provider = Some(provider);
        self
    }

    /// Says why a webhook was refused (a code of `rejections::REASONS`).
    pub(crate) fn because(mut self, reason: &'static str) -> ApiError {
        self.refusal = Some(Box::new(Refusal {
            reason,
            detail: None,
            request: None,
        }));
        self
    }

    /// Keeps the refused request with an error that has a reason, to record it.
    pub(crate) fn with_request(
        mut self,
        headers: &http::HeaderMap,
        body: Option<&bytes::Bytes>,
    ) -> ApiError {
        if let Some(refusal) = &mut self.refusal {
            refusal.request = Some(crate::rejections::Refused {
                headers: headers.clone(),
                body: body.cloned(),
            });
        }
        self
    }

    /// Sets what a rejection record says instead of the answered message (credential failures
    /// do not tell a caller how the integration authenticates; the environment's operator may
    /// know).
    pub(crate) fn detailed(mut self, detail: impl Into<String>) -> ApiError {
        if let Some(refusal) = &mut self.refusal {
            refusal.detail = Some(detail.into());
        }
        self
    }

    /// Why a webhook was refused, when this error refuses one.
    pub(crate) fn reason(&self) -> Option<&'static str> {
        self.refusal.as_ref().map(|r| r.reason)
    }

    /// The refused request to record, when there is one.
    pub(crate) fn refused_request(&self) -> Option<&crate::rejections::Refused> {
        self.refusal.as_ref().and_then(|r| r.request.as_ref())
    }

    /// What a rejection record says: the detail, else the answered message.
    pub fn detail(&self) -> &str {
        self.refusal
            .as_ref()
            .and_then(|r| r.detail.as_deref())
            .unwrap_or(&self.message)
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message answered.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON response.
    pub fn into_response(self, path: &str) -> Response<crate::app::Body> {
        let mut body = serde_json::json!({
            "statusCode": self.status.as_u16(),
            "message": self.message,
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "path": path,
        });
        if let (Some(id), Some(map)) = (self.error_id, body.as_object_mut()) {
            map.insert("errorId".into(), id.into());
        }
        let mut response = Response::new(crate::app::full(body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

/// Why a webhook was refused and what of it to record.
#[derive(Debug)]
struct Refusal {
    reason: &'static str,
    detail: Option<String>,
    request: Option<crate::rejections::Refused>,
}
