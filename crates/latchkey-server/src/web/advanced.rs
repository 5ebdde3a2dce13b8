//! The "Advanced" section of the connection form: the per-connection settings of CONTRACT.md ("Connection
//! settings beyond the basic form") as text a person can read and type, and back.
//!
//! Maps (extra parameters, the token response map, connection parameters) are written one `name=value` per
//! line; lists (values to keep) are separated by spaces or commas. A line that cannot be read is refused naming
//! its field, so the error appears next to it.

use std::collections::BTreeMap;

use latchkey_core::Error;
use latchkey_core::settings::{ClientAuth, OAuthSettings, Pkce, TokenRequestFormat};

/// The names of the Advanced section's fields, as the form posts them and as the service's errors name them.
pub const ADVANCED_FIELDS: [&str; 21] = [
    "grant_type",
    "pkce",
    "client_auth",
    "refresh_client_auth",
    "token_request_format",
    "revocation_request_format",
    "authorization_params",
    "token_params",
    "refresh_params",
    "request_headers",
    "scope_separator",
    "token_response_map",
    "default_expires_in",
    "keep_response_fields",
    "keep_callback_params",
    "refresh_url",
    "revocation_url",
    "device_authorization_url",
    "redirect_uri",
    "issuer",
    "connection_params",
];

/// What the Advanced section's fields show, each as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvancedValues {
    pub grant_type: String,
    pub pkce: String,
    pub client_auth: String,
    /// "" follows `client_auth`.
    pub refresh_client_auth: String,
    pub token_request_format: String,
    /// "" follows `token_request_format`.
    pub revocation_request_format: String,
    pub authorization_params: String,
    pub token_params: String,
    pub refresh_params: String,
    pub request_headers: String,
    pub scope_separator: String,
    pub token_response_map: String,
    pub default_expires_in: String,
    pub keep_response_fields: String,
    pub keep_callback_params: String,
    pub refresh_url: String,
    pub revocation_url: String,
    pub device_authorization_url: String,
    pub redirect_uri: String,
    pub issuer: String,
    pub connection_params: String,
}

impl Default for AdvancedValues {
    fn default() -> Self {
        Self::of(&OAuthSettings::default())
    }
}

/// A choice of a select: its value, its words, and whether it is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub value: &'static str,
    pub words: &'static str,
    pub selected: bool,
}

fn choices(options: &[(&'static str, &'static str)], current: &str) -> Vec<Choice> {
    options.iter().map(|&(value, words)| Choice { value, words, selected: value == current }).collect()
}

impl AdvancedValues {
    /// The stored settings, for the edit form.
    #[must_use]
    pub fn of(settings: &OAuthSettings) -> Self {
        Self {
            grant_type: settings.grant_type.as_str().to_owned(),
            pkce: pkce_word(settings.pkce).to_owned(),
            client_auth: client_auth_word(settings.client_auth).to_owned(),
            refresh_client_auth: settings.refresh_client_auth.map(client_auth_word).unwrap_or_default().to_owned(),
            token_request_format: format_word(settings.token_request_format).to_owned(),
            revocation_request_format: settings
                .revocation_request_format
                .map(format_word)
                .unwrap_or_default()
                .to_owned(),
            authorization_params: lines(&settings.authorization_params),
            token_params: lines(&settings.token_params),
            refresh_params: lines(&settings.refresh_params),
            request_headers: lines(&settings.request_headers),
            scope_separator: settings.scope_separator.clone(),
            token_response_map: lines(&settings.token_response_map.to_pairs()),
            default_expires_in: settings.default_expires_in.map(|s| s.to_string()).unwrap_or_default(),
            keep_response_fields: settings.keep_response_fields.join(" "),
            keep_callback_params: settings.keep_callback_params.join(" "),
            refresh_url: settings.refresh_url.clone().unwrap_or_default(),
            revocation_url: settings.revocation_url.clone().unwrap_or_default(),
            device_authorization_url: settings.device_authorization_url.clone().unwrap_or_default(),
            redirect_uri: settings.redirect_uri.clone().unwrap_or_default(),
            issuer: settings.issuer.clone().unwrap_or_default(),
            connection_params: lines(&settings.connection_params),
        }
    }

    /// The values of a posted form, shown again after an error: each field as typed, or its default.
    #[must_use]
    pub fn from_fields(get: impl Fn(&str) -> Option<String>) -> Self {
        let d = Self::default();
        let pick = |name: &str, default: String| get(name).unwrap_or(default);
        Self {
            grant_type: pick("grant_type", d.grant_type),
            pkce: pick("pkce", d.pkce),
            client_auth: pick("client_auth", d.client_auth),
            refresh_client_auth: pick("refresh_client_auth", d.refresh_client_auth),
            token_request_format: pick("token_request_format", d.token_request_format),
            revocation_request_format: pick("revocation_request_format", d.revocation_request_format),
            authorization_params: pick("authorization_params", d.authorization_params),
            token_params: pick("token_params", d.token_params),
            refresh_params: pick("refresh_params", d.refresh_params),
            request_headers: pick("request_headers", d.request_headers),
            scope_separator: pick("scope_separator", d.scope_separator),
            token_response_map: pick("token_response_map", d.token_response_map),
            default_expires_in: pick("default_expires_in", d.default_expires_in),
            keep_response_fields: pick("keep_response_fields", d.keep_response_fields),
            keep_callback_params: pick("keep_callback_params", d.keep_callback_params),
            refresh_url: pick("refresh_url", d.refresh_url),
            revocation_url: pick("revocation_url", d.revocation_url),
            device_authorization_url: pick("device_authorization_url", d.device_authorization_url),
            redirect_uri: pick("redirect_uri", d.redirect_uri),
            issuer: pick("issuer", d.issuer),
            connection_params: pick("connection_params", d.connection_params),
        }
    }

    /// The grant select's choices.
    #[must_use]
    pub fn grant_choices(&self) -> Vec<Choice> {
        choices(
            &[
                ("authorization_code", "Authorization code (a person consents in a popup)"),
                ("client_credentials", "Client credentials (no person involved)"),
                ("device_code", "Device code (approve with a code on another device)"),
            ],
            &self.grant_type,
        )
    }

    /// The PKCE select's choices.
    #[must_use]
    pub fn pkce_choices(&self) -> Vec<Choice> {
        choices(&[("S256", "On (S256)"), ("off", "Off")], &self.pkce)
    }

    /// The client authentication select's choices.
    #[must_use]
    pub fn client_auth_choices(&self) -> Vec<Choice> {
        choices(AUTH_CHOICES, &self.client_auth)
    }

    /// The refresh's client authentication select's choices, led by "same as above".
    #[must_use]
    pub fn refresh_client_auth_choices(&self) -> Vec<Choice> {
        let mut all = vec![("", "Same as the client authentication")];
        all.extend_from_slice(AUTH_CHOICES);
        choices(&all, &self.refresh_client_auth)
    }

    /// The body format select's choices.
    #[must_use]
    pub fn format_choices(&self) -> Vec<Choice> {
        choices(&[("form", "Form (application/x-www-form-urlencoded)"), ("json", "JSON")], &self.token_request_format)
    }

    /// The revocation body format select's choices, led by "same as the token requests".
    #[must_use]
    pub fn revocation_format_choices(&self) -> Vec<Choice> {
        choices(
            &[
                ("", "Same as the token request body"),
                ("form", "Form (application/x-www-form-urlencoded)"),
                ("json", "JSON"),
            ],
            &self.revocation_request_format,
        )
    }

    /// The scope separator select's choices; a separator set through the API is offered too.
    #[must_use]
    pub fn separator_choices(&self) -> Vec<(String, String, bool)> {
        let mut all: Vec<(String, String, bool)> = [(" ", "Space"), (",", "Comma"), ("+", "Plus")]
            .iter()
            .map(|&(value, words)| (value.to_owned(), words.to_owned(), value == self.scope_separator))
            .collect();
        if !all.iter().any(|c| c.2) {
            all.push((self.scope_separator.clone(), format!("“{}”", self.scope_separator), true));
        }
        all
    }
}

/// A free-text field of the section: its name, label, hint and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextField<'a> {
    pub field: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub value: &'a str,
}

impl AdvancedValues {
    /// The fields of `name=value` lines, in the order shown.
    #[must_use]
    pub fn text_areas(&self) -> Vec<TextField<'_>> {
        let field = |field, label, hint, value| TextField { field, label, hint, value };
        vec![
            field(
                "authorization_params",
                "Extra authorization parameters",
                "For example access_type=offline",
                self.authorization_params.as_str(),
            ),
            field(
                "token_params",
                "Extra token request parameters",
                "For example audience=https://api.example.com",
                self.token_params.as_str(),
            ),
            field(
                "refresh_params",
                "Extra refresh request parameters",
                "Sent with every refresh",
                &self.refresh_params,
            ),
            field(
                "request_headers",
                "Extra request headers",
                "Sent to the token, refresh and revocation endpoints, for example Notion-Version=2022-06-28",
                &self.request_headers,
            ),
            field(
                "token_response_map",
                "Token response mapping",
                "Where each value sits, as dotted paths, for example access_token=authed_user.access_token",
                &self.token_response_map,
            ),
            field(
                "connection_params",
                "Connection parameters",
                "Values for {name} placeholders in the URLs, for example subdomain=acme",
                &self.connection_params,
            ),
        ]
    }

    /// The one-line fields, in the order shown.
    #[must_use]
    pub fn text_inputs(&self) -> Vec<TextField<'_>> {
        let field = |field, label, hint, value| TextField { field, label, hint, value };
        vec![
            field(
                "default_expires_in",
                "Default lifetime (seconds)",
                "Assumed when the provider sends no expires_in; empty: such a token is never refreshed blindly",
                &self.default_expires_in,
            ),
            field(
                "keep_response_fields",
                "Token response values to keep",
                "Dotted paths separated by spaces, for example instance_url",
                &self.keep_response_fields,
            ),
            field(
                "keep_callback_params",
                "Callback values to keep",
                "Query parameter names separated by spaces, for example realmId",
                &self.keep_callback_params,
            ),
            field("refresh_url", "Refresh URL", "When refreshes go elsewhere than the Token URL", &self.refresh_url),
            field(
                "revocation_url",
                "Revocation URL",
                "RFC 7009 endpoint; the tokens are revoked there when the connection is deleted",
                &self.revocation_url,
            ),
            field(
                "device_authorization_url",
                "Device authorization endpoint",
                "For the device code grant",
                &self.device_authorization_url,
            ),
            field("redirect_uri", "Redirect URI override", "Empty: the OAuth Redirect URL above", &self.redirect_uri),
            field(
                "issuer",
                "Issuer (discovery)",
                "Its metadata fills the endpoints left empty, when saving",
                &self.issuer,
            ),
        ]
    }
}

const AUTH_CHOICES: &[(&str, &str)] = &[
    ("client_secret_post", "Client ID and secret in the request body"),
    ("client_secret_basic", "HTTP Basic authentication"),
    ("none", "None (public client: client ID only)"),
];

fn pkce_word(pkce: Pkce) -> &'static str {
    match pkce {
        Pkce::S256 => "S256",
        Pkce::Off => "off",
    }
}

fn client_auth_word(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::ClientSecretBasic => "client_secret_basic",
        ClientAuth::None => "none",
    }
}

fn format_word(format: TokenRequestFormat) -> &'static str {
    match format {
        TokenRequestFormat::Form => "form",
        TokenRequestFormat::Json => "json",
    }
}

/// A map as `name=value` lines.
fn lines(map: &BTreeMap<String, String>) -> String {
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n")
}

/// `name=value` lines as a map; empty lines are skipped.
///
/// # Errors
/// `Invalid` naming `field` for a line without `=` or with an empty name, or a name given twice.
pub fn parse_lines(field: &str, text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(Error::invalid(field, format!("line {} has no '=': write one name=value per line", n + 1)));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::invalid(field, format!("line {} has no name before '='", n + 1)));
        }
        if map.insert(name.to_owned(), value.trim().to_owned()).is_some() {
            return Err(Error::invalid(field, format!("'{}' is given twice", name.escape_debug())));
        }
    }
    Ok(map)
}

/// A list separated by spaces or commas.
#[must_use]
pub fn parse_list(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A select's value as the contract's word, through the settings' own spelling.
///
/// # Errors
/// `Invalid` naming `field` for a value the contract does not know.
pub fn parse_word<T: serde::de::DeserializeOwned>(field: &str, value: &str) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(value.trim().to_owned()))
        .map_err(|_| Error::invalid(field, format!("'{}' is not a known value", value.escape_debug())))
}

/// Seconds as a whole number, or `None` when empty.
///
/// # Errors
/// `Invalid` naming `default_expires_in` for anything but digits.
pub fn parse_seconds(text: &str) -> Result<Option<u64>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u64>().map(Some).map_err(|_| {
        Error::invalid("default_expires_in", "the default lifetime is a whole number of seconds, for example 3600")
    })
}

#[cfg(test)]
mod tests {
    use latchkey_core::settings::GrantType;

    use super::*;

    #[test]
    fn settings_round_trip_through_the_text_fields() {
        let mut settings = OAuthSettings::default();
        settings.authorization_params.insert("access_type".into(), "offline".into());
        settings.authorization_params.insert("prompt".into(), "consent".into());
        settings.keep_response_fields = vec!["instance_url".into(), "team.id".into()];
        settings.pkce = Pkce::Off;
        let shown = AdvancedValues::of(&settings);
        assert_eq!(shown.authorization_params, "access_type=offline\nprompt=consent");
        assert_eq!(shown.pkce, "off");
        assert_eq!(
            parse_lines("authorization_params", &shown.authorization_params).unwrap(),
            settings.authorization_params
        );
        assert_eq!(parse_list(&shown.keep_response_fields), settings.keep_response_fields);
        assert_eq!(parse_word::<Pkce>("pkce", &shown.pkce).unwrap(), Pkce::Off);
    }

    #[test]
    fn unreadable_text_is_refused_naming_its_field() {
        let err = parse_lines("token_params", "audience=api\nno equals sign").unwrap_err();
        assert!(matches!(&err, Error::Invalid { field: Some(f), .. } if f == "token_params"), "{err:?}");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse_lines("token_params", "a=1\na=2").is_err());
        assert!(parse_lines("token_params", "=x").is_err());
        assert_eq!(parse_lines("token_params", "\n  \n").unwrap(), BTreeMap::new());
        assert!(parse_word::<GrantType>("grant_type", "implicit").is_err());
        assert!(parse_seconds("ten").is_err());
        assert_eq!(parse_seconds(" 3600 ").unwrap(), Some(3600));
        assert_eq!(parse_seconds("").unwrap(), None);
        assert_eq!(parse_list("a, b  c,,"), vec!["a", "b", "c"]);
    }

    #[test]
    fn every_select_marks_the_current_value() {
        let values = AdvancedValues { scope_separator: ";".into(), ..AdvancedValues::default() };
        assert!(values.grant_choices()[0].selected);
        assert!(values.refresh_client_auth_choices()[0].selected, "empty follows client_auth");
        assert!(values.revocation_format_choices()[0].selected, "empty follows token_request_format");
        let settings =
            OAuthSettings { revocation_request_format: Some(TokenRequestFormat::Json), ..OAuthSettings::default() };
        let json = AdvancedValues::of(&settings).revocation_format_choices();
        assert!(json.iter().any(|c| c.value == "json" && c.selected), "{json:?}");
        let separators = values.separator_choices();
        assert!(separators.last().is_some_and(|c| c.0 == ";" && c.2));
        assert_eq!(parse_word::<GrantType>("grant_type", "device_code").unwrap(), GrantType::DeviceCode);
        assert!(values.text_areas().iter().chain(&values.text_inputs()).all(|f| ADVANCED_FIELDS.contains(&f.field)));
    }
}
