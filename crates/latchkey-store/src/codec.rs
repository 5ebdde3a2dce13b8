//! How the domain's values are written to columns and read back, where that does not depend on the backend:
//! statuses as their contract spelling, settings and handle lists as JSON text, digests as 32 raw bytes.
//! Each backend's row decoding calls these, so SQLite and PostgreSQL store the same shapes.

use std::collections::BTreeMap;

use latchkey_core::model::{Digest, Status};
use latchkey_core::settings::OAuthSettings;
use latchkey_core::{Error, Handle, Result};

use crate::error::corrupt;

/// A status as stored.
pub(crate) fn status_from_db(value: &str) -> Result<Status> {
    Status::parse(value).ok_or_else(|| corrupt("a connection status", format_args!("unknown status '{value}'")))
}

/// Settings as stored: JSON text.
pub(crate) fn settings_to_db(settings: &OAuthSettings) -> Result<String> {
    serde_json::to_string(settings)
        .map_err(|err| Error::Internal(format!("could not write connection settings as JSON: {err}")))
}

/// Settings read back from their JSON text.
pub(crate) fn settings_from_db(json: &str) -> Result<OAuthSettings> {
    serde_json::from_str(json).map_err(|err| corrupt("connection settings", err))
}

/// A token set's kept values as stored: a JSON object, or NULL when there are none.
pub(crate) fn kept_values_to_db(values: &BTreeMap<String, String>) -> Result<Option<String>> {
    if values.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(values)
        .map(Some)
        .map_err(|err| Error::Internal(format!("could not write the kept values as JSON: {err}")))
}

/// A token set's kept values read back; NULL is none.
pub(crate) fn kept_values_from_db(json: Option<&str>) -> Result<BTreeMap<String, String>> {
    json.map_or_else(
        || Ok(BTreeMap::new()),
        |text| serde_json::from_str(text).map_err(|err| corrupt("a connection's kept values", err)),
    )
}

/// An API key's handle list as stored: a JSON array, or NULL for "every handle".
pub(crate) fn handles_to_db(handles: Option<&[Handle]>) -> Result<Option<String>> {
    handles
        .map(|list| {
            serde_json::to_string(list)
                .map_err(|err| Error::Internal(format!("could not write the key's handles as JSON: {err}")))
        })
        .transpose()
}

/// An API key's handle list read back.
pub(crate) fn handles_from_db(json: Option<&str>) -> Result<Option<Vec<Handle>>> {
    json.map(|text| serde_json::from_str(text).map_err(|err| corrupt("an API key's handle list", err))).transpose()
}

/// A handle read back.
pub(crate) fn handle_from_db(value: &str) -> Result<Handle> {
    Handle::parse(value).map_err(|err| corrupt("a connection handle", err))
}

/// A digest read back from its 32 bytes.
pub(crate) fn digest_from_db(bytes: Vec<u8>) -> Result<Digest> {
    let len = bytes.len();
    <[u8; 32]>::try_from(bytes).map(Digest).map_err(|_| corrupt("a digest", format_args!("{len} bytes instead of 32")))
}

/// An optional digest read back.
pub(crate) fn optional_digest_from_db(bytes: Option<Vec<u8>>) -> Result<Option<Digest>> {
    bytes.map(digest_from_db).transpose()
}

/// A row count as the traits return it.
pub(crate) fn count_from_db(count: i64) -> Result<u64> {
    u64::try_from(count).map_err(|_| corrupt("a row count", format_args!("negative count {count}")))
}
