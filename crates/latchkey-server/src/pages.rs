//! The pages the OAuth endpoints answer with: the end of a flow, in the popup or in the same tab.

use askama::Template;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, REFERRER_POLICY};
use axum::response::{Html, IntoResponse, Response};
use latchkey_core::Error;
use latchkey_core::model::Connection;

use crate::state::AppState;

/// The page at the end of an authorization flow. `callback.js` tells the window that opened it (naming this
/// server's exact origin) and closes the popup; without an opener it offers the way back to the list.
#[derive(Template)]
#[template(path = "callback.html")]
struct FlowPage<'a> {
    ok: bool,
    title: &'a str,
    message: &'a str,
    handle: &'a str,
    origin: &'a str,
}

fn render(page: &FlowPage<'_>, status: StatusCode) -> Response {
    let body = page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the flow page failed to render");
        "latchkey could not render this page; the server log has the details".to_owned()
    });
    (status, [(CACHE_CONTROL, "no-store"), (REFERRER_POLICY, "no-referrer")], Html(body)).into_response()
}

/// The page after a successful authorization.
pub fn flow_success(state: &AppState, connection: &Connection) -> Response {
    // The same page ends a popup (which `callback.js` closes) and a flow that ran in the tab itself when the
    // popup was blocked: it says what happened and leads back to the list, never "close this window".
    let message = format!("'{}' is connected: scripts can now fetch its token.", connection.name);
    let origin = state.config.public_origin();
    let page = FlowPage {
        ok: true,
        title: "Connected",
        message: &message,
        handle: connection.handle.as_str(),
        origin: &origin,
    };
    render(&page, StatusCode::OK)
}

/// The page after a failed or refused authorization, saying what went wrong.
pub fn flow_failure(state: &AppState, connection: Option<&Connection>, err: &Error) -> Response {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let message = if status.is_server_error() && status != StatusCode::BAD_GATEWAY {
        "latchkey failed on its side; the server log has the details".to_owned()
    } else {
        err.to_string()
    };
    let origin = state.config.public_origin();
    let page = FlowPage {
        ok: false,
        title: "Authorization failed",
        message: &message,
        handle: connection.map_or("", |c| c.handle.as_str()),
        origin: &origin,
    };
    render(&page, status)
}
