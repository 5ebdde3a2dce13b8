//! Opening what every command needs: the database (migrations applied) and the master key ring, checked against
//! the database so that a wrong key is refused at start instead of making every connection look empty.

use std::sync::Arc;

use anyhow::Context;
use latchkey_core::store::Store;
use latchkey_crypto::Keyring;
use latchkey_crypto::keyfile::{KeySource, load_keyring};

/// The name under which the sealed key check is kept in the meta table.
const KEY_CHECK: &str = "key_check";

/// Opens the store and the key ring and checks that they belong together.
///
/// # Errors
/// A database that cannot be opened, a key that cannot be read, or a key that does not match the database.
pub async fn open(database_url: &str, key_source: &KeySource) -> anyhow::Result<(Arc<dyn Store>, Keyring)> {
    let loaded = load_keyring(key_source).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = latchkey_store::connect(database_url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("could not open the database {}", redact_url(database_url)))?;
    let keyring = loaded.keyring;
    match store.get_meta(KEY_CHECK).await.map_err(|e| anyhow::anyhow!("{e}"))? {
        Some(check) => keyring.verify_key_check(&check).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => {
            store.put_meta(KEY_CHECK, &keyring.make_key_check()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(key_id = %keyring.current_id(), source = %loaded.description, "database bound to the master key");
        }
    }
    Ok((store, keyring))
}

/// A database URL with any password replaced, for messages.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return url.to_owned() };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("****"));
    }
    if parsed.query().is_some() {
        // Query parameters may carry a password (`?password=...`) or TLS key material: show their names only.
        let names: Vec<String> = parsed.query_pairs().map(|(k, _)| format!("{k}=****")).collect();
        parsed.set_query(Some(&names.join("&")));
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(redact_url("postgres://me:secret@db/x"), "postgres://me:****@db/x");
        assert_eq!(redact_url("sqlite://latchkey-data/latchkey.db"), "sqlite://latchkey-data/latchkey.db");
        assert_eq!(
            redact_url("postgres://db/x?password=hunter2&sslmode=require"),
            "postgres://db/x?password=****&sslmode=****"
        );
    }
}
