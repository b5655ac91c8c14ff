//! Typing the document read as JSON leniently: a value that does not parse
//! falls back to its default, and a map leaves out the entries that do not.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;

/// One of several values that edits on devices that had not met left at
/// one field, with the device that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Version<T> {
    /// The value.
    pub value: T,
    /// The device that wrote it.
    #[serde(default, deserialize_with = "or_default")]
    pub by: Option<crate::ids::DeviceId>,
}

/// The values edits on devices that had not met left at an object's
/// fields, by field, the one that stands first. Empty for nearly every
/// object.
pub type Also = BTreeMap<String, Vec<Version<Json>>>;

/// Deserializes a map, leaving out entries whose key or value does not parse.
pub(super) fn lenient_map<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: FromStr + Ord,
    V: DeserializeOwned,
{
    let raw = match Json::deserialize(d)? {
        Json::Object(m) => m,
        _ => return Ok(BTreeMap::new()),
    };
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, serde_json::from_value(v).ok()?)))
        .collect())
}

/// Deserializes a value, falling back to its default if it does not parse.
pub(super) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(serde_json::from_value(Json::deserialize(d)?).unwrap_or_default())
}
