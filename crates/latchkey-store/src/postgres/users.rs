//! Users: [`UserStore`] for PostgreSQL.

use async_trait::async_trait;
use latchkey_core::model::{User, UserId};
use latchkey_core::store::UserStore;
use latchkey_core::{Error, Result};
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;

use super::PostgresStore;
use super::rows::{self, user_columns};
use crate::codec::count_from_db;
use crate::error::{storage, unique_as_conflict};

/// The `INSERT` of a user, shared with the first-run set-up.
pub(super) const INSERT_USER: &str =
    "INSERT INTO users (id, username, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)";

/// The error mapper of [`INSERT_USER`]: a violation of `users_username_key` is
/// `Conflict { code: "username_taken" }`.
pub(super) fn insert_user_error(user: &User) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    unique_as_conflict("inserting a user", "username", || {
        Error::conflict("username_taken", format!("the username '{}' is taken: choose another one", user.username))
    })
}

/// Binds a user to [`INSERT_USER`].
pub(super) fn bind_user<'q>(
    query: Query<'q, Postgres, PgArguments>,
    user: &'q User,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(user.id.as_str())
        .bind(user.username.as_str())
        .bind(user.password_hash.as_str())
        .bind(user.is_admin)
        .bind(user.created_at.secs())
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, user: &User) -> Result<()> {
        bind_user(sqlx::query(INSERT_USER), user).execute(&self.pool).await.map_err(insert_user_error(user))?;
        Ok(())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("looking up a user by username"))?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("looking up a user by id"))?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn count_users(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(storage("counting users"))?;
        count_from_db(count)
    }
}
