//! How latchkey talks to one provider for one connection: endpoints, client identity and the options of
//! CONTRACT.md's "Connection settings". Stored as JSON beside the connection; never holds a secret (the client
//! secret is sealed in its own column).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// The provider-facing settings of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthSettings {
    /// The grant used to obtain tokens.
    #[serde(default)]
    pub grant_type: GrantType,
    /// The provider's authorization endpoint (RFC 6749 §3.1).
    pub authorization_url: String,
    /// The provider's token endpoint (RFC 6749 §3.2).
    pub token_url: String,
    /// The client identifier registered with the provider.
    pub client_id: String,
    /// The requested scopes, separated by single spaces as typed by the person.
    #[serde(default)]
    pub scopes: String,
    /// Whether to use PKCE.
    #[serde(default)]
    pub pkce: Pkce,
    /// How the client authenticates at the token endpoint.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// The body encoding of token requests.
    #[serde(default)]
    pub token_request_format: TokenRequestFormat,
    /// Extra parameters of the authorization request.
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    /// Extra parameters of the code exchange.
    #[serde(default)]
    pub token_params: BTreeMap<String, String>,
    /// Extra parameters of the refresh request.
    #[serde(default)]
    pub refresh_params: BTreeMap<String, String>,
    /// What joins the scopes in the authorization request.
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    /// Seconds to assume when the provider sends no lifetime.
    #[serde(default)]
    pub default_expires_in: Option<u64>,
    /// Where refresh requests go when not to the token URL.
    #[serde(default)]
    pub refresh_url: Option<String>,
    /// The RFC 7009 revocation endpoint, used when the connection is deleted.
    #[serde(default)]
    pub revocation_url: Option<String>,
    /// A redirect URI other than the server's default callback.
    #[serde(default)]
    pub redirect_uri: Option<String>,
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
}
