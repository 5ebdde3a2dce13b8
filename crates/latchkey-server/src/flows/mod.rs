//! The OAuth endpoints of CONTRACT.md: `/oauth2/start/{link}` opens an authorization link in the browser, and
//! `/oauth2/callback` receives the provider's answer and exchanges the code (RFC 6749 §4.1).

mod callback;
mod cookie;
mod start;

use axum::Router;
use axum::routing::get;

use crate::state::SharedState;

/// The OAuth routes.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/oauth2/start/{link}", get(start::start).post(start::confirm))
        .route("/oauth2/callback", get(callback::callback))
}
