//! The application state every handler and background task shares: trait objects and handles, so that tests swap
//! parts (a manual clock, a fresh database) without touching the code that uses them.

use std::sync::Arc;

use latchkey_core::Clock;
use latchkey_core::store::Store;
use latchkey_crypto::Keyring;
use latchkey_oauth::HttpClient;
use tokio_util::sync::CancellationToken;

use crate::api::limits::ApiRateLimiter;
use crate::config::Config;
use crate::service::password_checks::PasswordChecks;
use crate::tokens::TokenService;
use crate::web::login_limits::LoginLimiter;

/// Everything a request or a background task needs.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub keyring: Arc<Keyring>,
    pub http: HttpClient,
    pub clock: Arc<dyn Clock>,
    pub tokens: TokenService,
    pub api_limits: ApiRateLimiter,
    /// The audit log: buffered token-read records and direct writes of changes.
    pub audit: crate::audit::AuditLog,
    /// Log-in attempts per client address and per username.
    pub login_limits: LoginLimiter,
    /// The bound on concurrent password checks (argon2id).
    pub password_checks: PasswordChecks,
    /// Cancelled when the server shuts down; long-running tasks watch it.
    pub shutdown: CancellationToken,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;
