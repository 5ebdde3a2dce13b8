//! The web UI: log in, first-run set-up, and the list of connections with the form that creates, edits,
//! reconnects and deletes them (CONTRACT.md "Web UI").
//!
//! Pages are server-rendered askama templates that work without JavaScript; `assets/app.js` only improves them
//! (the authorization popup and the row that updates in place, the live handle check, copy buttons, the
//! confirmations). Times are shown relative to the server's clock ([`when`]). Security rules:
//! sessions live in an `HttpOnly; SameSite=Lax` cookie whose value is stored only as a digest ([`session`]);
//! every state-changing POST checks `Origin` and, once logged in, a per-session anti-forgery token ([`csrf`]);
//! no secret ever reaches a page.
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `GET /` | to the list when logged in, else to the log-in page (or a "set-up pending" page) |
//! | `GET, POST /login`, `POST /logout` | log in and out |
//! | `GET, POST /setup/{token}` | first-run set-up: creates the administrator |
//! | `GET /connections`, `POST /connections` | the list ("OAuth2 Tokens"); create |
//! | `GET /connections/new` | the empty connection form; `?provider=<id>`: the form of that preset |
//! | `GET /connections/handle-check?handle=` | `{"ok", "message"}`: whether the person can use that handle |
//! | `GET /connections/{handle}/row` | one row of the list, as an HTML fragment |
//! | `GET /connections/{handle}/device` | a device authorization under way: the code to enter, the row |
//! | `GET, POST /connections/{handle}/edit` | the pre-filled form; save |
//! | `POST /connections/{handle}/reconnect` | a fresh authorization link |
//! | `GET, POST /connections/{handle}/delete` | confirmation page; delete |
//! | `GET /connections/{handle}/audit` | the connection's audit log (`?before=` for older records) |
//! | `GET /api-keys`, `POST /api-keys` | the API keys ("API Keys"); create, showing the key once |
//! | `POST /api-keys/{id}/revoke` | revoke (a confirmation page first, without JavaScript) |
//! | `GET, POST /settings/notifications` | the webhook: save (showing the signing secret once) or remove; recent events |

mod advanced;
mod api_keys;
mod audit;
pub mod client_address;
mod connections;
pub mod csrf;
mod device;
mod form;
mod login;
pub mod login_limits;
mod notifications;
mod reply;
pub mod rows;
pub mod services;
pub mod session;
mod setup;
pub(crate) mod views;
pub mod when;

use axum::Router;
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;

use crate::state::SharedState;

/// The web UI routes. Their pages are gzipped for browsers that accept it (a list of 1,000 connections goes
/// from 1.9 MB to 70 KB); the JSON API and the OAuth callback are left as they are (docs/decisions.md).
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/", get(login::index))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/setup/{token}", get(setup::setup_page).post(setup::setup))
        .route("/connections", get(connections::list).post(connections::create))
        .route("/connections/new", get(connections::new_form))
        .route("/connections/handle-check", get(connections::handle_check))
        .route("/connections/{handle}/row", get(connections::row))
        .route("/connections/{handle}/device", get(device::device_page))
        .route("/connections/{handle}/edit", get(connections::edit_form).post(connections::edit))
        .route("/connections/{handle}/reconnect", post(connections::reconnect))
        .route("/connections/{handle}/delete", get(connections::delete_page).post(connections::delete))
        .route("/connections/{handle}/audit", get(audit::page))
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/settings/notifications", get(notifications::show).post(notifications::save))
        .route("/api-keys/{id}/revoke", post(api_keys::revoke))
        .layer(CompressionLayer::new())
}
