//! The command line of CONTRACT.md: `serve`, `users create`, `api-keys create`, `token`, `keys`.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use latchkey_core::{Secret, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Settings, key_source};
use crate::service::{api_keys, users};
use crate::{Application, bootstrap};

/// latchkey: connect an OAuth 2.0 service once; scripts get a fresh token by handle.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: web UI, JSON API, OAuth endpoints, background refresher.
    Serve,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage API keys.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Rotate and retire master keys.
    #[command(subcommand)]
    Keys(crate::keys::cli::KeysCommand),
    /// Print a fresh access token from a running server (LATCHKEY_URL, LATCHKEY_API_KEY).
    Token {
        /// The connection's handle.
        handle: String,
        /// Refresh first even when the token is not due.
        #[arg(long)]
        force_refresh: bool,
        /// The server's URL (help never shows its value: a URL may carry credentials).
        #[arg(long, env = "LATCHKEY_URL", default_value = "http://127.0.0.1:8080", hide_env_values = true)]
        url: String,
    },
}

/// `latchkey users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user directly in the database.
    Create {
        username: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// `latchkey api-keys ...`
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create an API key for a user and print it, alone, on stdout.
    Create {
        username: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Limit the key to these handles (comma-separated).
        #[arg(long)]
        handles: Option<String>,
        /// Make the key stop working after this many days (1 to 3650); without it the key does not expire.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
}

/// Logs go to stderr; the level comes from `LATCHKEY_LOG` (or `RUST_LOG`), `info` by default.
pub fn init_logging() {
    let filter = std::env::var("LATCHKEY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn,hyper=warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the parsed command.
///
/// # Errors
/// Whatever the command fails with, as a readable chain.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => serve(&cli.settings).await,
        Command::Users(UsersCommand::Create { username, admin, password_stdin: _ }) => {
            let password = read_password()?;
            let (store, _) = bootstrap::open(&cli.settings.database, &key_source(&cli.settings)).await?;
            let now = latchkey_core::Clock::now(&SystemClock);
            let user = users::new_user(&username, &password, admin, now).map_err(|e| anyhow::anyhow!("{e}"))?;
            users::create(store.as_ref(), &user).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("created user '{username}'{}", if admin { " (admin)" } else { "" });
            Ok(ExitCode::SUCCESS)
        }
        Command::ApiKeys(ApiKeysCommand::Create { username, name, handles, expires_in_days }) => {
            let handles = handles
                .as_deref()
                .map(api_keys::parse_handle_list)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--handles: {e}"))?;
            let (store, _) = bootstrap::open(&cli.settings.database, &key_source(&cli.settings)).await?;
            let user =
                store.user_by_username(&username).await.map_err(|e| anyhow::anyhow!("{e}"))?.with_context(|| {
                    format!("there is no user '{username}': create it with 'latchkey users create'")
                })?;
            let now = latchkey_core::Clock::now(&SystemClock);
            let expires_at = api_keys::expiry_in_days(expires_in_days, now)
                .map_err(|e| anyhow::anyhow!("--expires-in-days: {e}"))?;
            let (record, key) = api_keys::create_expiring(store.as_ref(), &user, &name, handles, expires_at, now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Err(err) = crate::audit::record_api_key_created(store.as_ref(), &record, now).await {
                eprintln!("warning: the API key was created, but its audit record could not be written: {err}");
            }
            write_stdout(key.expose())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(command) => crate::keys::cli::run(command, &cli.settings).await,
        Command::Token { handle, force_refresh, url } => fetch_token(&url, &handle, force_refresh).await,
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<ExitCode> {
    let config = Config::from_settings(settings)?;
    let app = Application::build(config, Arc::new(SystemClock)).await?;
    // The signal handlers are in place before the start line: a SIGTERM sent the moment it appears shuts down
    // cleanly instead of killing the process.
    let signals = Signals::install();
    let config = app.state().config.clone();
    tracing::info!(url = %config.public_url, database = %bootstrap::redact_url(&config.database_url), "latchkey is listening");
    write_stdout(&format!("latchkey is running at {}", config.public_url))?;
    if let Some(link) = app.setup_link() {
        write_stdout(&format!("Finish set-up in your browser (this link works once): {link}"))?;
    }
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        signals.wait().await;
        tracing::info!("shutting down: finishing requests in flight");
        signal.cancel();
    });
    app.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and Ctrl-C, registered at once (a signal's default action kills the process until then).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self { term: signal(SignalKind::terminate()).ok(), interrupt: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Returns when the first of the signals arrives.
    async fn wait(self) {
        #[cfg(unix)]
        {
            let (Some(mut term), Some(mut interrupt)) = (self.term, self.interrupt) else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn read_password() -> anyhow::Result<Secret> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("could not read the password from standard input")?;
    let password = Secret::new(line.trim_end_matches(['\r', '\n']));
    if password.is_empty() {
        bail!(
            "no password on standard input: pipe it in, for example: echo \"$PASSWORD\" | latchkey users create alice --password-stdin"
        );
    }
    users::check_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(password)
}

fn write_stdout(line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).context("could not write to standard output")
}

/// `latchkey token HANDLE`: asks the server, prints the token alone on stdout.
async fn fetch_token(base: &str, handle: &str, force: bool) -> anyhow::Result<ExitCode> {
    let handle = latchkey_core::Handle::parse(handle).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = std::env::var("LATCHKEY_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .context("LATCHKEY_API_KEY is not set: create a key with 'latchkey api-keys create <user>' and export it")?;
    let mut url = url::Url::parse(base)
        .context("LATCHKEY_URL is not a URL: give the server's address, for example http://127.0.0.1:8080")?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("LATCHKEY_URL {} cannot carry a path", without_credentials(base)))?
        .pop_if_empty()
        .extend(["api", "v1", "connections", handle.as_str(), "token"]);
    if force {
        url.set_query(Some("force_refresh=true"));
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("could not build the HTTP client")?;
    let response = client
        .get(url)
        .bearer_auth(key.trim())
        .send()
        .await
        .with_context(|| format!("could not reach latchkey at {}", without_credentials(base)))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success()
        && let Some(token) = body.get("token").and_then(serde_json::Value::as_str)
    {
        write_stdout(token)?;
        return Ok(ExitCode::SUCCESS);
    }
    let message = body.get("error").and_then(serde_json::Value::as_str).unwrap_or("the server gave no reason");
    eprintln!("error: {message} (HTTP {})", status.as_u16());
    Ok(ExitCode::FAILURE)
}

/// `url` without the user name and password it may carry, for messages.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "LATCHKEY_URL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn messages_name_the_server_without_its_credentials() {
        let shown = super::without_credentials("http://ops:hunter2-sentinel@127.0.0.1:8080/base");
        assert_eq!(shown, "http://127.0.0.1:8080/base");
        assert_eq!(super::without_credentials("not a url hunter2"), "LATCHKEY_URL");
    }

    use super::Cli;

    /// Whether a setting's variable may hold a credential: a URL (user information), a token, a secret, a key or
    /// a password.
    fn may_hold_a_secret(variable: &str) -> bool {
        let name = variable.strip_prefix("LATCHKEY_").unwrap_or(variable);
        name.ends_with("URL") || ["TOKEN", "SECRET", "KEY", "PASSWORD"].iter().any(|w| name.contains(w))
    }

    fn settings_that_may_hold_a_secret(command: &clap::Command, found: &mut Vec<(String, bool)>) {
        for arg in command.get_arguments() {
            if let Some(variable) = arg.get_env().map(|v| v.to_string_lossy().into_owned())
                && may_hold_a_secret(&variable)
            {
                found.push((variable, arg.is_hide_env_values_set()));
            }
        }
        for sub in command.get_subcommands() {
            settings_that_may_hold_a_secret(sub, found);
        }
    }

    #[test]
    fn help_never_shows_the_value_of_a_setting_that_may_hold_a_secret() {
        let mut found = Vec::new();
        settings_that_may_hold_a_secret(&Cli::command(), &mut found);
        for variable in ["LATCHKEY_DATABASE_URL", "LATCHKEY_METRICS_TOKEN", "LATCHKEY_URL"] {
            assert!(found.iter().any(|(v, _)| v == variable), "{variable} is not a setting any more: {found:?}");
        }
        let shown: Vec<&String> = found.iter().filter(|(_, hidden)| !hidden).map(|(v, _)| v).collect();
        assert!(shown.is_empty(), "help would show the values of {shown:?}: add hide_env_values = true");
    }
}
