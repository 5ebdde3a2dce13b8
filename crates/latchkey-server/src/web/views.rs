//! The pages of the web UI as askama templates (`templates/web/*.html`, all extending `web/base.html`). Every
//! value is escaped by askama; no field here ever holds a secret (the client secret is shown only as "stored").

use askama::Template;
use latchkey_core::Timestamp;
use latchkey_core::model::{Connection, Session, Status, User};

use super::form::{FormError, FormValues};
use crate::config::Config;

/// The header's navigation for a logged-in person: who, and the log-out form's token.
#[derive(Debug, Clone)]
pub struct Nav {
    pub username: String,
    pub csrf: String,
}

impl Nav {
    /// The navigation of this session.
    #[must_use]
    pub fn of(session: &Session, user: &User) -> Self {
        Self { username: user.username.clone(), csrf: session.csrf_token.clone() }
    }
}

/// A page that only says something.
#[derive(Template)]
#[template(path = "web/message.html")]
pub struct MessagePage {
    pub nav: Option<Nav>,
    pub title: String,
    pub message: String,
    pub link_href: String,
    pub link_text: String,
}

/// The log-in page.
#[derive(Template)]
#[template(path = "web/login.html")]
pub struct LoginPage {
    pub nav: Option<Nav>,
    pub username: String,
    pub error: FormError,
    /// No user exists yet: say where the set-up link is.
    pub setup_pending: bool,
}

/// The first-run set-up page.
#[derive(Template)]
#[template(path = "web/setup.html")]
pub struct SetupPage {
    pub nav: Option<Nav>,
    /// The form's target, `/setup/{token}`.
    pub action: String,
    pub username: String,
    pub error: FormError,
    pub min_password_len: usize,
}

/// One connection in the list.
pub struct ConnectionRow {
    pub name: String,
    pub handle: String,
    /// The contract's word (`connected`, ...), for the style.
    pub status: &'static str,
    /// The status in words, for people.
    pub status_words: &'static str,
    pub last_error: Option<String>,
    /// When the access token expires, RFC 3339.
    pub expires_at: Option<String>,
    /// Whether tokens are stored at all.
    pub has_token: bool,
    /// Whether a person should reconnect it.
    pub needs_attention: bool,
    /// `curl` fetching its token.
    pub curl: String,
    /// The CLI fetching its token.
    pub cli: String,
}

impl ConnectionRow {
    /// The row of `connection` on a server configured by `config`.
    #[must_use]
    pub fn new(connection: &Connection, config: &Config) -> Self {
        let handle = connection.handle.to_string();
        let token_url = config.public(&format!("/api/v1/connections/{handle}/token"));
        Self {
            name: connection.name.clone(),
            status: connection.status.as_str(),
            status_words: connection.status.in_words(),
            last_error: connection.last_error.clone(),
            expires_at: connection.tokens.as_ref().and_then(|t| t.expires_at).map(Timestamp::to_rfc3339),
            has_token: connection.tokens.is_some(),
            needs_attention: connection.status != Status::Connected,
            curl: format!("curl -H \"Authorization: Bearer $LATCHKEY_API_KEY\" {token_url}"),
            cli: format!("latchkey token {handle}"),
            handle,
        }
    }
}

/// The list of connections, "OAuth2 Tokens".
#[derive(Template)]
#[template(path = "web/list.html")]
pub struct ListPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub rows: Vec<ConnectionRow>,
    /// The redirect URL to register with providers.
    pub redirect_uri: String,
    /// The public URL, for `LATCHKEY_URL`.
    pub public_url: String,
    pub username: String,
    /// An error from the last action (reconnect, delete).
    pub error: String,
}

/// The connection form, to create or to edit.
#[derive(Template)]
#[template(path = "web/connection_form.html")]
pub struct ConnectionFormPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub editing: bool,
    pub title: String,
    /// Where the form posts.
    pub action: String,
    /// The default redirect URL, to copy into the provider's console.
    pub redirect_uri: String,
    pub values: FormValues,
    /// A client secret is stored: the field stays empty and says so.
    pub secret_stored: bool,
    pub error: FormError,
}

/// The delete confirmation, for browsers without JavaScript.
#[derive(Template)]
#[template(path = "web/delete.html")]
pub struct DeletePage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub name: String,
    pub handle: String,
}
