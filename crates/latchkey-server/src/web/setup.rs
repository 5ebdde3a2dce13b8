//! First-run set-up: the one-time link the server prints while no user exists opens a form that creates the
//! administrator account and logs it in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{REFERRER_POLICY, SET_COOKIE};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::{Error, Secret};
use latchkey_crypto::tokens::digest;

use super::csrf::SameOrigin;
use super::form::{CredentialsForm, FormError, WebForm, form_error};
use super::reply;
use super::session;
use super::views::SetupPage;
use crate::service;
use crate::service::users::MIN_PASSWORD_LEN;
use crate::state::SharedState;

/// The fields of the set-up form.
const SETUP_FIELDS: [&str; 2] = ["username", "password"];

/// The page for a link that does not (or no longer) work: 410 once set-up is done, 404 otherwise.
async fn link_not_usable(state: &SharedState) -> Response {
    match state.store.count_users().await {
        Ok(0) => reply::message(
            StatusCode::NOT_FOUND,
            None,
            "Set-up link not valid",
            "This set-up link is unknown or has expired. Each start of the server prints a new one-time set-up \
             link while no account exists: restart latchkey and open the link it prints.",
            ("/", "Go to latchkey"),
        ),
        Ok(_) => reply::message(
            StatusCode::GONE,
            None,
            "Set-up already done",
            "This set-up link was already used: the administrator account exists. Log in with it.",
            ("/login", "Go to the log-in page"),
        ),
        Err(err) => reply::failure(&err, false, None),
    }
}

async fn link_valid(state: &SharedState, token: &str) -> Result<bool, Error> {
    state.store.setup_token_valid(&digest(token), state.clock.now()).await
}

fn form_page(status: StatusCode, token: &str, username: String, error: FormError) -> Response {
    let page =
        SetupPage { nav: None, action: format!("/setup/{token}"), username, error, min_password_len: MIN_PASSWORD_LEN };
    // The address holds the set-up token: no other site may see it. Not `no-referrer`: under it browsers send
    // `Origin: null` with the form, which the same-origin check rightly refuses.
    ([(REFERRER_POLICY, "same-origin")], reply::page(status, &page)).into_response()
}

/// `GET /setup/{token}`: the form, when the link is valid.
pub async fn setup_page(State(state): State<SharedState>, Path(token): Path<String>) -> Response {
    match link_valid(&state, &token).await {
        Ok(true) => form_page(StatusCode::OK, &token, String::new(), FormError::none()),
        Ok(false) => link_not_usable(&state).await,
        Err(err) => reply::failure(&err, false, None),
    }
}

/// `POST /setup/{token}`: creates the administrator, consumes the link, logs in and goes to the list.
pub async fn setup(
    State(state): State<SharedState>,
    Path(token): Path<String>,
    _origin: SameOrigin,
    WebForm(form): WebForm<CredentialsForm>,
) -> Response {
    match link_valid(&state, &token).await {
        Ok(true) => {}
        Ok(false) => return link_not_usable(&state).await,
        Err(err) => return reply::failure(&err, false, None),
    }
    let username = form.username.trim().to_owned();
    let password = Secret::new(form.password);
    let now = state.clock.now();
    let candidate = username.clone();
    // Hashing the password takes a noticeable moment of CPU and 19 MiB: it waits its turn with the log-ins.
    let built = state
        .password_checks
        .run(move |_| service::users::new_user(&candidate, &password, true, now))
        .await
        .unwrap_or_else(|_| Err(Error::Unavailable(service::users::BUSY.to_owned())));
    let user = match built {
        Ok(user) => user,
        Err(err) => {
            let (status, error) = form_error(&err, &SETUP_FIELDS);
            return form_page(status, &token, username, error);
        }
    };
    match state.store.complete_setup(&digest(&token), &user, now).await {
        Ok(true) => {}
        Ok(false) => return link_not_usable(&state).await,
        Err(err) => {
            let (status, error) = form_error(&err, &SETUP_FIELDS);
            return form_page(status, &token, username, error);
        }
    }
    tracing::info!(user = %user.username, "first-run set-up done: administrator created");
    match session::start(&state, &user).await {
        Ok((_, cookie)) => ([(SET_COOKIE, cookie)], Redirect::to("/connections")).into_response(),
        // The account exists; only the automatic log-in failed.
        Err(err) => {
            let (status, text) = reply::describe(&err);
            reply::message(status, None, "Account created", &text, ("/login", "Log in"))
        }
    }
}
