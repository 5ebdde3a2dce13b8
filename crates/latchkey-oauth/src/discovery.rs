//! Authorization server metadata (RFC 8414), with the OpenID Connect Discovery 1.0 location as a fallback: given
//! an issuer identifier, find the endpoints a connection needs and whether the server sends `iss` in its
//! authorization responses (RFC 9207).

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
use url::Url;

use crate::error::{display_endpoint, sanitize};
use crate::{HttpClient, OAuthError};

/// What latchkey uses of an authorization server's metadata (RFC 8414 §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// The issuer the metadata names; always identical to the one asked for.
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    /// RFC 7009 (named in RFC 8414 §2).
    pub revocation_endpoint: Option<String>,
    /// RFC 8628 §4.
    pub device_authorization_endpoint: Option<String>,
    /// RFC 9207 §3: the server puts `iss` in every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
}

/// The locations to ask for the metadata of `issuer`, in order:
///
/// 1. RFC 8414 §3: `/.well-known/oauth-authorization-server` inserted between the host and the issuer's path
///    (a terminating `/` of the path removed first);
/// 2. OpenID Connect Discovery 1.0 §4: `/.well-known/openid-configuration` appended to the issuer (without a
///    terminating `/`);
/// 3. RFC 8414 §5: `/.well-known/openid-configuration` inserted like (1), for servers that follow RFC 8414's
///    rule for the OpenID name too. Left out when it is the same URL as (2), as it is for an issuer without a
///    path.
///
/// # Errors
/// [`OAuthError::Refused`] when `issuer` is not an absolute `http`/`https` URL with a host and without a query
/// or fragment (RFC 8414 §2).
pub fn metadata_urls(issuer: &str) -> Result<Vec<String>, OAuthError> {
    let url = Url::parse(issuer)
        .map_err(|err| OAuthError::Refused { message: format!("the issuer is not a valid URL ({err})") })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(OAuthError::Refused { message: "the issuer must be an https URL with a host".to_owned() });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(OAuthError::Refused {
            message: "the issuer may not have a query or fragment (RFC 8414 §2)".to_owned(),
        });
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let inserted = |suffix: &str| {
        let mut at = url.clone();
        at.set_path(&format!("/.well-known/{suffix}{path}"));
        at.to_string()
    };
    let mut appended = url.clone();
    appended.set_path(&format!("{path}/.well-known/openid-configuration"));
    let mut urls = vec![inserted("oauth-authorization-server"), appended.to_string()];
    let openid_inserted = inserted("openid-configuration");
    if !urls.contains(&openid_inserted) {
        urls.push(openid_inserted);
    }
    Ok(urls)
}

/// Fetches the metadata of `issuer` through `http` from the first of [`metadata_urls`] that answers with a JSON
/// object, and checks it.
///
/// The metadata's `issuer` must be identical to `issuer`, character for character (RFC 8414 §3.3); a document
/// naming another issuer is not used, and the next location is tried. Endpoint URLs are returned normalised
/// (parsed and written back), so that they hold no stray braces.
///
/// # Errors
/// [`OAuthError::Refused`] for an unusable issuer or a location the outbound guard refuses;
/// [`OAuthError::InvalidResponse`] when a document names another issuer or an endpoint that is not a URL, or
/// when no location has a document; [`OAuthError::Unavailable`] when every location failed passingly (5xx, 429,
/// timeouts).
pub async fn discover(http: &HttpClient, issuer: &str) -> Result<ProviderMetadata, OAuthError> {
    let mut tried = Vec::new();
    let mut mismatch = None;
    let mut all_unavailable = true;
    for location in metadata_urls(issuer)? {
        let shown = display_endpoint(&location);
        let response = match http.execute(Method::GET, &location, HeaderMap::new(), None).await {
            Ok(response) => response,
            Err(err @ OAuthError::Refused { .. }) => return Err(err),
            Err(err) => {
                all_unavailable &= err.is_retryable();
                tried.push(format!("{shown} {}", predicate(&err)));
                continue;
            }
        };
        if response.status == 429 || response.status >= 500 {
            tried.push(format!("{shown} answered {}", response.status));
            continue;
        }
        all_unavailable = false;
        if !(200..300).contains(&response.status) {
            tried.push(format!("{shown} answered {}", response.status));
            continue;
        }
        let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(&response.body) else {
            tried.push(format!("{shown} answered {} without a JSON object", response.status));
            continue;
        };
        let named = document.get("issuer").and_then(Value::as_str).unwrap_or_default();
        if named != issuer {
            let named = sanitize(named, 300);
            mismatch.get_or_insert_with(|| {
                format!(
                    "published metadata at {shown} for the issuer '{named}', not '{issuer}'; RFC 8414 forbids using it: \
                     give the issuer exactly as the provider names it"
                )
            });
            continue;
        }
        return metadata_from(&document, issuer, &shown);
    }
    if let Some(message) = mismatch {
        return Err(OAuthError::InvalidResponse { message });
    }
    let message = format!("has no usable metadata: {}", tried.join("; "));
    if all_unavailable {
        Err(OAuthError::Unavailable { message, retry_after: None })
    } else {
        Err(OAuthError::InvalidResponse { message })
    }
}

/// An error's predicate without the "the provider" that `Display` puts in front.
fn predicate(err: &OAuthError) -> String {
    match err {
        OAuthError::Unavailable { message, .. } | OAuthError::InvalidResponse { message } => message.clone(),
        other => other.to_string(),
    }
}

fn metadata_from(document: &Map<String, Value>, issuer: &str, shown: &str) -> Result<ProviderMetadata, OAuthError> {
    let endpoint = |name: &str| -> Result<Option<String>, OAuthError> {
        match document.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => {
                Url::parse(text).map(|url| Some(url.to_string())).map_err(|_| OAuthError::InvalidResponse {
                    message: format!("published metadata at {shown} whose {name} is not a valid URL"),
                })
            }
            Some(_) => Err(OAuthError::InvalidResponse {
                message: format!("published metadata at {shown} whose {name} is not a string"),
            }),
        }
    };
    Ok(ProviderMetadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
        authorization_response_iss_parameter_supported: document
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_follow_rfc8414_and_openid_discovery() {
        assert_eq!(
            metadata_urls("https://as.example.com").expect("urls"),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example.com/").expect("urls")[0],
            "https://as.example.com/.well-known/oauth-authorization-server"
        );
        // RFC 8414 §3.1's example: the well-known string goes between host and path.
        assert_eq!(
            metadata_urls("https://example.com/issuer1/").expect("urls"),
            [
                "https://example.com/.well-known/oauth-authorization-server/issuer1",
                "https://example.com/issuer1/.well-known/openid-configuration",
                "https://example.com/.well-known/openid-configuration/issuer1",
            ]
        );
    }

    #[test]
    fn unusable_issuers_are_refused() {
        for bad in
            ["not a url", "ftp://as.example.com", "https://as.example.com/?tenant=a", "https://as.example.com/#x"]
        {
            assert!(matches!(metadata_urls(bad), Err(OAuthError::Refused { .. })), "{bad}");
        }
    }
}
