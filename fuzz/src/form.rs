//! The form decoders: [`RawRequest::form`] over `<content type>\n<body>`, so both the content
//! type (media type, `boundary` parameter) and the body are fuzzed; the urlencoded and
//! multipart decoders are also run directly on the body.

use tidings_core::{Form, MediaType, RawRequest};

/// Runs the form decoders on one input.
pub fn run(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (
            data.get(..at).and_then(|c| std::str::from_utf8(c).ok()),
            data.get(at + 1..).unwrap_or_default(),
        ),
        None => (None, data),
    };
    let headers = http::HeaderMap::new();
    let raw = RawRequest {
        method: "POST",
        body,
        content_type,
        headers: &headers,
        url: None,
        received_at: crate::received_at(),
    };
    let _ = raw.media_type_name();
    if let Ok(form) = raw.form() {
        read(&form);
    }
    read(&Form::urlencoded(body));
    // The boundary as the fuzzer wrote it, not only what `parse_boundary` lets through.
    if let Some(boundary) = content_type.and_then(|c| c.split_once("boundary=")) {
        if let Ok(form) = Form::multipart(body, boundary.1) {
            read(&form);
        }
    }
    let _ = MediaType::of(content_type);
}

fn read(form: &Form<'_>) {
    let first = form.iter().next().map(|(name, _)| name.to_owned());
    if let Some(name) = first {
        let _ = (form.first(&name), form.last(&name));
    }
    let _ = form.is_empty();
}
