//! Lenient deserialization helpers shared by the two connectors' wire types: both systems send
//! ids and timestamps as strings, but numbers are accepted too (webhooks and some clients use
//! them), and `null` is treated as absent.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A scalar as a string: strings as they are, numbers and booleans formatted; `null` → `None`.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `"12"` or `12` as `String`; anything else is an error.
pub(crate) fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::String(_) | Value::Number(_) => {
            scalar_string(&v).ok_or_else(|| serde::de::Error::custom("expected an id"))
        }
        other => Err(serde::de::Error::custom(format!(
            "expected an id (string or number), found `{other}`"
        ))),
    }
}

/// Like [`id`], optional: `null` or absent → `None`.
pub(crate) fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(scalar_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "id")]
        a: String,
        #[serde(default, deserialize_with = "opt_id")]
        b: Option<String>,
    }

    #[test]
    fn ids_as_strings_or_numbers() {
        let t: T = serde_json::from_str(r#"{"a":65059681027,"b":"7"}"#).unwrap();
        assert_eq!(t.a, "65059681027");
        assert_eq!(t.b.as_deref(), Some("7"));
        let t: T = serde_json::from_str(r#"{"a":"12","b":null}"#).unwrap();
        assert_eq!(t.a, "12");
        assert_eq!(t.b, None);
        let t: T = serde_json::from_str(r#"{"a":"12"}"#).unwrap();
        assert_eq!(t.b, None);
        assert!(serde_json::from_str::<T>(r#"{"a":{"x":1}}"#).is_err());
    }
}
