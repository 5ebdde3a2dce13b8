//! The pages of the web UI as askama templates (`templates/web/*.html`, all extending `web/base.html`). Every
//! value is escaped by askama; no field here ever holds a secret, except [`ApiKeysPage::created`], the new API
//! key shown the one time it exists in clear.

use askama::Template;
use latchkey_core::model::{Session, User};

use super::device::DeviceBox;
use super::form::{FormError, FormValues};
use super::rows::{ApiKeyRow, ConnectionRow, Usage};
use super::services::{PresetForm, ServiceOption};

/// The part of the Settings area a page belongs to, for the navigation's `aria-current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// "OAuth2 Tokens": the connections.
    Connections,
    /// "API Keys".
    ApiKeys,
    /// "Notifications": the webhook.
    Notifications,
}

/// The header's navigation for a logged-in person: who, where, and the log-out form's token.
#[derive(Debug, Clone)]
pub struct Nav {
    pub username: String,
    pub csrf: String,
    pub section: Section,
}

impl Nav {
    /// The navigation of this session, on a connections page.
    #[must_use]
    pub fn of(session: &Session, user: &User) -> Self {
        Self { username: user.username.clone(), csrf: session.csrf_token.clone(), section: Section::Connections }
    }

    /// The same navigation on a page of `section`.
    #[must_use]
    pub fn on(self, section: Section) -> Self {
        Self { section, ..self }
    }

    /// Whether the page belongs to the connections.
    #[must_use]
    pub fn on_connections(&self) -> bool {
        self.section == Section::Connections
    }

    /// Whether the page belongs to the API keys.
    #[must_use]
    pub fn on_api_keys(&self) -> bool {
        self.section == Section::ApiKeys
    }

    /// Whether the page belongs to the notifications.
    #[must_use]
    pub fn on_notifications(&self) -> bool {
        self.section == Section::Notifications
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
    /// The JavaScript function every row's one-line call uses, shown once.
    pub js_function: String,
    /// The "Use it" snippets, once, for `app.js` to fill in a row's handle.
    pub usage: Usage,
    /// A sentence about the last action that went well ("'crm' was deleted"), or "".
    pub notice: String,
    /// An error from the last action (reconnect, delete), or "".
    pub error: String,
}

/// One row of the list on its own, for `app.js` to swap in after an authorization.
#[derive(Template)]
#[template(path = "web/row.html")]
pub struct RowFragment {
    pub csrf: String,
    pub row: ConnectionRow,
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
    /// The service picker's options (on the create form; the edit form names its service).
    pub services: Vec<ServiceOption>,
    /// The service's name for people, on the edit form.
    pub service_label: String,
    /// The chosen preset's form, when creating from a preset: only what that provider needs is asked.
    pub preset: Option<PresetForm>,
    pub values: FormValues,
    /// A client secret is stored: the field stays empty and says so.
    pub secret_stored: bool,
    pub error: FormError,
    /// The Advanced section starts open: an error sits in it.
    pub advanced_open: bool,
}

impl ConnectionFormPage {
    /// Whether the form asks for a client secret: always, except for a preset of a public client.
    #[must_use]
    pub fn asks_secret(&self) -> bool {
        !self.preset.as_ref().is_some_and(|p| p.public_client)
    }
}

/// The page of a device authorization under way: the code to type, where, and the row that turns connected.
#[derive(Template)]
#[template(path = "web/device.html")]
pub struct DevicePage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub row: ConnectionRow,
    /// The codes to show; `None` when no device authorization is under way.
    pub device: Option<DeviceBox>,
}

/// A confirmation before something that cannot be undone, for browsers without JavaScript (with it, `app.js`
/// asks with `confirm()`).
#[derive(Template)]
#[template(path = "web/confirm.html")]
pub struct ConfirmPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub title: String,
    pub message: String,
    /// Where the confirmed form posts.
    pub action: String,
    pub button: String,
    pub back_href: String,
}

/// The API keys page: the form that creates one, the key just created (once), and the list.
#[derive(Template)]
#[template(path = "web/api_keys.html")]
pub struct ApiKeysPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub rows: Vec<ApiKeyRow>,
    /// The key just created, shown this once: its name and the key itself.
    pub created: Option<(String, String)>,
    /// The form's values after a refused create: name and handles.
    pub name: String,
    pub handles: String,
    /// The form's days until expiry after a refused create.
    pub expires_in_days: String,
    pub error: FormError,
    /// The public URL, for `LATCHKEY_URL`.
    pub public_url: String,
}
