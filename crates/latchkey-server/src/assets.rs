//! The stylesheet and scripts, compiled into the binary: no CDN, no build step.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::compression::CompressionLayer;

use crate::state::SharedState;

const CSS: &str = include_str!("../assets/app.css");
const APP_JS: &str = include_str!("../assets/app.js");
const CALLBACK_JS: &str = include_str!("../assets/callback.js");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=300")], body)
}

/// The asset routes, gzipped for browsers that accept it.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/assets/app.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/assets/callback.js", get(|| async { asset("text/javascript; charset=utf-8", CALLBACK_JS) }))
        .layer(CompressionLayer::new())
}
