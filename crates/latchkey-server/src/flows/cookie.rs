//! The cookie that binds an authorization flow to the browser that opened its link.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use latchkey_core::model::Digest;

use crate::config::Config;

/// The cookie's name for the flow whose state has this digest; one cookie per flow, so that two flows started
/// in the same browser do not overwrite each other. On https the `__Host-` prefix pins it to this host.
#[must_use]
pub fn name(config: &Config, state_hash: &Digest) -> String {
    let tag: String = state_hash.0[..6].iter().map(|b| format!("{b:02x}")).collect();
    let prefix = if config.is_https() { "__Host-" } else { "" };
    format!("{prefix}latchkey_flow_{tag}")
}

/// The `Set-Cookie` value that stores `value` for `max_age` seconds.
#[must_use]
pub fn set(config: &Config, name: &str, value: &str, max_age: u64) -> String {
    let secure = if config.is_https() { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// The `Set-Cookie` value that removes the cookie.
#[must_use]
pub fn clear(config: &Config, name: &str) -> String {
    set(config, name, "", 0)
}

/// The value of cookie `name` in the request, if any.
#[must_use]
pub fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
