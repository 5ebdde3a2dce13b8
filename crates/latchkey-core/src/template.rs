//! URL templates: `{name}` placeholders in a connection's URLs, filled from its `connection_params`
//! (CONTRACT.md), for providers whose endpoints carry a per-account part such as a subdomain or a tenant:
//! `https://{subdomain}.example.com/oauth/token` with `{"subdomain": "acme"}`.
//!
//! Values are limited to the unreserved characters of RFC 3986 §2.3, so that a value can only ever fill the
//! place its placeholder stands in: it cannot end the host (`/`, `?`, `#`), add user information (`@`) or a port
//! (`:`), or break out of a path segment.

use std::collections::BTreeMap;

/// The longest placeholder name.
pub const MAX_NAME_LEN: usize = 64;

/// The longest value (the longest DNS name).
pub const MAX_VALUE_LEN: usize = 253;

/// Why a template could not be filled. The messages are predicates that follow the field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder without a value.
    #[error("has the placeholder {{{0}}}, but connection_params gives no value for '{0}'")]
    Missing(String),
    /// A brace that does not belong to a well-formed placeholder.
    #[error(
        "has a '{{' or '}}' that is not part of a {{name}} placeholder (names are 1 to 64 letters, digits, '_' and '-')"
    )]
    Malformed,
}

/// Whether `name` can name a placeholder: 1 to 64 ASCII letters, digits, `_` and `-`.
#[must_use]
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Splits `template` into literal text and placeholder names.
fn parts(template: &str) -> Result<Vec<Part<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(TemplateError::Malformed);
        }
        out.push(Part::Text(&rest[..open]));
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::Malformed)?;
        let name = &after[..close];
        if !is_valid_name(name) {
            return Err(TemplateError::Malformed);
        }
        out.push(Part::Name(name));
        rest = &after[close + 1..];
    }
    out.push(Part::Text(rest));
    Ok(out)
}

enum Part<'a> {
    Text(&'a str),
    Name(&'a str),
}

/// The placeholder names of `template`, in order of appearance.
///
/// # Errors
/// [`TemplateError::Malformed`] for a stray or unclosed brace or an invalid name.
pub fn placeholders(template: &str) -> Result<Vec<&str>, TemplateError> {
    Ok(parts(template)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Name(name) => Some(name),
            Part::Text(_) => None,
        })
        .collect())
}

/// `template` with each placeholder replaced by its value in `params`. A template without placeholders comes
/// back unchanged.
///
/// # Errors
/// [`TemplateError::Missing`] for a placeholder without a value, [`TemplateError::Malformed`] for a stray brace.
pub fn fill(template: &str, params: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    if !template.contains(['{', '}']) {
        return Ok(template.to_owned());
    }
    let mut out = String::with_capacity(template.len());
    for part in parts(template)? {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Name(name) => {
                out.push_str(params.get(name).ok_or_else(|| TemplateError::Missing(name.to_owned()))?);
            }
        }
    }
    Ok(out)
}

/// Checks a value for a placeholder: 1 to 253 of the unreserved characters of RFC 3986 §2.3 (ASCII letters,
/// digits, `-`, `.`, `_`, `~`), and not `.` or `..` (which would climb a path).
///
/// # Errors
/// A sentence part saying what is wrong, for example "contains '/', which is not allowed in a URL part".
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".to_owned());
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!("is longer than {MAX_VALUE_LEN} characters"));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))) {
        let shown = if bad.is_whitespace() || bad.is_control() {
            "whitespace or a control character".to_owned()
        } else {
            format!("'{bad}'")
        };
        return Err(format!(
            "contains {shown}; only letters, digits, '-', '.', '_' and '~' are allowed, so that the value cannot \
             change the host or the path of the URL"
        ));
    }
    if value == "." || value == ".." {
        return Err("may not be '.' or '..'".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn fills_every_placeholder() {
        let p = params(&[("subdomain", "acme"), ("tenant", "t-1")]);
        assert_eq!(
            fill("https://{subdomain}.example.com/{tenant}/oauth/{tenant}", &p).as_deref(),
            Ok("https://acme.example.com/t-1/oauth/t-1")
        );
        assert_eq!(fill("https://plain.example.com/token", &p).as_deref(), Ok("https://plain.example.com/token"));
        assert_eq!(placeholders("https://{a}.x/{b_2}").ok(), Some(vec!["a", "b_2"]));
    }

    #[test]
    fn missing_and_malformed_placeholders_are_errors() {
        let p = params(&[("a", "x")]);
        assert_eq!(fill("https://{b}.example.com", &p), Err(TemplateError::Missing("b".into())));
        for bad in ["https://{a.example.com", "https://a}.example.com", "https://{}.x", "https://{a b}.x", "{{a}}"] {
            assert_eq!(fill(bad, &p), Err(TemplateError::Malformed), "{bad}");
        }
    }

    #[test]
    fn values_cannot_inject_into_the_url() {
        for good in ["acme", "my-tenant_1", "eu.region", "a~b"] {
            assert_eq!(check_value(good), Ok(()), "{good}");
        }
        for bad in ["", "evil.com/", "a?b", "a#b", "user@evil.com", "evil.com:8443", "a b", "a\tb", "a%2Fb", ".", ".."]
        {
            assert!(check_value(bad).is_err(), "{bad:?}");
        }
        assert!(check_value(&"a".repeat(254)).is_err());
    }
}
