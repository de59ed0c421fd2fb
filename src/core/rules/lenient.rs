//! [`Lenient<T>`]: a value that deserializes even when its content is wrong, so one bad entry
//! in a rule file does not hide the problems of every other entry.
//!
//! Structural problems (unknown keys, wrong types, missing keys) are reported by validating the
//! whole file against the generated JSON Schema; typed deserialization then only needs to get as
//! far as it can. A `Lenient<T>` that fails to deserialize becomes [`Lenient::Invalid`] (its
//! problem is already in the schema report) and the rest of the file is still checked. Its JSON
//! Schema is exactly `T`'s.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A value that was absent, valid, or present but invalid.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Lenient<T> {
    /// The key was not in the file.
    #[default]
    Missing,
    /// A valid value.
    Valid(T),
    /// Present but not a valid `T`; the schema check reports why.
    Invalid,
}

impl<T> Lenient<T> {
    /// The value when valid.
    pub fn get(&self) -> Option<&T> {
        match self {
            Lenient::Valid(v) => Some(v),
            _ => None,
        }
    }

    /// True when the key was present (valid or not).
    pub fn is_present(&self) -> bool {
        !matches!(self, Lenient::Missing)
    }
}

impl<'de, T: for<'a> Deserialize<'a>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match T::deserialize(v) {
            Ok(t) => Lenient::Valid(t),
            Err(_) => Lenient::Invalid,
        })
    }
}

impl<T: JsonSchema> JsonSchema for Lenient<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        a: u32,
    }

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[serde(default)]
        items: Lenient<Vec<Lenient<Item>>>,
        #[serde(default)]
        other: Lenient<String>,
    }

    #[test]
    fn bad_entries_do_not_spoil_good_ones() {
        let d: Doc =
            serde_json::from_value(json!({"items": [{"a": 1}, {"a": "x"}, {"a": 3}]})).unwrap();
        let items = d.items.get().unwrap();
        assert_eq!(items[0], Lenient::Valid(Item { a: 1 }));
        assert_eq!(items[1], Lenient::Invalid);
        assert_eq!(items[2], Lenient::Valid(Item { a: 3 }));
        assert_eq!(d.other, Lenient::Missing);
        let d: Doc = serde_json::from_value(json!({"items": "nope", "other": 5})).unwrap();
        assert_eq!(d.items, Lenient::Invalid);
        assert_eq!(d.other, Lenient::Invalid);
    }
}
