//! First-run set-up: while no user exists, the server makes a one-time link that creates the first admin
//! account in the browser. Each start replaces the previous link.

use latchkey_crypto::tokens::{digest, random_token};

use crate::state::AppState;

/// How long a set-up link stays valid.
const SETUP_LINK_TTL_SECS: i64 = 24 * 3600;

/// Makes a new set-up link when no user exists yet; `None` otherwise.
///
/// # Errors
/// Storage failures.
pub async fn prepare(state: &AppState) -> anyhow::Result<Option<String>> {
    if state.store.count_users().await.map_err(|e| anyhow::anyhow!("{e}"))? > 0 {
        return Ok(None);
    }
    let token = random_token(32);
    let expires = state.clock.now().plus_secs(SETUP_LINK_TTL_SECS);
    state.store.put_setup_token(&digest(&token), expires).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(state.config.public(&format!("/setup/{token}"))))
}
