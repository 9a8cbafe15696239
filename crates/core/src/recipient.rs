//! One normalization rule for recipients, so the same person matches across providers.
//!
//! - **Email**: a display name is stripped (`Jane <Jane@Example.com>` → `jane@example.com`), a
//!   `mailto:` prefix too, and the whole address is lower-cased. Providers treat the local part
//!   case-insensitively in practice (SendGrid, SES and Mailgun all lower-case it in their own
//!   suppression lists), so one rule covers them all.
//! - **Phone numbers** (SMS): E.164. Separators (spaces, `-`, `.`, `(`, `)`, `/`) are removed;
//!   `+` and `00` mean an international number; a number with a national trunk `0` takes the
//!   configured default country code; a bare digit string of 8 digits or more already carries its
//!   country code (MessageBird's `31612345678` → `+31612345678`). A channel prefix such as
//!   `whatsapp:` is kept (a WhatsApp failure says nothing about SMS); `tel:` and `sms:` are
//!   dropped.
//! - **Push tokens** (and chat ids): as given, without surrounding white space.
//!
//! Every function is total: a recipient that cannot be normalized is `None`, never a panic.

use crate::Channel;

/// Where a national phone number (one with a trunk `0`, or a ten-digit number in the North
/// American plan) belongs when it carries no country code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhoneDefaults {
    /// The default country calling code, digits only (`44`, `1`). `None`: national numbers are
    /// not normalized.
    pub country_code: Option<String>,
}

impl PhoneDefaults {
    /// Defaults from a configured calling code (`+44`, `44`); `None` when it is not 1 to 3
    /// digits.
    pub fn from_country_code(code: &str) -> Option<PhoneDefaults> {
        let digits = code.trim().trim_start_matches('+');
        (!digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| PhoneDefaults {
                country_code: Some(digits.to_owned()),
            })
    }
}

/// Normalizes a recipient of a known channel. `None` when it is empty or not an address of that
/// channel.
pub fn normalize(channel: Channel, raw: &str, phone: &PhoneDefaults) -> Option<String> {
    match channel {
        Channel::Email => email(raw),
        Channel::Sms => phone_number(raw, phone),
        Channel::Push | Channel::Chat => token(raw),
    }
}

/// Normalizes a recipient whose channel is not known (an API path parameter): an address with
/// `@` is email, something that normalizes as a phone number is SMS, anything else is a push
/// token.
pub fn normalize_any(raw: &str, phone: &PhoneDefaults) -> Option<(Channel, String)> {
    let trimmed = raw.trim();
    if trimmed.contains('@') {
        return email(trimmed).map(|e| (Channel::Email, e));
    }
    if looks_like_phone(trimmed)
        && let Some(number) = phone_number(trimmed, phone)
    {
        return Some((Channel::Sms, number));
    }
    token(trimmed).map(|t| (Channel::Push, t))
}

/// Whether `raw` is written like a phone number: optional channel prefix, then only digits,
/// `+` and separators.
fn looks_like_phone(raw: &str) -> bool {
    let number = split_scheme(raw).1;
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    digits > 0
        && number
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+ -.()/".contains(&b))
}

fn token(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

fn email(raw: &str) -> Option<String> {
    let mut address = raw.trim();
    // `Display Name <address>`: the address is inside the last angle brackets.
    if let Some(open) = address.rfind('<') {
        let inner = address.get(open + 1..)?;
        address = inner.split('>').next()?.trim();
    }
    if address.len() > 7 && address.get(..7)?.eq_ignore_ascii_case("mailto:") {
        address = address.get(7..)?;
    }
    let address = address.trim().trim_matches('"');
    let (local, domain) = address.rsplit_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !address.chars().any(char::is_whitespace);
    valid.then(|| address.to_lowercase())
}

/// Splits a `whatsapp:+1...` style prefix from the number: (prefix to keep, number).
fn split_scheme(raw: &str) -> (Option<String>, &str) {
    match raw.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphabetic()) =>
        {
            let scheme = scheme.to_ascii_lowercase();
            if scheme == "tel" || scheme == "sms" {
                (None, rest)
            } else {
                (Some(scheme), rest)
            }
        }
        _ => (None, raw),
    }
}

fn phone_number(raw: &str, defaults: &PhoneDefaults) -> Option<String> {
    let (scheme, number) = split_scheme(raw.trim());
    let number = number.trim();
    let international = number.starts_with('+');
    let mut digits = String::with_capacity(number.len());
    for (index, c) in number.char_indices() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if index == 0 => {}
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    let e164 = if international {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if let Some(national) = digits.strip_prefix('0') {
        let code = defaults.country_code.as_deref()?;
        format!("{code}{national}")
    } else if defaults.country_code.as_deref() == Some("1") && digits.len() == 10 {
        // The North American plan has no trunk 0: ten digits are a national number.
        format!("1{digits}")
    } else if digits.len() >= 8 {
        digits
    } else {
        return None;
    };
    // E.164: at most 15 digits, and no country code starts with 0.
    if !(7..=15).contains(&e164.len()) || e164.starts_with('0') {
        return None;
    }
    Some(match scheme {
        Some(scheme) => format!("{scheme}:+{e164}"),
        None => format!("+{e164}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> PhoneDefaults {
        PhoneDefaults::default()
    }

    #[test]
    fn email_drops_display_names_and_lower_cases() {
        let cases = [
            ("Jane@Example.COM", "jane@example.com"),
            (
                "  \"Jane Doe\" <Jane.Doe@Example.com> ",
                "jane.doe@example.com",
            ),
            ("Jane <jane@example.com>", "jane@example.com"),
            ("mailto:Bob@Example.org", "bob@example.org"),
            ("Ünïcode@Example.com", "ünïcode@example.com"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalize(Channel::Email, raw, &none()).as_deref(),
                Some(want),
                "{raw}"
            );
        }
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "jane@",
            "a b@example.com",
            "<>",
        ] {
            assert_eq!(normalize(Channel::Email, bad, &none()), None, "{bad}");
        }
    }

    #[test]
    fn phone_numbers_become_e164() {
        let uk = PhoneDefaults::from_country_code("+44").unwrap();
        let us = PhoneDefaults::from_country_code("1").unwrap();
        let cases = [
            ("+1 (415) 555-0100", &none(), Some("+14155550100")),
            ("0044 7700 900000", &none(), Some("+447700900000")),
            ("31612345678", &none(), Some("+31612345678")),
            ("07700 900000", &uk, Some("+447700900000")),
            ("07700 900000", &none(), None),
            ("415-555-0100", &us, Some("+14155550100")),
            (
                "whatsapp:+15558675310",
                &none(),
                Some("whatsapp:+15558675310"),
            ),
            ("tel:+15558675310", &none(), Some("+15558675310")),
            ("+1XXX5550100", &none(), None),
            ("12345", &none(), None),
            ("+1234567890123456", &none(), None),
            ("", &none(), None),
        ];
        for (raw, defaults, want) in cases {
            assert_eq!(
                normalize(Channel::Sms, raw, defaults).as_deref(),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn push_tokens_are_kept_as_given() {
        assert_eq!(
            normalize(Channel::Push, " ExponentPushToken[AbC] ", &none()).as_deref(),
            Some("ExponentPushToken[AbC]")
        );
        assert_eq!(normalize(Channel::Push, "  ", &none()), None);
    }

    #[test]
    fn unknown_channel_is_inferred() {
        assert_eq!(
            normalize_any("Jane <Jane@X.io>", &none()),
            Some((Channel::Email, "jane@x.io".into()))
        );
        assert_eq!(
            normalize_any("+44 7700 900000", &none()),
            Some((Channel::Sms, "+447700900000".into()))
        );
        let apns = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
        assert_eq!(
            normalize_any(apns, &none()),
            Some((Channel::Push, apns.into()))
        );
        // Too many digits for a phone number: a token.
        let digits = "1234567890123456789012";
        assert_eq!(
            normalize_any(digits, &none()),
            Some((Channel::Push, digits.into()))
        );
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        let uk = PhoneDefaults::from_country_code("44").unwrap();
        for raw in [
            "Jane <Jane@Example.com>",
            "07700 900000",
            "whatsapp:+1 555 867 5310",
            "tok",
        ] {
            for channel in [Channel::Email, Channel::Sms, Channel::Push] {
                if let Some(once) = normalize(channel, raw, &uk) {
                    assert_eq!(normalize(channel, &once, &uk), Some(once.clone()), "{raw}");
                }
            }
        }
    }
}
