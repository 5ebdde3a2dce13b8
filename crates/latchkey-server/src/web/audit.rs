//! `GET /connections/{handle}/audit`: the audit log of one connection (also after it was deleted), newest first,
//! in pages, with times relative to the server's clock. Every value is escaped by askama.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use latchkey_core::audit::{Action, Actor, AuditEntry, AuditQuery};
use latchkey_core::{Error, Handle, Timestamp};
use serde::Deserialize;

use super::reply;
use super::session::WebUser;
use super::views::Nav;
use super::when::{When, ago};
use crate::state::SharedState;

/// Records on a page.
const PAGE_SIZE: u32 = 100;

/// The page's query: `before` is the id of the last record of the previous page.
#[derive(Debug, Default, Deserialize)]
pub struct AuditPageQuery {
    pub before: Option<i64>,
}

/// The audit page of a connection.
#[derive(Template)]
#[template(path = "web/audit.html")]
pub struct AuditPage {
    pub nav: Option<Nav>,
    /// The connection's name, or its handle once deleted.
    pub title: String,
    pub handle: String,
    pub deleted: bool,
    pub rows: Vec<AuditRow>,
    /// The `before` of the next, older page.
    pub older: Option<i64>,
}

/// One record in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub when: When,
    pub what: &'static str,
    pub who: String,
    pub outcome: String,
    pub failed: bool,
}

/// `GET /connections/{handle}/audit`
pub async fn page(
    State(state): State<SharedState>,
    web: WebUser,
    Path(raw): Path<String>,
    query: Result<Query<AuditPageQuery>, QueryRejection>,
) -> Response {
    let nav = Nav::of(&web.session, &web.user);
    let Ok(Query(query)) = query else {
        let err = Error::invalid("before", "before must be the number of a record, as the Older records link gives it");
        return reply::failure(&err, false, Some(nav));
    };
    let not_found = || Error::NotFound(format!("you have no connection with the handle '{}'", raw.escape_debug()));
    let Ok(handle) = Handle::parse(&raw) else {
        return reply::failure(&not_found(), false, Some(nav));
    };
    let audit_query = AuditQuery {
        user_id: web.user.id.clone(),
        handle: Some(handle.clone()),
        before: query.before,
        limit: PAGE_SIZE,
    };
    let (connection, entries) = match tokio::try_join!(
        state.store.connection(&web.user.id, &handle),
        state.store.audit_records(&audit_query)
    ) {
        Ok(found) => found,
        Err(err) => return reply::failure(&err, false, Some(nav)),
    };
    if connection.is_none() && entries.is_empty() {
        // A page past the end of a deleted connection's log, or a handle the person never had.
        return reply::failure(&not_found(), false, Some(nav));
    }
    let full = entries.len() == usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    let now = state.clock.now();
    let page = AuditPage {
        nav: Some(nav),
        title: connection.as_ref().map_or_else(|| handle.as_str().to_owned(), |c| c.name.clone()),
        handle: handle.as_str().to_owned(),
        deleted: connection.is_none(),
        older: entries.last().filter(|_| full).map(|entry| entry.id),
        rows: entries.iter().map(|entry| row(entry, now)).collect(),
    };
    reply::page(StatusCode::OK, &page)
}

fn row(entry: &AuditEntry, now: Timestamp) -> AuditRow {
    let record = &entry.record;
    let failed = record.outcome != "ok";
    AuditRow {
        when: ago(now, record.at, ""),
        what: describe_action(record.action),
        who: describe_actor(&record.actor),
        outcome: if failed {
            format!("refused or failed: {}", record.outcome.replace('_', " "))
        } else {
            "ok".to_owned()
        },
        failed,
    }
}

/// What happened, in words.
#[must_use]
pub fn describe_action(action: Action) -> &'static str {
    match action {
        Action::TokenRead => "token read",
        Action::TokenRefresh => "token refreshed",
        Action::ConnectionCreate => "connection created",
        Action::ConnectionEdit => "connection edited",
        Action::ConnectionAuthorize => "reconnect started",
        Action::ConnectionAuthorized => "authorization finished",
        Action::ConnectionDelete => "connection deleted",
        Action::ApiKeyCreate => "API key created",
        Action::ApiKeyRevoke => "API key revoked",
    }
}

/// Who did it, in words.
#[must_use]
pub fn describe_actor(actor: &Actor) -> String {
    match actor {
        Actor::ApiKey { prefix, .. } => format!("API key {prefix}…"),
        Actor::WebSession => "web session".to_owned(),
        Actor::Refresher => "background refresher".to_owned(),
        Actor::CommandLine => "command line".to_owned(),
        Actor::Authorization => "provider's answer".to_owned(),
    }
}
