//! JSON bodies: the rows of a batch, each kept as the exact text the provider sent, and
//! scalars whose type varies between a provider's events.

use serde::de::{
    Deserialize, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

use crate::{Error, Result};

/// The events of a JSON body that is either an array of events or one bare event object, each
/// as a slice of the body (so `row` is the provider's own text, never re-serialized).
pub fn rows<'a>(provider: &'static str, body: &'a [u8]) -> Result<Vec<&'a RawValue>> {
    if is_array(body) {
        return read_slice(provider, body);
    }
    Ok(vec![read_slice(provider, body)?])
}

/// A JSON batch (see [`rows`]) read row by row: each row as `T`, handed to `each` with its
/// exact text (for `row`) and the [`Parsed`](crate::Parsed) being filled.
pub fn batch<'a, T: Deserialize<'a>>(
    provider: &'static str,
    body: &'a [u8],
    mut each: impl FnMut(&'a str, T, &mut crate::Parsed) -> Result<()>,
) -> Result<crate::Parsed> {
    let mut parsed = crate::Parsed::default();
    for row in rows(provider, body)? {
        let text = row.get();
        each(text, read(provider, text)?, &mut parsed)?;
    }
    Ok(parsed)
}

/// The rows of a batch in which one row that is no event this parser reads (it does not read as
/// `T`, or `names_event` says it names none) is ignored as `(no <field>)` with `reason`, and the
/// rest of the batch is kept; a batch in which no row is readable is not this provider's
/// ([`Error::MissingField`]). Each readable row goes to `each` with its exact text.
pub fn tolerant_rows<'a, T: Deserialize<'a>>(
    rows: &[&'a RawValue],
    field: &'static str,
    reason: &str,
    names_event: impl Fn(&T) -> bool,
    parsed: &mut crate::Parsed,
    mut each: impl FnMut(&'a str, T, &mut crate::Parsed) -> Result<()>,
) -> Result<()> {
    let mut unreadable = 0;
    for row in rows {
        let text = row.get();
        match serde_json::from_str::<T>(text) {
            Ok(event) if names_event(&event) => each(text, event, parsed)?,
            _ => {
                unreadable += 1;
                parsed.ignore(format!("(no {field})"), None, reason);
            }
        }
    }
    if unreadable > 0 && unreadable == rows.len() {
        return Err(Error::MissingField(field));
    }
    Ok(())
}

/// Whether the body is a JSON array (its first non-blank byte is `[`).
pub fn is_array(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Whether the body is a JSON object (its first non-blank byte is `{`): serde reads structs from
/// arrays too, so a provider checks this before reading an object-shaped payload.
pub fn is_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// One JSON value of `provider`'s format from text; a body that does not read is
/// [`Error::Malformed`] with serde's reason.
pub fn read<'a, T: Deserialize<'a>>(provider: &'static str, text: &'a str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::json(provider, &e))
}

/// [`read`] from bytes (a whole body).
pub fn read_slice<'a, T: Deserialize<'a>>(provider: &'static str, body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::json(provider, &e))
}

/// [`read`] from a [`serde_json::Value`] already parsed.
pub fn read_value<T: DeserializeOwned>(
    provider: &'static str,
    value: serde_json::Value,
) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::json(provider, &e))
}

/// For `#[serde(deserialize_with)]`: text a provider sends as a string or a number (ids,
/// codes), trimmed; blank text, `null`, bools, objects and arrays read as absent instead of
/// failing the body.
pub fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Scalar::deserialize(d)?.text().map(str::to_owned))
}

/// For `#[serde(deserialize_with)]`: an integer sent as a number or numeric text; anything else
/// reads as absent.
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Scalar::deserialize(d)?.as_i64())
}

/// For `#[serde(deserialize_with)]`: a count sent as a number or numeric text; anything else
/// (negative, too large) reads as absent.
pub fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Scalar::deserialize(d)?.as_u32())
}

/// A form body's fields as one JSON object (`body.row` for form bodies); a repeated field
/// becomes an array of its values in body order.
pub fn form_fields(form: &crate::Form<'_>) -> String {
    use serde_json::{Map, Value};
    let mut fields = Map::new();
    for (name, value) in form.iter() {
        let value = Value::String(value.to_owned());
        match fields.get_mut(name) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => {
                let first = first.take();
                fields.insert(name.to_owned(), Value::Array(vec![first, value]));
            }
            None => {
                fields.insert(name.to_owned(), value);
            }
        }
    }
    Value::Object(fields).to_string()
}

/// A field a provider sends as a string in some events and a number or a bool in others
/// (timestamps, codes, metadata values). Numbers keep their exact text (64-bit ids stay exact);
/// objects and arrays read as [`Scalar::Other`] instead of failing the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// A JSON string.
    Text(String),
    /// A JSON number, as exact decimal text.
    Number(String),
    /// A JSON bool.
    Bool(bool),
    /// `null`, an object or an array.
    Other,
}

impl Scalar {
    /// The value as non-empty text, trimmed: strings, and numbers as written.
    pub fn text(&self) -> Option<&str> {
        match self {
            Scalar::Text(s) | Scalar::Number(s) => Some(s.trim()).filter(|s| !s.is_empty()),
            Scalar::Bool(_) | Scalar::Other => None,
        }
    }

    /// The value as (fractional) seconds or any other float, from a number or numeric text.
    pub fn seconds(&self) -> Option<f64> {
        self.text()?.parse().ok().filter(|f: &f64| f.is_finite())
    }

    /// The value as an integer, from a number or numeric text.
    pub fn as_i64(&self) -> Option<i64> {
        self.text()?.parse().ok()
    }

    /// The value as a `u32`, from a number or numeric text.
    pub fn as_u32(&self) -> Option<u32> {
        self.text()?.parse().ok()
    }

    /// Whether the value flags something: `true`, a non-zero number, or text other than empty,
    /// `0` and `false`.
    pub fn flagged(&self) -> bool {
        match self {
            Scalar::Bool(b) => *b,
            Scalar::Number(n) => n.trim() != "0",
            Scalar::Text(s) => !matches!(s.trim(), "" | "0" | "false" | "False"),
            Scalar::Other => false,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// `body` with the whitespace outside JSON strings removed: the compact form most providers
/// sign, which a proxy that pretty-prints or re-indents JSON changes. Total: any bytes give
/// bytes (strings are followed through their escapes; nothing is parsed).
pub fn minified(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in body {
        if in_string {
            out.push(byte);
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !byte.is_ascii_whitespace() {
            in_string = byte == b'"';
            out.push(byte);
        }
    }
    out
}

/// For `#[serde(default, deserialize_with = "tidings_core::json::lenient")]` on an optional
/// field: a value of another type than the field's (`"timestamp": {}` where a string belongs)
/// reads as absent instead of failing the whole body. The event keeps everything else, and
/// the field falls back as if the provider had left it out (the date to the receive time, an id
/// to the dedup key). The provider still gets its 200, so it does not retry the batch for days.
pub fn lenient<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(T::deserialize(value).ok())
}

/// [`lenient`] for a field that is not optional (`Vec`, maps, nested objects): a value of
/// another type reads as the type's default, as if the field were missing.
pub fn lenient_or_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    Ok(lenient(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_and_bare_objects() {
        let rows = rows("p", b" [ {\"a\": 1},{\"b\":\"x\\\"\"} ]\r\n").unwrap();
        let texts: Vec<&str> = rows.iter().map(|r| r.get()).collect();
        assert_eq!(texts, ["{\"a\": 1}", "{\"b\":\"x\\\"\"}"]);
        assert_eq!(rows_of(b"{\"a\":1}"), ["{\"a\":1}"]);
        assert!(super::rows("p", b"[1,").is_err());
        assert!(super::rows("p", b"").is_err());
    }

    #[test]
    fn scalars_of_every_type() {
        let values: Vec<Scalar> = serde_json::from_str(
            r#"[" 42 ", 18446744073709551615, -3, 1534108637.153125, true, null, {"a": [1]}, [2], ""]"#,
        )
        .unwrap();
        let texts: Vec<Option<&str>> = values.iter().map(Scalar::text).collect();
        assert_eq!(
            texts,
            [
                Some("42"),
                Some("18446744073709551615"),
                Some("-3"),
                Some("1534108637.153125"),
                None,
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(values[0].as_i64(), Some(42));
        assert_eq!(values[3].seconds(), Some(1_534_108_637.153_125));
        assert!(values[4].flagged() && !values[5].flagged() && !values[8].flagged());
        assert!(Scalar::Text("apple".into()).flagged());
        assert!(!Scalar::Number("0".into()).flagged());
    }

    #[test]
    fn lenient_fields_degrade_to_absent() {
        #[derive(serde::Deserialize)]
        struct Row {
            #[serde(default, deserialize_with = "lenient")]
            timestamp: Option<String>,
            #[serde(default, deserialize_with = "lenient")]
            count: Option<u32>,
            #[serde(default, deserialize_with = "lenient")]
            id: Option<crate::ids::Id>,
            #[serde(default, deserialize_with = "lenient_or_default")]
            list: Vec<String>,
        }
        let row: Row =
            serde_json::from_str(r#"{"timestamp": {}, "count": "x", "id": 18446744073709551615}"#)
                .unwrap();
        assert_eq!((row.timestamp, row.count), (None, None));
        assert_eq!(
            row.id.map(|id| id.0).as_deref(),
            Some("18446744073709551615")
        );
        let row: Row = serde_json::from_str(r#"{"timestamp": "2024-01-02", "count": 3}"#).unwrap();
        assert_eq!(row.timestamp.as_deref(), Some("2024-01-02"));
        assert_eq!((row.count, row.id), (Some(3), None));
        assert!(serde_json::from_str::<Row>(r#"{"timestamp": [1,"#).is_err());
        let row: Row = serde_json::from_str(r#"{"list": null}"#).unwrap();
        assert!(row.list.is_empty());
        let row: Row = serde_json::from_str(r#"{"list": ["a"]}"#).unwrap();
        assert_eq!(row.list, ["a"]);
    }

    #[test]
    fn tolerant_rows_ignore_unreadable_rows_unless_all_are() {
        #[derive(serde::Deserialize)]
        struct Row {
            event: Option<String>,
        }
        let run = |body: &[u8]| {
            let rows = rows("p", body).unwrap();
            let mut parsed = crate::Parsed::default();
            let mut seen = Vec::new();
            tolerant_rows(
                &rows,
                "event",
                "unreadable",
                |row: &Row| row.event.is_some(),
                &mut parsed,
                |text, _row, _| {
                    seen.push(text.to_owned());
                    Ok(())
                },
            )
            .map(|()| (seen, parsed.ignored.len()))
        };
        let (seen, ignored) = run(br#"[{"event":"a"},{"event":7},{}]"#).unwrap();
        assert_eq!((seen, ignored), (vec![r#"{"event":"a"}"#.to_owned()], 2));
        assert_eq!(run(br#"[{}, 1]"#), Err(Error::MissingField("event")));
    }

    fn rows_of(body: &[u8]) -> Vec<String> {
        rows("p", body)
            .unwrap()
            .iter()
            .map(|r| r.get().to_owned())
            .collect()
    }

    #[test]
    fn minified_keeps_strings_and_drops_whitespace_outside_them() {
        let pretty = b"[\n  {\"a\": \"x y\\\" z\",\r\n   \"b\": [1, 2]}\n]\r\n";
        assert_eq!(
            minified(pretty),
            b"[{\"a\":\"x y\\\" z\",\"b\":[1,2]}]".to_vec()
        );
        assert_eq!(minified(b"\"unterminated  "), b"\"unterminated  ".to_vec());
    }
}
