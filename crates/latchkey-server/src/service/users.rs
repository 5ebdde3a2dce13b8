//! Users: creation with an argon2id password hash, and login.

use latchkey_core::model::{User, UserId};
use latchkey_core::{Error, Result, Secret};
use latchkey_crypto::password;

use crate::state::AppState;

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Checks a username: 1 to 64 characters, no spaces or control characters.
///
/// # Errors
/// `Invalid` naming the rule broken.
pub fn check_username(username: &str) -> Result<()> {
    if username.is_empty() || username.chars().count() > 64 {
        return Err(Error::invalid("username", "the username must be 1 to 64 characters long"));
    }
    if username.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid("username", "the username must not contain spaces or control characters"));
    }
    Ok(())
}

/// Checks a password's length.
///
/// # Errors
/// `Invalid` when it is too short.
pub fn check_password(password: &Secret) -> Result<()> {
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid(
            "password",
            format!("the password is too short: use at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

/// Builds a new user record with a hashed password (not yet stored).
///
/// # Errors
/// `Invalid` for a bad username or password.
pub fn new_user(username: &str, password: &Secret, is_admin: bool, now: latchkey_core::Timestamp) -> Result<User> {
    check_username(username)?;
    check_password(password)?;
    let password_hash = password::hash_password(password).map_err(Error::from)?;
    Ok(User { id: UserId::random(), username: username.to_owned(), password_hash, is_admin, created_at: now })
}

/// Creates and stores a user.
///
/// # Errors
/// `Invalid` for bad input or a taken username.
pub async fn create(state_store: &dyn latchkey_core::store::Store, user: &User) -> Result<()> {
    state_store.insert_user(user).await.map_err(|e| match e {
        Error::Conflict { .. } => Error::invalid("username", format!("the username '{}' is taken", user.username)),
        other => other,
    })
}

/// What a log-in is told when no password check came free in time.
pub const BUSY: &str = "the server is busy checking other log-ins; try again in a few seconds";

/// The user whose username and password match. Unknown users cost the same time as wrong passwords.
///
/// # Errors
/// `Unauthorized` when they do not match; `Unavailable` ([`BUSY`]) when no password check came free in time.
pub async fn login(state: &AppState, username: &str, password: &Secret) -> Result<User> {
    let refused = || Error::Unauthorized("the username or password is wrong".to_owned());
    let user = state.store.user_by_username(username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = password.clone();
    // Both paths do one argon2 verification on a blocking thread, so the answer time does not tell whether the
    // username exists; at most as many run at once as the gate lets through.
    let ok = state
        .password_checks
        .run(move |memory| match hash {
            Some(hash) => password::verify_password_in(memory, &password, &hash),
            None => {
                password::dummy_verify_in(memory, &password);
                false
            }
        })
        .await
        .map_err(|_| Error::Unavailable(BUSY.to_owned()))?;
    match user {
        Some(user) if ok => Ok(user),
        _ => Err(refused()),
    }
}
