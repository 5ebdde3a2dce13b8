//! Creating, editing, deleting and re-authorizing connections.

use std::collections::BTreeMap;

use latchkey_core::audit::{Action, Actor};
use latchkey_core::model::{AuthFlow, Connection, ConnectionConfig, ConnectionId, FailureWrite, FlowId, Status, User};
use latchkey_core::settings::{ClientAuth, GrantType, OAuthSettings, Pkce, TokenRequestFormat};
use latchkey_core::{Error, Handle, Result, Secret};
use latchkey_oauth::PkcePair;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{grants, settings};
use crate::presets;
use crate::sealing::{self, Column};
use crate::state::AppState;

/// The longest connection name accepted.
const MAX_NAME_LEN: usize = 200;

/// The fields of a connection as sent to create or edit it (CONTRACT.md). On edit every field is optional; a
/// missing or empty `client_secret` keeps the stored one.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    /// 1 to 64 lowercase letters, digits and hyphens; unique per user; cannot change.
    pub handle: Option<String>,
    /// A label only its owner sees. Defaults to the handle.
    pub name: Option<String>,
    /// `custom` (the default) or the id of a preset (`GET /api/v1/providers`), whose settings the other
    /// fields override.
    #[schema(example = "custom")]
    pub provider: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    /// Write-only: never returned.
    #[schema(value_type = Option<String>, format = Password)]
    pub client_secret: Option<Secret>,
    /// Space-separated.
    pub scopes: Option<String>,
    #[schema(value_type = Option<String>, example = "authorization_code")]
    pub grant_type: Option<GrantType>,
    #[schema(value_type = Option<String>, example = "S256")]
    pub pkce: Option<Pkce>,
    #[schema(value_type = Option<String>, example = "client_secret_post")]
    pub client_auth: Option<ClientAuth>,
    #[schema(value_type = Option<String>, example = "form")]
    pub token_request_format: Option<TokenRequestFormat>,
    pub authorization_params: Option<BTreeMap<String, String>>,
    pub token_params: Option<BTreeMap<String, String>>,
    pub refresh_params: Option<BTreeMap<String, String>>,
    /// Extra HTTP headers of every request to the provider's token, refresh, revocation and device endpoints
    /// (for example `Notion-Version`); never a credential or a header latchkey sets itself.
    #[schema(example = json!({"Notion-Version": "2022-06-28"}))]
    pub request_headers: Option<BTreeMap<String, String>>,
    pub scope_separator: Option<String>,
    /// Seconds to assume when the provider sends no lifetime; without it such a token is never refreshed blindly.
    pub default_expires_in: Option<u64>,
    pub refresh_url: Option<String>,
    /// RFC 7009 endpoint; on delete the tokens are revoked there (a failure is logged, never blocks the delete).
    pub revocation_url: Option<String>,
    /// Used exactly, in the authorization request and the code exchange. `""` restores the default.
    pub redirect_uri: Option<String>,
    /// How the client authenticates in refresh requests when not as `client_auth`: `client_secret_post`,
    /// `client_secret_basic` or `none`; `""` (or absent on create) follows `client_auth`.
    #[schema(example = "client_secret_post")]
    pub refresh_client_auth: Option<String>,
    /// The body encoding of revocation requests when not as `token_request_format`: `form` or `json`; `""` (or
    /// absent on create) follows `token_request_format`.
    #[schema(example = "json")]
    pub revocation_request_format: Option<String>,
    /// Where each value sits in the token response, as dotted paths. Keys: `access_token`, `refresh_token`,
    /// `expires_in`, `token_type`, `scope`, and `expires_at` (an absolute expiry in epoch seconds or RFC 3339,
    /// read only when mapped; `expires_in` wins when both are present). Unnamed keys keep their standard place.
    #[schema(example = json!({"access_token": "authed_user.access_token"}))]
    pub token_response_map: Option<BTreeMap<String, String>>,
    /// Dotted paths of token-response values to keep with the connection and show in `extra` (never
    /// token-like fields), for example `["instance_url"]`.
    #[schema(example = json!(["instance_url"]))]
    pub keep_response_fields: Option<Vec<String>>,
    /// Names of callback query parameters to keep in `extra`, for example `["realmId"]`.
    #[schema(example = json!(["realmId"]))]
    pub keep_callback_params: Option<Vec<String>>,
    /// The RFC 8628 device authorization endpoint.
    pub device_authorization_url: Option<String>,
    /// An issuer whose RFC 8414 (or OpenID Connect) metadata fills the endpoints not given, fetched when the
    /// connection is saved. Its metadata must name exactly this issuer. When it advertises
    /// `authorization_response_iss_parameter_supported`, the callback requires a matching `iss` (RFC 9207).
    pub issuer: Option<String>,
    /// Values for `{name}` placeholders in the URLs and the issuer, for example `{"subdomain": "acme"}`. Values
    /// are letters, digits, `-`, `.`, `_` and `~` only.
    #[schema(example = json!({"subdomain": "acme"}))]
    pub connection_params: Option<BTreeMap<String, String>>,
}

/// A connection together with a fresh authorization link.
pub struct Authorizing {
    pub connection: Connection,
    pub authorization_link: String,
}

/// Creates a connection for `user` and its first authorization link.
///
/// # Errors
/// `Invalid` naming the field at fault (including a handle the user already has).
async fn create_unaudited(state: &AppState, user: &User, mut input: ConnectionInput) -> Result<Authorizing> {
    let handle = Handle::parse(input.handle.as_deref().unwrap_or_default())?;
    let provider = presets::check_provider(input.provider.as_deref())?;
    let base = presets::base_settings(&provider, &mut input, None)?;
    let settings = settings::build(state, base.as_ref(), &input).await?;
    let name = clean_name(input.name.as_deref().unwrap_or(handle.as_str()))?;
    let now = state.clock.now();
    let id = ConnectionId::random();
    let client_secret =
        non_empty(input.client_secret.as_ref()).map(|s| sealing::seal(&state.keyring, &id, Column::ClientSecret, s));
    let connection = Connection {
        id,
        user_id: user.id.clone(),
        handle: handle.clone(),
        name,
        provider,
        settings,
        client_secret,
        status: Status::Pending,
        last_error: None,
        tokens: None,
        token_version: 0,
        failure_count: 0,
        retry_after: None,
        refresh_at: None,
        last_refreshed_at: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_connection(&connection).await.map_err(|e| match e {
        Error::Conflict { .. } => Error::invalid(
            "handle",
            format!("you already have a connection with the handle '{handle}': pick another handle"),
        ),
        other => other,
    })?;
    tracing::info!(handle = %handle, user = %user.username, "connection created");
    let authorization_link = match grants::next_step(state, &connection).await {
        Ok(link) => link,
        Err(err) => {
            // The device authorization endpoint refused or failed: keep nothing, so the same request may be sent
            // again.
            let _ = state.store.delete_connection(&connection.id).await;
            return Err(err);
        }
    };
    Ok(Authorizing { connection, authorization_link })
}

/// Edits a connection and makes a fresh authorization link. The handle cannot change.
///
/// A stored secret is only ever sent to the credential route in force when it was stored
/// ([`OAuthSettings::credential_route`]: token, refresh, revocation and device URLs as resolved, the issuer, the
/// client id, the grant and the client authentication). When an edit changes that route, the client secret must
/// be given again in the same request (unless the client is public), the old tokens are revoked at the old
/// revocation endpoint and discarded with every unfinished authorization, and the connection is `pending` until
/// a new authorization succeeds.
///
/// # Errors
/// `NotFound` for an unknown handle, `Invalid` for a bad field, a changed handle or a missing client secret.
async fn update_unaudited(
    state: &AppState,
    user: &User,
    handle: &Handle,
    mut input: ConnectionInput,
) -> Result<Authorizing> {
    let existing = find(state, user, handle).await?;
    if let Some(requested) = input.handle.as_deref()
        && requested != handle.as_str()
    {
        return Err(Error::invalid("handle", format!("the handle of '{handle}' cannot be changed")));
    }
    let provider = match input.provider.as_deref() {
        Some(_) => presets::check_provider(input.provider.as_deref())?,
        None => existing.provider.clone(),
    };
    // Switching to a preset starts again from its settings; otherwise the stored settings are the base.
    let preset_base = if provider == existing.provider {
        None
    } else {
        presets::base_settings(&provider, &mut input, Some(&existing.settings))?
    };
    let base = preset_base.as_ref().unwrap_or(&existing.settings);
    let settings = settings::build(state, Some(base), &input).await?;
    let name = match input.name.as_deref() {
        Some(name) => clean_name(name)?,
        None => existing.name.clone(),
    };
    let given_secret = non_empty(input.client_secret.as_ref());
    let route_changes = route_changes(&existing.settings, &settings);
    if !route_changes.is_empty()
        && existing.client_secret.is_some()
        && given_secret.is_none()
        && !settings.is_public_client()
    {
        return Err(Error::invalid(
            "client_secret",
            format!(
                "this edit changes {}, which decides where the client secret and tokens of '{handle}' are sent: \
                 type the client secret again to confirm the change",
                route_changes.join(", ")
            ),
        ));
    }
    let client_secret = given_secret.map(|s| sealing::seal(&state.keyring, &existing.id, Column::ClientSecret, s));
    let now = state.clock.now();
    let config = ConnectionConfig { name, provider, settings, client_secret };
    if route_changes.is_empty() {
        state.store.update_connection_config(&existing.id, &config, now).await?;
        if config.settings.grant_type == GrantType::ClientCredentials
            && matches!(existing.status, Status::NeedsReauth | Status::Error)
        {
            // Fixed credentials are tried on the next token request.
            state.store.set_status(&existing.id, Status::Pending, None, now).await?;
        } else if existing.status == Status::Error && existing.refresh_at.is_none() && existing.failure_count > 0 {
            // Refreshes stopped after repeated permanent failures: saving the settings is the person's word that
            // they were checked, so the next token request tries once more.
            let write = FailureWrite {
                status: Status::Error,
                last_error: existing.last_error.clone().unwrap_or_default(),
                failure_count: 0,
                retry_after: None,
                now,
            };
            state.store.record_failure(&existing.id, &write).await?;
        }
    } else {
        // One write: nothing obtained under the old route (tokens, kept values, unfinished authorizations) is
        // used with the new one, and a refresh already under way cannot store its result.
        let next = if config.settings.grant_type == GrantType::ClientCredentials {
            "the next token request fetches a new token"
        } else {
            "authorize again to use this connection"
        };
        let message = format!("{} changed: {next}", route_changes.join(", "));
        state.store.reset_connection(&existing.id, &config, &message, now).await?;
        if existing.tokens.is_some() && existing.settings.revocation_url.is_some() {
            // The old tokens are revoked where they were issued, with the secret stored beside them.
            revoke_tokens(state, &existing).await;
        }
    }
    tracing::info!(handle = %handle, user = %user.username, route_changed = ?route_changes, "connection edited");
    let connection = find(state, user, handle).await?;
    let authorization_link = grants::next_step(state, &connection).await?;
    Ok(Authorizing { connection, authorization_link })
}

/// The names of the settings whose change moves the connection's credential route, empty when it stays. A route
/// that cannot be resolved counts as changed.
fn route_changes(old: &OAuthSettings, new: &OAuthSettings) -> Vec<&'static str> {
    match (new.credential_route(), old.credential_route()) {
        (Ok(new), Ok(old)) => new.changes(&old),
        _ => vec!["connection_params"],
    }
}

/// Deletes a connection, revoking its tokens first where the provider has a revocation endpoint. A failed
/// revocation is logged and never blocks the delete.
///
/// # Errors
/// `NotFound` for an unknown handle.
async fn delete_unaudited(state: &AppState, user: &User, handle: &Handle) -> Result<()> {
    let existing = find(state, user, handle).await?;
    if existing.settings.revocation_url.is_some() {
        revoke_tokens(state, &existing).await;
    }
    state.store.delete_connection(&existing.id).await?;
    tracing::info!(handle = %handle, user = %user.username, "connection deleted");
    Ok(())
}

/// A fresh authorization link for a connection of `user`.
///
/// # Errors
/// `NotFound` for an unknown handle.
async fn authorize_unaudited(state: &AppState, user: &User, handle: &Handle) -> Result<Authorizing> {
    let connection = find(state, user, handle).await?;
    grants::check_authorizable(&connection)?;
    let authorization_link = grants::next_step(state, &connection).await?;
    Ok(Authorizing { connection, authorization_link })
}

/// Creates a connection for `user` and its first authorization link (see `create_unaudited`), recorded in the
/// audit log as done by `by` when the handle is valid.
///
/// # Errors
/// `Invalid` naming the field at fault (including a handle the user already has).
pub async fn create(state: &AppState, user: &User, by: &Actor, input: ConnectionInput) -> Result<Authorizing> {
    let handle = input.handle.as_deref().map(Handle::parse).and_then(std::result::Result::ok);
    let result = create_unaudited(state, user, input).await;
    if let Some(handle) = handle {
        state.audit.connection_change(&user.id, by, Action::ConnectionCreate, &handle, &result).await;
    }
    result
}

/// Edits a connection (see `update_unaudited`), recorded in the audit log as done by `by`.
///
/// # Errors
/// `NotFound` for an unknown handle, `Invalid` for a bad field or a changed handle.
pub async fn update(
    state: &AppState,
    user: &User,
    by: &Actor,
    handle: &Handle,
    input: ConnectionInput,
) -> Result<Authorizing> {
    let result = update_unaudited(state, user, handle, input).await;
    record_unless_unknown(state, user, by, Action::ConnectionEdit, handle, &result).await;
    result
}

/// Deletes a connection (see `delete_unaudited`), recorded in the audit log as done by `by`; the records of the
/// connection stay.
///
/// # Errors
/// `NotFound` for an unknown handle.
pub async fn delete(state: &AppState, user: &User, by: &Actor, handle: &Handle) -> Result<()> {
    let result = delete_unaudited(state, user, handle).await;
    record_unless_unknown(state, user, by, Action::ConnectionDelete, handle, &result).await;
    result
}

/// A fresh authorization link for a connection of `user`, recorded in the audit log as asked by `by`.
///
/// # Errors
/// `NotFound` for an unknown handle.
pub async fn authorize(state: &AppState, user: &User, by: &Actor, handle: &Handle) -> Result<Authorizing> {
    let result = authorize_unaudited(state, user, handle).await;
    record_unless_unknown(state, user, by, Action::ConnectionAuthorize, handle, &result).await;
    result
}

/// Records a change, except an attempt on a handle the user does not have (nothing changed, and the log of a
/// handle is its owner's).
async fn record_unless_unknown<T>(
    state: &AppState,
    user: &User,
    by: &Actor,
    action: Action,
    handle: &Handle,
    result: &Result<T>,
) {
    if !matches!(result, Err(Error::NotFound(_))) {
        state.audit.connection_change(&user.id, by, action, handle, result).await;
    }
}

/// The user's connection with this handle.
///
/// # Errors
/// `NotFound` when the user has none (another user's connection is not found either).
pub async fn find(state: &AppState, user: &User, handle: &Handle) -> Result<Connection> {
    state
        .store
        .connection(&user.id, handle)
        .await?
        .ok_or_else(|| Error::NotFound(format!("you have no connection with the handle '{handle}'")))
}

/// Creates a single-use authorization flow and returns its link, `{public-url}/oauth2/start/{link}`.
///
/// # Errors
/// Storage failures.
pub async fn new_authorization_link(state: &AppState, connection: &Connection) -> Result<String> {
    let link = latchkey_crypto::tokens::random_token(32);
    let now = state.clock.now();
    let id = FlowId::random();
    let ttl = i64::try_from(state.config.authorization_link_ttl.as_secs()).unwrap_or(600);
    let pkce_verifier = (connection.settings.pkce == Pkce::S256)
        .then(|| sealing::seal_verifier(&state.keyring, &id, &PkcePair::generate().verifier));
    let flow = AuthFlow {
        id,
        connection_id: connection.id.clone(),
        link_hash: latchkey_crypto::tokens::digest(&link),
        state_hash: None,
        browser_hash: None,
        pkce_verifier,
        redirect_uri: redirect_uri(state, &connection.settings),
        created_at: now,
        expires_at: now.plus_secs(ttl),
        started_at: None,
        completed_at: None,
    };
    state.store.insert_flow(&flow).await?;
    Ok(state.config.public(&format!("/oauth2/start/{link}")))
}

/// The redirect URI of a connection: its own, or the server's default callback.
#[must_use]
pub fn redirect_uri(state: &AppState, settings: &OAuthSettings) -> String {
    settings.redirect_uri.clone().unwrap_or_else(|| state.config.default_redirect_uri())
}

async fn revoke_tokens(state: &AppState, connection: &Connection) {
    let Some(tokens) = connection.tokens.as_ref() else { return };
    let secret = connection
        .client_secret
        .as_ref()
        .and_then(|s| sealing::open(&state.keyring, &connection.id, Column::ClientSecret, s).ok());
    let (sealed, column, hint) = match &tokens.refresh_token {
        Some(refresh) => (refresh, Column::RefreshToken, "refresh_token"),
        None => (&tokens.access_token, Column::AccessToken, "access_token"),
    };
    let Ok(token) = sealing::open(&state.keyring, &connection.id, column, sealed) else { return };
    let settings = match connection.settings.resolved() {
        Ok(settings) => settings,
        Err(err) => {
            tracing::warn!(handle = %connection.handle, error = %err, "token revocation skipped; deleting anyway");
            return;
        }
    };
    let endpoint = settings.revocation_url.as_deref().unwrap_or_default();
    match latchkey_oauth::revoke(&state.http, &settings, secret.as_ref(), &token, hint).await {
        Ok(()) => tracing::info!(handle = %connection.handle, token_type_hint = hint, "tokens revoked at the provider"),
        Err(err) => tracing::warn!(
            handle = %connection.handle,
            error = %err.describe_at("the revocation endpoint", endpoint),
            "token revocation failed; deleting anyway"
        ),
    }
}

fn non_empty(value: Option<&Secret>) -> Option<&Secret> {
    value.filter(|v| !v.is_empty())
}

fn clean_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid("name", "the name is empty: give the connection a name you will recognise"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(Error::invalid("name", format!("the name is longer than {MAX_NAME_LEN} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "the name contains control characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_debug_never_shows_the_client_secret() {
        let input: ConnectionInput =
            serde_json::from_str(r#"{"handle":"crm","client_secret":"very-secret-value"}"#).expect("parses");
        let printed = format!("{input:?}");
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }
}
