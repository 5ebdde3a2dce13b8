//! `GET /oauth2/start/{link}`: opens a single-use authorization link. Records a fresh `state` (256 random bits)
//! and a browser-binding cookie, then redirects to the provider's authorization endpoint.
//!
//! A link is a bearer link to a provider's consent screen that the connection's owner chose: opened by somebody
//! else, consent would land in the owner's connection. So a browser navigation (`Sec-Fetch-Mode: navigate`,
//! `Sec-Fetch-Dest: document` or an `Accept` naming `text/html`) that does not carry the owner's session first
//! gets a page on latchkey's own host that names the owner and the provider's host, with one button. The button
//! POSTs back, from latchkey's own origin, a token that is also in a `SameSite=Strict` cookie of this link (a page
//! of another site can neither read it nor make the browser send it). The owner's own browser, and a plain HTTP
//! client (scripts, and the contract's "no script is needed" flow), go straight through with the 302.
//! docs/decisions.md says why.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, LOCATION, REFERRER_POLICY, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use latchkey_core::model::{AuthFlow, Connection, FlowStart};
use latchkey_core::{Error, Result};
use latchkey_crypto::tokens::{constant_time_eq, digest, random_token};
use latchkey_oauth::PkcePair;
use serde::Deserialize;

use super::cookie;
use crate::pages;
use crate::sealing;
use crate::state::SharedState;
use crate::web::views::Nav;
use crate::web::{csrf, session};

/// The page a browser sees before it is sent to the provider, unless it carries the owner's session.
#[derive(Template)]
#[template(path = "web/start_confirm.html")]
struct ConfirmPage {
    nav: Option<Nav>,
    owner: String,
    connection_name: String,
    handle: String,
    provider_host: String,
    latchkey_host: String,
    action: String,
    token: String,
}

/// The continue button's form.
#[derive(Deserialize)]
pub struct ConfirmForm {
    confirm: String,
}

fn unknown_link() -> Error {
    Error::bad_request(
        "this authorization link is unknown, expired or already used: start the authorization again from your connection list",
    )
}

/// Opens the link: straight to the provider for a plain client and for the owner's browser; another browser
/// first sees whose connection it would authorize.
pub async fn start(State(state): State<SharedState>, Path(link): Path<String>, headers: HeaderMap) -> Response {
    let answer = if is_navigation(&headers) {
        confirm_or_redirect(&state, &link, &headers).await
    } else {
        redirect(&state, &link).await
    };
    answer.unwrap_or_else(|err| pages::flow_failure(&state, None, &err))
}

/// `POST /oauth2/start/{link}`: the continue button of the page; opens the link when the form's token matches
/// this browser's cookie for the link.
pub async fn confirm(
    State(state): State<SharedState>,
    Path(link): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let name = confirm_cookie(&state, &link);
    let matches = cookie::read(&headers, &name)
        .is_some_and(|value| !value.is_empty() && constant_time_eq(value.as_bytes(), form.confirm.as_bytes()));
    if !matches || !csrf::origin_allowed(&headers, &state.config.public_origin()) {
        let err = Error::Forbidden(
            "this confirmation did not come from the page latchkey showed this browser: open the authorization link again"
                .to_owned(),
        );
        return pages::flow_failure(&state, None, &err);
    }
    match redirect(&state, &link).await {
        Ok(mut response) => {
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(clear) = HeaderValue::from_str(&clear_confirm_cookie(&state, &name)) {
                response.headers_mut().append(SET_COOKIE, clear);
            }
            response
        }
        Err(err) => pages::flow_failure(&state, None, &err),
    }
}

/// Whether the request is a browser opening a page (rather than a script fetching a URL).
fn is_navigation(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    header("sec-fetch-mode").eq_ignore_ascii_case("navigate")
        || header("sec-fetch-dest").eq_ignore_ascii_case("document")
        || headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("text/html"))
}

async fn confirm_or_redirect(state: &SharedState, link: &str, headers: &HeaderMap) -> Result<Response> {
    let now = state.clock.now();
    let flow = state.store.flow_by_link(&digest(link), now).await?.ok_or_else(unknown_link)?;
    let connection = connection_of(state, &flow).await?;
    if is_owner(state, headers, &connection).await {
        return redirect(state, link).await;
    }
    let owner = state.store.user_by_id(&connection.user_id).await?.map(|u| u.username).unwrap_or_default();
    let settings = connection.settings.resolved()?;
    let provider_host = url::Url::parse(&settings.authorization_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| u.port().map_or_else(|| h.to_owned(), |p| format!("{h}:{p}"))))
        .ok_or_else(|| Error::bad_request(format!("the authorization URL of '{}' is not usable", connection.handle)))?;
    let token = random_token(32);
    let page = ConfirmPage {
        nav: None,
        owner,
        connection_name: connection.name.clone(),
        handle: connection.handle.to_string(),
        provider_host,
        latchkey_host: state.config.public_url.host_str().unwrap_or_default().to_owned(),
        action: format!("/oauth2/start/{link}"),
        token: token.clone(),
    };
    let body = page.render().map_err(|e| Error::Internal(format!("the start page failed to render: {e}")))?;
    let max_age = u64::try_from((flow.expires_at.secs() - now.secs()).max(1)).unwrap_or(600);
    let name = confirm_cookie(state, link);
    tracing::info!(handle = %connection.handle, "authorization link opened without the owner's session; asking first");
    Ok((
        StatusCode::OK,
        [
            (SET_COOKIE, confirm_cookie_value(state, &name, &token, max_age)),
            (CACHE_CONTROL, "no-store".to_owned()),
            (REFERRER_POLICY, "no-referrer".to_owned()),
        ],
        Html(body),
    )
        .into_response())
}

/// Whether the request carries a live web session of the connection's owner.
async fn is_owner(state: &SharedState, headers: &HeaderMap, connection: &Connection) -> bool {
    let Some(id) = session::read_cookie(headers, session::cookie_name(state.config.is_https())) else {
        return false;
    };
    match state.store.session(&digest(id), state.clock.now()).await {
        Ok(Some((_, user))) => user.id == connection.user_id,
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(error = %err, "could not read a session at the start of an authorization");
            false
        }
    }
}

async fn connection_of(state: &SharedState, flow: &AuthFlow) -> Result<Connection> {
    state
        .store
        .connection_by_id(&flow.connection_id)
        .await?
        .ok_or_else(|| Error::NotFound("the connection of this authorization link was deleted".to_owned()))
}

/// The name of the cookie that holds the continue button's token for this link.
fn confirm_cookie(state: &SharedState, link: &str) -> String {
    let tag: String = digest(link).0[..6].iter().map(|b| format!("{b:02x}")).collect();
    let prefix = if state.config.is_https() { "__Host-" } else { "" };
    format!("{prefix}latchkey_start_{tag}")
}

fn confirm_cookie_value(state: &SharedState, name: &str, value: &str, max_age: u64) -> String {
    let secure = if state.config.is_https() { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

fn clear_confirm_cookie(state: &SharedState, name: &str) -> String {
    confirm_cookie_value(state, name, "", 0)
}

async fn redirect(state: &SharedState, link: &str) -> Result<Response> {
    let now = state.clock.now();
    let state_token = random_token(32);
    let browser = random_token(32);
    let start =
        FlowStart { state_hash: digest(&state_token), browser_hash: digest(&browser), pkce_verifier: None, now };
    let flow = state.store.start_flow(&digest(link), &start).await?.ok_or_else(unknown_link)?;
    let connection = connection_of(state, &flow).await?;
    let challenge = flow
        .pkce_verifier
        .as_ref()
        .map(|sealed| {
            sealing::open_verifier(&state.keyring, &flow.id, sealed).map(|v| PkcePair::s256_challenge(v.expose()))
        })
        .transpose()?;
    let settings = connection.settings.resolved()?;
    let url =
        latchkey_oauth::authorization_request_url(&settings, &flow.redirect_uri, &state_token, challenge.as_deref())
            .map_err(|e| {
                Error::bad_request(format!("the authorization URL of '{}' is not usable: {e}", connection.handle))
            })?;
    let max_age = u64::try_from((flow.expires_at.secs() - now.secs()).max(1)).unwrap_or(600);
    let name = cookie::name(&state.config, &start.state_hash);
    tracing::info!(handle = %connection.handle, "authorization started; redirecting to the provider");
    Ok((
        StatusCode::FOUND,
        [
            (LOCATION, url.to_string()),
            (SET_COOKIE, cookie::set(&state.config, &name, &browser, max_age)),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response())
}
