//! Form bodies: the extractor that reads them, the log-in and connection forms, and how the connection form
//! becomes a [`ConnectionInput`] and is shown again after an error.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use latchkey_core::model::Connection;
use latchkey_core::{Error, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::advanced::{self, AdvancedValues};
use super::reply;
use crate::presets::Preset;
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

/// The connection form as posted: every field as text, present or not. A field the form does not show (a
/// preset's form has no URLs, a create form no Advanced section on a preset) is absent and leaves that setting
/// to the preset or to the stored connection; a field shown and emptied is passed on, so that clearing it is
/// seen. Of a repeated field the first counts.
#[derive(Default)]
pub struct ConnectionForm {
    fields: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for ConnectionForm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(String, String)>::deserialize(deserializer)?;
        let mut fields = BTreeMap::new();
        for (name, value) in pairs {
            fields.entry(name).or_insert(value);
        }
        Ok(Self { fields })
    }
}

fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The prefix of a preset's connection parameter fields: `param.subdomain`.
pub const PARAM_PREFIX: &str = "param.";

impl ConnectionForm {
    /// A form with these fields.
    #[cfg(test)]
    #[must_use]
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut fields = BTreeMap::new();
        for (name, value) in pairs {
            fields.entry(name.to_owned()).or_insert_with(|| value.to_owned());
        }
        Self { fields }
    }

    /// The field as posted, if it was.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    fn trimmed(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.trim().to_owned())
    }

    /// The anti-forgery token.
    #[must_use]
    pub fn csrf(&self) -> &str {
        self.get("csrf").unwrap_or_default()
    }

    /// The `provider` field, `custom` when absent or empty.
    #[must_use]
    pub fn provider(&self) -> String {
        self.get("provider").and_then(non_empty).unwrap_or_else(|| "custom".to_owned())
    }

    /// A select's value as the contract's word; `None` when absent or empty.
    fn word<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        self.get(name).filter(|v| !v.trim().is_empty()).map(|v| advanced::parse_word(name, v)).transpose()
    }

    /// The connection parameters a preset's form posts as `param.<name>` fields.
    fn preset_params(&self) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(PARAM_PREFIX).map(|name| (name.to_owned(), v.trim().to_owned())))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// The service's input for this form. `handle` is the form's on create and `None` on edit (the path names
    /// the connection, and the handle never changes). An empty OAuth Name or Client Secret is `None`: the name
    /// then defaults to the handle (create) or stays (edit), and the stored secret stays.
    ///
    /// # Errors
    /// `Invalid` naming the Advanced field whose text cannot be read.
    pub fn to_input(&self, editing: bool) -> Result<ConnectionInput, Error> {
        let map = |name: &str| self.get(name).map(|text| advanced::parse_lines(name, text)).transpose();
        let mut connection_params = map("connection_params")?;
        let preset_params = self.preset_params();
        if !preset_params.is_empty() {
            connection_params.get_or_insert_with(BTreeMap::new).extend(preset_params);
        }
        Ok(ConnectionInput {
            handle: if editing { None } else { Some(self.text("handle").trim().to_owned()) },
            name: self.get("name").and_then(non_empty),
            provider: self.get("provider").and_then(non_empty),
            authorization_url: self.trimmed("authorization_url"),
            token_url: self.trimmed("token_url"),
            client_id: self.trimmed("client_id"),
            client_secret: self.get("client_secret").and_then(non_empty).map(Secret::new),
            scopes: self.trimmed("scopes"),
            grant_type: self.word("grant_type")?,
            pkce: self.word("pkce")?,
            client_auth: self.word("client_auth")?,
            token_request_format: self.word("token_request_format")?,
            authorization_params: map("authorization_params")?,
            token_params: map("token_params")?,
            refresh_params: map("refresh_params")?,
            request_headers: map("request_headers")?,
            scope_separator: self.get("scope_separator").filter(|s| !s.is_empty()).map(str::to_owned),
            default_expires_in: self.get("default_expires_in").map(advanced::parse_seconds).transpose()?.flatten(),
            refresh_url: self.trimmed("refresh_url"),
            revocation_url: self.trimmed("revocation_url"),
            redirect_uri: self.trimmed("redirect_uri"),
            refresh_client_auth: self.trimmed("refresh_client_auth"),
            revocation_request_format: self.trimmed("revocation_request_format"),
            token_response_map: map("token_response_map")?,
            keep_response_fields: self.get("keep_response_fields").map(advanced::parse_list),
            keep_callback_params: self.get("keep_callback_params").map(advanced::parse_list),
            device_authorization_url: self.trimmed("device_authorization_url"),
            issuer: self.trimmed("issuer"),
            connection_params,
        })
    }

    /// The values to show again after an error: everything but the client secret.
    #[must_use]
    pub fn values(&self) -> FormValues {
        FormValues {
            provider: self.provider(),
            client_id: self.text("client_id"),
            authorization_url: self.text("authorization_url"),
            token_url: self.text("token_url"),
            name: self.text("name"),
            handle: self.text("handle"),
            scopes: self.text("scopes"),
            params: self.preset_params(),
            advanced: AdvancedValues::from_fields(|name| self.get(name).map(str::to_owned)),
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
    /// A preset's connection parameters, by name.
    pub params: BTreeMap<String, String>,
    pub advanced: AdvancedValues,
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
            params: BTreeMap::new(),
            advanced: AdvancedValues::default(),
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
            params: s.connection_params.clone(),
            advanced: AdvancedValues::of(s),
        }
    }

    /// A new connection from `preset`: its default scopes and the defaults of its parameters.
    #[must_use]
    pub fn for_preset(preset: &Preset) -> Self {
        Self {
            provider: preset.id.clone(),
            scopes: preset.scopes.clone(),
            params: preset
                .connection_params
                .iter()
                .filter_map(|p| p.default.as_ref().map(|d| (p.name.clone(), d.clone())))
                .collect(),
            ..Self::default()
        }
    }
}

/// The basic fields of a custom or edit form, before its Advanced section.
const BASIC_FIELDS: [&str; 8] =
    ["provider", "client_id", "client_secret", "authorization_url", "token_url", "name", "handle", "scopes"];

/// The fields a custom or edit form shows, by the names the service's errors use: the basic ones and the Advanced
/// section's.
pub const FORM_FIELDS: [&str; 29] = join_fields(BASIC_FIELDS, super::advanced::ADVANCED_FIELDS);

/// `a` followed by `b`, at compile time.
const fn join_fields<const A: usize, const B: usize, const C: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; C] {
    assert!(A + B == C, "the joined list has room for both");
    let mut out = [""; C];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < C {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

/// The fields a preset's create form shows.
pub const PRESET_FORM_FIELDS: [&str; 8] =
    ["provider", "client_id", "client_secret", "name", "handle", "scopes", "connection_params", "grant_type"];

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

    /// The same error on a form whose fields are `fields`.
    #[must_use]
    pub fn on(self, fields: &'static [&'static str]) -> Self {
        Self { fields, ..self }
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
        ConnectionForm::from_pairs([
            ("csrf", "t"),
            ("provider", "custom"),
            ("client_id", " my-client "),
            ("client_secret", "s3cret"),
            ("authorization_url", "https://p.example/authorize"),
            ("token_url", "https://p.example/token "),
            ("name", "My API"),
            ("handle", "my-api"),
            ("scopes", " read:data  write:data "),
        ])
    }

    fn with(extra: &[(&'static str, &'static str)]) -> ConnectionForm {
        let mut form = filled();
        for (k, v) in extra {
            form.fields.insert((*k).to_owned(), (*v).to_owned());
        }
        form
    }

    #[test]
    fn the_form_maps_to_the_service_input() {
        let input = filled().to_input(false).expect("input");
        assert_eq!(input.handle.as_deref(), Some("my-api"));
        assert_eq!(input.name.as_deref(), Some("My API"));
        assert_eq!(input.provider.as_deref(), Some("custom"));
        assert_eq!(input.client_id.as_deref(), Some("my-client"));
        assert_eq!(input.client_secret.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(input.authorization_url.as_deref(), Some("https://p.example/authorize"));
        assert_eq!(input.token_url.as_deref(), Some("https://p.example/token"));
        assert_eq!(input.scopes.as_deref(), Some("read:data  write:data"));
        assert!(input.grant_type.is_none() && input.redirect_uri.is_none() && input.token_params.is_none());
    }

    #[test]
    fn empty_optional_fields_are_none() {
        let input = with(&[("name", "  "), ("client_secret", "")]).to_input(false).expect("input");
        assert_eq!(input.name, None);
        assert_eq!(input.client_secret, None);
    }

    #[test]
    fn editing_never_sends_a_handle() {
        let input = filled().to_input(true).expect("input");
        assert_eq!(input.handle, None);
        let cleared = with(&[("scopes", "")]).to_input(true).expect("input");
        assert_eq!(cleared.scopes.as_deref(), Some(""), "clearing the scopes on edit must reach the service");
    }

    #[test]
    fn a_preset_form_leaves_the_urls_to_the_preset() {
        let form = ConnectionForm::from_pairs([
            ("provider", "zendesk"),
            ("client_id", "id"),
            ("param.subdomain", " acme "),
            ("handle", "desk"),
        ]);
        let input = form.to_input(false).expect("input");
        assert_eq!(input.authorization_url, None);
        assert_eq!(input.token_url, None);
        assert_eq!(input.scopes, None);
        assert_eq!(input.connection_params.unwrap().get("subdomain").map(String::as_str), Some("acme"));
        assert_eq!(form.values().params.get("subdomain").map(String::as_str), Some("acme"));
    }

    #[test]
    fn the_advanced_fields_reach_the_service() {
        let input = with(&[
            ("grant_type", "client_credentials"),
            ("pkce", "off"),
            ("token_request_format", "json"),
            ("revocation_request_format", "form"),
            ("token_params", "audience=https://api.example\n"),
            ("token_response_map", "access_token=data.token"),
            ("default_expires_in", "3600"),
            ("keep_response_fields", "instance_url, team.id"),
            ("refresh_url", ""),
            ("scope_separator", ","),
        ])
        .to_input(true)
        .expect("input");
        assert_eq!(input.grant_type, Some(latchkey_core::settings::GrantType::ClientCredentials));
        assert_eq!(input.pkce, Some(latchkey_core::settings::Pkce::Off));
        assert_eq!(input.revocation_request_format.as_deref(), Some("form"));
        assert_eq!(input.token_params.unwrap().get("audience").map(String::as_str), Some("https://api.example"));
        assert_eq!(input.token_response_map.unwrap().get("access_token").map(String::as_str), Some("data.token"));
        assert_eq!(input.default_expires_in, Some(3600));
        assert_eq!(input.keep_response_fields, Some(vec!["instance_url".to_owned(), "team.id".to_owned()]));
        assert_eq!(input.refresh_url.as_deref(), Some(""), "an emptied URL clears it");
        assert_eq!(input.scope_separator.as_deref(), Some(","));
        let err = with(&[("authorization_params", "prompt")]).to_input(false).unwrap_err();
        assert_eq!(reply::error_field(&err), Some("authorization_params"));
        let err = with(&[("pkce", "plain")]).to_input(false).unwrap_err();
        assert_eq!(reply::error_field(&err), Some("pkce"));
    }

    #[test]
    fn values_shown_again_never_hold_the_secret() {
        let values = with(&[("token_params", "a=b")]).values();
        assert_eq!(values.handle, "my-api");
        assert_eq!(values.client_id, " my-client ");
        assert_eq!(values.advanced.token_params, "a=b");
        assert!(!format!("{values:?}").contains("s3cret"));
    }

    #[test]
    fn errors_sit_next_to_their_field_or_above_the_form() {
        let on_handle = FormError::new(&FORM_FIELDS, Some("handle"), "taken");
        assert_eq!(on_handle.for_field("handle"), "taken");
        assert_eq!(on_handle.for_field("name"), "");
        assert_eq!(on_handle.general(), "");
        let elsewhere = FormError::new(&PRESET_FORM_FIELDS, Some("scope_separator"), "bad separator");
        assert_eq!(elsewhere.general(), "bad separator");
        assert_eq!(elsewhere.clone().on(&FORM_FIELDS).general(), "", "the Advanced section shows it");
        let unplaced = FormError::new(&FORM_FIELDS, None, "provider down");
        assert_eq!(unplaced.general(), "provider down");
        assert!(!FormError::none().is_set());
        assert_eq!(FormError::none().general(), "");
    }
}
