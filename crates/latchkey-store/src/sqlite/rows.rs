//! The columns each query selects, and how a row becomes a record.
//!
//! Every selected column is renamed with a table prefix (`u_`, `k_`, `c_`, `f_`, `s_`), so that joins (a key with its
//! connection, a session with its user) read without name clashes. The column lists are macros so that queries
//! are `&'static str`s built with `concat!`.

use latchkey_core::model::{
    ApiKey, ApiKeyId, AuthFlow, Connection, ConnectionId, FlowId, Session, StoredTokens, User, UserId,
};
use latchkey_core::{Result, Sealed, Timestamp};
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

use crate::codec::{
    digest_from_db, handle_from_db, handles_from_db, kept_values_from_db, optional_digest_from_db, settings_from_db,
    status_from_db,
};
use crate::error::corrupt;

/// The columns of `users u`.
macro_rules! user_columns {
    () => {
        "u.id AS u_id, u.username AS u_username, u.password_hash AS u_password_hash, u.is_admin AS u_is_admin, \
         u.created_at AS u_created_at"
    };
}

/// The columns of `api_keys k`.
macro_rules! api_key_columns {
    () => {
        "k.id AS k_id, k.user_id AS k_user_id, k.name AS k_name, k.prefix AS k_prefix, k.key_hash AS k_key_hash, \
         k.handles AS k_handles, k.created_at AS k_created_at, k.last_used_at AS k_last_used_at, \
         k.revoked_at AS k_revoked_at"
    };
}

/// The columns of `connections c`.
macro_rules! connection_columns {
    () => {
        "c.id AS c_id, c.user_id AS c_user_id, c.handle AS c_handle, c.name AS c_name, c.provider AS c_provider, \
         c.settings AS c_settings, c.client_secret AS c_client_secret, c.status AS c_status, \
         c.last_error AS c_last_error, c.access_token AS c_access_token, c.refresh_token AS c_refresh_token, \
         c.token_type AS c_token_type, c.expires_at AS c_expires_at, c.obtained_at AS c_obtained_at, \
         c.granted_scope AS c_granted_scope, c.token_version AS c_token_version, \
         c.failure_count AS c_failure_count, c.retry_after AS c_retry_after, c.refresh_at AS c_refresh_at, \
         c.last_refreshed_at AS c_last_refreshed_at, c.created_at AS c_created_at, c.updated_at AS c_updated_at, \
         c.kept_values AS c_kept_values"
    };
}

/// The columns of `auth_flows`. Unqualified, because flows are never joined and the `RETURNING` clause of an
/// `UPDATE` does not accept a table alias in SQLite.
macro_rules! flow_columns {
    () => {
        "id AS f_id, connection_id AS f_connection_id, link_hash AS f_link_hash, state_hash AS f_state_hash, \
         browser_hash AS f_browser_hash, pkce_verifier AS f_pkce_verifier, redirect_uri AS f_redirect_uri, \
         created_at AS f_created_at, expires_at AS f_expires_at, started_at AS f_started_at, \
         completed_at AS f_completed_at"
    };
}

/// The columns of `sessions s`.
macro_rules! session_columns {
    () => {
        "s.id_hash AS s_id_hash, s.user_id AS s_user_id, s.csrf_token AS s_csrf_token, \
         s.created_at AS s_created_at, s.expires_at AS s_expires_at"
    };
}

pub(super) use {api_key_columns, connection_columns, flow_columns, session_columns, user_columns};

/// One column of a row, or a storage error naming the column.
fn get<'r, T>(row: &'r SqliteRow, column: &'static str) -> Result<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column).map_err(|err| corrupt(&format!("a value in column {column}"), err))
}

fn time(row: &SqliteRow, column: &'static str) -> Result<Timestamp> {
    get::<i64>(row, column).map(Timestamp)
}

fn optional_time(row: &SqliteRow, column: &'static str) -> Result<Option<Timestamp>> {
    Ok(get::<Option<i64>>(row, column)?.map(Timestamp))
}

fn optional_sealed(row: &SqliteRow, column: &'static str) -> Result<Option<Sealed>> {
    Ok(get::<Option<Vec<u8>>>(row, column)?.map(Sealed))
}

/// A user from the `u_` columns.
pub(super) fn user(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: UserId(get(row, "u_id")?),
        username: get(row, "u_username")?,
        password_hash: get(row, "u_password_hash")?,
        is_admin: get(row, "u_is_admin")?,
        created_at: time(row, "u_created_at")?,
    })
}

/// An API key from the `k_` columns.
pub(super) fn api_key(row: &SqliteRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId(get(row, "k_id")?),
        user_id: UserId(get(row, "k_user_id")?),
        name: get(row, "k_name")?,
        prefix: get(row, "k_prefix")?,
        key_hash: digest_from_db(get(row, "k_key_hash")?)?,
        handles: handles_from_db(get::<Option<&str>>(row, "k_handles")?)?,
        created_at: time(row, "k_created_at")?,
        last_used_at: optional_time(row, "k_last_used_at")?,
        revoked_at: optional_time(row, "k_revoked_at")?,
    })
}

/// A connection from the `c_` columns, or `None` when they are NULL (the outer side of a left join).
pub(super) fn optional_connection(row: &SqliteRow) -> Result<Option<Connection>> {
    if get::<Option<&str>>(row, "c_id")?.is_none() {
        return Ok(None);
    }
    connection(row).map(Some)
}

/// A connection from the `c_` columns.
pub(super) fn connection(row: &SqliteRow) -> Result<Connection> {
    let tokens = match optional_sealed(row, "c_access_token")? {
        None => None,
        Some(access_token) => Some(StoredTokens {
            access_token,
            refresh_token: optional_sealed(row, "c_refresh_token")?,
            token_type: get::<Option<String>>(row, "c_token_type")?
                .ok_or_else(|| corrupt("a token set", "an access token without a token type"))?,
            expires_at: optional_time(row, "c_expires_at")?,
            obtained_at: optional_time(row, "c_obtained_at")?
                .ok_or_else(|| corrupt("a token set", "an access token without the time it was obtained"))?,
            scope: get(row, "c_granted_scope")?,
            extra: kept_values_from_db(get::<Option<&str>>(row, "c_kept_values")?)?,
        }),
    };
    Ok(Connection {
        id: ConnectionId(get(row, "c_id")?),
        user_id: UserId(get(row, "c_user_id")?),
        handle: handle_from_db(get(row, "c_handle")?)?,
        name: get(row, "c_name")?,
        provider: get(row, "c_provider")?,
        settings: settings_from_db(get(row, "c_settings")?)?,
        client_secret: optional_sealed(row, "c_client_secret")?,
        status: status_from_db(get(row, "c_status")?)?,
        last_error: get(row, "c_last_error")?,
        tokens,
        token_version: get(row, "c_token_version")?,
        failure_count: get(row, "c_failure_count")?,
        retry_after: optional_time(row, "c_retry_after")?,
        refresh_at: optional_time(row, "c_refresh_at")?,
        last_refreshed_at: optional_time(row, "c_last_refreshed_at")?,
        created_at: time(row, "c_created_at")?,
        updated_at: time(row, "c_updated_at")?,
    })
}

/// An authorization flow from the `f_` columns.
pub(super) fn flow(row: &SqliteRow) -> Result<AuthFlow> {
    Ok(AuthFlow {
        id: FlowId(get(row, "f_id")?),
        connection_id: ConnectionId(get(row, "f_connection_id")?),
        link_hash: digest_from_db(get(row, "f_link_hash")?)?,
        state_hash: optional_digest_from_db(get(row, "f_state_hash")?)?,
        browser_hash: optional_digest_from_db(get(row, "f_browser_hash")?)?,
        pkce_verifier: optional_sealed(row, "f_pkce_verifier")?,
        redirect_uri: get(row, "f_redirect_uri")?,
        created_at: time(row, "f_created_at")?,
        expires_at: time(row, "f_expires_at")?,
        started_at: optional_time(row, "f_started_at")?,
        completed_at: optional_time(row, "f_completed_at")?,
    })
}

/// A session from the `s_` columns.
pub(super) fn session(row: &SqliteRow) -> Result<Session> {
    Ok(Session {
        id_hash: digest_from_db(get(row, "s_id_hash")?)?,
        user_id: UserId(get(row, "s_user_id")?),
        csrf_token: get(row, "s_csrf_token")?,
        created_at: time(row, "s_created_at")?,
        expires_at: time(row, "s_expires_at")?,
    })
}
