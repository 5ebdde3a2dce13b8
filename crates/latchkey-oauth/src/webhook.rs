//! Webhook deliveries: a signed JSON POST through the same guarded client as provider requests (redirects off,
//! timeouts, capped answer, private addresses refused unless allowed).

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::client::RequestBody;
use crate::{HttpClient, OAuthError};

/// The header that carries the signature of a webhook delivery.
pub const SIGNATURE_HEADER: &str = "latchkey-signature";

/// POSTs `body` (JSON) to `url` with the signature header and the event id, and returns the HTTP status of the
/// answer, whatever it is; the answer's body is read (up to the cap) and dropped.
///
/// # Errors
/// [`OAuthError::Refused`] when the guard refuses the URL or its address; [`OAuthError::Unavailable`] when the
/// receiver cannot be reached or does not answer in time.
pub async fn post_webhook(
    client: &HttpClient,
    url: &str,
    signature: &str,
    event_id: &str,
    body: Vec<u8>,
) -> Result<u16, OAuthError> {
    let mut headers = HeaderMap::new();
    let value = |text: &str| {
        HeaderValue::from_str(text)
            .map_err(|_| OAuthError::Refused { message: "a webhook header is not valid text".to_owned() })
    };
    headers.insert(HeaderName::from_static(SIGNATURE_HEADER), value(signature)?);
    headers.insert(HeaderName::from_static("latchkey-event-id"), value(event_id)?);
    let body = RequestBody { content_type: "application/json", bytes: body };
    // Only scheme and host reach the logs: some receivers put their credential in the URL's path.
    let shown =
        url::Url::parse(url).map_or_else(|_| "the webhook URL".to_owned(), |u| u.origin().ascii_serialization());
    let response = client.execute_shown_as(Method::POST, url, shown, headers, Some(body)).await?;
    Ok(response.status)
}
