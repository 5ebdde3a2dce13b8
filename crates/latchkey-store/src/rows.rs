//! How a row becomes a record, for every backend.
//!
//! Each backend selects the columns of a record under the same prefixed names (`u_`, `k_`, `c_`, `f_`, `s_`; see
//! `sqlite/rows.rs` and `postgres/rows.rs` for the column lists) and with the same shapes (text, 64-bit integers,
//! booleans, bytes), so one set of functions reads them all. A backend's row type only has to say how to read
//! one column of each shape: [`Columns`].

use latchkey_core::model::{
    ApiKey, ApiKeyId, AuthFlow, Connection, ConnectionId, ConnectionSummary, DeviceFlow, FlowId, Session, StoredTokens,
    User, UserId,
};
use latchkey_core::{Result, Sealed, Timestamp};

use crate::codec::{
    digest_from_db, handle_from_db, handles_from_db, kept_values_from_db, optional_digest_from_db, settings_from_db,
    status_from_db,
};
use crate::error::corrupt;

/// Reading one column of a row by name, in the few shapes latchkey stores. A value of another type is a storage
/// error naming the column.
pub(crate) trait Columns {
    fn text(&self, column: &'static str) -> Result<String>;
    fn optional_text(&self, column: &'static str) -> Result<Option<String>>;
    fn integer(&self, column: &'static str) -> Result<i64>;
    fn optional_integer(&self, column: &'static str) -> Result<Option<i64>>;
    fn flag(&self, column: &'static str) -> Result<bool>;
    fn bytes(&self, column: &'static str) -> Result<Vec<u8>>;
    fn optional_bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>>;
}

/// Implements [`Columns`] for a driver's row type with `sqlx::Row::try_get`.
macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &'static str) -> Result<String> {
                get(self, column)
            }
            fn optional_text(&self, column: &'static str) -> Result<Option<String>> {
                get(self, column)
            }
            fn integer(&self, column: &'static str) -> Result<i64> {
                get(self, column)
            }
            fn optional_integer(&self, column: &'static str) -> Result<Option<i64>> {
                get(self, column)
            }
            fn flag(&self, column: &'static str) -> Result<bool> {
                get(self, column)
            }
            fn bytes(&self, column: &'static str) -> Result<Vec<u8>> {
                get(self, column)
            }
            fn optional_bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>> {
                get(self, column)
            }
        }
    };
}

columns_for!(sqlx::sqlite::SqliteRow);
columns_for!(sqlx::postgres::PgRow);

/// One column of a row, or a storage error naming the column.
fn get<'r, R, T>(row: &'r R, column: &'static str) -> Result<T>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    row.try_get(column).map_err(|err| corrupt(&format!("a value in column {column}"), err))
}

fn time(row: &impl Columns, column: &'static str) -> Result<Timestamp> {
    row.integer(column).map(Timestamp)
}

fn optional_time(row: &impl Columns, column: &'static str) -> Result<Option<Timestamp>> {
    Ok(row.optional_integer(column)?.map(Timestamp))
}

fn optional_sealed(row: &impl Columns, column: &'static str) -> Result<Option<Sealed>> {
    Ok(row.optional_bytes(column)?.map(Sealed))
}

/// A user from the `u_` columns.
pub(crate) fn user(row: &impl Columns) -> Result<User> {
    Ok(User {
        id: UserId(row.text("u_id")?),
        username: row.text("u_username")?,
        password_hash: row.text("u_password_hash")?,
        is_admin: row.flag("u_is_admin")?,
        created_at: time(row, "u_created_at")?,
    })
}

/// An API key from the `k_` columns.
pub(crate) fn api_key(row: &impl Columns) -> Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId(row.text("k_id")?),
        user_id: UserId(row.text("k_user_id")?),
        name: row.text("k_name")?,
        prefix: row.text("k_prefix")?,
        key_hash: digest_from_db(row.bytes("k_key_hash")?)?,
        handles: handles_from_db(row.optional_text("k_handles")?.as_deref())?,
        created_at: time(row, "k_created_at")?,
        last_used_at: optional_time(row, "k_last_used_at")?,
        revoked_at: optional_time(row, "k_revoked_at")?,
        expires_at: optional_time(row, "k_expires_at")?,
    })
}

/// A connection from the `c_` columns, or `None` when they are NULL (the outer side of a left join).
pub(crate) fn optional_connection(row: &impl Columns) -> Result<Option<Connection>> {
    if row.optional_text("c_id")?.is_none() {
        return Ok(None);
    }
    connection(row).map(Some)
}

/// A connection from the `c_` columns.
pub(crate) fn connection(row: &impl Columns) -> Result<Connection> {
    let tokens = match optional_sealed(row, "c_access_token")? {
        None => None,
        Some(access_token) => Some(StoredTokens {
            access_token,
            refresh_token: optional_sealed(row, "c_refresh_token")?,
            token_type: row
                .optional_text("c_token_type")?
                .ok_or_else(|| corrupt("a token set", "an access token without a token type"))?,
            expires_at: optional_time(row, "c_expires_at")?,
            obtained_at: optional_time(row, "c_obtained_at")?
                .ok_or_else(|| corrupt("a token set", "an access token without the time it was obtained"))?,
            scope: row.optional_text("c_granted_scope")?,
            extra: kept_values_from_db(row.optional_text("c_kept_values")?.as_deref())?,
        }),
    };
    Ok(Connection {
        id: ConnectionId(row.text("c_id")?),
        user_id: UserId(row.text("c_user_id")?),
        handle: handle_from_db(&row.text("c_handle")?)?,
        name: row.text("c_name")?,
        provider: row.text("c_provider")?,
        settings: settings_from_db(&row.text("c_settings")?)?,
        client_secret: optional_sealed(row, "c_client_secret")?,
        status: status_from_db(&row.text("c_status")?)?,
        last_error: row.optional_text("c_last_error")?,
        tokens,
        token_version: row.integer("c_token_version")?,
        failure_count: row.integer("c_failure_count")?,
        retry_after: optional_time(row, "c_retry_after")?,
        refresh_at: optional_time(row, "c_refresh_at")?,
        last_refreshed_at: optional_time(row, "c_last_refreshed_at")?,
        created_at: time(row, "c_created_at")?,
        updated_at: time(row, "c_updated_at")?,
    })
}

/// A connection's summary from the columns of `list_connection_summaries`: `c_handle`, `c_name`, `c_provider`,
/// `c_status`, `c_last_error`, `c_scopes`, `c_granted_scope`, `c_has_tokens` (0 or 1), `c_expires_at`,
/// `c_last_refreshed_at`, `c_grant_type` (NULL for the default, the code flow).
pub(crate) fn connection_summary(row: &impl Columns) -> Result<ConnectionSummary> {
    Ok(ConnectionSummary {
        handle: handle_from_db(&row.text("c_handle")?)?,
        name: row.text("c_name")?,
        provider: row.text("c_provider")?,
        status: status_from_db(&row.text("c_status")?)?,
        last_error: row.optional_text("c_last_error")?,
        scopes: row.optional_text("c_scopes")?.unwrap_or_default(),
        granted_scope: row.optional_text("c_granted_scope")?,
        has_tokens: row.integer("c_has_tokens")? != 0,
        expires_at: optional_time(row, "c_expires_at")?,
        last_refreshed_at: optional_time(row, "c_last_refreshed_at")?,
        grant_type: grant_type_from_db(row.optional_text("c_grant_type")?)?,
    })
}

/// A grant type picked out of the settings: absent is the default.
fn grant_type_from_db(value: Option<String>) -> Result<latchkey_core::settings::GrantType> {
    value.map_or(Ok(latchkey_core::settings::GrantType::default()), |v| {
        serde_json::from_value(serde_json::Value::String(v)).map_err(|err| corrupt("connection grant type", err))
    })
}

/// An authorization flow from the `f_` columns.
pub(crate) fn flow(row: &impl Columns) -> Result<AuthFlow> {
    Ok(AuthFlow {
        id: FlowId(row.text("f_id")?),
        connection_id: ConnectionId(row.text("f_connection_id")?),
        link_hash: digest_from_db(row.bytes("f_link_hash")?)?,
        state_hash: optional_digest_from_db(row.optional_bytes("f_state_hash")?)?,
        browser_hash: optional_digest_from_db(row.optional_bytes("f_browser_hash")?)?,
        pkce_verifier: optional_sealed(row, "f_pkce_verifier")?,
        redirect_uri: row.text("f_redirect_uri")?,
        created_at: time(row, "f_created_at")?,
        expires_at: time(row, "f_expires_at")?,
        started_at: optional_time(row, "f_started_at")?,
        completed_at: optional_time(row, "f_completed_at")?,
    })
}

/// A device flow from the `d_` columns.
pub(crate) fn device_flow(row: &impl Columns) -> Result<DeviceFlow> {
    Ok(DeviceFlow {
        connection_id: ConnectionId(row.text("d_connection_id")?),
        device_code: Sealed(row.bytes("d_device_code")?),
        user_code: row.text("d_user_code")?,
        verification_uri: row.text("d_verification_uri")?,
        verification_uri_complete: row.optional_text("d_verification_uri_complete")?,
        expires_at: time(row, "d_expires_at")?,
        interval_secs: row.integer("d_interval_secs")?,
        next_poll_at: time(row, "d_next_poll_at")?,
        created_at: time(row, "d_created_at")?,
    })
}

/// A session from the `s_` columns.
pub(crate) fn session(row: &impl Columns) -> Result<Session> {
    Ok(Session {
        id_hash: digest_from_db(row.bytes("s_id_hash")?)?,
        user_id: UserId(row.text("s_user_id")?),
        csrf_token: row.text("s_csrf_token")?,
        created_at: time(row, "s_created_at")?,
        expires_at: time(row, "s_expires_at")?,
    })
}

/// An audit log entry from the columns under the `a_` prefix (`sqlite/audit.rs`, `postgres/audit.rs`).
pub(crate) fn audit_entry(row: &impl Columns) -> Result<latchkey_core::audit::AuditEntry> {
    use latchkey_core::audit::{Action, Actor, AuditEntry, AuditRecord};
    let actor = Actor::from_parts(
        &row.text("a_actor")?,
        row.optional_text("a_api_key_id")?,
        row.optional_text("a_api_key_prefix")?,
    )?;
    let handle = row.optional_text("a_handle")?.map(|text| handle_from_db(&text)).transpose()?;
    Ok(AuditEntry {
        id: row.integer("a_id")?,
        record: AuditRecord {
            at: Timestamp(row.integer("a_at")?),
            user_id: UserId(row.text("a_user_id")?),
            actor,
            action: Action::parse(&row.text("a_action")?)?,
            handle,
            subject_key: row.optional_text("a_subject_key")?,
            outcome: row.text("a_outcome")?,
        },
    })
}
