//! Creating, editing, deleting and re-authorizing connections.

use std::collections::BTreeMap;

use latchkey_core::model::{AuthFlow, Connection, ConnectionConfig, ConnectionId, FlowId, Status, User};
use latchkey_core::settings::{ClientAuth, GrantType, OAuthSettings, Pkce, TokenRequestFormat};
use latchkey_core::{Error, Handle, Result, Secret};
use latchkey_oauth::PkcePair;
use serde::Deserialize;
use url::Url;
use utoipa::ToSchema;

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
    /// `custom` (the default).
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
    pub scope_separator: Option<String>,
    pub default_expires_in: Option<u64>,
    pub refresh_url: Option<String>,
    pub revocation_url: Option<String>,
    pub redirect_uri: Option<String>,
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
pub async fn create(state: &AppState, user: &User, input: ConnectionInput) -> Result<Authorizing> {
    let handle = Handle::parse(input.handle.as_deref().unwrap_or_default())?;
    let settings = merge_settings(state, None, &input)?;
    let name = clean_name(input.name.as_deref().unwrap_or(handle.as_str()))?;
    let provider = clean_provider(input.provider.as_deref())?;
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
    let authorization_link = new_authorization_link(state, &connection).await?;
    Ok(Authorizing { connection, authorization_link })
}

/// Edits a connection and makes a fresh authorization link. The handle cannot change. When the token URL, the
/// refresh URL or the client id change, the stored tokens are no longer used (status `pending`) until the person
/// authorizes again, so a refresh token never goes to an endpoint it was not issued for.
///
/// # Errors
/// `NotFound` for an unknown handle, `Invalid` for a bad field or a changed handle.
pub async fn update(state: &AppState, user: &User, handle: &Handle, input: ConnectionInput) -> Result<Authorizing> {
    let existing = find(state, user, handle).await?;
    if let Some(requested) = input.handle.as_deref()
        && requested != handle.as_str()
    {
        return Err(Error::invalid("handle", format!("the handle of '{handle}' cannot be changed")));
    }
    let settings = merge_settings(state, Some(&existing.settings), &input)?;
    let name = match input.name.as_deref() {
        Some(name) => clean_name(name)?,
        None => existing.name.clone(),
    };
    let provider = match input.provider.as_deref() {
        Some(_) => clean_provider(input.provider.as_deref())?,
        None => existing.provider.clone(),
    };
    let client_secret = non_empty(input.client_secret.as_ref())
        .map(|s| sealing::seal(&state.keyring, &existing.id, Column::ClientSecret, s));
    let endpoints_changed = settings.token_url != existing.settings.token_url
        || settings.refresh_endpoint() != existing.settings.refresh_endpoint()
        || settings.client_id != existing.settings.client_id;
    let now = state.clock.now();
    let config = ConnectionConfig { name, provider, settings, client_secret };
    state.store.update_connection_config(&existing.id, &config, now).await?;
    if endpoints_changed && existing.status != Status::Pending {
        let message = "the token URL or client ID changed: authorize again to use this connection";
        state.store.set_status(&existing.id, Status::Pending, Some(message), now).await?;
    }
    tracing::info!(handle = %handle, user = %user.username, endpoints_changed, "connection edited");
    let connection = find(state, user, handle).await?;
    let authorization_link = new_authorization_link(state, &connection).await?;
    Ok(Authorizing { connection, authorization_link })
}

/// Deletes a connection, revoking its tokens first where the provider has a revocation endpoint. A failed
/// revocation is logged and never blocks the delete.
///
/// # Errors
/// `NotFound` for an unknown handle.
pub async fn delete(state: &AppState, user: &User, handle: &Handle) -> Result<()> {
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
pub async fn authorize(state: &AppState, user: &User, handle: &Handle) -> Result<Authorizing> {
    let connection = find(state, user, handle).await?;
    let authorization_link = new_authorization_link(state, &connection).await?;
    Ok(Authorizing { connection, authorization_link })
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
    if let Err(err) = latchkey_oauth::revoke(&state.http, &connection.settings, secret.as_ref(), &token, hint).await {
        let endpoint = connection.settings.revocation_url.as_deref().unwrap_or_default();
        tracing::warn!(
            handle = %connection.handle,
            error = %err.describe_at("the revocation endpoint", endpoint),
            "token revocation failed; deleting anyway"
        );
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

fn clean_provider(provider: Option<&str>) -> Result<String> {
    match provider.unwrap_or("custom") {
        "custom" => Ok("custom".to_owned()),
        other => Err(Error::invalid(
            "provider",
            format!("unknown provider '{}': use 'custom' and give the endpoints yourself", other.escape_debug()),
        )),
    }
}

/// Applies `input` over `base` (or over the defaults when creating) and validates the result.
fn merge_settings(state: &AppState, base: Option<&OAuthSettings>, input: &ConnectionInput) -> Result<OAuthSettings> {
    let required = |field: &str, value: Option<&String>, old: Option<&String>| -> Result<String> {
        match value.or(old).map(|v| v.trim().to_owned()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Error::invalid(field, format!("{} is required", field.replace('_', " ")))),
        }
    };
    let settings = OAuthSettings {
        grant_type: input.grant_type.or(base.map(|b| b.grant_type)).unwrap_or_default(),
        authorization_url: required(
            "authorization_url",
            input.authorization_url.as_ref(),
            base.map(|b| &b.authorization_url),
        )?,
        token_url: required("token_url", input.token_url.as_ref(), base.map(|b| &b.token_url))?,
        client_id: required("client_id", input.client_id.as_ref(), base.map(|b| &b.client_id))?,
        scopes: input
            .scopes
            .as_deref()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .or_else(|| base.map(|b| b.scopes.clone()))
            .unwrap_or_default(),
        pkce: input.pkce.or(base.map(|b| b.pkce)).unwrap_or_default(),
        client_auth: input.client_auth.or(base.map(|b| b.client_auth)).unwrap_or_default(),
        token_request_format: input.token_request_format.or(base.map(|b| b.token_request_format)).unwrap_or_default(),
        authorization_params: pick(&input.authorization_params, base.map(|b| &b.authorization_params)),
        token_params: pick(&input.token_params, base.map(|b| &b.token_params)),
        refresh_params: pick(&input.refresh_params, base.map(|b| &b.refresh_params)),
        scope_separator: input
            .scope_separator
            .clone()
            .or_else(|| base.map(|b| b.scope_separator.clone()))
            .unwrap_or_else(|| " ".to_owned()),
        default_expires_in: input.default_expires_in.or(base.and_then(|b| b.default_expires_in)),
        refresh_url: optional_url(&input.refresh_url, base.and_then(|b| b.refresh_url.as_ref())),
        revocation_url: optional_url(&input.revocation_url, base.and_then(|b| b.revocation_url.as_ref())),
        redirect_uri: optional_url(&input.redirect_uri, base.and_then(|b| b.redirect_uri.as_ref())),
        ..base.cloned().unwrap_or_default()
    };
    validate(state, &settings)?;
    Ok(settings)
}

fn pick(input: &Option<BTreeMap<String, String>>, base: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    input.clone().or_else(|| base.cloned()).unwrap_or_default()
}

/// An optional URL field: absent keeps `base`, an empty string clears it.
fn optional_url(input: &Option<String>, base: Option<&String>) -> Option<String> {
    match input.as_deref().map(str::trim) {
        Some("") => None,
        Some(v) => Some(v.to_owned()),
        None => base.cloned(),
    }
}

fn validate(state: &AppState, settings: &OAuthSettings) -> Result<()> {
    if settings.grant_type != GrantType::AuthorizationCode {
        return Err(Error::invalid(
            "grant_type",
            "only the authorization_code grant is available in this version of latchkey",
        ));
    }
    let policy = state.http.policy();
    let endpoints = [
        ("authorization_url", Some(&settings.authorization_url)),
        ("token_url", Some(&settings.token_url)),
        ("refresh_url", settings.refresh_url.as_ref()),
        ("revocation_url", settings.revocation_url.as_ref()),
    ];
    for (field, value) in endpoints {
        let Some(value) = value else { continue };
        let url = parse_url(field, value)?;
        if field != "authorization_url" {
            // The browser, not latchkey, visits the authorization URL; the others latchkey calls itself.
            latchkey_oauth::guard::check_url(&url, policy)
                .map_err(|e| Error::invalid(field, format!("{}: {e}", field.replace('_', " "))))?;
        }
    }
    if let Some(redirect) = &settings.redirect_uri {
        parse_url("redirect_uri", redirect)?;
    }
    if settings.client_id.chars().any(char::is_control) {
        return Err(Error::invalid("client_id", "the client ID contains control characters"));
    }
    let separator = settings.scope_separator.as_str();
    if separator.is_empty() || separator.len() > 3 || separator.chars().any(char::is_alphanumeric) {
        return Err(Error::invalid(
            "scope_separator",
            "the scope separator must be 1 to 3 non-alphanumeric characters, such as \" \", \",\" or \"+\"",
        ));
    }
    if settings.default_expires_in == Some(0) {
        return Err(Error::invalid("default_expires_in", "default_expires_in must be at least 1 second"));
    }
    Ok(())
}

fn parse_url(field: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value).map_err(|e| {
        Error::invalid(
            field,
            format!("{} is not a valid URL ({e}): give a full https:// address", field.replace('_', " ")),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Error::invalid(field, format!("{} must be an https:// address", field.replace('_', " "))));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(field, format!("{} has no host", field.replace('_', " "))));
    }
    Ok(url)
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

    #[test]
    fn optional_urls_keep_clear_or_replace() {
        let base = "https://old".to_owned();
        assert_eq!(optional_url(&None, Some(&base)), Some(base.clone()));
        assert_eq!(optional_url(&Some(" ".into()), Some(&base)), None);
        assert_eq!(optional_url(&Some("https://new".into()), Some(&base)).as_deref(), Some("https://new"));
    }
}
