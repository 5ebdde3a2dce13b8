//! `GET /`, log in and log out.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::{Error, Secret};

use super::client_address::client_ip;
use super::csrf::{self, SameOrigin};
use super::form::{CredentialsForm, FormError, TokenForm, WebForm};
use super::reply;
use super::session::{self, WebUser};
use super::views::LoginPage;
use crate::service;
use crate::state::SharedState;

/// What the log-in page says when no password check came free in time.
const BUSY_PAGE: &str = "The server is busy checking other log-ins. Try again in a few seconds.";
/// The `Retry-After` of that answer.
const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// The fields of the log-in form.
const LOGIN_FIELDS: [&str; 2] = ["username", "password"];

/// `GET /`: the list when logged in; else the log-in page, or a page saying set-up is pending.
pub async fn index(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    match session::current(&state, &headers).await {
        Ok(Some(_)) => return Redirect::to("/connections").into_response(),
        Ok(None) => {}
        Err(err) => return reply::failure(&err, false, None),
    }
    match state.store.count_users().await {
        Ok(0) => reply::message(
            StatusCode::OK,
            None,
            "Set-up is pending",
            "latchkey has no account yet. The server printed a one-time set-up link when it started: open \
             that link to create the administrator account. (Restarting the server prints a new link.)",
            ("/login", "Go to the log-in page"),
        ),
        Ok(_) => Redirect::to("/login").into_response(),
        Err(err) => reply::failure(&err, false, None),
    }
}

async fn setup_pending(state: &SharedState) -> bool {
    state.store.count_users().await.is_ok_and(|n| n == 0)
}

/// `GET /login`: the form (or the list, when already logged in).
pub async fn login_page(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = session::current(&state, &headers).await {
        return Redirect::to("/connections").into_response();
    }
    let page = LoginPage {
        nav: None,
        username: String::new(),
        error: FormError::none(),
        setup_pending: setup_pending(&state).await,
    };
    reply::page(StatusCode::OK, &page)
}

/// `POST /login`: starts a session and goes to the list; wrong credentials show the form again with 401; too
/// many attempts from one address or for one username answer 429 with `Retry-After`, before any password work;
/// when the password checks are all busy for longer than the queue wait, 503 with `Retry-After`.
pub async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    _origin: SameOrigin,
    headers: HeaderMap,
    WebForm(form): WebForm<CredentialsForm>,
) -> Response {
    let password = Secret::new(form.password);
    let username = form.username.trim().to_owned();
    let client = client_ip(peer.ip(), &headers, &state.config.login.trusted_proxies);
    if let Err(throttled) = state.login_limits.check(client, &username) {
        tracing::warn!(address = %client, user = %username, "log-in throttled: too many attempts");
        let page = LoginPage {
            nav: None,
            username,
            error: FormError::new(&LOGIN_FIELDS, None, throttled.message),
            setup_pending: false,
        };
        let mut response = reply::page(StatusCode::TOO_MANY_REQUESTS, &page);
        response.headers_mut().insert(RETRY_AFTER, throttled.retry_after_secs.into());
        return response;
    }
    let result = service::users::login(&state, &username, &password).await;
    let err = match result {
        Ok(user) => match session::replace(&state, &headers, &user).await {
            Ok((_, cookie)) => {
                state.login_limits.logged_in(client, &username);
                return ([(SET_COOKIE, cookie)], Redirect::to("/connections")).into_response();
            }
            Err(err) => err,
        },
        Err(err) => err,
    };
    let (status, text) = match &err {
        Error::Unauthorized(_) => {
            tracing::info!(user = %username, "log-in refused: wrong username or password");
            (StatusCode::UNAUTHORIZED, "The username or password is wrong.".to_owned())
        }
        Error::Unavailable(_) => {
            tracing::warn!(user = %username, "log-in turned away: every password check is busy");
            (StatusCode::SERVICE_UNAVAILABLE, BUSY_PAGE.to_owned())
        }
        other => reply::describe(other),
    };
    let page = LoginPage {
        nav: None,
        username,
        error: FormError::new(&LOGIN_FIELDS, None, text),
        setup_pending: setup_pending(&state).await,
    };
    let mut response = reply::page(status, &page);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(RETRY_AFTER, BUSY_RETRY_AFTER_SECS.into());
    }
    response
}

/// `POST /logout`: ends the session and clears its cookie.
pub async fn logout(
    State(state): State<SharedState>,
    _origin: SameOrigin,
    web: WebUser,
    WebForm(form): WebForm<TokenForm>,
) -> Response {
    if let Some(refused) = csrf::refusal(&web.session, &form.csrf, false) {
        return refused;
    }
    if let Err(err) = state.store.delete_session(&web.session.id_hash).await {
        return reply::failure(&err, false, None);
    }
    tracing::info!(user = %web.user.username, "logged out");
    let clear = session::clear_cookie(state.config.is_https());
    ([(SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}
