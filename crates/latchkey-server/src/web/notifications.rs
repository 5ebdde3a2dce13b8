//! The notifications page (Settings → Notifications): the person's webhook URL, saved with a fresh signing secret
//! that is shown on the answering page only; removal; the recent events and how their delivery went.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::csrf::{self, SameOrigin};
use super::form::{FormError, WebForm, form_error};
use super::reply;
use super::session::WebUser;
use super::views::{Nav, Section};
use crate::state::SharedState;

/// The fields of the webhook form.
const FIELDS: [&str; 1] = ["url"];
/// How many recent events the page lists.
const EVENTS_SHOWN: u32 = 20;

/// The webhook form as posted.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WebhookForm {
    pub csrf: String,
    pub url: String,
    /// `remove` to remove the webhook; anything else saves.
    pub action: String,
}

/// One row of the recent events.
pub struct EventRow {
    pub handle: String,
    pub change: String,
    pub delivery: String,
    pub attempts: i64,
    pub last_error: String,
}

/// The page.
#[derive(Template)]
#[template(path = "web/notifications.html")]
pub struct NotificationsPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    /// The stored URL, if a webhook is set.
    pub current: Option<String>,
    /// The form's value.
    pub url: String,
    /// The signing secret just generated, shown this once.
    pub secret: Option<String>,
    pub error: FormError,
    pub events: Vec<EventRow>,
}

fn nav(web: &WebUser) -> Nav {
    Nav::of(&web.session, &web.user).on(Section::Notifications)
}

async fn page(
    state: &SharedState,
    web: &WebUser,
    status: StatusCode,
    form: Option<(String, FormError)>,
    secret: Option<String>,
) -> Response {
    let current = match state.store.webhook(&web.user.id).await {
        Ok(webhook) => webhook.map(|w| w.url),
        Err(err) => return reply::failure(&err, false, Some(nav(web))),
    };
    let events = match state.store.webhook_events(&web.user.id, EVENTS_SHOWN).await {
        Ok(events) => events,
        Err(err) => return reply::failure(&err, false, Some(nav(web))),
    };
    let word = |s: Option<latchkey_core::model::Status>| s.map_or("deleted", |s| s.in_words());
    let events = events
        .iter()
        .map(|e| EventRow {
            handle: e.handle.clone(),
            change: match e.kind {
                latchkey_core::webhook::EventKind::Deleted => "Deleted".to_owned(),
                latchkey_core::webhook::EventKind::StatusChanged => {
                    format!("{} → {}", word(e.previous_status), word(e.status))
                }
            },
            delivery: e.state.as_str().to_owned(),
            attempts: e.attempts,
            last_error: e.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let (url, error) = form.unwrap_or_else(|| (current.clone().unwrap_or_default(), FormError::none()));
    let page = NotificationsPage {
        nav: Some(nav(web)),
        csrf: web.session.csrf_token.clone(),
        current,
        url,
        secret,
        error,
        events,
    };
    reply::page(status, &page)
}

/// `GET /settings/notifications`
pub async fn show(State(state): State<SharedState>, web: WebUser) -> Response {
    page(&state, &web, StatusCode::OK, None, None).await
}

/// `POST /settings/notifications`: saves the webhook (showing the new secret once) or removes it.
pub async fn save(
    State(state): State<SharedState>,
    _origin: SameOrigin,
    web: WebUser,
    WebForm(form): WebForm<WebhookForm>,
) -> Response {
    if let Some(refused) = csrf::refusal(&web.session, &form.csrf, false) {
        return refused;
    }
    if form.action == "remove" {
        return match state.store.delete_webhook(&web.user.id).await {
            Ok(_) => Redirect::to("/settings/notifications").into_response(),
            Err(err) => reply::failure(&err, false, Some(nav(&web))),
        };
    }
    match crate::webhooks::save(&state, &web.user, &form.url).await {
        Ok((_, secret)) => page(&state, &web, StatusCode::OK, None, Some(secret.expose().to_owned())).await,
        Err(err) => {
            let (status, error) = form_error(&err, &FIELDS);
            page(&state, &web, status, Some((form.url, error)), None).await
        }
    }
}
