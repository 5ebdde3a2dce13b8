//! The web UI: log in, first-run set-up, and the list of connections with the form that creates, edits,
//! reconnects and deletes them (CONTRACT.md "Web UI").
//!
//! Pages are server-rendered askama templates that work without JavaScript; `assets/app.js` only improves them
//! (the authorization popup, the live handle check, copy buttons, the delete confirmation). Security rules:
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
//! | `GET /connections/new` | the empty connection form |
//! | `GET, POST /connections/{handle}/edit` | the pre-filled form; save |
//! | `POST /connections/{handle}/reconnect` | a fresh authorization link |
//! | `GET, POST /connections/{handle}/delete` | confirmation page; delete |

mod connections;
pub mod csrf;
mod form;
mod login;
mod reply;
pub mod session;
mod setup;
mod views;

use axum::Router;
use axum::routing::{get, post};

use crate::state::SharedState;

/// The web UI routes.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/", get(login::index))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/setup/{token}", get(setup::setup_page).post(setup::setup))
        .route("/connections", get(connections::list).post(connections::create))
        .route("/connections/new", get(connections::new_form))
        .route("/connections/{handle}/edit", get(connections::edit_form).post(connections::edit))
        .route("/connections/{handle}/reconnect", post(connections::reconnect))
        .route("/connections/{handle}/delete", get(connections::delete_page).post(connections::delete))
}
