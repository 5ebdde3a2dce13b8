//! The typed, validated configuration: defaults, then `LATCHKEY_*` environment variables, then flags (clap reads
//! both; the flag wins). Built once in `main` and passed in; there is no global configuration.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use latchkey_crypto::keyfile::KeySource;
use latchkey_oauth::AllowList;
use url::Url;

use crate::tokens::RefreshTuning;
use crate::web::client_address::TrustedProxies;

/// The settings every command that touches the database or the keys shares (CONTRACT.md "Settings").
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the server listens on.
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://path` (the default, created on first run) or `postgres://...`. Its value may hold a
    /// password, so help never shows it.
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL",
        default_value = "sqlite://latchkey-data/latchkey.db",
        global = true,
        hide_env_values = true
    )]
    pub database: String,

    /// The URL people and providers reach this server at; the default redirect URI is `{public-url}/oauth2/callback`.
    #[arg(long, env = "LATCHKEY_PUBLIC_URL", global = true, hide_env_values = true)]
    pub public_url: Option<String>,

    /// File holding the master key (generated with mode 0600 on first run). Ignored when LATCHKEY_MASTER_KEY is set.
    #[arg(long, default_value = "latchkey-data/master.key", global = true)]
    pub master_key_file: PathBuf,

    /// Allow outbound OAuth requests to loopback, private and link-local addresses.
    #[arg(long, env = "LATCHKEY_ALLOW_PRIVATE_NETWORKS", global = true)]
    pub allow_private_networks: bool,

    /// Hosts and networks that outbound OAuth requests may reach although they are private (comma-separated CIDRs,
    /// addresses and host names). Cloud metadata addresses open only when listed by address.
    #[arg(long, env = "LATCHKEY_OUTBOUND_ALLOW", global = true)]
    pub outbound_allow: Option<String>,

    /// Refresh a token this many seconds before it expires. Default: 5 minutes or a tenth of the token's
    /// lifetime, whichever is shorter.
    #[arg(long, env = "LATCHKEY_REFRESH_WINDOW_SECS", global = true)]
    pub refresh_window_secs: Option<u64>,

    /// How often the background refresher looks for tokens due for refresh, in seconds.
    #[arg(long, env = "LATCHKEY_REFRESHER_INTERVAL_SECS", default_value_t = 30, global = true)]
    pub refresher_interval_secs: u64,

    /// Refresh pacing: lease, concurrency and backoff.
    #[command(flatten)]
    pub refresh: RefreshFlags,

    /// How many API requests a second each API key may make (bursts of as many are allowed).
    #[arg(long, env = "LATCHKEY_API_RATE_LIMIT", default_value_t = 100, global = true)]
    pub api_rate_limit: u32,

    /// How many log-in attempts one client address (an IPv6 /64) may make at once; after that one more every 6
    /// seconds. A username takes ten times as many from all addresses together.
    #[arg(long, env = "LATCHKEY_LOGIN_BURST", default_value_t = 10, global = true)]
    pub login_burst: u32,

    /// Reverse proxies whose `X-Forwarded-For` or `Forwarded: for=` names the client (comma-separated CIDRs or
    /// addresses). Only a connection from inside one of them is believed; by default none is.
    #[arg(long, env = "LATCHKEY_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,

    /// How long an authorization link stays valid, in seconds.
    #[arg(long, env = "LATCHKEY_AUTHORIZATION_LINK_TTL_SECS", default_value_t = 600, global = true)]
    pub authorization_link_ttl_secs: u64,

    /// Metrics protection and shutdown grace.
    #[command(flatten)]
    pub ops: crate::ops::OpsFlags,
}

/// How refreshes are paced (`--refresh-*`); see `RefreshTuning` for what each does.
#[derive(Debug, Clone, Args)]
pub struct RefreshFlags {
    /// How long a replica's claim on a refresh lasts, in seconds; when a replica dies mid-refresh, the others take
    /// over after this. Keep it above the outbound request timeout (30 s).
    #[arg(long, env = "LATCHKEY_REFRESH_LEASE_SECS", default_value_t = 60, global = true)]
    pub refresh_lease_secs: u64,

    /// How many background refreshes one replica runs at once.
    #[arg(long, env = "LATCHKEY_REFRESH_CONCURRENCY", default_value_t = 16, global = true)]
    pub refresh_concurrency: usize,

    /// How many background refreshes one replica sends to the same provider host at once.
    #[arg(long, env = "LATCHKEY_REFRESH_CONCURRENCY_PER_HOST", default_value_t = 4, global = true)]
    pub refresh_concurrency_per_host: usize,

    /// How many background refreshes of one user one replica runs at once.
    #[arg(long, env = "LATCHKEY_REFRESH_CONCURRENCY_PER_USER", default_value_t = 4, global = true)]
    pub refresh_concurrency_per_user: usize,

    /// The wait after a failed refresh, in seconds; doubled after each further failure.
    #[arg(long, env = "LATCHKEY_REFRESH_BACKOFF_BASE_SECS", default_value_t = 30, global = true)]
    pub refresh_backoff_base_secs: u64,

    /// The longest wait between refresh attempts, in seconds (a provider's Retry-After may ask for more).
    #[arg(long, env = "LATCHKEY_REFRESH_BACKOFF_MAX_SECS", default_value_t = 3600, global = true)]
    pub refresh_backoff_max_secs: u64,
}

impl Default for RefreshFlags {
    fn default() -> Self {
        let tuning = RefreshTuning::default();
        Self {
            refresh_lease_secs: tuning.lease.as_secs(),
            refresh_concurrency: tuning.concurrency,
            refresh_concurrency_per_host: tuning.concurrency_per_host,
            refresh_concurrency_per_user: tuning.concurrency_per_user,
            refresh_backoff_base_secs: tuning.backoff_base.as_secs(),
            refresh_backoff_max_secs: tuning.backoff_max.as_secs(),
        }
    }
}

impl RefreshFlags {
    /// The validated tuning.
    ///
    /// # Errors
    /// A message naming the flag that is out of range.
    pub fn tuning(&self) -> anyhow::Result<RefreshTuning> {
        if self.refresh_lease_secs == 0 {
            bail!("--refresh-lease-secs must be at least 1");
        }
        if self.refresh_concurrency == 0
            || self.refresh_concurrency_per_host == 0
            || self.refresh_concurrency_per_user == 0
        {
            bail!(
                "--refresh-concurrency, --refresh-concurrency-per-host and --refresh-concurrency-per-user must be at least 1"
            );
        }
        if self.refresh_backoff_base_secs == 0 {
            bail!("--refresh-backoff-base-secs must be at least 1");
        }
        if self.refresh_backoff_max_secs < self.refresh_backoff_base_secs {
            bail!("--refresh-backoff-max-secs must be at least --refresh-backoff-base-secs");
        }
        Ok(RefreshTuning {
            lease: Duration::from_secs(self.refresh_lease_secs),
            concurrency: self.refresh_concurrency,
            concurrency_per_host: self.refresh_concurrency_per_host,
            concurrency_per_user: self.refresh_concurrency_per_user,
            backoff_base: Duration::from_secs(self.refresh_backoff_base_secs),
            backoff_max: Duration::from_secs(self.refresh_backoff_max_secs),
            ..RefreshTuning::default()
        })
    }
}

/// Where the master key comes from: `LATCHKEY_MASTER_KEY` wins over the key file.
#[must_use]
pub fn key_source(settings: &Settings) -> KeySource {
    match std::env::var("LATCHKEY_MASTER_KEY") {
        Ok(value) if !value.trim().is_empty() => KeySource::Env(value),
        _ => KeySource::File(settings.master_key_file.clone()),
    }
}

/// How log-ins are throttled and how many password checks run at once (docs/decisions.md, "Log-in throttling").
#[derive(Debug, Clone)]
pub struct LoginConfig {
    /// Attempts allowed at once per client address, and per address and username that logged in before; a
    /// username takes ten times as many from all other addresses together.
    pub burst: NonZeroU32,
    /// One more attempt every this long (a username's bucket refills ten times as fast).
    pub refill: Duration,
    /// The proxies whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// How many password checks (argon2id, 19 MiB each) run at once: the number of cores.
    pub password_checks: NonZeroUsize,
    /// How long a log-in waits for its turn at a password check before it is answered "try again" (503).
    pub password_queue_wait: Duration,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            burst: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            refill: Duration::from_secs(6),
            trusted_proxies: TrustedProxies::default(),
            password_checks: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            password_queue_wait: Duration::from_secs(5),
        }
    }
}

/// The server's configuration after validation.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    /// Without a trailing slash.
    pub public_url: Url,
    pub key_source: KeySource,
    pub allow_private_networks: bool,
    pub outbound_allow: AllowList,
    pub refresh_window: Option<Duration>,
    pub refresher_interval: Duration,
    /// Lease, concurrency and backoff of refreshes.
    pub refresh_tuning: RefreshTuning,
    pub authorization_link_ttl: Duration,
    /// API requests a second per key.
    pub api_rate_limit: NonZeroU32,
    /// Log-in throttling, trusted proxies and the bound on concurrent password checks.
    pub login: LoginConfig,
    /// How often the device poller wakes to look for device authorizations due for a poll (their interval itself
    /// comes from the provider); one second, shorter in tests.
    pub device_poll_tick: Duration,
    /// Metrics token, shutdown grace, webhook sender tick.
    pub ops: crate::ops::OpsConfig,
}

impl Config {
    /// Validates the settings.
    ///
    /// # Errors
    /// A message naming the setting that is wrong.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let public = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.listen));
        let public_url = parse_public_url(&public)?;
        if settings.refresher_interval_secs == 0 {
            bail!("--refresher-interval-secs must be at least 1");
        }
        if settings.authorization_link_ttl_secs == 0 {
            bail!("--authorization-link-ttl-secs must be at least 1");
        }
        Ok(Self {
            listen: settings.listen,
            database_url: settings.database.clone(),
            public_url,
            key_source: key_source(settings),
            allow_private_networks: settings.allow_private_networks,
            outbound_allow: AllowList::parse(settings.outbound_allow.as_deref().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("--outbound-allow: {e}"))?,
            refresh_window: settings.refresh_window_secs.map(Duration::from_secs),
            refresher_interval: Duration::from_secs(settings.refresher_interval_secs),
            refresh_tuning: settings.refresh.tuning()?,
            authorization_link_ttl: Duration::from_secs(settings.authorization_link_ttl_secs),
            api_rate_limit: NonZeroU32::new(settings.api_rate_limit)
                .ok_or_else(|| anyhow::anyhow!("--api-rate-limit must be at least 1"))?,
            login: LoginConfig {
                burst: NonZeroU32::new(settings.login_burst)
                    .ok_or_else(|| anyhow::anyhow!("--login-burst must be at least 1"))?,
                trusted_proxies: TrustedProxies::parse(settings.trusted_proxies.as_deref().unwrap_or_default())
                    .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?,
                ..LoginConfig::default()
            },
            device_poll_tick: Duration::from_secs(1),
            ops: settings.ops.config()?,
        })
    }

    /// The origin of the public URL (`scheme://host[:port]`), as browsers send it in `Origin`.
    #[must_use]
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// Whether people reach the server over https (cookies then get `Secure`).
    #[must_use]
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// `{public-url}{path}`; `path` starts with `/`.
    #[must_use]
    pub fn public(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }

    /// The default redirect URI, `{public-url}/oauth2/callback`.
    #[must_use]
    pub fn default_redirect_uri(&self) -> String {
        self.public("/oauth2/callback")
    }
}

fn parse_public_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text).with_context(|| format!("--public-url {text:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--public-url must start with http:// or https://, not {}://", url.scheme());
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--public-url must not have a query or fragment");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_defaults_to_the_listen_address() {
        let settings = Settings {
            listen: "127.0.0.1:9999".parse().expect("addr"),
            database: "sqlite://x.db".into(),
            public_url: None,
            master_key_file: "k".into(),
            allow_private_networks: false,
            outbound_allow: Some("10.0.0.0/8, idp.internal".into()),
            refresh_window_secs: None,
            refresher_interval_secs: 30,
            refresh: RefreshFlags::default(),
            authorization_link_ttl_secs: 600,
            ops: crate::ops::OpsFlags::default(),
            api_rate_limit: 100,
            login_burst: 10,
            trusted_proxies: Some("10.0.0.0/8, ::1".into()),
        };
        let config = Config::from_settings(&settings).expect("valid");
        assert!(config.login.trusted_proxies.contains("10.1.2.3".parse().expect("ip")));
        let bad = Settings { trusted_proxies: Some("10.0.0.0/33".into()), ..settings.clone() };
        let err = Config::from_settings(&bad).expect_err("not a network").to_string();
        assert!(err.contains("--trusted-proxies"), "{err}");
        assert_eq!(config.default_redirect_uri(), "http://127.0.0.1:9999/oauth2/callback");
        assert_eq!(config.public_origin(), "http://127.0.0.1:9999");
        assert_eq!(config.outbound_allow.entries().len(), 2);
        assert_eq!(config.login.burst.get(), 10);
        let none = Settings { login_burst: 0, ..settings };
        let err = Config::from_settings(&none).expect_err("no log-in attempts at all").to_string();
        assert!(err.contains("--login-burst"), "{err}");
    }

    #[test]
    fn refuses_a_public_url_that_is_not_http() {
        let err = parse_public_url("ftp://x").expect_err("ftp").to_string();
        assert!(err.contains("http://"), "{err}");
        assert!(parse_public_url("https://latchkey.example/base").is_ok());
    }
}
