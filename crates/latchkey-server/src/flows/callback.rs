//! `GET /oauth2/callback`: checks `state` against the flow and the browser cookie, and `iss` against the
//! connection's issuer (RFC 9207), before anything reaches the provider; then exchanges the code (RFC 6749
//! §4.1.3) and stores the tokens sealed, with the values the connection keeps, in one write.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use latchkey_core::model::{AuthFlow, Connection, FailureWrite, TokenWrite};
use latchkey_core::settings::OAuthSettings;
use latchkey_core::{Error, Handle, Result, Secret};
use latchkey_crypto::tokens::{constant_time_eq, digest};
use latchkey_oauth::MAX_KEPT_VALUE_CHARS;

use super::cookie;
use crate::pages;
use crate::sealing::{self, Column};
use crate::state::SharedState;

/// The provider's redirect parameters (RFC 6749 §4.1.2, §4.1.2.1; `iss` of RFC 9207 §2), and all of them in
/// order for `keep_callback_params`. Of a repeated parameter the first counts.
#[derive(Default)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<Secret>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
    all: Vec<(String, String)>,
}

impl CallbackQuery {
    /// Reads the raw query string.
    #[must_use]
    pub fn parse(raw: Option<&str>) -> Self {
        let all: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let first = |name: &str| all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Self {
            state: first("state"),
            code: first("code").map(Secret::new),
            error: first("error"),
            error_description: first("error_description"),
            iss: first("iss"),
            all: all.iter().filter(|(k, _)| k != "code" && k != "state").cloned().collect(),
        }
    }

    /// The first value of each parameter named in `names`, sanitised and capped.
    fn kept(&self, names: &[String]) -> BTreeMap<String, String> {
        names
            .iter()
            .filter_map(|name| {
                let (_, value) = self.all.iter().find(|(k, _)| k == name)?;
                let clean: String = value.chars().filter(|c| !c.is_control()).take(MAX_KEPT_VALUE_CHARS).collect();
                Some((name.clone(), clean))
            })
            .collect()
    }
}

/// Receives the provider's redirect.
pub async fn callback(State(state): State<SharedState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let query = CallbackQuery::parse(raw.as_deref());
    let (flow, cookie_name) = match check_state(&state, &headers, &query).await {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(error = %err, "authorization callback refused");
            return pages::flow_failure(&state, None, &err);
        }
    };
    let clear = [(SET_COOKIE, cookie::clear(&state.config, &cookie_name))];
    let connection = match state.store.connection_by_id(&flow.connection_id).await {
        Ok(Some(connection)) => connection,
        Ok(None) => {
            let err = Error::NotFound("the connection was deleted before the authorization finished".to_owned());
            return (clear, pages::flow_failure(&state, None, &err)).into_response();
        }
        Err(err) => return (clear, pages::flow_failure(&state, None, &err)).into_response(),
    };
    let finished = finish(&state, &flow, &connection, query).await;
    state.audit.authorization_finished(&connection, &finished).await;
    match finished {
        Ok(()) => (clear, pages::flow_success(&state, &connection)).into_response(),
        Err(err) => {
            let message = err.to_string();
            // Read again: the connection may have been edited while the provider was asked.
            let current = state.store.connection_by_id(&connection.id).await.ok().flatten();
            let write = FailureWrite {
                status: current.as_ref().unwrap_or(&connection).status_after_failed_authorization(),
                last_error: message,
                failure_count: connection.failure_count,
                retry_after: None,
                now: state.clock.now(),
            };
            if let Err(store_err) = state.store.record_failure(&connection.id, &write).await {
                tracing::error!(error = %store_err, "could not record the failed authorization");
            }
            tracing::warn!(handle = %connection.handle, error = %err, "authorization failed");
            (clear, pages::flow_failure(&state, Some(&connection), &err)).into_response()
        }
    }
}

/// Finds the flow of `state`, refusing a missing, unknown, expired, reused or foreign-browser state. Marks the
/// flow completed, so that it runs at most once.
async fn check_state(state: &SharedState, headers: &HeaderMap, query: &CallbackQuery) -> Result<(AuthFlow, String)> {
    let raw_state = query.state.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::bad_request("the provider's answer carries no state: start the authorization again from latchkey")
    })?;
    let state_hash = digest(raw_state);
    let flow = state.store.flow_by_state(&state_hash).await?.ok_or_else(|| {
        Error::bad_request("this authorization answer does not belong to any authorization latchkey started: start again from your connection list")
    })?;
    let now = state.clock.now();
    if flow.completed_at.is_some() {
        return Err(Error::bad_request("this authorization answer was already used: start the authorization again"));
    }
    if flow.expires_at <= now {
        return Err(Error::bad_request(
            "this authorization took too long and expired: start it again from your connection list",
        ));
    }
    let name = cookie::name(&state.config, &state_hash);
    let bound = match (cookie::read(headers, &name), &flow.browser_hash) {
        (Some(value), Some(expected)) => constant_time_eq(&digest(value).0, &expected.0),
        _ => false,
    };
    if !bound {
        return Err(Error::bad_request(
            "this authorization was started in another browser (or its cookie was blocked): finish it in the browser that opened the link",
        ));
    }
    if !state.store.complete_flow(&flow.id, now).await? {
        return Err(Error::bad_request("this authorization answer was already used: start the authorization again"));
    }
    Ok((flow, name))
}

/// RFC 9207 §2.4: when the connection has an issuer, an `iss` in the answer must be exactly that issuer; when
/// the issuer's metadata promised `iss`, the answer must carry it. Checked before the answer is used at all, so
/// that a response from another provider (a mix-up attack) never reaches the token endpoint.
fn check_issuer(settings: &OAuthSettings, handle: &Handle, iss: Option<&str>) -> Result<()> {
    let Some(expected) = settings.issuer.as_deref() else {
        return Ok(());
    };
    match iss {
        Some(got) if got == expected => Ok(()),
        Some(got) => {
            let shown: String = got.chars().take(200).collect::<String>().escape_debug().to_string();
            Err(Error::bad_request(format!(
                "the authorization answer for '{handle}' names the issuer '{shown}', not '{expected}': it may come \
                 from another provider (RFC 9207), so latchkey did not use it; start the authorization again"
            )))
        }
        None if settings.authorization_response_iss_parameter_supported => Err(Error::bad_request(format!(
            "the authorization answer for '{handle}' carries no 'iss', although the metadata of {expected} says \
             it always does (RFC 9207), so latchkey did not use it; start the authorization again"
        ))),
        None => Ok(()),
    }
}

async fn finish(state: &SharedState, flow: &AuthFlow, connection: &Connection, query: CallbackQuery) -> Result<()> {
    let handle = &connection.handle;
    let settings = connection.settings.resolved()?;
    check_issuer(&settings, handle, query.iss.as_deref())?;
    let kept = query.kept(&settings.keep_callback_params);
    if let Some(error) = query.error {
        let described = latchkey_oauth::describe_provider_error(&error, query.error_description.as_deref());
        return Err(Error::Provider {
            message: format!("the provider did not authorize '{handle}': {described}"),
            retryable: false,
        });
    }
    let code = query.code.filter(|c| !c.is_empty()).ok_or_else(|| {
        Error::bad_request("the provider's answer carries neither a code nor an error: start the authorization again")
    })?;
    let verifier = flow
        .pkce_verifier
        .as_ref()
        .map(|sealed| sealing::open_verifier(&state.keyring, &flow.id, sealed))
        .transpose()?;
    let client_secret = connection
        .client_secret
        .as_ref()
        .map(|s| sealing::open(&state.keyring, &connection.id, Column::ClientSecret, s))
        .transpose()?;
    let response = latchkey_oauth::exchange_code(
        &state.http,
        &settings,
        client_secret.as_ref(),
        &code,
        &flow.redirect_uri,
        verifier.as_ref(),
    )
    .await
    .map_err(|e| Error::Provider {
        message: format!("exchanging the code of '{handle}' failed: {}", e.describe(&settings.token_url)),
        retryable: e.is_retryable(),
    })?;
    let now = state.clock.now();
    let (mut tokens, refresh_at) = state.tokens.tokens_from_response(&connection.id, &response, None, now);
    // Kept values of the callback first; the token response's win where both name the same key.
    let mut extra = kept;
    extra.append(&mut tokens.extra);
    tokens.extra = extra;
    let tokens_kept = tokens.extra.len();
    // Fenced by the version read before the exchange: an edit that moved the credential route meanwhile discarded
    // this authorization, and tokens from the old route must not land on the new one.
    let write = TokenWrite { tokens, refresh_at, now, expected_version: Some(connection.token_version) };
    if !state.store.save_tokens(&connection.id, &write).await? {
        return Err(Error::conflict(
            "connection_changed",
            format!("'{handle}' was edited while this authorization was under way: authorize it again"),
        ));
    }
    tracing::info!(
        handle = %handle,
        refresh_token = response.refresh_token.is_some(),
        kept_values = tokens_kept,
        "connection authorized"
    );
    Ok(())
}
