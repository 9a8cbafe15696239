//! The raw request a parser reads: exact body bytes and the few facts around them.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use http::HeaderMap;

use crate::{Error, Result};

/// One webhook request as the provider sent it.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    /// The HTTP method, upper case: `POST`, or `GET` for the receipts a provider sends with the
    /// fields in the query string (see [`ProviderParser::accepts_get`](crate::ProviderParser::accepts_get)).
    pub method: &'a str,
    /// The exact body bytes: signatures are computed over these.
    pub body: &'a [u8],
    /// The `Content-Type` header, verbatim.
    pub content_type: Option<&'a str>,
    /// Every request header.
    pub headers: &'a HeaderMap,
    /// The URL the provider called, with its query string: the service's `public_url` joined
    /// with the request's path and query, or, without `public_url`, for a GET, rebuilt from the
    /// `Host` header (enough to read its query string; URL-signed schemes need `public_url`).
    pub url: Option<&'a str>,
    /// When the request was received: the event time of last resort and the reference for
    /// signature timestamp windows.
    pub received_at: DateTime<Utc>,
}

/// The body encodings providers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json` and `+json` types.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`.
    Multipart,
    /// JSON Lines: one JSON value per line (`application/jsonl`, `application/x-ndjson` and
    /// the other names senders use).
    JsonLines,
    /// `text/plain`: Amazon SNS sends JSON this way.
    Text,
    /// No `Content-Type` header.
    Missing,
    /// Anything else.
    Other,
}

impl MediaType {
    /// How `tidings providers` names the media type.
    pub fn name(self) -> &'static str {
        match self {
            MediaType::Json => "json",
            MediaType::Form => "form",
            MediaType::Multipart => "multipart",
            MediaType::JsonLines => "json-lines",
            MediaType::Text => "text",
            MediaType::Missing => "none",
            MediaType::Other => "other",
        }
    }

    /// Classifies a `Content-Type` value (parameters ignored, case-insensitive).
    pub fn of(content_type: Option<&str>) -> MediaType {
        let Some(value) = content_type else {
            return MediaType::Missing;
        };
        // The essence is the first token: parameters (`;`) and anything after whitespace (some
        // clients append a comment) are not part of it.
        let essence = value
            .trim_start()
            .split([';', ' ', '\t', '('])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "text/json" => MediaType::Json,
            "application/x-www-form-urlencoded" => MediaType::Form,
            "multipart/form-data" => MediaType::Multipart,
            "application/jsonl"
            | "application/x-jsonl"
            | "application/jsonlines"
            | "application/x-jsonlines"
            | "application/json-lines"
            | "application/x-ndjson" => MediaType::JsonLines,
            "text/plain" => MediaType::Text,
            "" => MediaType::Missing,
            other if other.starts_with("application/") && other.ends_with("+json") => {
                MediaType::Json
            }
            _ => MediaType::Other,
        }
    }
}

impl<'a> RawRequest<'a> {
    /// Whether the provider called with `GET`: no body, the fields in the URL's query string.
    pub fn is_get(&self) -> bool {
        self.method.eq_ignore_ascii_case("GET")
    }

    /// The URL's query string (without `?` and fragment); empty when there is none.
    pub fn query(&self) -> &'a str {
        let Some(url) = self.url else { return "" };
        let query = url.split_once('?').map_or("", |(_, q)| q);
        query.split('#').next().unwrap_or(query)
    }

    /// The body's media type.
    pub fn media_type(&self) -> MediaType {
        MediaType::of(self.content_type)
    }

    /// A header's value as text (the first one, if repeated). Non-UTF-8 values read as absent.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The essence of the content type, for error messages.
    pub fn media_type_name(&self) -> String {
        self.content_type
            .and_then(|ct| ct.trim_start().split([';', ' ', '\t', '(']).next())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    }

    /// An [`Error::UnsupportedMediaType`] for this request.
    pub fn unsupported(&self, provider: &'static str) -> Error {
        Error::UnsupportedMediaType {
            provider,
            media_type: self.media_type_name(),
        }
    }

    /// `Ok` when the body's media type is one of `accepted`, else `provider`'s
    /// [`Error::UnsupportedMediaType`] (415).
    pub fn accept(&self, provider: &'static str, accepted: &[MediaType]) -> Result<()> {
        if accepted.contains(&self.media_type()) {
            Ok(())
        } else {
            Err(self.unsupported(provider))
        }
    }

    /// The body as text, for a provider whose body is one JSON event (`row` is then the body,
    /// trimmed); a body that is not UTF-8 is `provider`'s [`Error::Malformed`].
    pub fn text(&self, provider: &'static str) -> Result<&'a str> {
        std::str::from_utf8(self.body).map_err(|_| Error::malformed(provider, "body is not UTF-8"))
    }

    /// The body's form fields, from a urlencoded or multipart body, in body order. File parts of
    /// a multipart body are skipped.
    pub fn form(&self) -> Result<Form<'a>> {
        match self.media_type() {
            MediaType::Form => Ok(Form::urlencoded(self.body)),
            MediaType::Multipart => {
                let boundary = self
                    .content_type
                    .and_then(|ct| multer::parse_boundary(ct).ok())
                    .ok_or(Error::Encoding("multipart/form-data (no boundary)"))?;
                Form::multipart(self.body, &boundary)
            }
            _ => Err(Error::Encoding("form data")),
        }
    }
}

/// Decoded form fields in body order. Keys may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form<'a> {
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Form<'a> {
    /// Decodes an `application/x-www-form-urlencoded` body. Total: invalid UTF-8 is replaced.
    pub fn urlencoded(body: &'a [u8]) -> Form<'a> {
        Form {
            fields: form_urlencoded::parse(body).collect(),
        }
    }

    /// Decodes the text fields of a `multipart/form-data` body.
    pub fn multipart(body: &[u8], boundary: &str) -> Result<Form<'static>> {
        let stream = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(
            bytes::Bytes::copy_from_slice(body),
        )));
        let mut multipart = multer::Multipart::new(stream, boundary.to_owned());
        let mut fields = Vec::new();
        // The whole body is one ready chunk, so every future below completes on its first poll;
        // polling with a no-op waker keeps this synchronous without an executor.
        loop {
            let field = match poll_ready(multipart.next_field())? {
                Some(field) => field,
                None => break,
            };
            let name = field.name().unwrap_or_default().to_owned();
            let is_file = field.file_name().is_some();
            let text = poll_ready(field.text())?;
            if !is_file {
                fields.push((Cow::Owned(name), Cow::Owned(text)));
            }
        }
        Ok(Form { fields })
    }

    /// Builds a form from decoded pairs.
    pub fn from_pairs(fields: Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Form<'a> {
        Form { fields }
    }

    /// The first value of a field.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The last value of a field (Mailgun's legacy webhooks put user variables of the same name
    /// before their own fields).
    pub fn last(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Every field in body order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

fn poll_ready<T>(future: impl std::future::Future<Output = multer::Result<T>>) -> Result<T> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(result) => {
            result.map_err(|_| Error::Encoding("multipart/form-data"))
        }
        // Cannot happen with an in-memory stream; treat it as a broken body rather than panic.
        std::task::Poll::Pending => Err(Error::Encoding("multipart/form-data")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            MediaType::of(Some("application/json; charset=utf-8")),
            MediaType::Json
        );
        assert_eq!(MediaType::of(Some("Application/JSON")), MediaType::Json);
        assert_eq!(
            MediaType::of(Some("application/cloudevents+json")),
            MediaType::Json
        );
        assert_eq!(
            MediaType::of(Some("text/plain; charset=UTF-8")),
            MediaType::Text
        );
        assert_eq!(
            MediaType::of(Some("multipart/form-data; boundary=x")),
            MediaType::Multipart
        );
        assert_eq!(MediaType::of(Some("application/xml")), MediaType::Other);
        assert_eq!(
            MediaType::of(Some("application/json (when the account sends JSON)")),
            MediaType::Json
        );
        assert_eq!(MediaType::of(None), MediaType::Missing);
    }

    #[test]
    fn multipart_text_fields_in_order_files_skipped() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\nbounced\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"attachment-1\"; filename=\"m.eml\"\r\n\
                    Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n550\r\n--XyZ--\r\n";
        let form = Form::multipart(body.as_bytes(), "XyZ").unwrap();
        let fields: Vec<_> = form.iter().collect();
        assert_eq!(fields, vec![("event", "bounced"), ("code", "550")]);
        assert!(Form::multipart(b"garbage", "XyZ").is_err());
    }

    #[test]
    fn last_value_wins_for_repeated_fields() {
        let form = Form::urlencoded(b"token=user&a=1&token=real");
        assert_eq!(form.last("token"), Some("real"));
        assert_eq!(form.first("token"), Some("user"));
    }
}
