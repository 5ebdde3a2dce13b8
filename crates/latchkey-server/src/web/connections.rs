//! The connection pages: the list ("OAuth2 Tokens"), the form to create and edit, reconnect and delete.
//!
//! Saving and reconnecting answer in one of two ways. `app.js` posts with `Accept: application/json` and gets
//! `{"authorization_link": ...}` (or `{"error", "field"}`), which it opens in a popup. A plain form post gets a
//! 303 to the authorization link, or the form again with the error next to its field. Grants without a browser
//! step answer `{"next": ...}` (a 303 there without JavaScript): a client credentials connection fetches its
//! first token while saving and leads back to the list; a device code connection leads to its device page.
//!
//! `GET /connections/new?provider=<id>` is the form of a preset: it asks only what that provider needs.
//!
//! Two small endpoints serve `app.js`: the handle check as the person types, and one row of the list, swapped in
//! when an authorization ends, so the list updates in place.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::audit::Actor;
use latchkey_core::model::{Connection, ConnectionSummary};
use latchkey_core::settings::GrantType;
use latchkey_core::{Error, Handle};
use serde::{Deserialize, Serialize};

use super::advanced;
use super::csrf::{self, SameOrigin};
use super::form::{
    ConnectionForm, FORM_FIELDS, FormError, FormValues, PRESET_FORM_FIELDS, TokenForm, WebForm, form_error,
};
use super::reply;
use super::rows::{self, ConnectionRow, Usage};
use super::services;
use super::session::WebUser;
use super::views::{ConfirmPage, ConnectionFormPage, ListPage, Nav, RowFragment};
use crate::service::connections::{self as service, Authorizing, ConnectionInput};
use crate::state::SharedState;

/// A handle from the path; one that cannot exist is simply not found.
pub(super) fn parse_handle(raw: &str) -> Result<Handle, Error> {
    Handle::parse(raw)
        .map_err(|_| Error::NotFound(format!("you have no connection with the handle '{}'", raw.escape_debug())))
}

/// The list page with `status`, showing `notice` and `error` above the list when they are not empty. One query
/// reads the summaries of the person's connections (no sealed columns); rows are built from it and the clock,
/// without further queries.
async fn list_page(state: &SharedState, web: &WebUser, status: StatusCode, notice: String, error: String) -> Response {
    let nav = Nav::of(&web.session, &web.user);
    let connections = match state.store.list_connection_summaries(&web.user.id).await {
        Ok(connections) => connections,
        Err(err) => return reply::failure(&err, false, Some(nav)),
    };
    let now = state.clock.now();
    let page = ListPage {
        nav: Some(nav),
        csrf: web.session.csrf_token.clone(),
        rows: connections.iter().map(|c| ConnectionRow::new(c, now)).collect(),
        redirect_uri: state.config.default_redirect_uri(),
        public_url: state.config.public(""),
        js_function: rows::js_function(&state.config),
        usage: Usage::new(&state.config),
        notice,
        error,
    };
    reply::page(status, &page)
}

/// The list again with the error of an action taken from it (reconnect, delete).
async fn list_with_error(state: &SharedState, web: &WebUser, err: &Error) -> Response {
    let (status, text) = reply::describe(err);
    list_page(state, web, status, String::new(), text).await
}

/// The connection form. `existing` is the connection being edited, `None` when creating.
fn form_page(
    state: &SharedState,
    web: &WebUser,
    existing: Option<&Connection>,
    values: FormValues,
    status: StatusCode,
    error: FormError,
) -> Response {
    let (title, action) = match existing {
        Some(c) => (format!("Edit “{}”", c.name), format!("/connections/{}/edit", c.handle)),
        None => ("Connect to Service".to_owned(), "/connections".to_owned()),
    };
    // A preset's own form when creating from it; editing shows every setting, whatever the provider.
    let preset = if existing.is_none() { services::preset_form(&values.provider, &values.params) } else { None };
    let shown_fields: &'static [&'static str] = if preset.is_some() { &PRESET_FORM_FIELDS } else { &FORM_FIELDS };
    let error = error.on(shown_fields);
    let advanced_open = preset.is_none() && advanced::ADVANCED_FIELDS.iter().any(|f| !error.for_field(f).is_empty());
    let page = ConnectionFormPage {
        nav: Some(Nav::of(&web.session, &web.user)),
        csrf: web.session.csrf_token.clone(),
        editing: existing.is_some(),
        title,
        action,
        redirect_uri: state.config.default_redirect_uri(),
        services: services::options(&values.provider),
        service_label: services::label(&values.provider).to_owned(),
        preset,
        values,
        secret_stored: existing.is_some_and(|c| c.client_secret.is_some()),
        error,
        advanced_open,
    };
    reply::page(status, &page)
}

/// What the list's address may say about the action that led to it.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    /// The handle of a connection just deleted.
    deleted: String,
}

/// `GET /connections`: the person's connections.
pub async fn list(State(state): State<SharedState>, web: WebUser, Query(query): Query<ListQuery>) -> Response {
    let notice = match Handle::parse(&query.deleted) {
        Ok(handle) => format!("The connection '{handle}' was deleted."),
        Err(_) => String::new(),
    };
    list_page(&state, &web, StatusCode::OK, notice, String::new()).await
}

/// `GET /connections/{handle}/row`: one row of the list, as HTML, for `app.js` to swap in place.
pub async fn row(State(state): State<SharedState>, web: WebUser, Path(raw): Path<String>) -> Response {
    let found = match parse_handle(&raw) {
        Ok(handle) => service::find(&state, &web.user, &handle).await,
        Err(err) => Err(err),
    };
    match found {
        Ok(connection) => {
            let row = ConnectionRow::new(&ConnectionSummary::of(&connection), state.clock.now());
            reply::page(StatusCode::OK, &RowFragment { csrf: web.session.csrf_token.clone(), row })
        }
        Err(err) => {
            let (status, text) = reply::describe(&err);
            (status, [(CACHE_CONTROL, "no-store")], text).into_response()
        }
    }
}

/// The handle to check, as typed.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HandleQuery {
    handle: String,
}

/// Whether a handle can be used, and why not.
#[derive(Serialize)]
pub struct HandleCheck {
    ok: bool,
    /// Why it cannot be used, as a sentence; "" when it can.
    message: String,
}

/// `GET /connections/handle-check?handle=...`: `{"ok": true, "message": ""}` for a well-formed handle the
/// person does not have yet, else `{"ok": false, "message": "..."}` saying why.
pub async fn handle_check(
    State(state): State<SharedState>,
    web: WebUser,
    Query(query): Query<HandleQuery>,
) -> Response {
    let answer = match Handle::parse(&query.handle) {
        Err(err) => Ok(HandleCheck { ok: false, message: reply::describe(&err).1 }),
        Ok(handle) => state.store.connection(&web.user.id, &handle).await.map(|found| match found {
            Some(_) => HandleCheck {
                ok: false,
                message: format!("You already have a connection with the handle '{handle}': pick another handle."),
            },
            None => HandleCheck { ok: true, message: String::new() },
        }),
    };
    match answer {
        Ok(check) => ([(CACHE_CONTROL, "no-store")], Json(check)).into_response(),
        Err(err) => reply::failure(&err, true, None),
    }
}

/// The service chosen in the picker.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    provider: String,
}

/// `GET /connections/new`: the empty form of Custom OAuth 2.0, or of the preset `?provider=<id>` (an unknown id
/// shows the custom form).
pub async fn new_form(State(state): State<SharedState>, web: WebUser, Query(query): Query<NewQuery>) -> Response {
    let values = crate::presets::get(query.provider.trim()).map_or_else(FormValues::default, FormValues::for_preset);
    form_page(&state, &web, None, values, StatusCode::OK, FormError::none())
}

/// What follows a save or a reconnect, by grant: the authorization popup; for client credentials the first
/// token, fetched now (a refusal is recorded on the connection and shown in its row), then the list; for the
/// device code, the page that shows the code.
async fn next_step(state: &SharedState, json: bool, status: StatusCode, done: &Authorizing) -> Response {
    let handle = &done.connection.handle;
    match done.connection.settings.grant_type {
        GrantType::AuthorizationCode => reply::authorize(json, status, &done.authorization_link),
        GrantType::DeviceCode => reply::next(json, status, &format!("/connections/{handle}/device")),
        GrantType::ClientCredentials => {
            if let Err(err) = state.tokens.token(&done.connection, true, &Actor::WebSession).await {
                tracing::info!(handle = %handle, error = %err, "the first client credentials token request failed");
            }
            reply::next(json, status, &format!("/connections#c-{handle}"))
        }
    }
}

/// `POST /connections`: creates the connection, then on to its authorization link.
pub async fn create(
    State(state): State<SharedState>,
    _origin: SameOrigin,
    headers: HeaderMap,
    web: WebUser,
    WebForm(form): WebForm<ConnectionForm>,
) -> Response {
    let json = reply::wants_json(&headers);
    if let Some(refused) = csrf::refusal(&web.session, form.csrf(), json) {
        return refused;
    }
    let created = match form.to_input(false) {
        Ok(input) => service::create(&state, &web.user, &Actor::WebSession, input).await,
        Err(err) => Err(err),
    };
    match created {
        Ok(done) => next_step(&state, json, StatusCode::CREATED, &done).await,
        Err(err) if json => reply::failure(&err, true, None),
        Err(err) => {
            let (status, error) = form_error(&err, &FORM_FIELDS);
            form_page(&state, &web, None, form.values(), status, error)
        }
    }
}

/// `GET /connections/{handle}/edit`: the form with the stored values; the client secret is never sent.
pub async fn edit_form(State(state): State<SharedState>, web: WebUser, Path(raw): Path<String>) -> Response {
    let found = match parse_handle(&raw) {
        Ok(handle) => service::find(&state, &web.user, &handle).await,
        Err(err) => Err(err),
    };
    match found {
        Ok(connection) => {
            let values = FormValues::of(&connection);
            form_page(&state, &web, Some(&connection), values, StatusCode::OK, FormError::none())
        }
        Err(err) => reply::failure(&err, false, Some(Nav::of(&web.session, &web.user))),
    }
}

/// `POST /connections/{handle}/edit`: saves, then on to a fresh authorization link.
pub async fn edit(
    State(state): State<SharedState>,
    _origin: SameOrigin,
    headers: HeaderMap,
    web: WebUser,
    Path(raw): Path<String>,
    WebForm(form): WebForm<ConnectionForm>,
) -> Response {
    let json = reply::wants_json(&headers);
    if let Some(refused) = csrf::refusal(&web.session, form.csrf(), json) {
        return refused;
    }
    let handle = match parse_handle(&raw) {
        Ok(handle) => handle,
        Err(err) => return reply::failure(&err, json, Some(Nav::of(&web.session, &web.user))),
    };
    let saved = match form.to_input(true) {
        Ok(input) => update_changed(&state, &web, &handle, input).await,
        Err(err) => Err(err),
    };
    let err = match saved {
        Ok(done) => return next_step(&state, json, StatusCode::OK, &done).await,
        Err(err) => err,
    };
    if json {
        return reply::failure(&err, true, None);
    }
    match service::find(&state, &web.user, &handle).await {
        Ok(existing) => {
            let (status, error) = form_error(&err, &FORM_FIELDS);
            let values = FormValues { handle: existing.handle.to_string(), ..form.values() };
            form_page(&state, &web, Some(&existing), values, status, error)
        }
        Err(find_err) => reply::failure(&find_err, false, Some(Nav::of(&web.session, &web.user))),
    }
}

/// Saves the edit form. The form sends every setting back; an issuer and connection parameters that did not
/// change are left out, so that saving does not fetch the issuer's metadata again.
async fn update_changed(
    state: &SharedState,
    web: &WebUser,
    handle: &Handle,
    mut input: ConnectionInput,
) -> Result<Authorizing, Error> {
    let existing = service::find(state, &web.user, handle).await?;
    let stored = &existing.settings;
    if input.issuer.as_deref().unwrap_or_default() == stored.issuer.as_deref().unwrap_or_default() {
        input.issuer = None;
    }
    if input.connection_params.as_ref().is_some_and(|p| *p == stored.connection_params) {
        input.connection_params = None;
    }
    service::update(state, &web.user, &Actor::WebSession, handle, input).await
}

/// `POST /connections/{handle}/reconnect`: a fresh authorization link.
pub async fn reconnect(
    State(state): State<SharedState>,
    _origin: SameOrigin,
    headers: HeaderMap,
    web: WebUser,
    Path(raw): Path<String>,
    WebForm(form): WebForm<TokenForm>,
) -> Response {
    let json = reply::wants_json(&headers);
    if let Some(refused) = csrf::refusal(&web.session, &form.csrf, json) {
        return refused;
    }
    let result = match parse_handle(&raw) {
        Ok(handle) => service::authorize(&state, &web.user, &Actor::WebSession, &handle).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(done) => next_step(&state, json, StatusCode::OK, &done).await,
        Err(err) if json => reply::failure(&err, true, None),
        Err(err) => list_with_error(&state, &web, &err).await,
    }
}

/// `GET /connections/{handle}/delete`: asks before deleting (the list's JavaScript asks with `confirm()`).
pub async fn delete_page(State(state): State<SharedState>, web: WebUser, Path(raw): Path<String>) -> Response {
    let found = match parse_handle(&raw) {
        Ok(handle) => service::find(&state, &web.user, &handle).await,
        Err(err) => Err(err),
    };
    match found {
        Ok(connection) => confirmation(&web, &connection),
        Err(err) => list_with_error(&state, &web, &err).await,
    }
}

fn confirmation(web: &WebUser, connection: &Connection) -> Response {
    let handle = &connection.handle;
    let page = ConfirmPage {
        nav: Some(Nav::of(&web.session, &web.user)),
        csrf: web.session.csrf_token.clone(),
        title: format!("Delete “{}”?", connection.name),
        message: format!(
            "Scripts that ask for the token of '{handle}' will stop working. latchkey forgets the stored tokens and \
             client secret (and revokes the tokens where the provider supports it). This cannot be undone."
        ),
        action: format!("/connections/{handle}/delete"),
        button: format!("Delete '{handle}'"),
        back_href: "/connections".to_owned(),
    };
    reply::page(StatusCode::OK, &page)
}

/// `POST /connections/{handle}/delete`: deletes once confirmed (`confirmed=yes`), else asks first.
pub async fn delete(
    State(state): State<SharedState>,
    _origin: SameOrigin,
    headers: HeaderMap,
    web: WebUser,
    Path(raw): Path<String>,
    WebForm(form): WebForm<TokenForm>,
) -> Response {
    let json = reply::wants_json(&headers);
    if let Some(refused) = csrf::refusal(&web.session, &form.csrf, json) {
        return refused;
    }
    let handle = match parse_handle(&raw) {
        Ok(handle) => handle,
        Err(err) => return list_with_error(&state, &web, &err).await,
    };
    if form.confirmed != "yes" {
        return match service::find(&state, &web.user, &handle).await {
            Ok(connection) => confirmation(&web, &connection),
            Err(err) => list_with_error(&state, &web, &err).await,
        };
    }
    match service::delete(&state, &web.user, &Actor::WebSession, &handle).await {
        Ok(()) if json => StatusCode::NO_CONTENT.into_response(),
        Ok(()) => Redirect::to(&format!("/connections?deleted={handle}")).into_response(),
        Err(err) if json => reply::failure(&err, true, None),
        Err(err) => list_with_error(&state, &web, &err).await,
    }
}
