//! The API keys page: create a key (optionally limited to some handles, optionally expiring), shown once; list;
//! revoke.
//!
//! A new key is shown on the page that answers the create form and nowhere else: only its digest is stored
//! (`service::api_keys::create`), and the page is never cached.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::audit::{Action, Actor};
use latchkey_core::model::ApiKeyId;
use latchkey_core::{Error, Handle, Result, Timestamp};
use serde::Deserialize;

use super::csrf::{self, SameOrigin};
use super::form::{FormError, TokenForm, WebForm, form_error};
use super::reply;
use super::rows::ApiKeyRow;
use super::session::WebUser;
use super::views::{ApiKeysPage, ConfirmPage, Nav, Section};
use crate::service::api_keys::{self as service, clean_name};
use crate::state::SharedState;

/// The fields of the create form.
const KEY_FIELDS: [&str; 3] = ["name", "handles", "expires_in_days"];

/// The create form as posted.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ApiKeyForm {
    pub csrf: String,
    pub name: String,
    pub handles: String,
    /// Days until the key expires; empty for a key that does not expire.
    pub expires_in_days: String,
}

/// What the page shows besides the list.
#[derive(Default)]
struct Extras {
    created: Option<(String, String)>,
    name: String,
    handles: String,
    expires_in_days: String,
    error: FormError,
}

fn nav(web: &WebUser) -> Nav {
    Nav::of(&web.session, &web.user).on(Section::ApiKeys)
}

async fn keys_page(state: &SharedState, web: &WebUser, status: StatusCode, extras: Extras) -> Response {
    let keys = match state.store.list_api_keys(&web.user.id).await {
        Ok(keys) => keys,
        Err(err) => return reply::failure(&err, false, Some(nav(web))),
    };
    let now = state.clock.now();
    let page = ApiKeysPage {
        nav: Some(nav(web)),
        csrf: web.session.csrf_token.clone(),
        rows: keys.iter().map(|k| ApiKeyRow::new(k, now)).collect(),
        created: extras.created,
        name: extras.name,
        handles: extras.handles,
        expires_in_days: extras.expires_in_days,
        error: extras.error,
        public_url: state.config.public(""),
    };
    reply::page(status, &page)
}

/// `GET /api-keys`: the form and the list.
pub async fn list(State(state): State<SharedState>, web: WebUser) -> Response {
    keys_page(&state, &web, StatusCode::OK, Extras::default()).await
}

/// The handles a key is limited to: `None` (all) for an empty field, else each comma-separated handle once.
fn parse_handles(list: &str) -> Result<Option<Vec<Handle>>> {
    let mut handles: Vec<Handle> = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let handle = Handle::parse(raw).map_err(|err| {
            let why = match &err {
                Error::Invalid { message, .. } => message.clone(),
                other => other.to_string(),
            };
            Error::invalid("handles", format!("'{}' is not a handle: {why}", raw.escape_debug()))
        })?;
        if !handles.contains(&handle) {
            handles.push(handle);
        }
    }
    Ok((!handles.is_empty()).then_some(handles))
}

/// The expiry the form asks for: `None` for an empty field, else a whole number of days.
fn parse_expiry(days: &str, now: Timestamp) -> Result<Option<Timestamp>> {
    let days = days.trim();
    if days.is_empty() {
        return Ok(None);
    }
    let count = days.parse::<u32>().map_err(|_| {
        Error::invalid(
            "expires_in_days",
            format!(
                "'{}' is not a number of days: give a whole number from 1 to {}, or leave it empty",
                days.escape_debug(),
                service::MAX_EXPIRY_DAYS
            ),
        )
    })?;
    service::expiry_in_days(Some(count), now)
}

/// `POST /api-keys`: creates a key and shows it, this once.
pub async fn create(
    State(state): State<SharedState>,
    _origin: SameOrigin,
    web: WebUser,
    WebForm(form): WebForm<ApiKeyForm>,
) -> Response {
    if let Some(refused) = csrf::refusal(&web.session, &form.csrf, false) {
        return refused;
    }
    let now = state.clock.now();
    let checked = clean_name(&form.name)
        .and_then(|name| Ok((name, parse_handles(&form.handles)?, parse_expiry(&form.expires_in_days, now)?)));
    let created = match checked {
        Ok((name, handles, expires_at)) => {
            service::create_expiring(state.store.as_ref(), &web.user, &name, handles, expires_at, now)
                .await
                .map(|r| (name, r))
        }
        Err(err) => Err(err),
    };
    match created {
        Ok((name, (record, key))) => {
            tracing::info!(user = %web.user.username, key = %record.prefix, "API key created in the web UI");
            let created = Action::ApiKeyCreate;
            state.audit.api_key_change(&web.user.id, &Actor::WebSession, created, &record.prefix, true).await;
            let extras = Extras { created: Some((name, key.expose().to_owned())), ..Extras::default() };
            keys_page(&state, &web, StatusCode::OK, extras).await
        }
        Err(err) => {
            let (status, error) = form_error(&err, &KEY_FIELDS);
            let extras = Extras {
                name: form.name,
                handles: form.handles,
                expires_in_days: form.expires_in_days,
                error,
                created: None,
            };
            keys_page(&state, &web, status, extras).await
        }
    }
}

/// `POST /api-keys/{id}/revoke`: revokes once confirmed (`confirmed=yes`), else asks first.
pub async fn revoke(
    State(state): State<SharedState>,
    _origin: SameOrigin,
    web: WebUser,
    Path(id): Path<String>,
    WebForm(form): WebForm<TokenForm>,
) -> Response {
    if let Some(refused) = csrf::refusal(&web.session, &form.csrf, false) {
        return refused;
    }
    let keys = match state.store.list_api_keys(&web.user.id).await {
        Ok(keys) => keys,
        Err(err) => return reply::failure(&err, false, Some(nav(&web))),
    };
    let Some(key) = keys.iter().find(|k| k.id.as_str() == id && k.revoked_at.is_none()) else {
        let err = Error::NotFound("this API key does not exist or is already revoked".to_owned());
        let (status, text) = reply::describe(&err);
        let extras = Extras { error: FormError::new(&KEY_FIELDS, None, text), ..Extras::default() };
        return keys_page(&state, &web, status, extras).await;
    };
    if form.confirmed != "yes" {
        let page = ConfirmPage {
            nav: Some(nav(&web)),
            csrf: web.session.csrf_token.clone(),
            title: format!("Revoke “{}”?", key.name),
            message: format!(
                "Scripts that use the API key '{}' ({}…) will be refused at once. This cannot be undone.",
                key.name, key.prefix
            ),
            action: format!("/api-keys/{id}/revoke"),
            button: "Revoke".to_owned(),
            back_href: "/api-keys".to_owned(),
        };
        return reply::page(StatusCode::OK, &page);
    }
    match state.store.revoke_api_key(&web.user.id, &ApiKeyId(id), state.clock.now()).await {
        Ok(revoked) => {
            let action = Action::ApiKeyRevoke;
            state.audit.api_key_change(&web.user.id, &Actor::WebSession, action, &key.prefix, revoked).await;
            tracing::info!(user = %web.user.username, key = %key.prefix, "API key revoked in the web UI");
            Redirect::to("/api-keys").into_response()
        }
        Err(err) => reply::failure(&err, false, Some(nav(&web))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_optional_and_each_counted_once() {
        assert_eq!(parse_handles("").expect("empty"), None);
        assert_eq!(parse_handles(" , ").expect("blank"), None);
        let two = parse_handles("crm, calendar,crm").expect("two").expect("some");
        assert_eq!(two.iter().map(Handle::as_str).collect::<Vec<_>>(), ["crm", "calendar"]);
    }

    #[test]
    fn a_bad_handle_is_named() {
        let err = parse_handles("crm, My CRM").expect_err("refused");
        assert_eq!(reply::error_field(&err), Some("handles"));
        assert!(err.to_string().contains("'My CRM' is not a handle"), "{err}");
    }

    #[test]
    fn names_are_required_and_plain() {
        assert_eq!(clean_name("  ci  ").expect("ok"), "ci");
        assert!(clean_name(" ").is_err());
        assert!(clean_name("a\u{7}").is_err());
        assert!(clean_name(&"x".repeat(201)).is_err());
    }
}
