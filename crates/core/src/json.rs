//! JSON bodies: the rows of a batch, each kept as the exact text the provider sent.

use serde_json::value::RawValue;

use crate::{Error, Result};

/// The events of a JSON body that is either an array of events or one bare event object, each
/// as a slice of the body (so `row` is the provider's own text, never re-serialized).
pub fn rows<'a>(provider: &'static str, body: &'a [u8]) -> Result<Vec<&'a RawValue>> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return serde_json::from_slice(body).map_err(|e| Error::json(provider, &e));
    }
    let row: &RawValue = serde_json::from_slice(body).map_err(|e| Error::json(provider, &e))?;
    Ok(vec![row])
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

    fn rows_of(body: &[u8]) -> Vec<String> {
        rows("p", body)
            .unwrap()
            .iter()
            .map(|r| r.get().to_owned())
            .collect()
    }
}
