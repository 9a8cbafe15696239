//! Passwords out of connection strings, for messages, logs and `check-config`.

/// `url` with every password replaced by `***`, in each form PostgreSQL accepts: the URL's
/// `user:password@`, a `password=` query parameter, and a `password=` key/value pair (quoted or
/// not). Anything that looks like a password's key is masked, so a connection string in an
/// unexpected form errs towards hiding too much.
pub fn redact_url(url: &str) -> String {
    redact_pairs(&redact_userinfo(url))
}

/// `scheme://user:***@host...`.
fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let start = scheme_end + 3;
    let rest = url.get(start..).unwrap_or("");
    let Some(first_at) = rest.find('@') else {
        return url.to_owned();
    };
    // The host part ends at the query; a stray `@` in the query is not the userinfo's end.
    let query = rest
        .get(first_at..)
        .and_then(|tail| tail.find('?'))
        .map_or(rest.len(), |q| first_at + q);
    let at = rest
        .get(..query)
        .and_then(|head| head.rfind('@'))
        .unwrap_or(first_at);
    let userinfo = rest.get(..at).unwrap_or("");
    match userinfo.split_once(':') {
        Some((user, _)) => format!(
            "{}{user}:***{}",
            url.get(..start).unwrap_or(""),
            rest.get(at..).unwrap_or("")
        ),
        None => url.to_owned(),
    }
}

/// Masks the value of every `...password = value` pair (URL query or key/value string).
fn redact_pairs(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower.get(search..).and_then(|s| s.find("password")) {
        let key_end = search + found + "password".len();
        search = key_end;
        let after_key = text.get(key_end..).unwrap_or("");
        let spaces = after_key.len() - after_key.trim_start().len();
        if !after_key.trim_start().starts_with('=') {
            continue;
        }
        let value_start = key_end + spaces + 1;
        let value = text.get(value_start..).unwrap_or("");
        let leading = value.len() - value.trim_start().len();
        let value_start = value_start + leading;
        let value = value.trim_start();
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            // A quoted key/value value: up to the closing quote; `\'` and `\\` are escapes.
            let mut escaped = false;
            let mut end = quoted.len();
            for (i, c) in quoted.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '\'' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            1 + end
        } else {
            value
                .find(|c: char| c.is_whitespace() || c == '&' || c == '#')
                .unwrap_or(value.len())
        };
        out.push_str(text.get(copied..value_start).unwrap_or(""));
        out.push_str("***");
        copied = value_start + value_len;
        search = copied.max(search);
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn every_form_of_password_is_masked() {
        for (given, shown) in [
            (
                "postgres://app:s3cret@db:5432/tidings",
                "postgres://app:***@db:5432/tidings",
            ),
            ("postgres://db/tidings", "postgres://db/tidings"),
            ("postgres://app@db/tidings", "postgres://app@db/tidings"),
            (
                "postgres://app:p@ss@db/tidings",
                "postgres://app:***@db/tidings",
            ),
            (
                "postgresql://app@db/tidings?password=s3cret&sslmode=disable",
                "postgresql://app@db/tidings?password=***&sslmode=disable",
            ),
            (
                "postgres://db/t?user=app&PASSWORD=s3cret",
                "postgres://db/t?user=app&PASSWORD=***",
            ),
            (
                "postgres://app:pw@db/t?options=-c%20x%3D1&application_name=a@b",
                "postgres://app:***@db/t?options=-c%20x%3D1&application_name=a@b",
            ),
            (
                "host=db user=app password=s3cret dbname=tidings",
                "host=db user=app password=*** dbname=tidings",
            ),
            (
                "host=db password = 's3 cr\\'et' dbname=tidings",
                "host=db password = *** dbname=tidings",
            ),
            ("password=s3cret", "password=***"),
            ("host=db sslpassword=s3cret", "host=db sslpassword=***"),
        ] {
            let redacted = redact_url(given);
            assert_eq!(redacted, shown, "{given}");
            assert!(!redacted.contains("s3"), "{given}");
        }
    }
}
