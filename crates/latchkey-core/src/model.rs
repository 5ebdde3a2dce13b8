//! The records latchkey keeps: users, API keys, connections with their sealed tokens, authorization flows and
//! browser sessions. Secrets appear here only as [`Sealed`] bytes or as hashes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::settings::{GrantType, OAuthSettings};
use crate::{Handle, Sealed, Timestamp};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh random id (UUID v4).
            #[must_use]
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// The id as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Identifies a user.
    UserId
);
id_type!(
    /// Identifies a connection; generated before the row is written, so that sealed values can be bound to it.
    ConnectionId
);
id_type!(
    /// Identifies an API key.
    ApiKeyId
);
id_type!(
    /// Identifies an authorization flow.
    FlowId
);

/// A SHA-256 digest of a high-entropy secret (API key, link, state, session id). Lookups go by digest, so the
/// database never holds the secret itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(..)")
    }
}

/// A person who owns connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    /// The argon2id hash in PHC string format.
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: Timestamp,
}

/// An API key: its hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: String,
    /// The first characters of the key, shown to tell keys apart.
    pub prefix: String,
    pub key_hash: Digest,
    /// When set, the key may read only these handles.
    pub handles: Option<Vec<Handle>>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// When set, the key stops working at this moment.
    pub expires_at: Option<Timestamp>,
}

impl ApiKey {
    /// Whether the key has expired at `now` (a key without an expiry never does).
    #[must_use]
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Whether this key may act on `handle`.
    #[must_use]
    pub fn allows(&self, handle: &Handle) -> bool {
        self.handles.as_ref().is_none_or(|allowed| allowed.contains(handle))
    }
}

/// Where a connection stands, as CONTRACT.md names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not authorized yet.
    Pending,
    /// Tokens are stored and usable.
    Connected,
    /// The provider refused the refresh token (or it expired without one): a person must reconnect.
    NeedsReauth,
    /// The last attempt failed for another reason; `last_error` says why.
    Error,
}

impl Status {
    /// The contract's spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Connected => "connected",
            Self::NeedsReauth => "needs_reauth",
            Self::Error => "error",
        }
    }

    /// Parses the contract's spelling.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "connected" => Some(Self::Connected),
            "needs_reauth" => Some(Self::NeedsReauth),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    /// The status in words, for people.
    #[must_use]
    pub fn in_words(self) -> &'static str {
        match self {
            Self::Pending => "Pending authorization",
            Self::Connected => "Connected",
            Self::NeedsReauth => "Needs re-authorization",
            Self::Error => "Error",
        }
    }
}

/// The tokens of a connection as stored: sealed secrets and their plain metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokens {
    pub access_token: Sealed,
    pub refresh_token: Option<Sealed>,
    pub token_type: String,
    /// When the access token expires; `None` when the provider gave no lifetime.
    pub expires_at: Option<Timestamp>,
    /// When the access token was obtained; with `expires_at` it gives the lifetime.
    pub obtained_at: Timestamp,
    /// The scopes granted, when the provider said.
    pub scope: Option<String>,
    /// Values kept from the token response and the callback query (`keep_response_fields`,
    /// `keep_callback_params`), such as Salesforce's `instance_url`. Not secret: stored and shown in the clear.
    pub extra: BTreeMap<String, String>,
}

/// A connection to one provider account, owned by one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub user_id: UserId,
    pub handle: Handle,
    pub name: String,
    /// `custom` or a preset id.
    pub provider: String,
    pub settings: OAuthSettings,
    pub client_secret: Option<Sealed>,
    pub status: Status,
    pub last_error: Option<String>,
    pub tokens: Option<StoredTokens>,
    /// Increases with every token write; a refresh stores its result only if the version it read is current.
    pub token_version: i64,
    /// Consecutive failed refresh attempts.
    pub failure_count: i64,
    /// No automatic refresh before this time (backoff after a failure).
    pub retry_after: Option<Timestamp>,
    /// When the background refresher should next refresh this connection.
    pub refresh_at: Option<Timestamp>,
    pub last_refreshed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Connection {
    /// The status a failed, denied, expired or abandoned authorization leaves. A connection without tokens (or
    /// still `pending`) stays `pending`: a failure never brings discarded tokens back, nor puts the connection
    /// where the refresher would pick it up. One whose tokens belong to its current settings keeps its status, so
    /// a cancelled reconnect breaks nothing that worked.
    #[must_use]
    pub fn status_after_failed_authorization(&self) -> Status {
        match (self.status, &self.tokens) {
            (Status::Pending, _) | (_, None) => Status::Pending,
            (status, Some(_)) => status,
        }
    }
}

/// A connection as the web UI's list shows it: no secrets, and of the settings only the scopes and the grant, so
/// that a backend can read a long list without fetching sealed columns or whole settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    pub handle: Handle,
    pub name: String,
    pub provider: String,
    pub status: Status,
    pub last_error: Option<String>,
    /// The requested scopes, as in the settings.
    pub scopes: String,
    /// The scopes the provider granted, when it said.
    pub granted_scope: Option<String>,
    /// Whether tokens are stored.
    pub has_tokens: bool,
    /// When the access token expires.
    pub expires_at: Option<Timestamp>,
    pub last_refreshed_at: Option<Timestamp>,
    /// How its tokens are obtained (the list opens a consent window only for the code flow).
    pub grant_type: GrantType,
}

impl ConnectionSummary {
    /// The summary of a whole connection.
    #[must_use]
    pub fn of(connection: &Connection) -> Self {
        let tokens = connection.tokens.as_ref();
        Self {
            handle: connection.handle.clone(),
            name: connection.name.clone(),
            provider: connection.provider.clone(),
            status: connection.status,
            last_error: connection.last_error.clone(),
            scopes: connection.settings.scopes.clone(),
            granted_scope: tokens.and_then(|t| t.scope.clone()),
            has_tokens: tokens.is_some(),
            expires_at: tokens.and_then(|t| t.expires_at),
            last_refreshed_at: connection.last_refreshed_at,
            grant_type: connection.settings.grant_type,
        }
    }
}

/// The editable part of a connection, as written by create and edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    pub name: String,
    pub provider: String,
    pub settings: OAuthSettings,
    /// `None` keeps the stored secret on edit.
    pub client_secret: Option<Sealed>,
}

/// The outcome of a token write after a successful exchange or refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenWrite {
    pub tokens: StoredTokens,
    pub refresh_at: Option<Timestamp>,
    pub now: Timestamp,
    /// Write only if the connection's `token_version` still equals this; `None` writes unconditionally.
    pub expected_version: Option<i64>,
}

/// A failed exchange or refresh, recorded without touching the stored tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureWrite {
    pub status: Status,
    pub last_error: String,
    pub failure_count: i64,
    pub retry_after: Option<Timestamp>,
    pub now: Timestamp,
}

/// An authorization flow: created with its single-use link, started when the browser opens the link, completed
/// when the callback arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFlow {
    pub id: FlowId,
    pub connection_id: ConnectionId,
    pub link_hash: Digest,
    /// Set when the link is opened.
    pub state_hash: Option<Digest>,
    /// Digest of the cookie that binds the flow to the browser that opened the link.
    pub browser_hash: Option<Digest>,
    /// The PKCE verifier, sealed when the link is created.
    pub pkce_verifier: Option<Sealed>,
    /// The exact redirect URI sent in the authorization request, repeated in the token request.
    pub redirect_uri: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

/// What opening an authorization link records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStart {
    pub state_hash: Digest,
    pub browser_hash: Digest,
    /// Replaces the stored PKCE verifier when `Some`; `None` keeps the one sealed at link creation.
    pub pkce_verifier: Option<Sealed>,
    pub now: Timestamp,
}

/// A device authorization in progress (RFC 8628 §3.2): what the person needs to approve it, and the sealed
/// `device_code` that latchkey presents at the token endpoint until they do. One per connection; a new one
/// replaces the old.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFlow {
    pub connection_id: ConnectionId,
    /// The `device_code`, sealed; never shown.
    pub device_code: Sealed,
    /// The code the person types at the verification URI.
    pub user_code: String,
    pub verification_uri: String,
    /// The verification URI with the user code in it, when the provider sent one.
    pub verification_uri_complete: Option<String>,
    /// When the device code stops being accepted.
    pub expires_at: Timestamp,
    /// Seconds between polls; grows by 5 on every `slow_down` (RFC 8628 §3.5).
    pub interval_secs: i64,
    /// When latchkey polls next.
    pub next_poll_at: Timestamp,
    pub created_at: Timestamp,
}

/// A logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: Digest,
    pub user_id: UserId,
    /// The anti-forgery token that forms of this session carry.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_spellings_round_trip() {
        for status in [Status::Pending, Status::Connected, Status::NeedsReauth, Status::Error] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(status.as_str())));
        }
        assert_eq!(Status::parse("bogus"), None);
    }

    #[test]
    fn key_limited_to_handles() {
        let handle = |s: &str| Handle::parse(s).expect("valid");
        let mut key = ApiKey {
            id: ApiKeyId::random(),
            user_id: UserId::random(),
            name: "ci".into(),
            prefix: "lk_abc".into(),
            key_hash: Digest([0; 32]),
            handles: None,
            created_at: Timestamp(0),
            last_used_at: None,
            revoked_at: None,
            expires_at: None,
        };
        assert!(key.allows(&handle("x")));
        key.handles = Some(vec![handle("x")]);
        assert!(key.allows(&handle("x")));
        assert!(!key.allows(&handle("y")));
    }
}
