//! The services the connection form's picker offers: "Custom OAuth 2.0" first, then every provider preset
//! ([`crate::presets::all`]) by name.

/// A service of the picker: the connection's `provider` value and its name for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub id: &'static str,
    pub label: &'static str,
}

/// The services that are not presets, first in the picker.
pub const SERVICES: &[Service] = &[Service { id: "custom", label: "Custom OAuth 2.0" }];

/// The name people see for the provider `id`: the picker's, else the preset's (a connection made from a preset
/// through the API), else the id as it is.
#[must_use]
pub fn label(id: &str) -> &str {
    match SERVICES.iter().find(|s| s.id == id) {
        Some(service) => service.label,
        None => crate::presets::get(id).map_or(id, |preset| preset.name.as_str()),
    }
}

/// One `<option>` of the picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOption {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

/// The picker's options with `current` selected: "Custom OAuth 2.0", then the presets by name. A provider the
/// picker does not know is offered too, so that saving the form never changes it silently.
#[must_use]
pub fn options(current: &str) -> Vec<ServiceOption> {
    let mut presets: Vec<&crate::presets::Preset> = crate::presets::all().iter().collect();
    presets.sort_by_cached_key(|p| p.name.to_lowercase());
    let mut options: Vec<ServiceOption> = SERVICES
        .iter()
        .map(|s| ServiceOption { id: s.id.to_owned(), label: s.label.to_owned(), selected: s.id == current })
        .chain(presets.into_iter().map(|p| ServiceOption {
            id: p.id.clone(),
            label: p.name.clone(),
            selected: p.id == current,
        }))
        .collect();
    if !current.is_empty() && !options.iter().any(|o| o.selected) {
        options.push(ServiceOption { id: current.to_owned(), label: label(current).to_owned(), selected: true });
    }
    options
}

/// What a preset's form asks for, besides the fields every connection has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetForm {
    pub id: String,
    pub name: String,
    /// The provider's own OAuth documentation (a URL from the preset file).
    pub docs_url: String,
    /// Quirks worth knowing when registering the client; may be "".
    pub notes: String,
    /// A public client: no client secret to ask for.
    pub public_client: bool,
    /// One field per connection parameter.
    pub params: Vec<ParamField>,
    /// The grants the preset offers (`grant_type` values), its default first; a choice is shown when there are
    /// several (the device flow beside the browser flow).
    pub grant_types: Vec<&'static str>,
}

impl PresetForm {
    /// Whether the preset offers the grant `grant_type`.
    #[must_use]
    pub fn offers(&self, grant_type: &str) -> bool {
        self.grant_types.contains(&grant_type)
    }
}

/// One connection parameter's field of a preset's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamField {
    /// The form field's name, `param.<name>`.
    pub field: String,
    /// The element id, `param-<name>`.
    pub id: String,
    pub label: String,
    pub hint: String,
    pub value: String,
    /// Without a default, the value must be given.
    pub required: bool,
}

/// The form of the preset `id`, with the parameter values `values` (as typed, or the defaults); `None` for
/// `custom` or an unknown id.
#[must_use]
pub fn preset_form(id: &str, values: &std::collections::BTreeMap<String, String>) -> Option<PresetForm> {
    let preset = crate::presets::get(id)?;
    Some(PresetForm {
        id: preset.id.clone(),
        name: preset.name.clone(),
        docs_url: preset.docs_url.clone(),
        notes: preset.notes.clone(),
        public_client: preset.client_auth == latchkey_core::settings::ClientAuth::None,
        params: preset
            .connection_params
            .iter()
            .map(|p| ParamField {
                field: format!("{}{}", super::form::PARAM_PREFIX, p.name),
                id: format!("param-{}", p.name),
                label: p.label.clone(),
                hint: p.hint.clone(),
                value: values.get(&p.name).cloned().unwrap_or_default(),
                required: p.default.is_none(),
            })
            .collect(),
        grant_types: preset.grant_types(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_comes_first_and_is_named_for_people() {
        assert_eq!(SERVICES[0].id, "custom");
        assert_eq!(label("custom"), "Custom OAuth 2.0");
        assert_eq!(label("acme"), "acme");
        if let Some(preset) = crate::presets::all().first() {
            assert_eq!(label(&preset.id), preset.name);
        }
    }

    #[test]
    fn an_unknown_provider_stays_selected() {
        let known = options("custom");
        assert_eq!(known.len(), SERVICES.len() + crate::presets::all().len());
        assert!(known[0].selected && known[0].label == "Custom OAuth 2.0");
        let names: Vec<String> = known[1..].iter().map(|o| o.label.to_lowercase()).collect();
        assert!(names.windows(2).all(|w| w[0] <= w[1]), "presets by name: {names:?}");
        assert!(options("github").iter().any(|o| o.id == "github" && o.selected));
        let unknown = options("acme");
        assert!(!unknown[0].selected);
        assert!(unknown.last().is_some_and(|o| o.id == "acme" && o.selected));
    }

    #[test]
    fn a_preset_form_asks_for_its_parameters() {
        let values = std::collections::BTreeMap::from([("subdomain".to_owned(), "acme".to_owned())]);
        let form = preset_form("zendesk", &values).expect("the zendesk preset");
        assert_eq!(form.name, "Zendesk");
        assert_eq!(form.params.len(), 1);
        assert_eq!(form.params[0].field, "param.subdomain");
        assert_eq!(form.params[0].value, "acme");
        assert!(form.params[0].required);
        assert!(!form.public_client);
        assert!(preset_form("custom", &values).is_none());
        assert!(preset_form("nope", &values).is_none());
    }
}
