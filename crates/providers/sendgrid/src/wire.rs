//! SendGrid's event JSON, field for field. Unknown fields are kept in the raw row only.

use std::borrow::Cow;

use serde::Deserialize;

/// One event of the batch SendGrid posts. Custom args are flattened into the same object, so
/// `id` and `novuMessageId` are the sender's own ids when it set them.
#[derive(Debug, Default, Deserialize)]
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

pub(crate) mod read {
    //! A hand-written reader for one SendGrid event object: the body's hot path.
    //!
    //! It reads exactly the JSON that the serde reader ([`SendGridEvent`]'s `Deserialize`) reads,
    //! into the same struct. It is deliberately narrower: whatever it is not sure to read as serde
    //! would (a key with escapes, a duplicate field, a negative, fractional or very large number in
    //! a field that is read, deep nesting, any error) makes it give up with `None`, and the caller
    //! reads the whole body again the serde way, which also gives the exact error. So it may
    //! refuse valid input, but never accepts anything serde rejects or reads a value differently.
    //!
    //! Written as functions of the body and an offset that return the offset after what they read,
    //! so the offset stays in a register.

    use std::borrow::Cow;

    use super::{Lenient, SendGridEvent, Str};

    /// The number of a key that is not one of [`SendGridEvent`]'s fields (those are numbered in
    /// their order, `event` first).
    const UNREAD: u32 = 15;

    /// Nesting deeper than this (inside ignored or lenient values) is left to serde, whose own
    /// limit is 128.
    const MAX_DEPTH: u32 = 32;

    /// Reads the event object starting at `at` (its `{`) into `event` (a default one): the offset
    /// just past its closing brace.
    pub(crate) fn event<'a>(
        text: &'a str,
        at: usize,
        event: &mut SendGridEvent<'a>,
    ) -> Option<usize> {
        let bytes = text.as_bytes();
        let mut at = whitespace(bytes, expect(bytes, at, b'{')?);
        // The fields read so far, one bit each (`event` is bit 0): serde rejects a field given
        // twice, even as `null`, and a missing `event`.
        let mut seen = 0u32;
        loop {
            let (field, after_key) = match known_key(bytes, at) {
                Some(found) => found,
                None => {
                    // Not a field that is read (a read field with escapes in its name is left to
                    // serde).
                    let (escaped, after_key) = scan_string(bytes, at)?;
                    if escaped {
                        return None;
                    }
                    (UNREAD, after_key)
                }
            };
            at = whitespace(bytes, expect(bytes, whitespace(bytes, after_key), b':')?);
            at = match field {
                0 => {
                    let (value, after) = string(text, at)?;
                    event.event = value;
                    after
                }
                1 => set(&mut event.email, optional_str(text, at)?),
                2 => set(&mut event.timestamp, optional_lenient(text, at)?),
                3 => set(&mut event.sg_message_id, optional_str(text, at)?),
                4 => set(&mut event.smtp_id, optional_str(text, at)?),
                5 => set(&mut event.id, optional_lenient(text, at)?),
                6 => set(&mut event.novu_message_id, optional_lenient(text, at)?),
                7 => set(&mut event.attempt, optional_lenient(text, at)?),
                8 => set(&mut event.response, optional_str(text, at)?),
                9 => set(&mut event.reason, optional_str(text, at)?),
                10 => set(&mut event.status, optional_lenient(text, at)?),
                11 => set(&mut event.kind, optional_str(text, at)?),
                12 => set(&mut event.bounce_classification, optional_str(text, at)?),
                13 => set(&mut event.url, optional_str(text, at)?),
                14 => set(&mut event.sg_machine_open, optional_lenient(text, at)?),
                _ => skip_value(bytes, at, 1)?,
            };
            if field != UNREAD {
                let bit = 1 << field;
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
            }
            at = whitespace(bytes, at);
            match *bytes.get(at)? {
                b',' => at = whitespace(bytes, at + 1),
                b'}' => return (seen & 1 != 0).then_some(at + 1),
                _ => return None,
            }
        }
    }

    #[inline(always)]
    fn set<T>(slot: &mut T, (value, after): (T, usize)) -> usize {
        *slot = value;
        after
    }

    /// Skips JSON whitespace (serde_json's set: space, tab, CR, LF).
    #[inline(always)]
    fn whitespace(bytes: &[u8], mut at: usize) -> usize {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
            at += 1;
        }
        at
    }

    /// Past `byte` at `at`, if it is there.
    #[inline(always)]
    fn expect(bytes: &[u8], at: usize, byte: u8) -> Option<usize> {
        (*bytes.get(at)? == byte).then_some(at + 1)
    }

    /// At a key: the field's number if it is one of [`SendGridEvent`]'s, spelled plainly (no
    /// escapes), and the offset past its closing quote. Saves scanning the keys most events have.
    #[inline(always)]
    fn known_key(bytes: &[u8], at: usize) -> Option<(u32, usize)> {
        if *bytes.get(at)? != b'"' {
            return None;
        }
        let rest = bytes.get(at + 1..)?;
        // Each key with its closing quote, compared as a whole.
        let (field, len) = match rest.first()? {
            b'e' if starts(rest, b"event\"") => (0, 5),
            b'e' if starts(rest, b"email\"") => (1, 5),
            b't' if starts(rest, b"timestamp\"") => (2, 9),
            b't' if starts(rest, b"type\"") => (11, 4),
            b's' if starts(rest, b"sg_message_id\"") => (3, 13),
            b's' if starts(rest, b"smtp-id\"") => (4, 7),
            b's' if starts(rest, b"status\"") => (10, 6),
            b's' if starts(rest, b"sg_machine_open\"") => (14, 15),
            b'i' if starts(rest, b"id\"") => (5, 2),
            b'n' if starts(rest, b"novuMessageId\"") => (6, 13),
            b'a' if starts(rest, b"attempt\"") => (7, 7),
            b'r' if starts(rest, b"response\"") => (8, 8),
            b'r' if starts(rest, b"reason\"") => (9, 6),
            b'b' if starts(rest, b"bounce_classification\"") => (12, 21),
            b'u' if starts(rest, b"url\"") => (13, 3),
            _ => return None,
        };
        Some((field, at + len + 2))
    }

    /// Whether `bytes` starts with `prefix`, compared at its constant length.
    #[inline(always)]
    fn starts<const N: usize>(bytes: &[u8], prefix: &[u8; N]) -> bool {
        bytes.get(..N).is_some_and(|head| head == prefix)
    }

    /// `Option<Str>`: `null` or a string.
    #[inline(always)]
    fn optional_str(text: &str, at: usize) -> Option<(Option<Str<'_>>, usize)> {
        if *text.as_bytes().get(at)? == b'n' {
            return Some((None, literal(text.as_bytes(), at, b"null")?));
        }
        let (value, after) = string(text, at)?;
        Some((Some(Str(value)), after))
    }

    /// `Option<Lenient>`: `null`, or a string, a small non-negative integer, a bool, or an array or
    /// object read as [`Lenient::Other`].
    fn optional_lenient(text: &str, at: usize) -> Option<(Option<Lenient<'_>>, usize)> {
        let bytes = text.as_bytes();
        let (value, after) = match *bytes.get(at)? {
            b'n' => return Some((None, literal(bytes, at, b"null")?)),
            b'"' => {
                let (value, after) = string(text, at)?;
                (Lenient::Text(value), after)
            }
            b't' => (Lenient::Bool(true), literal(bytes, at, b"true")?),
            b'f' => (Lenient::Bool(false), literal(bytes, at, b"false")?),
            b'0'..=b'9' => {
                let (value, after) = small_integer(bytes, at)?;
                (Lenient::Int(value), after)
            }
            b'[' | b'{' => (Lenient::Other, skip_value(bytes, at, 1)?),
            // Negative numbers (serde reads `-0` as a float) are left to serde.
            _ => return None,
        };
        Some((Some(value), after))
    }

    /// A non-negative integer of at most 18 digits, with no fraction or exponent: exactly what
    /// serde reads as that integer. Anything else is left to serde.
    fn small_integer(bytes: &[u8], start: usize) -> Option<(i64, usize)> {
        let mut at = start;
        let mut value: i64 = 0;
        while let Some(digit @ b'0'..=b'9') = bytes.get(at) {
            value = value * 10 + i64::from(digit - b'0');
            at += 1;
            if at - start > 18 {
                return None;
            }
        }
        let leading_zero = bytes.get(start) == Some(&b'0') && at - start > 1;
        if leading_zero || matches!(bytes.get(at), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some((value, at))
    }

    #[inline(always)]
    fn literal(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
        let end = at + word.len();
        (bytes.get(at..end)? == word).then_some(end)
    }

    /// A string, borrowed from the body unless it has escapes; those are decoded by serde_json
    /// itself, so the text is exactly serde's.
    #[inline(always)]
    fn string(text: &str, at: usize) -> Option<(Cow<'_, str>, usize)> {
        let (escaped, after) = scan_string(text.as_bytes(), at)?;
        if !escaped {
            // Between the quotes (ASCII, so on character boundaries).
            return Some((Cow::Borrowed(text.get(at + 1..after - 1)?), after));
        }
        let quoted = text.get(at..after)?;
        Some((
            Cow::Owned(serde_json::from_str::<String>(quoted).ok()?),
            after,
        ))
    }

    /// At an opening quote: whether the string has escapes, and the offset past its closing quote.
    /// Rejects what serde rejects in any string: control characters, unknown escapes, `\u` without
    /// four hex digits.
    #[inline(always)]
    fn scan_string(bytes: &[u8], at: usize) -> Option<(bool, usize)> {
        let mut at = expect(bytes, at, b'"')?;
        let mut escaped = false;
        loop {
            at = skip_plain(bytes, at);
            match *bytes.get(at)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    at = escape(bytes, at)?;
                }
                // A control character.
                _ => return None,
            }
        }
        Some((escaped, at + 1))
    }

    /// At a backslash: the offset past its escape, if it is one JSON has.
    fn escape(bytes: &[u8], at: usize) -> Option<usize> {
        match bytes.get(at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 2),
            b'u' => bytes
                .get(at + 2..at + 6)?
                .iter()
                .all(u8::is_ascii_hexdigit)
                .then_some(at + 6),
            _ => None,
        }
    }

    /// Skips one JSON value, checking its syntax as serde does when it ignores a value.
    fn skip_value(bytes: &[u8], at: usize, depth: u32) -> Option<usize> {
        let open = *bytes.get(at)?;
        let close = match open {
            b'"' => return scan_string(bytes, at).map(|(_, after)| after),
            b'n' => return literal(bytes, at, b"null"),
            b't' => return literal(bytes, at, b"true"),
            b'f' => return literal(bytes, at, b"false"),
            b'-' | b'0'..=b'9' => return skip_number(bytes, at),
            b'[' => b']',
            b'{' => b'}',
            _ => return None,
        };
        if depth >= MAX_DEPTH {
            return None;
        }
        let mut at = whitespace(bytes, at + 1);
        if *bytes.get(at)? == close {
            return Some(at + 1);
        }
        loop {
            if open == b'{' {
                // serde checks escaped keys more strictly than ignored values (lone surrogates),
                // so those are left to it.
                let (escaped, after_key) = scan_string(bytes, at)?;
                if escaped {
                    return None;
                }
                at = whitespace(bytes, expect(bytes, whitespace(bytes, after_key), b':')?);
            }
            at = whitespace(bytes, skip_value(bytes, at, depth + 1)?);
            match *bytes.get(at)? {
                b',' => at = whitespace(bytes, at + 1),
                b if b == close => return Some(at + 1),
                _ => return None,
            }
        }
    }

    /// Skips a number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn skip_number(bytes: &[u8], mut at: usize) -> Option<usize> {
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => at = digits(bytes, at),
            _ => return None,
        }
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            bytes.get(at).filter(|b| b.is_ascii_digit())?;
            at = digits(bytes, at);
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(bytes.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            bytes.get(at).filter(|b| b.is_ascii_digit())?;
            at = digits(bytes, at);
        }
        // `01` and the like: serde stops at the second digit and fails on it.
        (!bytes.get(at).is_some_and(u8::is_ascii_digit)).then_some(at)
    }

    fn digits(bytes: &[u8], mut at: usize) -> usize {
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        at
    }

    /// The offset of the first byte at or after `at` that ends a plain run of string text: a quote,
    /// a backslash or a control character (or the end). Eight bytes at a time.
    #[inline(always)]
    fn skip_plain(bytes: &[u8], mut at: usize) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = bytes.get(at..at + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let word = u64::from_le_bytes(word);
            let quote = word ^ (ONES * u64::from(b'"'));
            let backslash = word ^ (ONES * u64::from(b'\\'));
            // A byte's high bit is set where it is zero (or below 0x20); a borrow can only mark
            // bytes after the first such byte, so the lowest mark is exact.
            let found = (quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash
                | word.wrapping_sub(ONES * 0x20) & !word)
                & HIGHS;
            if found != 0 {
                return at + (found.trailing_zeros() / 8) as usize;
            }
            at += 8;
        }
        while bytes
            .get(at)
            .is_some_and(|&b| b != b'"' && b != b'\\' && b >= 0x20)
        {
            at += 1;
        }
        at
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn plain_runs_end_at_quotes_backslashes_and_control_characters() {
            for text in [
                "abcdefghijklmnop\"",
                "abc\\defghijklmnop",
                "abcdefgh\u{1f}ijklmnop",
                "é€😀abcdefghijkl\"mn",
                "abcdefg",
                "",
                "abcdefgh\u{7f}\u{80}ijkl\"",
            ] {
                let expected = text
                    .bytes()
                    .position(|b| b == b'"' || b == b'\\' || b < 0x20)
                    .unwrap_or(text.len());
                for start in 0..=expected {
                    assert_eq!(skip_plain(text.as_bytes(), start), expected, "{text:?}");
                }
            }
        }
    }
}
