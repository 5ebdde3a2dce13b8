//! Browser sessions and the first-run set-up token: [`SessionStore`] for PostgreSQL.
//!
//! The two transactions here lock tables before they check anything. Under `READ COMMITTED`, each statement sees
//! what was committed when it started; a lock taken first makes that "everything", because no other writer can
//! commit to the locked table until this transaction ends.

use async_trait::async_trait;
use latchkey_core::model::{Digest, Session, User};
use latchkey_core::store::SessionStore;
use latchkey_core::{Result, Timestamp};

use super::PostgresStore;
use super::rows::{self, session_columns, user_columns};
use super::users::{INSERT_USER, bind_user, insert_user_error};
use crate::error::storage;

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert_session(&self, session: &Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.id_hash.0.as_slice())
        .bind(session.user_id.as_str())
        .bind(session.csrf_token.as_str())
        .bind(session.created_at.secs())
        .bind(session.expires_at.secs())
        .execute(&self.pool)
        .await
        .map_err(storage("inserting a session"))?;
        Ok(())
    }

    async fn session(&self, id_hash: &Digest, now: Timestamp) -> Result<Option<(Session, User)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2"
        ))
        .bind(id_hash.0.as_slice())
        .bind(now.secs())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage("looking up a session"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((rows::session(&row)?, rows::user(&row)?)))
    }

    async fn delete_session(&self, id_hash: &Digest) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash.0.as_slice())
            .execute(&self.pool)
            .await
            .map_err(storage("deleting a session"))?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now.secs())
            .execute(&self.pool)
            .await
            .map_err(storage("deleting expired sessions"))?;
        Ok(done.rows_affected())
    }

    async fn put_setup_token(&self, hash: &Digest, expires_at: Timestamp) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(storage("storing the set-up token"))?;
        // EXCLUSIVE lets readers in but no other writer, so two replicas replacing the token at once cannot both
        // delete the old one and leave two new ones behind.
        sqlx::query("LOCK TABLE setup_tokens IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(storage("locking the set-up token"))?;
        sqlx::query("DELETE FROM setup_tokens")
            .execute(&mut *tx)
            .await
            .map_err(storage("removing the previous set-up token"))?;
        sqlx::query("INSERT INTO setup_tokens (hash, expires_at) VALUES ($1, $2)")
            .bind(hash.0.as_slice())
            .bind(expires_at.secs())
            .execute(&mut *tx)
            .await
            .map_err(storage("storing the set-up token"))?;
        tx.commit().await.map_err(storage("storing the set-up token"))?;
        Ok(())
    }

    async fn setup_token_valid(&self, hash: &Digest, now: Timestamp) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE hash = $1 AND expires_at > $2)")
            .bind(hash.0.as_slice())
            .bind(now.secs())
            .fetch_one(&self.pool)
            .await
            .map_err(storage("checking the set-up token"))
    }

    async fn complete_setup(&self, hash: &Digest, user: &User, now: Timestamp) -> Result<bool> {
        // SHARE ROW EXCLUSIVE on users keeps every other writer of users (an insert_user, another set-up) out until
        // this transaction ends, so "no user exists yet" stays true from the check to the insert; on setup_tokens
        // it orders this set-up after a concurrent put_setup_token. Readers are not blocked. Dropping the
        // transaction without commit rolls it back.
        let mut tx = self.pool.begin().await.map_err(storage("completing the set-up"))?;
        sqlx::query("LOCK TABLE users, setup_tokens IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(storage("locking the users for the set-up"))?;
        let consumed = sqlx::query(
            "DELETE FROM setup_tokens WHERE hash = $1 AND expires_at > $2 AND NOT EXISTS (SELECT 1 FROM users)",
        )
        .bind(hash.0.as_slice())
        .bind(now.secs())
        .execute(&mut *tx)
        .await
        .map_err(storage("consuming the set-up token"))?;
        if consumed.rows_affected() == 0 {
            return Ok(false);
        }
        bind_user(sqlx::query(INSERT_USER), user).execute(&mut *tx).await.map_err(insert_user_error(user))?;
        tx.commit().await.map_err(storage("completing the set-up"))?;
        Ok(true)
    }
}
