//! `latchkey keys ...`: rotate, status, retire, generate.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;
use latchkey_crypto::MasterKey;

use super::{ResealOptions, key_usage, parse_key_id, retire, rotate};
use crate::bootstrap;
use crate::config::{Settings, key_source};

/// `latchkey keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new master key and seal every stored secret again with it; run again to finish an interrupted
    /// rotation.
    Rotate {
        /// Values read and written per batch.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch_size: u32,
    },
    /// Show the keys and how many stored values each one seals.
    Status,
    /// Remove an older key that no stored value uses any more.
    Retire {
        /// The key id, as 'keys status' shows it (8 hex digits).
        key_id: String,
    },
    /// Print a new random master key, alone on stdout (for keys kept in LATCHKEY_MASTER_KEY).
    Generate,
}

/// Runs a `keys` command.
///
/// # Errors
/// A database or key that cannot be opened, or the command failing; the message says what to do.
pub async fn run(command: KeysCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let source = key_source(settings);
    let open = || bootstrap::open(&settings.database, &source);
    let fail = |e: latchkey_core::Error| anyhow::anyhow!("{e}");
    match command {
        KeysCommand::Generate => {
            let key = MasterKey::generate();
            println!("{}", key.to_base64().as_str());
            eprintln!("generated key {} (keep it private: it is shown only this once)", key.id());
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate { batch_size } => {
            let (store, keyring) = open().await?;
            let options = ResealOptions { batch_size, stop_after: None };
            let mut progress = |p: super::Progress<'_>| {
                eprintln!("sealed {} values again so far (now at {})", p.resealed, p.column);
            };
            let rotation = rotate(store.as_ref(), &keyring, &source, options, &mut progress).await.map_err(fail)?;
            if rotation.added {
                eprintln!("added master key {}: it seals new values from now on", rotation.key);
            } else {
                eprintln!("finished the rotation to master key {}", rotation.key);
            }
            for failure in &rotation.report.failures {
                eprintln!("error: {failure}");
            }
            println!(
                "sealed {} values again with key {}; {} remain under other keys",
                rotation.report.resealed, rotation.key, rotation.remaining
            );
            if rotation.report.failures.is_empty() && rotation.remaining == 0 {
                eprintln!("every stored value is sealed with key {}; older keys can be retired", rotation.key);
                Ok(ExitCode::SUCCESS)
            } else if rotation.report.failures.is_empty() {
                eprintln!("servers wrote values with an older key meanwhile: run 'latchkey keys rotate' again");
                Ok(ExitCode::FAILURE)
            } else {
                eprintln!(
                    "{} values could not be opened (listed above) and keep their old key: they were damaged or \
                     moved; reconnect those connections, then run 'latchkey keys rotate' again",
                    rotation.report.failures.len()
                );
                Ok(ExitCode::FAILURE)
            }
        }
        KeysCommand::Status => {
            let (store, keyring) = open().await?;
            let usage = key_usage(store.as_ref(), &keyring).await.map_err(fail)?;
            let mut out = String::new();
            for key in &usage {
                let name = key.key.map_or_else(|| "damaged".to_owned(), |id| id.to_string());
                let role = match (key.current, key.in_ring) {
                    (true, _) => "current",
                    (false, true) => "older, opens only",
                    (false, false) => "NOT IN THE KEY RING",
                };
                let _ = write!(out, "{name}  {role}  {} values", key.values);
                for (place, count) in &key.by_column {
                    let _ = write!(out, "  {place}={count}");
                }
                out.push('\n');
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Retire { key_id } => {
            let id = parse_key_id(&key_id).map_err(fail)?;
            let (store, keyring) = open().await?;
            let message = retire(store.as_ref(), &keyring, &source, id).await.map_err(fail)?;
            eprintln!("{message}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
