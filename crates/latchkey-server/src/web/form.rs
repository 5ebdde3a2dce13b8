//! Form bodies: the extractor that reads them, the log-in and connection forms, and how the connection form
//! becomes a [`ConnectionInput`] and is shown again after an error.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use latchkey_core::model::Connection;
use latchkey_core::{Error, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::reply;
use crate::service::connections::ConnectionInput;

/// An `application/x-www-form-urlencoded` body; one that cannot be read is a 400 page (or JSON error).
pub struct WebForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for WebForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = reply::wants_json(req.headers());
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => {
                tracing::debug!(error = %rejection.body_text(), "web form could not be read");
                let err = Error::bad_request("the form could not be read: reload the page and try again");
                Err(reply::failure(&err, json, None))
            }
        }
    }
}

/// The log-in and set-up forms.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CredentialsForm {
    pub username: String,
    pub password: String,
}

/// A form that carries only the anti-forgery token (log out, reconnect, delete).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenForm {
    pub csrf: String,
    /// Set by the delete confirmation (the page's form, or `app.js` after `confirm()`).
    pub confirmed: String,
}

/// The connection form as posted. Every field is text and may be missing; the service decides what is valid.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConnectionForm {
    pub csrf: String,
    pub provider: String,
    pub client_id: String,
    pub client_secret: String,
    pub authorization_url: String,
    pub token_url: String,
    pub name: String,
    pub handle: String,
    pub scopes: String,
}

fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

impl ConnectionForm {
    /// The service's input for this form. `handle` is the form's on create and `None` on edit (the path names
    /// the connection, and the handle never changes). An empty OAuth Name or Client Secret is `None`: the name
    /// then defaults to the handle (create) or stays (edit), and the stored secret stays. The required fields
    /// and the scopes are passed as typed, so that clearing them on edit is seen, not silently ignored.
    #[must_use]
    pub fn to_input(&self, editing: bool) -> ConnectionInput {
        ConnectionInput {
            handle: if editing { None } else { Some(self.handle.trim().to_owned()) },
            name: non_empty(&self.name),
            provider: non_empty(&self.provider),
            authorization_url: Some(self.authorization_url.trim().to_owned()),
            token_url: Some(self.token_url.trim().to_owned()),
            client_id: Some(self.client_id.trim().to_owned()),
            client_secret: non_empty(&self.client_secret).map(Secret::new),
            scopes: Some(self.scopes.trim().to_owned()),
            ..ConnectionInput::default()
        }
    }

    /// The values to show again after an error: everything but the client secret.
    #[must_use]
    pub fn values(&self) -> FormValues {
        FormValues {
            provider: non_empty(&self.provider).unwrap_or_else(|| "custom".to_owned()),
            client_id: self.client_id.clone(),
            authorization_url: self.authorization_url.clone(),
            token_url: self.token_url.clone(),
            name: self.name.clone(),
            handle: self.handle.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// What the connection form shows in its fields. Never holds the client secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormValues {
    pub provider: String,
    pub client_id: String,
    pub authorization_url: String,
    pub token_url: String,
    pub name: String,
    pub handle: String,
    pub scopes: String,
}

impl Default for FormValues {
    fn default() -> Self {
        Self {
            provider: "custom".to_owned(),
            client_id: String::new(),
            authorization_url: String::new(),
            token_url: String::new(),
            name: String::new(),
            handle: String::new(),
            scopes: String::new(),
        }
    }
}

impl FormValues {
    /// The stored values of `connection`, for its edit form.
    #[must_use]
    pub fn of(connection: &Connection) -> Self {
        let s = &connection.settings;
        Self {
            provider: connection.provider.clone(),
            client_id: s.client_id.clone(),
            authorization_url: s.authorization_url.clone(),
            token_url: s.token_url.clone(),
            name: connection.name.clone(),
            handle: connection.handle.to_string(),
            scopes: s.scopes.clone(),
        }
    }
}

/// The fields the connection form shows, by the names the service's errors use.
pub const FORM_FIELDS: [&str; 8] =
    ["provider", "client_id", "client_secret", "authorization_url", "token_url", "name", "handle", "scopes"];

/// An error to show on a form: next to its field when the form has it, else above the form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormError {
    field: Option<String>,
    message: Option<String>,
    fields: &'static [&'static str],
}

impl FormError {
    /// No error.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// An error on a form whose fields are `fields`; `field` names the one at fault, if any.
    #[must_use]
    pub fn new(fields: &'static [&'static str], field: Option<&str>, message: impl Into<String>) -> Self {
        Self { field: field.map(str::to_owned), message: Some(message.into()), fields }
    }

    /// Whether there is an error.
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.message.is_some()
    }

    /// The message for `field`, or "" when the error is not about it.
    #[must_use]
    pub fn for_field(&self, field: &str) -> &str {
        match (&self.field, &self.message) {
            (Some(f), Some(m)) if f == field => m,
            _ => "",
        }
    }

    /// The message when no field of the form shows it, or "".
    #[must_use]
    pub fn general(&self) -> &str {
        match (&self.field, &self.message) {
            (Some(f), Some(_)) if self.fields.contains(&f.as_str()) => "",
            (_, Some(m)) => m,
            (_, None) => "",
        }
    }
}

/// The status a form answers with when `err` stopped it, and the error to show on it.
#[must_use]
pub fn form_error(err: &Error, fields: &'static [&'static str]) -> (StatusCode, FormError) {
    let (status, text) = reply::describe(err);
    (status, FormError::new(fields, reply::error_field(err), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> ConnectionForm {
        ConnectionForm {
            csrf: "t".into(),
            provider: "custom".into(),
            client_id: " my-client ".into(),
            client_secret: "s3cret".into(),
            authorization_url: "https://p.example/authorize".into(),
            token_url: "https://p.example/token ".into(),
            name: "My API".into(),
            handle: "my-api".into(),
            scopes: " read:data  write:data ".into(),
        }
    }

    #[test]
    fn the_form_maps_to_the_service_input() {
        let input = filled().to_input(false);
        assert_eq!(input.handle.as_deref(), Some("my-api"));
        assert_eq!(input.name.as_deref(), Some("My API"));
        assert_eq!(input.provider.as_deref(), Some("custom"));
        assert_eq!(input.client_id.as_deref(), Some("my-client"));
        assert_eq!(input.client_secret.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(input.authorization_url.as_deref(), Some("https://p.example/authorize"));
        assert_eq!(input.token_url.as_deref(), Some("https://p.example/token"));
        assert_eq!(input.scopes.as_deref(), Some("read:data  write:data"));
        assert!(input.grant_type.is_none() && input.redirect_uri.is_none());
    }

    #[test]
    fn empty_optional_fields_are_none() {
        let form = ConnectionForm { name: "  ".into(), client_secret: String::new(), ..filled() };
        let input = form.to_input(false);
        assert_eq!(input.name, None);
        assert_eq!(input.client_secret, None);
    }

    #[test]
    fn editing_never_sends_a_handle() {
        let input = filled().to_input(true);
        assert_eq!(input.handle, None);
        let cleared = ConnectionForm { scopes: String::new(), ..filled() }.to_input(true);
        assert_eq!(cleared.scopes.as_deref(), Some(""), "clearing the scopes on edit must reach the service");
    }

    #[test]
    fn values_shown_again_never_hold_the_secret() {
        let values = filled().values();
        assert_eq!(values.handle, "my-api");
        assert_eq!(values.client_id, " my-client ");
        assert!(!format!("{values:?}").contains("s3cret"));
    }

    #[test]
    fn errors_sit_next_to_their_field_or_above_the_form() {
        let on_handle = FormError::new(&FORM_FIELDS, Some("handle"), "taken");
        assert_eq!(on_handle.for_field("handle"), "taken");
        assert_eq!(on_handle.for_field("name"), "");
        assert_eq!(on_handle.general(), "");
        let elsewhere = FormError::new(&FORM_FIELDS, Some("scope_separator"), "bad separator");
        assert_eq!(elsewhere.general(), "bad separator");
        let unplaced = FormError::new(&FORM_FIELDS, None, "provider down");
        assert_eq!(unplaced.general(), "provider down");
        assert!(!FormError::none().is_set());
        assert_eq!(FormError::none().general(), "");
    }
}
