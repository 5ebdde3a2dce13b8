//! The audit log's records: who did what to which connection or API key, when, and how it ended. A record holds
//! names, ids, the shown prefix of an API key and an error's machine word, never a secret or a token.
//!
//! Records outlive what they describe: a connection's handle is kept as text, so the history of a deleted
//! connection stays readable.

use std::fmt;

use crate::model::{ApiKeyId, UserId};
use crate::{Error, Handle, Timestamp};

/// Who caused a recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A caller of the HTTP API, by the API key it presented.
    ApiKey { id: ApiKeyId, prefix: String },
    /// A person logged in to the web UI.
    WebSession,
    /// latchkey's background refresher.
    Refresher,
    /// The `latchkey` command line, run on the server's host.
    CommandLine,
    /// The provider's redirect back to `/oauth2/callback`, or the device authorization poller, finishing an
    /// authorization the owner started.
    Authorization,
}

impl Actor {
    /// The stored word for the kind of actor.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey { .. } => "api_key",
            Self::WebSession => "web_session",
            Self::Refresher => "refresher",
            Self::CommandLine => "command_line",
            Self::Authorization => "authorization",
        }
    }

    /// The actor from its stored kind and, for an API key, its id and prefix.
    ///
    /// # Errors
    /// `Storage` for an unknown kind or an API key actor without its id.
    pub fn from_parts(kind: &str, key_id: Option<String>, key_prefix: Option<String>) -> Result<Self, Error> {
        Ok(match kind {
            "api_key" => match (key_id, key_prefix) {
                (Some(id), Some(prefix)) => Self::ApiKey { id: ApiKeyId(id), prefix },
                _ => return Err(Error::Storage("an audit record of an API key lacks the key's id".to_owned())),
            },
            "web_session" => Self::WebSession,
            "refresher" => Self::Refresher,
            "command_line" => Self::CommandLine,
            "authorization" => Self::Authorization,
            other => return Err(Error::Storage(format!("unknown actor '{}' in the audit log", other.escape_debug()))),
        })
    }

    /// The API key's id and shown prefix, when the actor is an API key.
    #[must_use]
    pub fn api_key(&self) -> Option<(&ApiKeyId, &str)> {
        match self {
            Self::ApiKey { id, prefix } => Some((id, prefix)),
            _ => None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A token was asked for (`GET .../token`).
    TokenRead,
    /// latchkey asked the provider for a new access token (refresh, or a repeated client credentials grant).
    TokenRefresh,
    /// A connection was created.
    ConnectionCreate,
    /// A connection's settings were edited.
    ConnectionEdit,
    /// A fresh authorization was asked for (reconnect).
    ConnectionAuthorize,
    /// An authorization finished: the connection became `connected`, or failed.
    ConnectionAuthorized,
    /// A connection was deleted.
    ConnectionDelete,
    /// An API key was created.
    ApiKeyCreate,
    /// An API key was revoked.
    ApiKeyRevoke,
}

impl Action {
    /// Every action, for checks and documentation.
    pub const ALL: [Self; 9] = [
        Self::TokenRead,
        Self::TokenRefresh,
        Self::ConnectionCreate,
        Self::ConnectionEdit,
        Self::ConnectionAuthorize,
        Self::ConnectionAuthorized,
        Self::ConnectionDelete,
        Self::ApiKeyCreate,
        Self::ApiKeyRevoke,
    ];

    /// The stored and shown word.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenRead => "token_read",
            Self::TokenRefresh => "token_refresh",
            Self::ConnectionCreate => "connection_create",
            Self::ConnectionEdit => "connection_edit",
            Self::ConnectionAuthorize => "connection_authorize",
            Self::ConnectionAuthorized => "connection_authorized",
            Self::ConnectionDelete => "connection_delete",
            Self::ApiKeyCreate => "api_key_create",
            Self::ApiKeyRevoke => "api_key_revoke",
        }
    }

    /// The action with this stored word.
    ///
    /// # Errors
    /// `Storage` for a word no action has.
    pub fn parse(word: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == word)
            .ok_or_else(|| Error::Storage(format!("unknown action '{}' in the audit log", word.escape_debug())))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an event ended: `ok`, or the machine word of the error (the API envelope's `code`).
#[must_use]
pub fn outcome_of<T>(result: &Result<T, Error>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(err) => err.code().to_owned(),
    }
}

/// One event, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: Timestamp,
    /// The owner of the connection or API key concerned.
    pub user_id: UserId,
    pub actor: Actor,
    pub action: Action,
    /// The connection's handle, for connection and token events.
    pub handle: Option<Handle>,
    /// The shown prefix of the API key that was created or revoked.
    pub subject_key: Option<String>,
    /// `ok` or an error's machine word.
    pub outcome: String,
}

/// A stored record with its position in the log (larger is newer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub record: AuditRecord,
}

/// Which records to read: a user's, optionally of one handle, newest first, older than `before` when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub user_id: UserId,
    pub handle: Option<Handle>,
    /// Only records whose id is smaller (the `id` of the last record of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_actors_round_trip_through_their_words() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Ok(action));
        }
        assert!(Action::parse("token_write").is_err());
        let key = Actor::ApiKey { id: ApiKeyId("k1".to_owned()), prefix: "lk_abcdefg".to_owned() };
        let (id, prefix) = key.api_key().expect("an API key actor");
        assert_eq!(Actor::from_parts(key.kind(), Some(id.0.clone()), Some(prefix.to_owned())).expect("parses"), key);
        for actor in [Actor::WebSession, Actor::Refresher, Actor::CommandLine, Actor::Authorization] {
            assert_eq!(Actor::from_parts(actor.kind(), None, None).expect("parses"), actor);
        }
        assert!(Actor::from_parts("api_key", None, None).is_err());
        assert!(Actor::from_parts("somebody", None, None).is_err());
    }

    #[test]
    fn outcomes_are_ok_or_the_error_code() {
        assert_eq!(outcome_of(&Ok::<(), Error>(())), "ok");
        assert_eq!(outcome_of(&Err::<(), Error>(Error::NeedsReauth("x".to_owned()))), "needs_reauth");
    }
}
