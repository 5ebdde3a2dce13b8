//! A connection's provider settings as the API and the UI send them: merged over the stored ones, checked field
//! by field (every refusal is a 400 naming the field), and completed from the issuer's metadata (RFC 8414) at
//! save time, so that the token path never fetches metadata.

use std::collections::{BTreeMap, BTreeSet};

use latchkey_core::settings::{
    ClientAuth, GrantType, OAuthSettings, TokenRequestFormat, TokenResponseMap, check_path, is_secret_like,
};
use latchkey_core::{Error, Result, template};
use latchkey_oauth::{OAuthError, RESERVED_AUTHORIZATION_PARAMS, RESERVED_TOKEN_PARAMS};
use url::Url;

use super::connections::ConnectionInput;
use crate::state::AppState;

/// The most entries of `keep_response_fields` and of `keep_callback_params`.
const MAX_KEPT: usize = 20;
/// The most extra parameters per request, and the most `connection_params`.
const MAX_PARAMS: usize = 50;
/// The longest parameter name or value of the extra parameters.
const MAX_PARAM_LEN: usize = 2000;
/// Callback parameters that belong to the protocol and are never kept.
const PROTOCOL_CALLBACK_PARAMS: &[&str] = &["code", "state", "error", "error_description", "error_uri"];

/// The endpoint fields that discovery may fill, with the metadata name of each.
const DISCOVERABLE: [(&str, &str); 4] = [
    ("authorization_url", "authorization_endpoint"),
    ("token_url", "token_endpoint"),
    ("revocation_url", "revocation_endpoint"),
    ("device_authorization_url", "device_authorization_endpoint"),
];

/// Applies `input` over `base` (or over the defaults when creating), fills endpoints from the issuer's
/// metadata when an issuer is set and this save creates the connection, changes the issuer or the connection
/// parameters, or still lacks an endpoint the grant needs; then validates the result.
///
/// # Errors
/// `Invalid` naming the field at fault; `Provider` (502) when the issuer's metadata could not be fetched for a
/// passing reason.
pub async fn build(state: &AppState, base: Option<&OAuthSettings>, input: &ConnectionInput) -> Result<OAuthSettings> {
    let mut settings = merge(base, input)?;
    // On create; when the issuer or its placeholders' values change; and whenever an endpoint the grant needs is
    // still missing (a preset's base may name only its issuer).
    let missing = settings.token_url.is_empty()
        || (settings.grant_type == GrantType::AuthorizationCode && settings.authorization_url.is_empty())
        || (settings.grant_type == GrantType::DeviceCode && settings.device_authorization_url.is_none());
    let discover = settings.issuer.is_some()
        && (base.is_none() || input.issuer.is_some() || input.connection_params.is_some() || missing);
    if settings.client_id.is_empty() {
        return Err(Error::invalid("client_id", "client id is required"));
    }
    check_templates(&settings)?;
    if discover {
        discover_endpoints(state, &mut settings, input).await?;
    }
    let device_url = settings.device_authorization_url.clone().unwrap_or_default();
    let required: &[(&str, &String)] = match settings.grant_type {
        GrantType::AuthorizationCode => {
            &[("authorization_url", &settings.authorization_url), ("token_url", &settings.token_url)]
        }
        // No browser: the authorization URL is not used.
        GrantType::ClientCredentials => &[("token_url", &settings.token_url)],
        GrantType::DeviceCode => &[("token_url", &settings.token_url), ("device_authorization_url", &device_url)],
    };
    for &(field, value) in required {
        if value.trim().is_empty() {
            let hint = if settings.issuer.is_some() { " (the issuer's metadata does not name it either)" } else { "" };
            return Err(Error::invalid(field, format!("{} is required{hint}", field.replace('_', " "))));
        }
    }
    validate(state, &settings)?;
    check_destinations(state, &settings).await?;
    Ok(settings)
}

/// Resolves the host of every endpoint latchkey calls itself and refuses one whose address the outbound guard
/// refuses, naming the field, so the person learns it now rather than at the first token request.
async fn check_destinations(state: &AppState, stored: &OAuthSettings) -> Result<()> {
    let settings = stored.resolved()?;
    let endpoints = [
        ("token_url", Some(&settings.token_url)),
        ("refresh_url", settings.refresh_url.as_ref()),
        ("revocation_url", settings.revocation_url.as_ref()),
        ("device_authorization_url", settings.device_authorization_url.as_ref()),
        ("issuer", settings.issuer.as_ref()),
    ];
    for (field, value) in endpoints {
        let Some(url) = value.and_then(|v| Url::parse(v).ok()) else { continue };
        state
            .http
            .check_destination(&url)
            .await
            .map_err(|e| Error::invalid(field, format!("{}: {e}", field.replace('_', " "))))?;
    }
    Ok(())
}

/// Whether the input sets an endpoint field itself (an empty string counts: it clears the field).
fn given(input: &ConnectionInput, field: &str) -> bool {
    match field {
        "authorization_url" => input.authorization_url.is_some(),
        "token_url" => input.token_url.is_some(),
        "revocation_url" => input.revocation_url.is_some(),
        "device_authorization_url" => input.device_authorization_url.is_some(),
        _ => false,
    }
}

fn merge(base: Option<&OAuthSettings>, input: &ConnectionInput) -> Result<OAuthSettings> {
    let defaults = OAuthSettings::default();
    let base = base.unwrap_or(&defaults);
    let text = |value: Option<&String>, old: &String| value.map_or_else(|| old.clone(), |v| v.trim().to_owned());
    let mut settings = OAuthSettings {
        grant_type: input.grant_type.unwrap_or(base.grant_type),
        authorization_url: text(input.authorization_url.as_ref(), &base.authorization_url),
        token_url: text(input.token_url.as_ref(), &base.token_url),
        client_id: text(input.client_id.as_ref(), &base.client_id),
        scopes: input
            .scopes
            .as_deref()
            .map_or_else(|| base.scopes.clone(), |s| s.split_whitespace().collect::<Vec<_>>().join(" ")),
        pkce: input.pkce.unwrap_or(base.pkce),
        client_auth: input.client_auth.unwrap_or(base.client_auth),
        refresh_client_auth: match input.refresh_client_auth.as_deref().map(str::trim) {
            None => base.refresh_client_auth,
            Some("") => None,
            Some(word) => Some(parse_client_auth("refresh_client_auth", word)?),
        },
        token_request_format: input.token_request_format.unwrap_or(base.token_request_format),
        revocation_request_format: match input.revocation_request_format.as_deref().map(str::trim) {
            None => base.revocation_request_format,
            Some("") => None,
            Some("form") => Some(TokenRequestFormat::Form),
            Some("json") => Some(TokenRequestFormat::Json),
            Some(other) => {
                return Err(Error::invalid(
                    "revocation_request_format",
                    format!(
                        "revocation_request_format '{}' is not one of form, json (or \"\" to use token_request_format)",
                        other.escape_debug()
                    ),
                ));
            }
        },
        authorization_params: pick(&input.authorization_params, &base.authorization_params),
        token_params: pick(&input.token_params, &base.token_params),
        refresh_params: pick(&input.refresh_params, &base.refresh_params),
        request_headers: pick(&input.request_headers, &base.request_headers),
        scope_separator: input.scope_separator.clone().unwrap_or_else(|| base.scope_separator.clone()),
        token_response_map: match &input.token_response_map {
            Some(pairs) => TokenResponseMap::from_pairs(pairs)?,
            None => base.token_response_map.clone(),
        },
        default_expires_in: input.default_expires_in.or(base.default_expires_in),
        keep_response_fields: list(&input.keep_response_fields, &base.keep_response_fields),
        keep_callback_params: list(&input.keep_callback_params, &base.keep_callback_params),
        refresh_url: optional_url(&input.refresh_url, base.refresh_url.as_ref()),
        revocation_url: optional_url(&input.revocation_url, base.revocation_url.as_ref()),
        device_authorization_url: optional_url(&input.device_authorization_url, base.device_authorization_url.as_ref()),
        redirect_uri: optional_url(&input.redirect_uri, base.redirect_uri.as_ref()),
        issuer: optional_url(&input.issuer, base.issuer.as_ref()),
        discovered: base.discovered.iter().filter(|field| !given(input, field)).cloned().collect(),
        authorization_response_iss_parameter_supported: base.authorization_response_iss_parameter_supported,
        connection_params: pick(&input.connection_params, &base.connection_params),
    };
    if settings.issuer.is_none() {
        // Without an issuer the endpoints found earlier simply stay, now as the connection's own.
        settings.discovered.clear();
        settings.authorization_response_iss_parameter_supported = false;
    }
    Ok(settings)
}

/// The contract's spelling of a client authentication method.
fn parse_client_auth(field: &str, word: &str) -> Result<ClientAuth> {
    match word {
        "client_secret_post" => Ok(ClientAuth::ClientSecretPost),
        "client_secret_basic" => Ok(ClientAuth::ClientSecretBasic),
        "none" => Ok(ClientAuth::None),
        other => Err(Error::invalid(
            field,
            format!(
                "{field} '{}' is not one of client_secret_post, client_secret_basic, none (or \"\" to use client_auth)",
                other.escape_debug()
            ),
        )),
    }
}

fn pick(input: &Option<BTreeMap<String, String>>, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    input.clone().unwrap_or_else(|| base.clone())
}

/// A list field: absent keeps `base`; given, its trimmed non-empty entries without repeats, in order.
fn list(input: &Option<Vec<String>>, base: &[String]) -> Vec<String> {
    match input {
        None => base.to_vec(),
        Some(items) => {
            let mut seen = BTreeSet::new();
            items
                .iter()
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty() && seen.insert(item.clone()))
                .collect()
        }
    }
}

/// An optional URL field: absent keeps `base`, an empty string clears it.
pub(crate) fn optional_url(input: &Option<String>, base: Option<&String>) -> Option<String> {
    match input.as_deref().map(str::trim) {
        Some("") => None,
        Some(v) => Some(v.to_owned()),
        None => base.cloned(),
    }
}

/// Every placeholder has a valid value and every value a placeholder; the values cannot change a URL's host.
fn check_templates(settings: &OAuthSettings) -> Result<()> {
    let used = settings.placeholders()?;
    let params = &settings.connection_params;
    if params.len() > MAX_PARAMS {
        return Err(Error::invalid(
            "connection_params",
            format!("connection_params has more than {MAX_PARAMS} values"),
        ));
    }
    for (name, value) in params {
        if !template::is_valid_name(name) {
            return Err(Error::invalid(
                "connection_params",
                format!(
                    "connection_params has the name '{}': names are 1 to 64 letters, digits, '_' and '-'",
                    name.escape_debug()
                ),
            ));
        }
        template::check_value(value).map_err(|why| {
            Error::invalid("connection_params", format!("the value of connection_params.{name} {why}"))
        })?;
        if !used.contains(name) {
            return Err(Error::invalid(
                "connection_params",
                format!("connection_params.{name} is not used: no URL of this connection has a {{{name}}} placeholder"),
            ));
        }
    }
    // Naming the URL field whose placeholder lacks a value.
    settings.resolved().map(|_| ())
}

/// Fetches the issuer's metadata and fills the endpoint fields that the person did not give.
async fn discover_endpoints(state: &AppState, settings: &mut OAuthSettings, input: &ConnectionInput) -> Result<()> {
    let resolved = settings.resolved()?;
    let issuer = resolved.issuer.clone().unwrap_or_default();
    parse_url("issuer", &issuer)?;
    let metadata = latchkey_oauth::discover(&state.http, &issuer).await.map_err(|err| match err {
        OAuthError::Unavailable { .. } => {
            Error::Provider { message: format!("discovery for the issuer {issuer} failed: {err}"), retryable: true }
        }
        other => Error::invalid("issuer", format!("discovery for the issuer {issuer} failed: {other}")),
    })?;
    let previously = std::mem::take(&mut settings.discovered);
    for (field, _) in DISCOVERABLE {
        let found = match field {
            "authorization_url" => metadata.authorization_endpoint.clone(),
            "token_url" => metadata.token_endpoint.clone(),
            "revocation_url" => metadata.revocation_endpoint.clone(),
            _ => metadata.device_authorization_endpoint.clone(),
        };
        // Found earlier and not given now: the metadata decides again (a value it no longer names goes).
        let refill = previously.iter().any(|f| f == field) && !given(input, field);
        let slot = endpoint_mut(settings, field);
        if !(slot.is_empty() || refill) {
            continue;
        }
        match found {
            Some(url) => {
                *slot = url;
                settings.discovered.push(field.to_owned());
            }
            None => slot.clear(),
        }
    }
    settings.revocation_url = settings.revocation_url.take().filter(|u| !u.is_empty());
    settings.device_authorization_url = settings.device_authorization_url.take().filter(|u| !u.is_empty());
    settings.authorization_response_iss_parameter_supported = metadata.authorization_response_iss_parameter_supported;
    tracing::info!(
        issuer = %issuer,
        filled = %settings.discovered.join(","),
        iss_required = metadata.authorization_response_iss_parameter_supported,
        "endpoints discovered from the issuer's metadata"
    );
    Ok(())
}

/// The endpoint field `field` as text to fill (an absent optional one as an empty string, written back as
/// absent by the caller).
fn endpoint_mut<'a>(settings: &'a mut OAuthSettings, field: &str) -> &'a mut String {
    match field {
        "authorization_url" => &mut settings.authorization_url,
        "token_url" => &mut settings.token_url,
        "revocation_url" => settings.revocation_url.get_or_insert_with(String::new),
        _ => settings.device_authorization_url.get_or_insert_with(String::new),
    }
}

fn validate(state: &AppState, stored: &OAuthSettings) -> Result<()> {
    let settings = stored.resolved()?;
    let policy = state.http.policy();
    let endpoints = [
        ("authorization_url", Some(&settings.authorization_url)),
        ("token_url", Some(&settings.token_url)),
        ("refresh_url", settings.refresh_url.as_ref()),
        ("revocation_url", settings.revocation_url.as_ref()),
        ("device_authorization_url", settings.device_authorization_url.as_ref()),
        ("issuer", settings.issuer.as_ref()),
    ];
    for (field, value) in endpoints {
        let Some(value) = value else { continue };
        if field == "authorization_url" && value.is_empty() && settings.grant_type != GrantType::AuthorizationCode {
            continue;
        }
        let url = parse_url(field, value)?;
        // The browser, not latchkey, visits the authorization URL; the others latchkey calls itself.
        let checked = if field == "authorization_url" {
            latchkey_oauth::check_browser_url(&url, policy)
        } else {
            latchkey_oauth::guard::check_url(&url, policy)
        };
        checked.map_err(|e| Error::invalid(field, format!("{}: {e}", field.replace('_', " "))))?;
    }
    if let Some(issuer) = &settings.issuer {
        latchkey_oauth::metadata_urls(issuer).map_err(|e| Error::invalid("issuer", format!("issuer: {e}")))?;
    }
    if let Some(redirect) = &settings.redirect_uri {
        let url = parse_url("redirect_uri", redirect)?;
        if url.fragment().is_some() {
            return Err(Error::invalid("redirect_uri", "redirect uri may not have a fragment (RFC 6749 §3.1.2)"));
        }
    }
    if settings.client_id.chars().any(char::is_control) {
        return Err(Error::invalid("client_id", "the client ID contains control characters"));
    }
    if settings.request_headers.len() > 20 {
        return Err(Error::invalid("request_headers", "at most 20 request headers"));
    }
    for (name, value) in &settings.request_headers {
        latchkey_oauth::check_request_header(name, value).map_err(|why| Error::invalid("request_headers", why))?;
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
    check_params("authorization_params", &settings.authorization_params, RESERVED_AUTHORIZATION_PARAMS)?;
    check_params("token_params", &settings.token_params, RESERVED_TOKEN_PARAMS)?;
    check_params("refresh_params", &settings.refresh_params, RESERVED_TOKEN_PARAMS)?;
    check_kept_fields(&settings)?;
    check_kept_callback_params(&settings.keep_callback_params)
}

/// Extra request parameters: plain names, no parameter latchkey sets itself, nothing that looks like a
/// credential (settings are stored unencrypted).
fn check_params(field: &str, params: &BTreeMap<String, String>, reserved: &[&str]) -> Result<()> {
    if params.len() > MAX_PARAMS {
        return Err(Error::invalid(field, format!("{field} has more than {MAX_PARAMS} parameters")));
    }
    for (name, value) in params {
        let shown = name.escape_debug();
        if name.trim().is_empty() || name.len() > MAX_PARAM_LEN || name.chars().any(char::is_control) {
            return Err(Error::invalid(field, format!("{field} has an empty or malformed parameter name '{shown}'")));
        }
        if reserved.contains(&name.as_str()) {
            return Err(Error::invalid(field, format!("{field} may not set '{shown}': latchkey sets it itself")));
        }
        if is_secret_like(name) {
            return Err(Error::invalid(
                field,
                format!("{field} may not hold '{shown}': settings are stored unencrypted, so no credentials here"),
            ));
        }
        if value.len() > MAX_PARAM_LEN || value.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("the value of {field}.{shown} is too long or has control characters"),
            ));
        }
    }
    Ok(())
}

fn check_kept_fields(settings: &OAuthSettings) -> Result<()> {
    let field = "keep_response_fields";
    if settings.keep_response_fields.len() > MAX_KEPT {
        return Err(Error::invalid(field, format!("{field} may name at most {MAX_KEPT} fields")));
    }
    let map = &settings.token_response_map;
    let token_paths = [map.path("access_token"), map.path("refresh_token")];
    for path in &settings.keep_response_fields {
        check_path(path).map_err(|why| Error::invalid(field, format!("{field}: the path '{path}' {why}")))?;
        if is_secret_like(path) || token_paths.contains(&Some(path.as_str())) {
            return Err(Error::invalid(
                field,
                format!("{field} may not keep '{path}': kept values are shown in the clear, and tokens never are"),
            ));
        }
    }
    Ok(())
}

fn check_kept_callback_params(names: &[String]) -> Result<()> {
    let field = "keep_callback_params";
    if names.len() > MAX_KEPT {
        return Err(Error::invalid(field, format!("{field} may name at most {MAX_KEPT} parameters")));
    }
    for name in names {
        let shown = name.escape_debug();
        if name.len() > 100 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(field, format!("{field} has the malformed name '{shown}'")));
        }
        if PROTOCOL_CALLBACK_PARAMS.contains(&name.as_str()) || is_secret_like(name) {
            return Err(Error::invalid(
                field,
                format!("{field} may not keep '{shown}': it belongs to the protocol or looks like a credential"),
            ));
        }
    }
    Ok(())
}

/// An absolute `http` or `https` URL with a host.
pub(crate) fn parse_url(field: &str, value: &str) -> Result<Url> {
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
    fn optional_urls_keep_clear_or_replace() {
        let base = "https://old".to_owned();
        assert_eq!(optional_url(&None, Some(&base)), Some(base.clone()));
        assert_eq!(optional_url(&Some(" ".into()), Some(&base)), None);
        assert_eq!(optional_url(&Some("https://new".into()), Some(&base)).as_deref(), Some("https://new"));
    }

    #[test]
    fn lists_are_trimmed_and_deduplicated() {
        let base = vec!["a".to_owned()];
        assert_eq!(list(&None, &base), base);
        let given = Some(vec![" b ".to_owned(), String::new(), "b".to_owned(), "c".to_owned()]);
        assert_eq!(list(&given, &base), ["b", "c"]);
    }

    #[test]
    fn client_auth_words_follow_the_contract() {
        assert_eq!(parse_client_auth("f", "client_secret_basic").ok(), Some(ClientAuth::ClientSecretBasic));
        assert_eq!(parse_client_auth("f", "none").ok(), Some(ClientAuth::None));
        let err = parse_client_auth("refresh_client_auth", "basic").expect_err("unknown");
        assert!(matches!(err, Error::Invalid { field: Some(f), .. } if f == "refresh_client_auth"));
    }

    #[test]
    fn extra_parameters_are_checked() {
        let ok = BTreeMap::from([("access_type".to_owned(), "offline".to_owned())]);
        assert!(check_params("authorization_params", &ok, RESERVED_AUTHORIZATION_PARAMS).is_ok());
        for name in ["state", "redirect_uri"] {
            let bad = BTreeMap::from([(name.to_owned(), "x".to_owned())]);
            assert!(check_params("authorization_params", &bad, RESERVED_AUTHORIZATION_PARAMS).is_err(), "{name}");
        }
        for name in ["grant_type", "client_secret", "api_key", ""] {
            let bad = BTreeMap::from([(name.to_owned(), "x".to_owned())]);
            assert!(check_params("token_params", &bad, RESERVED_TOKEN_PARAMS).is_err(), "{name}");
        }
        let client_id = BTreeMap::from([("client_id".to_owned(), "x".to_owned())]);
        assert!(check_params("token_params", &client_id, RESERVED_TOKEN_PARAMS).is_ok());
    }
}
