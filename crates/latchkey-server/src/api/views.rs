//! The JSON shapes the API answers with. Secrets never appear: the client secret only as `client_secret_set`.

use std::collections::BTreeMap;

use latchkey_core::Timestamp;
use latchkey_core::model::{Connection, DeviceFlow};
use serde::Serialize;
use utoipa::ToSchema;

/// A connection as read back.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    #[schema(example = "my-custom-handle")]
    pub handle: String,
    #[schema(example = "My API")]
    pub name: String,
    #[schema(example = "custom")]
    pub provider: String,
    /// `pending`, `connected`, `needs_reauth` or `error`.
    #[schema(example = "connected")]
    pub status: String,
    /// Why the last attempt failed, in words.
    pub last_error: Option<String>,
    #[schema(example = "read:data write:data")]
    pub scopes: String,
    /// The scopes the provider granted, when it said.
    pub granted_scopes: Option<String>,
    /// When the access token expires (RFC 3339), or null.
    pub expires_at: Option<String>,
    pub last_refreshed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub client_secret_set: bool,
    pub client_id: String,
    pub authorization_url: String,
    pub token_url: String,
    /// The redirect URI to register with the provider.
    pub redirect_uri: String,
    pub grant_type: String,
    pub pkce: String,
    pub client_auth: String,
    pub token_request_format: String,
    pub authorization_params: BTreeMap<String, String>,
    pub token_params: BTreeMap<String, String>,
    pub refresh_params: BTreeMap<String, String>,
    /// Extra HTTP headers of the requests to the provider's token, refresh, revocation and device endpoints.
    pub request_headers: BTreeMap<String, String>,
    pub scope_separator: String,
    pub default_expires_in: Option<u64>,
    pub refresh_url: Option<String>,
    pub revocation_url: Option<String>,
    /// Whether the provider issued a refresh token.
    pub has_refresh_token: bool,
    /// `client_secret_post`, `client_secret_basic` or `none` for refresh requests; null follows `client_auth`.
    pub refresh_client_auth: Option<String>,
    /// `form` or `json` for revocation requests; null follows `token_request_format`.
    pub revocation_request_format: Option<String>,
    /// Where each value sits in the token response (dotted paths); unnamed keys keep their standard place.
    #[schema(example = json!({"access_token": "authed_user.access_token"}))]
    pub token_response_map: BTreeMap<String, String>,
    /// Paths of token-response values kept in `extra`.
    pub keep_response_fields: Vec<String>,
    /// Callback query parameters kept in `extra`.
    pub keep_callback_params: Vec<String>,
    pub device_authorization_url: Option<String>,
    /// The issuer whose metadata filled the endpoints named in `discovered_endpoints`.
    pub issuer: Option<String>,
    /// Which endpoint fields came from the issuer's metadata when the connection was last saved.
    pub discovered_endpoints: Vec<String>,
    /// The issuer's metadata promises `iss` in authorization responses, so the callback requires it (RFC 9207).
    pub iss_required: bool,
    /// Values for the `{name}` placeholders of the URLs.
    pub connection_params: BTreeMap<String, String>,
    /// The values kept from the last authorization and refreshes (`keep_response_fields`,
    /// `keep_callback_params`), for example `{"instance_url": "https://acme.my.salesforce.com"}`.
    #[schema(example = json!({"instance_url": "https://acme.my.salesforce.com"}))]
    pub extra: BTreeMap<String, String>,
    /// For a `device_code` connection whose device authorization is under way: what the person needs to approve
    /// it. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceView>,
}

/// A device authorization under way (RFC 8628 §3.2), as shown to the person. The device code itself never
/// appears.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// The code to enter at `verification_uri`.
    #[schema(example = "WDJB-MJHT")]
    pub user_code: String,
    #[schema(example = "https://provider.example/device")]
    pub verification_uri: String,
    /// The verification URI with the user code filled in, or null when the provider sent none.
    pub verification_uri_complete: Option<String>,
    /// When the codes expire (RFC 3339).
    pub expires_at: String,
    /// Seconds between latchkey's polls of the provider.
    pub interval: i64,
}

impl DeviceView {
    /// The view of a stored device flow.
    #[must_use]
    pub fn new(flow: &DeviceFlow) -> Self {
        Self {
            user_code: flow.user_code.clone(),
            verification_uri: flow.verification_uri.clone(),
            verification_uri_complete: flow.verification_uri_complete.clone(),
            expires_at: flow.expires_at.to_rfc3339(),
            interval: flow.interval_secs,
        }
    }
}

fn word<T: Serialize>(value: T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl ConnectionView {
    /// The view of `connection`, whose redirect URI is `redirect_uri`.
    #[must_use]
    pub fn new(connection: &Connection, redirect_uri: String) -> Self {
        let s = &connection.settings;
        let tokens = connection.tokens.as_ref();
        Self {
            handle: connection.handle.to_string(),
            name: connection.name.clone(),
            provider: connection.provider.clone(),
            status: connection.status.as_str().to_owned(),
            last_error: connection.last_error.clone(),
            scopes: s.scopes.clone(),
            granted_scopes: tokens.and_then(|t| t.scope.clone()),
            expires_at: tokens.and_then(|t| t.expires_at).map(Timestamp::to_rfc3339),
            last_refreshed_at: connection.last_refreshed_at.map(Timestamp::to_rfc3339),
            created_at: connection.created_at.to_rfc3339(),
            updated_at: connection.updated_at.to_rfc3339(),
            client_secret_set: connection.client_secret.is_some(),
            client_id: s.client_id.clone(),
            authorization_url: s.authorization_url.clone(),
            token_url: s.token_url.clone(),
            redirect_uri,
            grant_type: word(s.grant_type),
            pkce: word(s.pkce),
            client_auth: word(s.client_auth),
            token_request_format: word(s.token_request_format),
            authorization_params: s.authorization_params.clone(),
            token_params: s.token_params.clone(),
            refresh_params: s.refresh_params.clone(),
            request_headers: s.request_headers.clone(),
            scope_separator: s.scope_separator.clone(),
            default_expires_in: s.default_expires_in,
            refresh_url: s.refresh_url.clone(),
            revocation_url: s.revocation_url.clone(),
            has_refresh_token: tokens.is_some_and(|t| t.refresh_token.is_some()),
            refresh_client_auth: s.refresh_client_auth.map(word),
            revocation_request_format: s.revocation_request_format.map(word),
            token_response_map: s.token_response_map.to_pairs(),
            keep_response_fields: s.keep_response_fields.clone(),
            keep_callback_params: s.keep_callback_params.clone(),
            device_authorization_url: s.device_authorization_url.clone(),
            issuer: s.issuer.clone(),
            discovered_endpoints: s.discovered.clone(),
            iss_required: s.authorization_response_iss_parameter_supported,
            connection_params: s.connection_params.clone(),
            extra: tokens.map(|t| t.extra.clone()).unwrap_or_default(),
            device: None,
        }
    }
}

/// `{"connection": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionEnvelope {
    pub connection: ConnectionView,
}

/// `{"connection": {...}, "authorization_link": "..."}` for the `authorization_code` grant;
/// `{"connection": {...}, "device": {...}}` for `device_code`; `{"connection": {...}}` alone for
/// `client_credentials`, whose token is fetched on the first token request.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizingEnvelope {
    pub connection: ConnectionView,
    /// Open in a browser to authorize; works once and expires. Absent for `client_credentials` and
    /// `device_code` connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_link: Option<String>,
    /// For `device_code` connections: show `user_code` and `verification_uri` to the person; latchkey polls
    /// the provider and the connection turns `connected` once they approve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceView>,
}

/// `{"connections": [...]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionView>,
}

/// The token endpoint's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    /// The access token.
    #[schema(example = "<access token>")]
    pub token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// RFC 3339, or null when the provider gave no lifetime.
    pub expires_at: Option<String>,
    /// The values the connection keeps from its authorization (`keep_response_fields`, `keep_callback_params`);
    /// left out when there are none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(example = json!({"instance_url": "https://acme.my.salesforce.com"}))]
    pub extra: BTreeMap<String, String>,
}
