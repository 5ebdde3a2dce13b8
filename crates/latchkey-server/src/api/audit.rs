//! The audit log through the API: `GET /api/v1/connections/{handle}/audit` (one connection's records, also after
//! it was deleted) and `GET /api/v1/audit` (all of the key's user's records), newest first, in pages.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use latchkey_core::audit::{AuditEntry, AuditQuery};
use latchkey_core::{Error, Handle, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::ApiCaller;
use crate::state::SharedState;

/// Records in a page when `limit` is not given.
const DEFAULT_LIMIT: u32 = 50;
/// The most records a page holds.
const MAX_LIMIT: u32 = 500;

/// The page to read.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Only records older than this one: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// How many records, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// One recorded event. Never holds a secret: API keys appear by id and shown prefix.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecordView {
    /// The record's position in the log; larger is newer.
    pub id: i64,
    /// When it happened (RFC 3339).
    #[schema(example = "2026-01-05T14:03:12Z")]
    pub at: String,
    /// `token_read`, `token_refresh`, `connection_create`, `connection_edit`, `connection_authorize`,
    /// `connection_authorized`, `connection_delete`, `api_key_create` or `api_key_revoke`.
    #[schema(example = "token_read")]
    pub action: String,
    /// `api_key`, `web_session`, `refresher`, `command_line` or `authorization` (the provider's redirect or the
    /// device poller finishing an authorization).
    #[schema(example = "api_key")]
    pub actor: String,
    /// The id of the API key that acted, when `actor` is `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// The shown prefix of that key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "lk_8fK2qZx")]
    pub api_key_prefix: Option<String>,
    /// The connection concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "crm")]
    pub handle: Option<String>,
    /// The shown prefix of the API key created or revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_key: Option<String>,
    /// `ok`, or the machine word of the error (as in the error envelope's `code`).
    #[schema(example = "ok")]
    pub outcome: String,
}

/// A page of records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecordView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

/// The audit records of one connection of the key's user, newest first; kept after the connection is deleted.
/// Token reads appear once their batch is written, a fraction of a second later.
#[utoipa::path(get, path = "/api/v1/connections/{handle}/audit", tag = "audit", security(("api_key" = [])),
    params(("handle" = String, Path), PageQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn connection_records(
    State(state): State<SharedState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
    page: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let page = read_page(page)?;
    let not_found = || Error::NotFound(format!("you have no connection with the handle '{}'", raw.escape_debug()));
    let handle = Handle::parse(&raw).map_err(|_| not_found())?;
    caller.require(&handle)?;
    let query = page_query(&caller, Some(handle.clone()), &page)?;
    let entries = state.store.audit_records(&query).await?;
    if entries.is_empty() && !known_handle(&state, &caller, &handle).await? {
        return Err(not_found().into());
    }
    Ok(Json(page_of(entries, query.limit)))
}

/// All audit records of the key's user, newest first. A key limited to some handles reads each handle's
/// records instead (403 here).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("api_key" = [])),
    params(PageQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn user_records(
    State(state): State<SharedState>,
    caller: ApiCaller,
    page: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let page = read_page(page)?;
    if caller.key.handles.is_some() {
        return Err(Error::Forbidden(format!(
            "the API key '{}' is limited to some handles: read their records at /api/v1/connections/{{handle}}/audit",
            caller.key.name
        ))
        .into());
    }
    let query = page_query(&caller, None, &page)?;
    let entries = state.store.audit_records(&query).await?;
    Ok(Json(page_of(entries, query.limit)))
}

/// The page asked for; a query that does not parse is a 400 in the error envelope.
fn read_page(page: Result<Query<PageQuery>, QueryRejection>) -> Result<PageQuery, Error> {
    page.map(|Query(page)| page).map_err(|rejection| {
        Error::bad_request(format!("the query does not fit (before, limit): {}", rejection.body_text()))
    })
}

fn page_query(caller: &ApiCaller, handle: Option<Handle>, page: &PageQuery) -> Result<AuditQuery, Error> {
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid("limit", format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    if page.before.is_some_and(|before| before < 1) {
        return Err(Error::invalid("before", "before must be the positive id of a record (a page's next_before)"));
    }
    Ok(AuditQuery { user_id: caller.user.id.clone(), handle, before: page.before, limit })
}

/// Whether the user has, or had, a connection with this handle (a connection now, or any record of one).
async fn known_handle(state: &SharedState, caller: &ApiCaller, handle: &Handle) -> Result<bool, Error> {
    if state.store.connection(&caller.user.id, handle).await?.is_some() {
        return Ok(true);
    }
    let any = AuditQuery { user_id: caller.user.id.clone(), handle: Some(handle.clone()), before: None, limit: 1 };
    Ok(!state.store.audit_records(&any).await?.is_empty())
}

fn page_of(entries: Vec<AuditEntry>, limit: u32) -> AuditPage {
    let full = entries.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_before = entries.last().filter(|_| full).map(|entry| entry.id);
    AuditPage { records: entries.into_iter().map(view).collect(), next_before }
}

/// The API's view of a record.
#[must_use]
pub fn view(entry: AuditEntry) -> AuditRecordView {
    let record = entry.record;
    let key = record.actor.api_key();
    AuditRecordView {
        id: entry.id,
        at: Timestamp::to_rfc3339(record.at),
        action: record.action.as_str().to_owned(),
        actor: record.actor.kind().to_owned(),
        api_key_id: key.map(|(id, _)| id.0.clone()),
        api_key_prefix: key.map(|(_, prefix)| prefix.to_owned()),
        handle: record.handle.map(|h| h.as_str().to_owned()),
        subject_key: record.subject_key,
        outcome: record.outcome,
    }
}
