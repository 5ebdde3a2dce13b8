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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Settings;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        settings: Settings,
    }

    fn config(public_url: &str) -> Config {
        let command = Command::try_parse_from(["latchkey", "--public-url", public_url]).expect("arguments");
        Config::from_settings(&command.settings).expect("config")
    }

    #[test]
    fn on_https_the_cookie_is_pinned_to_this_host_and_secure() {
        let config = config("https://latchkey.example");
        let name = name(&config, &Digest([7; 32]));
        assert!(name.starts_with("__Host-latchkey_flow_"), "{name}");
        let cookie = set(&config, &name, "v", 600);
        assert_eq!(cookie, format!("{name}=v; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"));
    }

    #[test]
    fn on_plain_http_the_cookie_is_still_http_only_and_same_site() {
        let config = config("http://127.0.0.1:8080");
        let name = name(&config, &Digest([7; 32]));
        assert_eq!(name, "latchkey_flow_070707070707");
        assert_eq!(set(&config, &name, "v", 600), format!("{name}=v; Path=/; Max-Age=600; HttpOnly; SameSite=Lax"));
        assert_eq!(clear(&config, &name), format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"));
    }
}
