//! How latchkey talks to one provider for one connection: endpoints, client identity and the options of
//! CONTRACT.md's "Connection settings". Stored as JSON beside the connection; never holds a secret (the client
//! secret is sealed in its own column).
//!
//! Backward compatibility: a field added after the first release always has a serde default, so settings
//! written by an older latchkey read unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, template};

/// Which OAuth 2.0 grant obtains the tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.1: a person consents in a browser; latchkey exchanges the code.
    #[default]
    AuthorizationCode,
    /// RFC 6749 §4.4: no person involved.
    ClientCredentials,
    /// RFC 8628: the person approves on another device.
    DeviceCode,
}

impl GrantType {
    /// The contract's spelling, as stored.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => "device_code",
        }
    }
}

/// Proof Key for Code Exchange (RFC 7636).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pkce {
    /// `code_challenge_method=S256` with a fresh verifier per flow.
    #[default]
    S256,
    /// No PKCE parameters, for providers that reject them.
    #[serde(rename = "off")]
    Off,
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the request body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the form-encoded id and secret.
    ClientSecretBasic,
    /// A public client: only `client_id` in the body.
    None,
}

/// The encoding of the token request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRequestFormat {
    /// `application/x-www-form-urlencoded`, as RFC 6749 requires.
    #[default]
    Form,
    /// `application/json`, for providers that want it.
    Json,
}

fn default_scope_separator() -> String {
    " ".to_owned()
}

/// Where each value sits in a token response (CONTRACT.md `token_response_map`), as dotted paths into the JSON
/// answer: `authed_user.access_token` reads `{"authed_user": {"access_token": ...}}`; a segment that is a
/// number indexes an array (`tokens.0.value`). In a form-encoded answer a path is looked up as one key. Fields
/// not named keep their standard place (RFC 6749 §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenResponseMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The lifetime in seconds, a number or a numeric string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// An absolute expiry: seconds since the Unix epoch (number or numeric string) or RFC 3339 text. It has no
    /// standard place, so it is read only when mapped; `expires_in` wins when both are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The longest dotted path accepted in `token_response_map` and `keep_response_fields`.
pub const MAX_PATH_LEN: usize = 200;

impl TokenResponseMap {
    /// The keys a map may name.
    pub const KEYS: [&'static str; 6] =
        ["access_token", "refresh_token", "expires_in", "expires_at", "token_type", "scope"];

    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key {
            "access_token" => &mut self.access_token,
            "refresh_token" => &mut self.refresh_token,
            "expires_in" => &mut self.expires_in,
            "expires_at" => &mut self.expires_at,
            "token_type" => &mut self.token_type,
            "scope" => &mut self.scope,
            _ => return None,
        })
    }

    /// The map from its JSON object form, checked: only the known keys, each with a valid dotted path. An empty
    /// path leaves the field at its standard place.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `token_response_map` and the key at fault.
    pub fn from_pairs(pairs: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut map = Self::default();
        for (key, path) in pairs {
            let Some(slot) = map.slot(key) else {
                return Err(Error::invalid(
                    "token_response_map",
                    format!(
                        "token_response_map has the unknown key '{}': use {}",
                        key.escape_debug(),
                        Self::KEYS.join(", ")
                    ),
                ));
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            check_path(path).map_err(|why| {
                Error::invalid("token_response_map", format!("token_response_map.{key}: the path '{path}' {why}"))
            })?;
            *slot = Some(path.to_owned());
        }
        Ok(map)
    }

    /// The map as a JSON object of the keys that are set.
    #[must_use]
    pub fn to_pairs(&self) -> BTreeMap<String, String> {
        let mut clone = self.clone();
        Self::KEYS
            .iter()
            .filter_map(|key| clone.slot(key).and_then(Option::take).map(|path| ((*key).to_owned(), path)))
            .collect()
    }

    /// Where `key` sits: its mapped path, or `key` itself (the standard place). `expires_at` has no standard
    /// place: `None` unless mapped.
    #[must_use]
    pub fn path<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        let mapped = match key {
            "access_token" => self.access_token.as_deref(),
            "refresh_token" => self.refresh_token.as_deref(),
            "expires_in" => self.expires_in.as_deref(),
            "expires_at" => return self.expires_at.as_deref(),
            "token_type" => self.token_type.as_deref(),
            "scope" => self.scope.as_deref(),
            _ => return None,
        };
        Some(mapped.unwrap_or(key))
    }

    /// Whether no key is mapped.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Checks a dotted path: 1 to 200 characters, segments not empty, no whitespace or control characters.
///
/// # Errors
/// A predicate saying what is wrong, for example "has an empty segment".
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".to_owned());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("is longer than {MAX_PATH_LEN} characters"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters".to_owned());
    }
    if path.split('.').any(str::is_empty) {
        return Err("has an empty segment (two dots, or a dot at an end)".to_owned());
    }
    Ok(())
}

/// Whether a field name or dotted path looks like it holds a credential, so that it must never be kept in the
/// clear: a segment containing `token`, `secret`, `password`, `passwd`, `credential`, `api_key` or `apikey`, or
/// one that is `code`, `code_verifier`, `state`, `assertion`, `key` or `jwt` (case-insensitive).
#[must_use]
pub fn is_secret_like(path: &str) -> bool {
    path.split('.').any(|segment| {
        let s = segment.to_ascii_lowercase();
        // Option names that only look like secrets (Dropbox's `token_access_type=offline`).
        if matches!(s.as_str(), "token_access_type") {
            return false;
        }
        ["token", "secret", "password", "passwd", "credential", "api_key", "apikey"].iter().any(|w| s.contains(w))
            || matches!(s.as_str(), "code" | "code_verifier" | "state" | "assertion" | "key" | "jwt")
    })
}

/// The provider-facing settings of a connection.
///
/// Every field added after the first release has a serde default, so settings stored by an older latchkey
/// still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthSettings {
    /// The grant used to obtain tokens.
    #[serde(default)]
    pub grant_type: GrantType,
    /// The provider's authorization endpoint (RFC 6749 §3.1); may hold `{name}` placeholders.
    pub authorization_url: String,
    /// The provider's token endpoint (RFC 6749 §3.2); may hold `{name}` placeholders.
    pub token_url: String,
    /// The client identifier registered with the provider.
    pub client_id: String,
    /// The requested scopes, separated by single spaces as typed by the person.
    #[serde(default)]
    pub scopes: String,
    /// Whether to use PKCE.
    #[serde(default)]
    pub pkce: Pkce,
    /// How the client authenticates at the token endpoint (the code exchange, and revocation).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// How the client authenticates in refresh requests, when not as `client_auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_client_auth: Option<ClientAuth>,
    /// The body encoding of token requests.
    #[serde(default)]
    pub token_request_format: TokenRequestFormat,
    /// The body encoding of revocation requests, when not as `token_request_format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_request_format: Option<TokenRequestFormat>,
    /// Extra parameters of the authorization request.
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    /// Extra parameters of the code exchange.
    #[serde(default)]
    pub token_params: BTreeMap<String, String>,
    /// Extra parameters of the refresh request.
    #[serde(default)]
    pub refresh_params: BTreeMap<String, String>,
    /// Extra HTTP headers of every request latchkey sends to the provider's token, refresh, revocation and
    /// device endpoints (Notion's `Notion-Version`); never a credential.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
    /// What joins the scopes in the authorization request.
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    /// Where each value sits in the token response.
    #[serde(default, skip_serializing_if = "TokenResponseMap::is_empty")]
    pub token_response_map: TokenResponseMap,
    /// Seconds to assume when the provider sends no lifetime.
    #[serde(default)]
    pub default_expires_in: Option<u64>,
    /// Dotted paths of token-response values to keep with the connection (not secret ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_response_fields: Vec<String>,
    /// Names of callback query parameters to keep with the connection (for example `realmId`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_callback_params: Vec<String>,
    /// Where refresh requests go when not to the token URL; may hold placeholders.
    #[serde(default)]
    pub refresh_url: Option<String>,
    /// The RFC 7009 revocation endpoint, used when the connection is deleted; may hold placeholders.
    #[serde(default)]
    pub revocation_url: Option<String>,
    /// The RFC 8628 device authorization endpoint; may hold placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_url: Option<String>,
    /// A redirect URI other than the server's default callback.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// The authorization server's issuer identifier (RFC 8414 §2); may hold placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The endpoint fields that were filled from the issuer's metadata when the connection was saved (and are
    /// fetched again on the next save), as field names such as `token_url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discovered: Vec<String>,
    /// The issuer's metadata says it sends `iss` in authorization responses (RFC 9207 §3), so the callback
    /// requires it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authorization_response_iss_parameter_supported: bool,
    /// Values for the `{name}` placeholders in the URLs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connection_params: BTreeMap<String, String>,
}

impl Default for OAuthSettings {
    /// Empty endpoints and client id; every option at the contract's default.
    fn default() -> Self {
        Self {
            grant_type: GrantType::default(),
            authorization_url: String::new(),
            token_url: String::new(),
            client_id: String::new(),
            scopes: String::new(),
            pkce: Pkce::default(),
            client_auth: ClientAuth::default(),
            refresh_client_auth: None,
            token_request_format: TokenRequestFormat::default(),
            revocation_request_format: None,
            authorization_params: BTreeMap::new(),
            token_params: BTreeMap::new(),
            refresh_params: BTreeMap::new(),
            request_headers: BTreeMap::new(),
            scope_separator: default_scope_separator(),
            token_response_map: TokenResponseMap::default(),
            default_expires_in: None,
            keep_response_fields: Vec::new(),
            keep_callback_params: Vec::new(),
            refresh_url: None,
            revocation_url: None,
            device_authorization_url: None,
            redirect_uri: None,
            issuer: None,
            discovered: Vec::new(),
            authorization_response_iss_parameter_supported: false,
            connection_params: BTreeMap::new(),
        }
    }
}

/// Everything in a connection's settings that decides where a stored credential (the client secret, a refresh
/// or access token, a device code) is sent, with the URL templates filled in. latchkey's rule: a stored secret
/// is only ever sent to the route in force when it was stored, so when this changes the client secret must be
/// given again and the stored tokens are discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRoute {
    grant_type: GrantType,
    client_id: String,
    token_url: String,
    /// Given apart from the token URL (refreshes follow the token URL otherwise).
    refresh_url: Option<String>,
    revocation_url: Option<String>,
    device_authorization_url: Option<String>,
    issuer: Option<String>,
    client_auth: ClientAuth,
    /// Given apart from `client_auth` (refreshes follow it otherwise).
    refresh_auth: Option<ClientAuth>,
}

impl CredentialRoute {
    /// The names of the settings that differ between `self` and `other`, for messages ("token_url, client_auth").
    #[must_use]
    pub fn changes(&self, other: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut note = |name: &'static str, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        note("grant_type", self.grant_type != other.grant_type);
        note("client_id", self.client_id != other.client_id);
        note("token_url", self.token_url != other.token_url);
        note("refresh_url", self.refresh_url != other.refresh_url);
        note("revocation_url", self.revocation_url != other.revocation_url);
        note("device_authorization_url", self.device_authorization_url != other.device_authorization_url);
        note("issuer", self.issuer != other.issuer);
        note("client_auth", self.client_auth != other.client_auth);
        note("refresh_client_auth", self.refresh_auth != other.refresh_auth);
        changed
    }
}

impl OAuthSettings {
    /// Scopes as a list, split on whitespace.
    #[must_use]
    pub fn scope_list(&self) -> Vec<&str> {
        self.scopes.split_whitespace().collect()
    }

    /// The scopes joined with the provider's separator, as sent in the authorization request.
    #[must_use]
    pub fn scope_param(&self) -> String {
        self.scope_list().join(&self.scope_separator)
    }

    /// The endpoint for refresh requests.
    #[must_use]
    pub fn refresh_endpoint(&self) -> &str {
        self.refresh_url.as_deref().unwrap_or(&self.token_url)
    }

    /// The body encoding of revocation requests.
    #[must_use]
    pub fn revocation_format(&self) -> TokenRequestFormat {
        self.revocation_request_format.unwrap_or(self.token_request_format)
    }

    /// The client authentication of refresh requests.
    #[must_use]
    pub fn refresh_auth(&self) -> ClientAuth {
        self.refresh_client_auth.unwrap_or(self.client_auth)
    }

    /// Whether the client never sends its secret: `client_auth` and the refresh requests' authentication are
    /// both `none` (a public client, RFC 6749 §2.1).
    #[must_use]
    pub fn is_public_client(&self) -> bool {
        self.client_auth == ClientAuth::None && self.refresh_auth() == ClientAuth::None
    }

    /// Where stored credentials go under these settings (see [`CredentialRoute`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] when a URL template cannot be filled.
    pub fn credential_route(&self) -> Result<CredentialRoute, Error> {
        let resolved = self.resolved()?;
        Ok(CredentialRoute {
            grant_type: resolved.grant_type,
            refresh_url: resolved.refresh_url.clone(),
            refresh_auth: resolved.refresh_client_auth,
            client_auth: resolved.client_auth,
            client_id: resolved.client_id,
            token_url: resolved.token_url,
            revocation_url: resolved.revocation_url,
            device_authorization_url: resolved.device_authorization_url,
            issuer: resolved.issuer,
        })
    }

    /// The fields that may hold placeholders, with their values.
    #[must_use]
    pub fn templated(&self) -> [(&'static str, Option<&String>); 6] {
        [
            ("authorization_url", Some(&self.authorization_url)),
            ("token_url", Some(&self.token_url)),
            ("refresh_url", self.refresh_url.as_ref()),
            ("revocation_url", self.revocation_url.as_ref()),
            ("device_authorization_url", self.device_authorization_url.as_ref()),
            ("issuer", self.issuer.as_ref()),
        ]
    }

    fn templated_mut(&mut self) -> [(&'static str, Option<&mut String>); 6] {
        [
            ("authorization_url", Some(&mut self.authorization_url)),
            ("token_url", Some(&mut self.token_url)),
            ("refresh_url", self.refresh_url.as_mut()),
            ("revocation_url", self.revocation_url.as_mut()),
            ("device_authorization_url", self.device_authorization_url.as_mut()),
            ("issuer", self.issuer.as_mut()),
        ]
    }

    /// These settings with every `{name}` placeholder of the URLs (and the issuer) filled from
    /// `connection_params`, as they are used to talk to the provider.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the URL field whose placeholder has no value or whose braces are malformed.
    pub fn resolved(&self) -> Result<OAuthSettings, Error> {
        let mut out = self.clone();
        let params = std::mem::take(&mut out.connection_params);
        for (field, value) in out.templated_mut() {
            let Some(value) = value else { continue };
            *value = template::fill(value, &params)
                .map_err(|e| Error::invalid(field, format!("{} {e}", field.replace('_', " "))))?;
        }
        out.connection_params = params;
        Ok(out)
    }

    /// The placeholder names used anywhere in the templated fields.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming a field with malformed braces.
    pub fn placeholders(&self) -> Result<std::collections::BTreeSet<String>, Error> {
        let mut names = std::collections::BTreeSet::new();
        for (field, value) in self.templated() {
            let Some(value) = value else { continue };
            let found = template::placeholders(value)
                .map_err(|e| Error::invalid(field, format!("{} {e}", field.replace('_', " "))))?;
            names.extend(found.into_iter().map(str::to_owned));
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_json_takes_the_contract_defaults() {
        let settings: OAuthSettings = serde_json::from_str(
            r#"{"authorization_url":"https://p/a","token_url":"https://p/t","client_id":"id","scopes":"a  b"}"#,
        )
        .expect("parses");
        assert_eq!(settings.grant_type, GrantType::AuthorizationCode);
        assert_eq!(settings.pkce, Pkce::S256);
        assert_eq!(settings.client_auth, ClientAuth::ClientSecretPost);
        assert_eq!(settings.token_request_format, TokenRequestFormat::Form);
        assert_eq!(settings.scope_param(), "a b");
        assert_eq!(settings.refresh_endpoint(), "https://p/t");
    }

    #[test]
    fn enum_spellings_match_the_contract() {
        let json = serde_json::json!({"pkce": "off", "client_auth": "client_secret_basic",
            "token_request_format": "json", "grant_type": "device_code"});
        assert_eq!(serde_json::from_value::<Pkce>(json["pkce"].clone()).ok(), Some(Pkce::Off));
        assert_eq!(
            serde_json::from_value::<ClientAuth>(json["client_auth"].clone()).ok(),
            Some(ClientAuth::ClientSecretBasic)
        );
        assert_eq!(
            serde_json::from_value::<TokenRequestFormat>(json["token_request_format"].clone()).ok(),
            Some(TokenRequestFormat::Json)
        );
        assert_eq!(serde_json::from_value::<GrantType>(json["grant_type"].clone()).ok(), Some(GrantType::DeviceCode));
        assert_eq!(serde_json::to_value(Pkce::S256).ok(), Some(serde_json::json!("S256")));
    }

    #[test]
    fn settings_stored_by_the_first_release_read_and_write_back_unchanged() {
        let stored = serde_json::json!({
            "grant_type": "authorization_code", "authorization_url": "https://p/a", "token_url": "https://p/t",
            "client_id": "id", "scopes": "a b", "pkce": "S256", "client_auth": "client_secret_post",
            "token_request_format": "form", "authorization_params": {}, "token_params": {}, "refresh_params": {},
            "scope_separator": " ", "default_expires_in": null, "refresh_url": null, "revocation_url": null,
            "redirect_uri": null
        });
        let settings: OAuthSettings = serde_json::from_value(stored.clone()).expect("parses");
        assert_eq!(settings.refresh_client_auth, None);
        assert!(settings.token_response_map.is_empty());
        assert!(settings.keep_response_fields.is_empty() && settings.connection_params.is_empty());
        assert_eq!(serde_json::to_value(&settings).ok(), Some(stored));
        assert_eq!(OAuthSettings { client_id: "id".into(), ..OAuthSettings::default() }.scope_separator, " ");
    }

    #[test]
    fn refresh_auth_falls_back_to_client_auth() {
        let mut settings = OAuthSettings { client_auth: ClientAuth::ClientSecretBasic, ..OAuthSettings::default() };
        assert_eq!(settings.refresh_auth(), ClientAuth::ClientSecretBasic);
        settings.refresh_client_auth = Some(ClientAuth::ClientSecretPost);
        assert_eq!(settings.refresh_auth(), ClientAuth::ClientSecretPost);
    }

    #[test]
    fn templates_resolve_in_every_url_field() {
        let settings = OAuthSettings {
            authorization_url: "https://{sub}.example.com/authorize".into(),
            token_url: "https://{sub}.example.com/{tenant}/token".into(),
            revocation_url: Some("https://example.com/revoke".into()),
            issuer: Some("https://login.example.com/{tenant}/v2.0".into()),
            connection_params: BTreeMap::from([("sub".into(), "acme".into()), ("tenant".into(), "t1".into())]),
            ..OAuthSettings::default()
        };
        let resolved = settings.resolved().expect("resolves");
        assert_eq!(resolved.authorization_url, "https://acme.example.com/authorize");
        assert_eq!(resolved.token_url, "https://acme.example.com/t1/token");
        assert_eq!(resolved.issuer.as_deref(), Some("https://login.example.com/t1/v2.0"));
        assert_eq!(resolved.revocation_url.as_deref(), Some("https://example.com/revoke"));
        let names: Vec<String> = settings.placeholders().expect("names").into_iter().collect();
        assert_eq!(names, ["sub", "tenant"]);

        let missing = OAuthSettings { connection_params: BTreeMap::new(), ..settings };
        let err = missing.resolved().expect_err("no values");
        assert_eq!(
            err,
            Error::invalid(
                "authorization_url",
                "authorization url has the placeholder {sub}, but connection_params gives no value for 'sub'"
            )
        );
    }

    #[test]
    fn the_credential_route_names_every_setting_that_decides_where_a_secret_goes() {
        let base = OAuthSettings {
            authorization_url: "https://p/a".into(),
            token_url: "https://{sub}.p/t".into(),
            client_id: "id".into(),
            connection_params: BTreeMap::from([("sub".into(), "acme".into())]),
            ..OAuthSettings::default()
        };
        let route = base.credential_route().expect("route");
        let same = OAuthSettings { scopes: "more".into(), authorization_url: "https://q/a".into(), ..base.clone() };
        assert_eq!(same.credential_route().expect("route"), route, "scopes and the consent page send no secret");
        let cases: [(&str, OAuthSettings); 10] = [
            ("grant_type", OAuthSettings { grant_type: GrantType::DeviceCode, ..base.clone() }),
            ("client_id", OAuthSettings { client_id: "other".into(), ..base.clone() }),
            ("token_url", OAuthSettings { token_url: "https://evil/t".into(), ..base.clone() }),
            ("refresh_url", OAuthSettings { refresh_url: Some("https://evil/r".into()), ..base.clone() }),
            ("revocation_url", OAuthSettings { revocation_url: Some("https://evil/x".into()), ..base.clone() }),
            (
                "device_authorization_url",
                OAuthSettings { device_authorization_url: Some("https://evil/d".into()), ..base.clone() },
            ),
            ("issuer", OAuthSettings { issuer: Some("https://evil".into()), ..base.clone() }),
            ("client_auth", OAuthSettings { client_auth: ClientAuth::ClientSecretBasic, ..base.clone() }),
            ("refresh_client_auth", OAuthSettings { refresh_client_auth: Some(ClientAuth::None), ..base.clone() }),
            (
                "token_url",
                OAuthSettings { connection_params: BTreeMap::from([("sub".into(), "evil".into())]), ..base.clone() },
            ),
        ];
        for (name, changed) in cases {
            let other = changed.credential_route().expect("route");
            assert_eq!(other.changes(&route), [name], "{name}");
            assert_ne!(other, route, "{name}");
        }
        assert!(!base.is_public_client());
        let public = OAuthSettings { client_auth: ClientAuth::None, ..base.clone() };
        assert!(public.is_public_client());
        let half = OAuthSettings { refresh_client_auth: Some(ClientAuth::ClientSecretPost), ..public };
        assert!(!half.is_public_client(), "refreshes still send the secret");
    }

    #[test]
    fn response_maps_take_known_keys_and_valid_paths() {
        let pairs = BTreeMap::from([
            ("access_token".to_owned(), "authed_user.access_token".to_owned()),
            ("expires_at".to_owned(), "data.expiry".to_owned()),
            ("scope".to_owned(), " ".to_owned()),
        ]);
        let map = TokenResponseMap::from_pairs(&pairs).expect("valid");
        assert_eq!(map.path("access_token"), Some("authed_user.access_token"));
        assert_eq!(map.path("refresh_token"), Some("refresh_token"));
        assert_eq!(map.path("expires_at"), Some("data.expiry"));
        assert_eq!(map.path("scope"), Some("scope"));
        assert_eq!(map.to_pairs().len(), 2);
        let json = serde_json::to_value(&map).expect("json");
        assert_eq!(json, serde_json::json!({"access_token": "authed_user.access_token", "expires_at": "data.expiry"}));

        for (key, path) in [("token", "a"), ("access_token", "a..b"), ("access_token", ".a"), ("scope", "a b")] {
            let pairs = BTreeMap::from([(key.to_owned(), path.to_owned())]);
            let err = TokenResponseMap::from_pairs(&pairs).expect_err(path);
            assert!(matches!(&err, Error::Invalid { field: Some(f), .. } if f == "token_response_map"), "{err:?}");
        }
        assert_eq!(TokenResponseMap::default().path("expires_at"), None);
    }

    #[test]
    fn credential_like_names_are_recognised() {
        for name in [
            "access_token",
            "authed_user.refresh_token",
            "id_token",
            "client_secret",
            "code",
            "State",
            "data.apiKey",
            "password",
            "jwt",
        ] {
            assert!(is_secret_like(name), "{name}");
        }
        for name in ["instance_url", "realmId", "team.id", "authed_user.id", "signature", "issued_at", "encoded_id"] {
            assert!(!is_secret_like(name), "{name}");
        }
    }
}
