//! Provider presets: ready settings for widely used OAuth 2.0 providers, so that "Custom OAuth 2.0" is the
//! fallback, not the norm (CONTRACT.md `provider`). Each preset is a small JSON file in
//! `crates/latchkey-server/presets/`, written from the provider's own public documentation (facts only), embedded
//! in the binary by [`FILES`] and parsed once on first use.
//!
//! A connection created with `"provider": "<id>"` starts from the preset's settings; the fields the person sends
//! override them. The person still gives the client id and secret and the `connection_params` the preset asks
//! for (a subdomain, a tenant, a shop).

mod apply;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use latchkey_core::settings::{ClientAuth, GrantType, OAuthSettings, Pkce, TokenRequestFormat, TokenResponseMap};
use latchkey_core::{Error, template};
use serde::{Deserialize, Serialize};

pub use apply::{base_settings, check_provider};

/// The embedded preset files, by file name. Adding a preset: add its JSON file and one line here.
pub const FILES: &[(&str, &str)] = &[
    ("airtable.json", include_str!("../../presets/airtable.json")),
    ("asana.json", include_str!("../../presets/asana.json")),
    ("atlassian.json", include_str!("../../presets/atlassian.json")),
    ("bitbucket.json", include_str!("../../presets/bitbucket.json")),
    ("box.json", include_str!("../../presets/box.json")),
    ("discord.json", include_str!("../../presets/discord.json")),
    ("dropbox.json", include_str!("../../presets/dropbox.json")),
    ("figma.json", include_str!("../../presets/figma.json")),
    ("github.json", include_str!("../../presets/github.json")),
    ("gitlab.json", include_str!("../../presets/gitlab.json")),
    ("google.json", include_str!("../../presets/google.json")),
    ("hubspot.json", include_str!("../../presets/hubspot.json")),
    ("intercom.json", include_str!("../../presets/intercom.json")),
    ("linear.json", include_str!("../../presets/linear.json")),
    ("linkedin.json", include_str!("../../presets/linkedin.json")),
    ("microsoft.json", include_str!("../../presets/microsoft.json")),
    ("notion.json", include_str!("../../presets/notion.json")),
    ("quickbooks.json", include_str!("../../presets/quickbooks.json")),
    ("salesforce.json", include_str!("../../presets/salesforce.json")),
    ("shopify.json", include_str!("../../presets/shopify.json")),
    ("slack.json", include_str!("../../presets/slack.json")),
    ("slack-user.json", include_str!("../../presets/slack-user.json")),
    ("spotify.json", include_str!("../../presets/spotify.json")),
    ("x.json", include_str!("../../presets/x.json")),
    ("xero.json", include_str!("../../presets/xero.json")),
    ("zendesk.json", include_str!("../../presets/zendesk.json")),
    ("zoom.json", include_str!("../../presets/zoom.json")),
];

fn default_scope_separator() -> String {
    " ".to_owned()
}

/// A value a preset asks the person for, filling a `{name}` placeholder of its URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetParam {
    /// The placeholder name, as in `{subdomain}`.
    pub name: String,
    /// What a form calls it.
    pub label: String,
    /// Where the person finds the value.
    pub hint: String,
    /// The value used when the person gives none; without a default the value is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// One provider preset, as its JSON file spells it. Every field after `notes` has the meaning of the
/// [`OAuthSettings`] field of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// The `provider` value: lowercase letters, digits and hyphens.
    pub id: String,
    /// The name people know the provider by.
    pub name: String,
    /// The provider's own OAuth documentation.
    pub docs_url: String,
    /// Quirks worth knowing when registering the client.
    #[serde(default)]
    pub notes: String,
    /// The values the person gives for the placeholders of the URLs.
    #[serde(default)]
    pub connection_params: Vec<PresetParam>,
    /// The grant a connection uses when it names none; `authorization_code` when the file names none.
    #[serde(default)]
    pub grant_type: GrantType,
    pub authorization_url: String,
    pub token_url: String,
    #[serde(default)]
    pub refresh_url: Option<String>,
    #[serde(default)]
    pub revocation_url: Option<String>,
    /// The RFC 8628 endpoint, for providers that offer the device flow: with it a connection may ask for
    /// `"grant_type": "device_code"`.
    #[serde(default)]
    pub device_authorization_url: Option<String>,
    /// Default scopes, separated by single spaces.
    #[serde(default)]
    pub scopes: String,
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    #[serde(default)]
    pub pkce: Pkce,
    #[serde(default)]
    pub client_auth: ClientAuth,
    #[serde(default)]
    pub refresh_client_auth: Option<ClientAuth>,
    #[serde(default)]
    pub token_request_format: TokenRequestFormat,
    #[serde(default)]
    pub revocation_request_format: Option<TokenRequestFormat>,
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    #[serde(default)]
    pub token_params: BTreeMap<String, String>,
    #[serde(default)]
    pub refresh_params: BTreeMap<String, String>,
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub token_response_map: TokenResponseMap,
    #[serde(default)]
    pub default_expires_in: Option<u64>,
    #[serde(default)]
    pub keep_response_fields: Vec<String>,
    #[serde(default)]
    pub keep_callback_params: Vec<String>,
}

impl Preset {
    /// The preset as connection settings without client id or connection parameters: the base that the
    /// person's fields are merged over.
    #[must_use]
    pub fn settings(&self) -> OAuthSettings {
        OAuthSettings {
            grant_type: self.grant_type,
            authorization_url: self.authorization_url.clone(),
            token_url: self.token_url.clone(),
            scopes: self.scopes.clone(),
            pkce: self.pkce,
            client_auth: self.client_auth,
            refresh_client_auth: self.refresh_client_auth,
            token_request_format: self.token_request_format,
            revocation_request_format: self.revocation_request_format,
            authorization_params: self.authorization_params.clone(),
            token_params: self.token_params.clone(),
            refresh_params: self.refresh_params.clone(),
            request_headers: self.request_headers.clone(),
            scope_separator: self.scope_separator.clone(),
            token_response_map: self.token_response_map.clone(),
            default_expires_in: self.default_expires_in,
            keep_response_fields: self.keep_response_fields.clone(),
            keep_callback_params: self.keep_callback_params.clone(),
            refresh_url: self.refresh_url.clone(),
            revocation_url: self.revocation_url.clone(),
            device_authorization_url: self.device_authorization_url.clone(),
            ..OAuthSettings::default()
        }
    }

    /// The URL fields of the preset that may hold placeholders, with their values.
    #[must_use]
    pub fn urls(&self) -> [(&'static str, Option<&String>); 5] {
        [
            ("authorization_url", Some(&self.authorization_url)),
            ("token_url", Some(&self.token_url)),
            ("refresh_url", self.refresh_url.as_ref()),
            ("revocation_url", self.revocation_url.as_ref()),
            ("device_authorization_url", self.device_authorization_url.as_ref()),
        ]
    }

    /// The grants a connection started from this preset can use, in the contract's spelling, its default first:
    /// the authorization code grant always, the device flow where the preset knows the provider's device endpoint.
    #[must_use]
    pub fn grant_types(&self) -> Vec<&'static str> {
        let mut grants = vec![self.grant_type.as_str()];
        for (grant, offered) in
            [(GrantType::AuthorizationCode, true), (GrantType::DeviceCode, self.device_authorization_url.is_some())]
        {
            if offered && !grants.contains(&grant.as_str()) {
                grants.push(grant.as_str());
            }
        }
        grants
    }

    /// The declared parameter `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&PresetParam> {
        self.connection_params.iter().find(|p| p.name == name)
    }
}

/// Parses one preset file.
///
/// # Errors
/// [`Error::Invalid`] naming the file and what serde found wrong.
pub fn parse(file: &str, text: &str) -> Result<Preset, Error> {
    serde_json::from_str(text)
        .map_err(|e| Error::invalid("provider", format!("the preset file {file} is invalid: {e}")))
}

static PRESETS: LazyLock<Vec<Preset>> = LazyLock::new(|| {
    let mut presets: Vec<Preset> = FILES
        .iter()
        .filter_map(|(file, text)| match parse(file, text) {
            Ok(preset) => Some(preset),
            Err(err) => {
                // The tests parse every file, so this only happens to a build that skipped them.
                tracing::error!(file, error = %err, "preset skipped");
                None
            }
        })
        .collect();
    presets.sort_by_key(|p| p.name.to_lowercase());
    presets
});

/// Every preset, sorted by name for people.
#[must_use]
pub fn all() -> &'static [Preset] {
    &PRESETS
}

/// The preset with this id.
#[must_use]
pub fn get(id: &str) -> Option<&'static Preset> {
    all().iter().find(|p| p.id == id)
}

/// Checks one preset beyond what serde checks: the id's form, https URLs once the placeholders are filled with
/// sample values, every placeholder declared and every declared parameter used.
///
/// # Errors
/// A sentence naming what is wrong.
pub fn check(preset: &Preset) -> Result<(), String> {
    let id = &preset.id;
    if id.is_empty() || id == "custom" || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("the id '{id}' must be lowercase letters, digits and hyphens, and not 'custom'"));
    }
    if preset.name.trim().is_empty() {
        return Err(format!("{id}: the name is empty"));
    }
    if preset.grant_type == GrantType::DeviceCode && preset.device_authorization_url.is_none() {
        return Err(format!("{id}: grant_type device_code needs a device_authorization_url"));
    }
    let mut used = std::collections::BTreeSet::new();
    let samples: BTreeMap<String, String> =
        preset.connection_params.iter().map(|p| (p.name.clone(), "sample-value".to_owned())).collect();
    let docs = preset.docs_url.clone();
    for (field, value) in preset.urls().into_iter().chain([("docs_url", Some(&docs))]) {
        let Some(value) = value else { continue };
        let names = template::placeholders(value).map_err(|e| format!("{id}: {field} {e}"))?;
        used.extend(names.into_iter().map(str::to_owned));
        let filled = template::fill(value, &samples).map_err(|e| format!("{id}: {field} {e}"))?;
        let url = url::Url::parse(&filled).map_err(|e| format!("{id}: {field} is not a URL: {e}"))?;
        if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{id}: {field} must be an https URL with a host"));
        }
    }
    for param in &preset.connection_params {
        if !template::is_valid_name(&param.name) || !used.contains(&param.name) {
            return Err(format!("{id}: connection_params declares '{}', which no URL uses", param.name));
        }
        if param.label.trim().is_empty() || param.hint.trim().is_empty() {
            return Err(format!("{id}: connection_params.{} needs a label and a hint", param.name));
        }
        if let Some(default) = &param.default {
            template::check_value(default).map_err(|why| format!("{id}: the default of {} {why}", param.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use latchkey_core::settings::{check_path, is_secret_like};
    use latchkey_oauth::{RESERVED_AUTHORIZATION_PARAMS, RESERVED_TOKEN_PARAMS};

    use super::*;

    #[test]
    fn every_preset_file_parses_and_passes_the_checks() {
        let mut ids = BTreeSet::new();
        for (file, text) in FILES {
            let preset = parse(file, text).unwrap_or_else(|e| panic!("{e}"));
            check(&preset).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(*file, format!("{}.json", preset.id), "a preset file is named after its id");
            assert!(ids.insert(preset.id.clone()), "the id {} is used twice", preset.id);
        }
        assert!(all().len() >= 25, "only {} presets", all().len());
        assert_eq!(all().len(), FILES.len(), "every file loads");
    }

    #[test]
    fn every_preset_makes_settings_latchkey_accepts() {
        for preset in all() {
            let id = &preset.id;
            let mut settings = preset.settings();
            settings.client_id = "client".to_owned();
            settings.connection_params =
                preset.connection_params.iter().map(|p| (p.name.clone(), "acme".to_owned())).collect();
            let resolved = settings.resolved().unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(!resolved.authorization_url.contains('{'), "{id}");
            assert!(!preset.docs_url.is_empty() && !preset.notes.trim().is_empty(), "{id}: docs and notes");
            let separator = preset.scope_separator.as_str();
            assert!(!separator.is_empty() && separator.len() <= 3 && !separator.chars().any(char::is_alphanumeric));
            for (name, reserved) in preset
                .authorization_params
                .keys()
                .map(|n| (n, RESERVED_AUTHORIZATION_PARAMS))
                .chain(preset.token_params.keys().map(|n| (n, RESERVED_TOKEN_PARAMS)))
                .chain(preset.refresh_params.keys().map(|n| (n, RESERVED_TOKEN_PARAMS)))
            {
                assert!(!reserved.contains(&name.as_str()) && !is_secret_like(name), "{id}: parameter {name}");
            }
            for (name, value) in &preset.request_headers {
                latchkey_oauth::check_request_header(name, value).unwrap_or_else(|e| panic!("{id}: {e}"));
            }
            for (key, path) in preset.token_response_map.to_pairs() {
                check_path(&path).unwrap_or_else(|e| panic!("{id}: token_response_map.{key} {e}"));
            }
            for path in &preset.keep_response_fields {
                check_path(path).unwrap_or_else(|e| panic!("{id}: keep_response_fields {path} {e}"));
                assert!(!is_secret_like(path), "{id}: keeps the credential-like {path}");
            }
            for name in &preset.keep_callback_params {
                assert!(!is_secret_like(name), "{id}: keeps the credential-like {name}");
            }
        }
    }

    /// The scope rules of one preset: `scopes` is one space between scopes, no scope holds a separator character
    /// (a sign of scopes written for another separator), and scope lists in authorization parameters
    /// (Slack's `user_scope`) use the preset's separator.
    fn check_scopes(preset: &Preset) -> Result<(), String> {
        let id = &preset.id;
        let separator = preset.scope_separator.as_str();
        let items: Vec<&str> = preset.scopes.split_whitespace().collect();
        if preset.scopes != items.join(" ") {
            return Err(format!("{id}: scopes must be separated by single spaces, not {:?}", preset.scopes));
        }
        let foreign = |scope: &str| scope.contains([',', '+', ';']) || (separator != " " && scope.contains(separator));
        if let Some(scope) = items.iter().find(|s| foreign(s)) {
            return Err(format!("{id}: the scope {scope:?} holds a separator; list scopes one space apart"));
        }
        let sent = preset.settings().scope_param();
        if separator != " "
            && !items.is_empty()
            && (sent.contains(char::is_whitespace) || sent.split(separator).ne(items.iter().copied()))
        {
            return Err(format!("{id}: scopes are sent as {sent:?}, not joined by {separator:?}"));
        }
        for (name, value) in &preset.authorization_params {
            if name == "scope" || name.ends_with("_scope") || name.ends_with("_scopes") {
                let listed: Vec<&str> = value.split(separator).collect();
                if listed.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace) || foreign(s)) {
                    return Err(format!("{id}: authorization_params.{name} must list scopes joined by {separator:?}"));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn every_preset_fills_its_required_fields() {
        for preset in all() {
            let id = &preset.id;
            for (field, value) in [
                ("name", &preset.name),
                ("docs_url", &preset.docs_url),
                ("notes", &preset.notes),
                ("authorization_url", &preset.authorization_url),
                ("token_url", &preset.token_url),
            ] {
                assert!(!value.trim().is_empty(), "{id}: {field} is empty");
            }
            assert!(preset.docs_url.starts_with("https://"), "{id}: the docs link must be https");
            assert!(!preset.docs_url.contains('{'), "{id}: the docs link is the same for everyone");
            for optional in [&preset.refresh_url, &preset.revocation_url].into_iter().flatten() {
                assert!(!optional.trim().is_empty(), "{id}: an endpoint given must not be empty");
            }
            assert_ne!(preset.default_expires_in, Some(0), "{id}: a default lifetime of zero refreshes forever");
        }
    }

    #[test]
    fn every_preset_spells_its_scopes_for_its_separator() {
        for preset in all() {
            check_scopes(preset).unwrap_or_else(|e| panic!("{e}"));
        }
        let linear = get("linear").expect("linear");
        let comma_typed = Preset { scopes: "read,write".to_owned(), ..linear.clone() };
        assert!(check_scopes(&comma_typed).is_err());
        let two = Preset { scopes: "read write".to_owned(), ..linear.clone() };
        assert_eq!(two.settings().scope_param(), "read,write");
        assert!(check_scopes(&two).is_ok());
        let double_space = Preset { scopes: "read  write".to_owned(), ..linear.clone() };
        assert!(check_scopes(&double_space).is_err());
        let mut user_scope = get("slack-user").expect("slack-user").clone();
        user_scope.authorization_params.insert("user_scope".to_owned(), "users:read search:read".to_owned());
        assert!(check_scopes(&user_scope).is_err());
    }

    #[test]
    fn the_checks_refuse_undeclared_placeholders_and_plain_http() {
        let good = get("zendesk").expect("zendesk preset");
        assert!(check(good).is_ok());
        let undeclared = Preset { connection_params: Vec::new(), ..good.clone() };
        assert!(check(&undeclared).is_err());
        let http =
            Preset { token_url: "http://example.com/token".to_owned(), ..get("github").expect("github").clone() };
        assert!(check(&http).is_err());
        let upper = Preset { id: "GitHub".to_owned(), ..get("github").expect("github").clone() };
        assert!(check(&upper).is_err());
    }

    #[test]
    fn presets_carry_the_quirks_their_providers_need() {
        let google = get("google").expect("google");
        assert_eq!(google.authorization_params.get("access_type").map(String::as_str), Some("offline"));
        let entra = get("microsoft").expect("microsoft");
        assert_eq!(entra.param("tenant").and_then(|p| p.default.as_deref()), Some("common"));
        let slack = get("slack-user").expect("slack-user");
        assert_eq!(slack.token_response_map.path("access_token"), Some("authed_user.access_token"));
        assert_eq!(get("salesforce").map(|p| p.keep_response_fields.contains(&"instance_url".to_owned())), Some(true));
        assert_eq!(get("quickbooks").map(|p| p.keep_callback_params.clone()), Some(vec!["realmId".to_owned()]));
        assert!(get("custom").is_none() && get("nope").is_none());
    }

    #[test]
    fn presets_follow_the_providers_current_endpoints() {
        let figma = get("figma").expect("figma");
        assert_eq!(figma.token_url, "https://api.figma.com/v1/oauth/token");
        assert_eq!(figma.refresh_url.as_deref(), Some("https://api.figma.com/v1/oauth/refresh"));
        assert_eq!(figma.client_auth, ClientAuth::ClientSecretBasic);
        assert_eq!(get("hubspot").map(|p| p.token_url.as_str()), Some("https://api.hubapi.com/oauth/v3/token"));
        let shopify = get("shopify").expect("shopify");
        assert_eq!(shopify.token_params.get("expiring").map(String::as_str), Some("1"));
        for slack in ["slack", "slack-user"] {
            assert_eq!(get(slack).map(|p| p.client_auth), Some(ClientAuth::ClientSecretBasic), "{slack}");
        }
        assert!(get("salesforce").and_then(|p| p.default_expires_in).is_some_and(|s| s <= 900));
        // Intuit revokes with a JSON body while its token endpoint takes a form.
        let quickbooks = get("quickbooks").expect("quickbooks");
        assert_eq!(quickbooks.settings().revocation_format(), TokenRequestFormat::Json);
        assert_eq!(quickbooks.settings().token_request_format, TokenRequestFormat::Form);
        // Notion's revocation endpoint wants the API version header.
        let notion = get("notion").expect("notion");
        assert!(notion.revocation_url.is_some() && notion.request_headers.contains_key("Notion-Version"));
    }

    #[test]
    fn presets_with_a_device_endpoint_offer_the_device_flow() {
        for id in ["github", "gitlab", "google", "microsoft", "zoom"] {
            let preset = get(id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(preset.grant_types(), ["authorization_code", "device_code"], "{id}");
            assert!(preset.settings().device_authorization_url.is_some(), "{id}");
        }
        assert_eq!(get("zendesk").map(Preset::grant_types), Some(vec!["authorization_code"]));
        let mut entra = get("microsoft").expect("microsoft").settings();
        entra.client_id = "c".to_owned();
        entra.connection_params.insert("tenant".to_owned(), "contoso".to_owned());
        let resolved = entra.resolved().expect("resolved");
        assert_eq!(
            resolved.device_authorization_url.as_deref(),
            Some("https://login.microsoftonline.com/contoso/oauth2/v2.0/devicecode")
        );
        let device_default = Preset { grant_type: GrantType::DeviceCode, ..get("github").expect("github").clone() };
        assert_eq!(device_default.settings().grant_type, GrantType::DeviceCode);
        assert_eq!(device_default.grant_types(), ["device_code", "authorization_code"]);
        assert!(check(&device_default).is_ok());
        let without_endpoint = Preset { device_authorization_url: None, ..device_default };
        assert!(check(&without_endpoint).is_err_and(|e| e.contains("device_authorization_url")));
        let plain_http = Preset {
            device_authorization_url: Some("http://github.com/login/device/code".to_owned()),
            ..get("github").expect("github").clone()
        };
        assert!(check(&plain_http).is_err());
        let parsed = parse(
            "x.json",
            r#"{"id": "x", "name": "X", "docs_url": "https://x.example/docs",
            "authorization_url": "https://x.example/a", "token_url": "https://x.example/t",
            "grant_type": "device_code", "device_authorization_url": "https://x.example/d"}"#,
        )
        .expect("parses");
        assert_eq!(parsed.grant_type, GrantType::DeviceCode);
    }

    #[test]
    fn unknown_providers_are_refused_with_examples() {
        assert_eq!(check_provider(None).ok().as_deref(), Some("custom"));
        assert_eq!(check_provider(Some("github")).ok().as_deref(), Some("github"));
        let err = check_provider(Some("myspace")).expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("myspace") && text.contains("airtable"), "{text}");
    }
}
