//! The connection pages: the list ("OAuth2 Tokens"), the form to create and edit, reconnect and delete.
//!
//! Saving and reconnecting answer in one of two ways. `app.js` posts with `Accept: application/json` and gets
//! `{"authorization_link": ...}` (or `{"error", "field"}`), which it opens in a popup. A plain form post gets a
//! 303 to the authorization link, or the form again with the error next to its field.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::model::Connection;
use latchkey_core::{Error, Handle};

use super::csrf::{self, SameOrigin};
use super::form::{ConnectionForm, FORM_FIELDS, FormError, FormValues, TokenForm, WebForm, form_error};
use super::reply;
use super::session::WebUser;
use super::views::{ConnectionFormPage, ConnectionRow, DeletePage, ListPage, Nav};
use crate::service::connections as service;
use crate::state::SharedState;

/// A handle from the path; one that cannot exist is simply not found.
fn parse_handle(raw: &str) -> Result<Handle, Error> {
    Handle::parse(raw)
        .map_err(|_| Error::NotFound(format!("you have no connection with the handle '{}'", raw.escape_debug())))
}

/// The list page with `status`, showing `error` above the list when it is not empty.
async fn list_page(state: &SharedState, web: &WebUser, status: StatusCode, error: String) -> Response {
    let nav = Nav::of(&web.session, &web.user);
    let connections = match state.store.list_connections(&web.user.id).await {
        Ok(connections) => connections,
        Err(err) => return reply::failure(&err, false, Some(nav)),
    };
    let page = ListPage {
        nav: Some(nav),
        csrf: web.session.csrf_token.clone(),
        rows: connections.iter().map(|c| ConnectionRow::new(c, &state.config)).collect(),
        redirect_uri: state.config.default_redirect_uri(),
        public_url: state.config.public(""),
        username: web.user.username.clone(),
        error,
    };
    reply::page(status, &page)
}

/// The list again with the error of an action taken from it (reconnect, delete).
async fn list_with_error(state: &SharedState, web: &WebUser, err: &Error) -> Response {
    let (status, text) = reply::describe(err);
    list_page(state, web, status, text).await
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
    let page = ConnectionFormPage {
        nav: Some(Nav::of(&web.session, &web.user)),
        csrf: web.session.csrf_token.clone(),
        editing: existing.is_some(),
        title,
        action,
        redirect_uri: state.config.default_redirect_uri(),
        values,
        secret_stored: existing.is_some_and(|c| c.client_secret.is_some()),
        error,
    };
    reply::page(status, &page)
}

/// `GET /connections`: the person's connections.
pub async fn list(State(state): State<SharedState>, web: WebUser) -> Response {
    list_page(&state, &web, StatusCode::OK, String::new()).await
}

/// `GET /connections/new`: the empty form.
pub async fn new_form(State(state): State<SharedState>, web: WebUser) -> Response {
    form_page(&state, &web, None, FormValues::default(), StatusCode::OK, FormError::none())
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
    if let Some(refused) = csrf::refusal(&web.session, &form.csrf, json) {
        return refused;
    }
    match service::create(&state, &web.user, form.to_input(false)).await {
        Ok(done) => reply::authorize(json, StatusCode::CREATED, &done.authorization_link),
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
    if let Some(refused) = csrf::refusal(&web.session, &form.csrf, json) {
        return refused;
    }
    let handle = match parse_handle(&raw) {
        Ok(handle) => handle,
        Err(err) => return reply::failure(&err, json, Some(Nav::of(&web.session, &web.user))),
    };
    let err = match service::update(&state, &web.user, &handle, form.to_input(true)).await {
        Ok(done) => return reply::authorize(json, StatusCode::OK, &done.authorization_link),
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
        Ok(handle) => service::authorize(&state, &web.user, &handle).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(done) => reply::authorize(json, StatusCode::OK, &done.authorization_link),
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
    let page = DeletePage {
        nav: Some(Nav::of(&web.session, &web.user)),
        csrf: web.session.csrf_token.clone(),
        name: connection.name.clone(),
        handle: connection.handle.to_string(),
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
    match service::delete(&state, &web.user, &handle).await {
        Ok(()) if json => StatusCode::NO_CONTENT.into_response(),
        Ok(()) => Redirect::to("/connections").into_response(),
        Err(err) if json => reply::failure(&err, true, None),
        Err(err) => list_with_error(&state, &web, &err).await,
    }
}
