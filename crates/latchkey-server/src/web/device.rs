//! The page of a device authorization (RFC 8628) under way: the user code, where to type it, and the
//! connection's row, which `app.js` refreshes until latchkey's poller has the token.
//!
//! The verification URIs come from the provider: they are shown as text (escaped like every value) and become
//! links only when they are `https`, or `http` on a loopback host.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use latchkey_core::Timestamp;
use latchkey_core::model::{ConnectionSummary, DeviceFlow};
use url::{Host, Url};

use super::reply;
use super::rows::ConnectionRow;
use super::session::WebUser;
use super::views::{DevicePage, Nav};
use super::when::{self, When};
use crate::service::connections as service;
use crate::state::SharedState;

/// What the page shows of a device authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBox {
    pub user_code: String,
    /// The verification URI as text.
    pub verification_uri: String,
    /// The same URI when it is safe as a link.
    pub verification_link: Option<String>,
    /// `verification_uri_complete` when it is safe as a link (it carries the code: one click).
    pub complete_link: Option<String>,
    pub expires: When,
    /// Milliseconds since the epoch when the code stops working, for `app.js` to stop asking.
    pub expires_ms: i64,
}

impl DeviceBox {
    /// The box of `flow` at `now`.
    #[must_use]
    pub fn new(flow: &DeviceFlow, now: Timestamp) -> Self {
        Self {
            user_code: flow.user_code.clone(),
            verification_uri: flow.verification_uri.clone(),
            verification_link: safe_link(&flow.verification_uri),
            complete_link: flow.verification_uri_complete.as_deref().and_then(safe_link),
            expires: when::expiry(now, flow.expires_at),
            expires_ms: flow.expires_at.secs().saturating_mul(1000),
        }
    }
}

/// `uri` when it may be a link on our page: `https`, or `http` to a loopback host. Anything else (`javascript:`,
/// `data:`, plain `http` elsewhere, text that is no URL) is shown as text only.
#[must_use]
pub fn safe_link(uri: &str) -> Option<String> {
    let url = Url::parse(uri.trim()).ok()?;
    let loopback = match url.host()? {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
    };
    match url.scheme() {
        "https" => Some(url.to_string()),
        "http" if loopback => Some(url.to_string()),
        _ => None,
    }
}

/// `GET /connections/{handle}/device`: the code to enter and the row that turns connected.
pub async fn device_page(State(state): State<SharedState>, web: WebUser, Path(raw): Path<String>) -> Response {
    let nav = Nav::of(&web.session, &web.user);
    let found = match super::connections::parse_handle(&raw) {
        Ok(handle) => service::find(&state, &web.user, &handle).await,
        Err(err) => Err(err),
    };
    let connection = match found {
        Ok(connection) => connection,
        Err(err) => return reply::failure(&err, false, Some(nav)),
    };
    let flow = match state.store.device_flow(&connection.id).await {
        Ok(flow) => flow,
        Err(err) => return reply::failure(&err, false, Some(nav)),
    };
    let now = state.clock.now();
    let page = DevicePage {
        nav: Some(nav),
        csrf: web.session.csrf_token.clone(),
        row: ConnectionRow::new(&ConnectionSummary::of(&connection), now),
        device: flow.as_ref().filter(|f| f.expires_at > now).map(|f| DeviceBox::new(f, now)),
    };
    reply::page(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_becomes_a_link() {
        assert_eq!(safe_link("https://example.com/device").as_deref(), Some("https://example.com/device"));
        assert!(safe_link("http://127.0.0.1:8080/device").is_some());
        assert!(safe_link("http://[::1]/device").is_some());
        assert!(safe_link("http://localhost/device").is_some());
        assert_eq!(safe_link("http://example.com/device"), None);
        assert_eq!(safe_link("javascript:alert(1)"), None);
        assert_eq!(safe_link("data:text/html,<b>x</b>"), None);
        assert_eq!(safe_link("example.com/device"), None);
        assert_eq!(safe_link("http://10.0.0.1/device"), None);
    }
}
