//! Provider timestamps: Unix seconds, milliseconds and floats, and the many ISO 8601 dialects
//! (7 fractional digits, offsets without a colon, no offset at all).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Unix seconds.
pub fn from_unix_seconds(seconds: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(seconds, 0).single()
}

/// Unix milliseconds.
pub fn from_unix_millis(millis: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single()
}

/// Fractional Unix seconds (Mailgun's `1534108637.153125`), to the microsecond.
pub fn from_unix_float(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    let micros = (seconds * 1_000_000.0).round();
    // i64 microseconds cover ±292,000 years; anything outside is not a timestamp.
    if micros.abs() > 9.0e15 {
        return None;
    }
    Utc.timestamp_micros(micros as i64).single()
}

/// Unix seconds or milliseconds, told apart by magnitude (a seconds value past the year 5000
/// is a milliseconds value).
pub fn from_unix_auto(value: i64) -> Option<DateTime<Utc>> {
    // `unsigned_abs`: `abs` of i64::MIN overflows (found by fuzzing).
    if value.unsigned_abs() >= 100_000_000_000 {
        from_unix_millis(value)
    } else {
        from_unix_seconds(value)
    }
}

/// Parses the date formats providers send: RFC 3339 (any number of fractional digits), ISO 8601
/// with `+hhmm` offsets or none (taken as UTC), `YYYY-MM-DD HH:MM:SS[.f]` (UTC), RFC 2822, or a
/// string of Unix seconds or milliseconds.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
    ] {
        if let Ok(date) = DateTime::parse_from_str(text, format) {
            return Some(date.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    if let Ok(date) = DateTime::parse_from_rfc2822(text) {
        return Some(date.with_timezone(&Utc));
    }
    if let Ok(value) = text.parse::<i64>() {
        return from_unix_auto(value);
    }
    if let Ok(value) = text.parse::<f64>() {
        return from_unix_float(value);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(date: Option<DateTime<Utc>>) -> String {
        date.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default()
    }

    #[test]
    fn dialects() {
        assert_eq!(
            iso(parse("2024-01-02T03:04:05Z")),
            "2024-01-02T03:04:05.000000Z"
        );
        assert_eq!(
            iso(parse("2024-01-02T03:04:05.1234567Z")),
            "2024-01-02T03:04:05.123456Z"
        );
        assert_eq!(
            iso(parse("2024-01-02T03:04:05.123+0200")),
            "2024-01-02T01:04:05.123000Z"
        );
        assert_eq!(
            iso(parse("2024-01-02 03:04:05")),
            "2024-01-02T03:04:05.000000Z"
        );
        assert_eq!(iso(parse("1600000000")), "2020-09-13T12:26:40.000000Z");
        assert_eq!(iso(parse("1600000000123")), "2020-09-13T12:26:40.123000Z");
        assert_eq!(
            iso(from_unix_float(1_534_108_637.153_125)),
            "2018-08-12T21:17:17.153125Z"
        );
        assert!(parse("yesterday").is_none());
        assert!(from_unix_float(f64::NAN).is_none());
        assert!(from_unix_float(1e300).is_none());
        assert!(from_unix_seconds(i64::MAX).is_none());
    }

    #[test]
    fn the_extreme_integers_are_no_dates_and_no_panic() {
        // The `signature_headers` fuzz target's crash input: kind byte 3, then i64::MIN.
        let input = b"\x03-9223372036854775808";
        let text = std::str::from_utf8(&input[1..]).unwrap();
        assert!(parse(text).is_none());
        for value in [i64::MIN, i64::MIN + 1, i64::MAX] {
            assert!(from_unix_auto(value).is_none(), "{value}");
            assert!(from_unix_millis(value).is_none(), "{value}");
        }
    }
}
