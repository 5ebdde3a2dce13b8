//! The columns each query selects on PostgreSQL; how a row becomes a record is shared with SQLite
//! (`crate::rows`).
//!
//! The names and prefixes are SQLite's (`u_`, `k_`, `c_`, `f_`, `s_`). The `json` columns are read as their text
//! (`::text`), which is exactly what the codec wrote. The column lists are macros so that queries are
//! `&'static str`s built with `concat!`.

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
         k.handles::text AS k_handles, k.created_at AS k_created_at, k.last_used_at AS k_last_used_at, \
         k.revoked_at AS k_revoked_at, k.expires_at AS k_expires_at"
    };
}

/// The columns of `connections c`.
macro_rules! connection_columns {
    () => {
        "c.id AS c_id, c.user_id AS c_user_id, c.handle AS c_handle, c.name AS c_name, c.provider AS c_provider, \
         c.settings::text AS c_settings, c.client_secret AS c_client_secret, c.status AS c_status, \
         c.last_error AS c_last_error, c.access_token AS c_access_token, c.refresh_token AS c_refresh_token, \
         c.token_type AS c_token_type, c.expires_at AS c_expires_at, c.obtained_at AS c_obtained_at, \
         c.granted_scope AS c_granted_scope, c.token_version AS c_token_version, \
         c.failure_count AS c_failure_count, c.retry_after AS c_retry_after, c.refresh_at AS c_refresh_at, \
         c.last_refreshed_at AS c_last_refreshed_at, c.created_at AS c_created_at, c.updated_at AS c_updated_at, \
         c.kept_values::text AS c_kept_values"
    };
}

/// The columns of `auth_flows f`.
macro_rules! flow_columns {
    () => {
        "f.id AS f_id, f.connection_id AS f_connection_id, f.link_hash AS f_link_hash, \
         f.state_hash AS f_state_hash, f.browser_hash AS f_browser_hash, f.pkce_verifier AS f_pkce_verifier, \
         f.redirect_uri AS f_redirect_uri, f.created_at AS f_created_at, f.expires_at AS f_expires_at, \
         f.started_at AS f_started_at, f.completed_at AS f_completed_at"
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

pub(super) use crate::rows::{api_key, connection, flow, optional_connection, session, user};
