//! Starting a connection from a preset: the preset's settings become the base that the person's fields are
//! merged over, and its connection parameters are completed from their defaults or refused when missing.

use std::collections::BTreeMap;

use latchkey_core::settings::OAuthSettings;
use latchkey_core::{Error, template};

use super::{Preset, all, get};
use crate::service::connections::ConnectionInput;

/// The `provider` value of a connection: `custom` (also for an absent or empty value) or a preset's id.
///
/// # Errors
/// [`Error::Invalid`] for an unknown id, listing a few valid ones.
pub fn check_provider(provider: Option<&str>) -> Result<String, Error> {
    let id = provider.map(str::trim).filter(|p| !p.is_empty()).unwrap_or("custom");
    if id == "custom" || get(id).is_some() {
        return Ok(id.to_owned());
    }
    let some: Vec<&str> = all().iter().map(|p| p.id.as_str()).take(8).collect();
    Err(Error::invalid(
        "provider",
        format!(
            "unknown provider '{}': use 'custom' and give the endpoints yourself, or a preset id such as {} \
             (GET /api/v1/providers lists them all)",
            id.escape_debug(),
            some.join(", ")
        ),
    ))
}

/// The settings a connection with `provider` starts from when the provider is (newly) a preset: the preset's,
/// keeping from `existing` what belongs to the person (client id, redirect URI, connection parameters the preset
/// declares). `None` for `custom`. The input's `connection_params` are completed from the preset's defaults.
///
/// # Errors
/// [`Error::Invalid`] naming the `connection_params` the preset needs and the input does not give.
pub fn base_settings(
    provider: &str,
    input: &mut ConnectionInput,
    existing: Option<&OAuthSettings>,
) -> Result<Option<OAuthSettings>, Error> {
    let Some(preset) = get(provider) else { return Ok(None) };
    let mut base = preset.settings();
    let mut params = BTreeMap::new();
    let used = used_params(preset, input);
    for name in &used {
        let kept = existing.and_then(|e| e.connection_params.get(name));
        let default = preset.param(name).and_then(|p| p.default.as_ref());
        if let Some(value) = kept.or(default) {
            params.insert(name.clone(), value.clone());
        }
    }
    if let Some(existing) = existing {
        base.client_id.clone_from(&existing.client_id);
        base.redirect_uri.clone_from(&existing.redirect_uri);
    }
    params.extend(input.connection_params.take().unwrap_or_default());
    let missing: Vec<String> = used
        .iter()
        .filter(|name| !params.contains_key(*name))
        .map(|name| match preset.param(name) {
            Some(p) => format!("{name} ({}: {})", p.label, p.hint),
            None => name.clone(),
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            "connection_params",
            format!("the {} preset needs connection_params: {}", preset.name, missing.join("; ")),
        ));
    }
    input.connection_params = Some(params);
    Ok(Some(base))
}

/// The placeholders of the preset's URLs that the input does not replace with URLs of its own.
fn used_params(preset: &Preset, input: &ConnectionInput) -> Vec<String> {
    let overridden = |field: &str| match field {
        "authorization_url" => input.authorization_url.is_some(),
        "token_url" => input.token_url.is_some(),
        "refresh_url" => input.refresh_url.is_some(),
        "revocation_url" => input.revocation_url.is_some(),
        "device_authorization_url" => input.device_authorization_url.is_some(),
        _ => false,
    };
    let mut names = Vec::new();
    for (field, value) in preset.urls() {
        let Some(value) = value else { continue };
        if overridden(field) {
            continue;
        }
        for name in template::placeholders(value).unwrap_or_default() {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}
