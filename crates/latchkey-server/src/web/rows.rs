//! What one row of a list shows: a connection with its status and token times, or an API key; and the snippets
//! that fetch a connection's token, rendered once per list. Built from stored records and the server's clock;
//! never holds a secret.

use latchkey_core::Timestamp;
use latchkey_core::model::{ApiKey, ConnectionSummary, Status};

use super::reply::sentence;
use super::services;
use super::when::{self, When};
use crate::config::Config;

/// One connection in the list.
#[derive(Debug, Clone)]
pub struct ConnectionRow {
    pub name: String,
    pub handle: String,
    /// The provider's name for people ("Custom OAuth 2.0").
    pub provider: String,
    /// The contract's word (`connected`, ...), for the style.
    pub status: &'static str,
    /// The status in words, for people.
    pub status_words: &'static str,
    /// One sentence under the status: `last_error` in words, or what to do next.
    pub note: String,
    /// Whether `note` describes a problem.
    pub problem: bool,
    /// The requested scopes, space-separated ("" for none).
    pub scopes: String,
    /// The scopes the provider granted, when it said and they differ from the requested ones.
    pub granted: Option<String>,
    /// When the access token expires (or expired).
    pub expires: Option<When>,
    /// Tokens are stored at all.
    pub has_token: bool,
    /// When tokens were last written (authorization or refresh).
    pub refreshed: Option<When>,
    /// Whether a person should reconnect it.
    pub needs_attention: bool,
    /// The grant's contract spelling: `app.js` opens a consent window only for `authorization_code`, and keeps
    /// a pending `device_code` row up to date while the person approves elsewhere.
    pub grant: &'static str,
}

/// The "Use it" snippets with [`Usage::PLACEHOLDER`] for the handle: rendered once per list, filled in by
/// `app.js` for the row whose "Use it" opens.
#[derive(Debug, Clone)]
pub struct Usage {
    pub placeholder: &'static str,
    /// `curl` fetching the token.
    pub curl: String,
    /// The CLI fetching the token.
    pub cli: String,
    /// The JavaScript call, with the list's one `getOAuthToken` function.
    pub js: String,
}

impl Usage {
    /// Stands for the handle; a handle is lowercase letters, digits and hyphens, so it cannot contain this.
    pub const PLACEHOLDER: &'static str = "__handle__";

    /// The snippets for a server configured by `config`.
    #[must_use]
    pub fn new(config: &Config) -> Self {
        let handle = Self::PLACEHOLDER;
        Self {
            placeholder: handle,
            curl: curl_snippet(config, handle),
            cli: format!("latchkey token {handle}"),
            js: js_call(handle),
        }
    }
}

impl ConnectionRow {
    /// The row of `connection` at `now`.
    #[must_use]
    pub fn new(connection: &ConnectionSummary, now: Timestamp) -> Self {
        let handle = connection.handle.to_string();
        let (note, problem) = note(connection);
        let scopes = connection.scopes.clone();
        let granted = connection
            .granted_scope
            .as_deref()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|g| !g.is_empty() && *g != scopes);
        Self {
            name: connection.name.clone(),
            provider: services::label(&connection.provider).to_owned(),
            status: connection.status.as_str(),
            status_words: connection.status.in_words(),
            note,
            problem,
            scopes,
            granted,
            expires: connection.expires_at.filter(|_| connection.has_tokens).map(|at| when::expiry(now, at)),
            has_token: connection.has_tokens,
            refreshed: connection.last_refreshed_at.map(|at| when::ago(now, at, "refreshed")),
            needs_attention: connection.status != Status::Connected,
            grant: connection.grant_type.as_str(),
            handle,
        }
    }
}

/// The sentence under a connection's status, and whether it is a problem.
fn note(connection: &ConnectionSummary) -> (String, bool) {
    if let Some(error) = connection.last_error.as_deref().filter(|e| !e.trim().is_empty()) {
        return (sentence(error), true);
    }
    let text = match connection.status {
        Status::Connected => "Scripts can fetch its token.",
        Status::Pending => "Not authorized yet: choose Reconnect and approve access at the provider.",
        Status::NeedsReauth => "The provider no longer accepts the stored tokens: choose Reconnect.",
        Status::Error => "The last attempt failed: choose Reconnect to try again.",
    };
    (text.to_owned(), connection.status != Status::Connected && connection.status != Status::Pending)
}

/// `curl` asking latchkey for the token of `handle`.
#[must_use]
pub fn curl_snippet(config: &Config, handle: &str) -> String {
    let url = config.public(&format!("/api/v1/connections/{handle}/token"));
    format!("curl -H \"Authorization: Bearer $LATCHKEY_API_KEY\" {url}")
}

/// The one line that asks for the token of `handle` with [`js_function`].
#[must_use]
pub fn js_call(handle: &str) -> String {
    format!("const {{ token, error }} = await getOAuthToken('{handle}')")
}

/// The JavaScript function `getOAuthToken(handle)`, shown once on the list and runnable as an ES module in Node
/// 18 or later: it answers `{ token, error }`, the token and `null`, or `null` and a sentence saying what failed.
#[must_use]
pub fn js_function(config: &Config) -> String {
    // A JSON string is a valid JavaScript string literal, whatever the public URL holds.
    let base = serde_json::to_string(&config.public("/api/v1/connections/")).unwrap_or_else(|_| "\"/\"".to_owned());
    format!(
        "async function getOAuthToken(handle) {{
  try {{
    const response = await fetch({base} + encodeURIComponent(handle) + '/token', {{
      headers: {{ Authorization: `Bearer ${{process.env.LATCHKEY_API_KEY}}` }},
    }})
    const body = await response.json().catch(() => ({{}}))
    if (!response.ok) {{
      return {{ token: null, error: body.error || `latchkey answered HTTP ${{response.status}}` }}
    }}
    return {{ token: body.token, error: null }}
  }} catch (err) {{
    return {{ token: null, error: `latchkey could not be reached: ${{err.message}}` }}
  }}
}}"
    )
}

/// One API key in the list.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// The handles it may read, or "all".
    pub handles: String,
    /// Whether it is limited to some handles.
    pub limited: bool,
    pub created: When,
    pub last_used: Option<When>,
    pub revoked: Option<When>,
    /// When it expires or expired, if it does.
    pub expires: Option<When>,
    /// Whether it has expired.
    pub expired: bool,
}

impl ApiKeyRow {
    /// The row of `key` at `now`.
    #[must_use]
    pub fn new(key: &ApiKey, now: Timestamp) -> Self {
        let handles = key.handles.as_ref().map(|hs| hs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
        Self {
            id: key.id.to_string(),
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            limited: handles.is_some(),
            handles: handles.unwrap_or_else(|| "all".to_owned()),
            created: when::ago(now, key.created_at, ""),
            last_used: key.last_used_at.map(|at| when::ago(now, at, "")),
            revoked: key.revoked_at.map(|at| when::ago(now, at, "")),
            expires: key.expires_at.map(|at| when::expiry(now, at)),
            expired: key.is_expired(now),
        }
    }
}
