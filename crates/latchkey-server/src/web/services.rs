//! The services the connection form's picker offers. "Custom OAuth 2.0" comes first; a provider preset adds
//! one line to [`SERVICES`].

/// A service of the picker: the connection's `provider` value and its name for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub id: &'static str,
    pub label: &'static str,
}

/// The picker's services, in the order shown.
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

/// The picker's options with `current` selected. A provider the picker does not know (set through the API) is
/// offered too, so that saving the form never changes it silently.
#[must_use]
pub fn options(current: &str) -> Vec<ServiceOption> {
    let mut options: Vec<ServiceOption> = SERVICES
        .iter()
        .map(|s| ServiceOption { id: s.id.to_owned(), label: s.label.to_owned(), selected: s.id == current })
        .collect();
    if !current.is_empty() && !options.iter().any(|o| o.selected) {
        options.push(ServiceOption { id: current.to_owned(), label: label(current).to_owned(), selected: true });
    }
    options
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
        assert_eq!(known.len(), SERVICES.len());
        assert!(known[0].selected);
        let unknown = options("acme");
        assert!(!unknown[0].selected);
        assert!(unknown.last().is_some_and(|o| o.id == "acme" && o.selected));
    }
}
