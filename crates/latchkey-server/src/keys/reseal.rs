//! Sealing every stored secret again with the current master key, in small batches, without ever overwriting
//! a value that a running server wrote meanwhile.
//!
//! The walk goes column by column through [`SEALED_COLUMNS`], reading only the values whose key id is not the
//! current one, in row id order. Each value is opened (with whichever key of the ring sealed it), sealed with
//! the current key under the same associated data, and written back only if the row still holds exactly the
//! bytes that were read. A value that changed in between was written by a server, and is simply looked at
//! again by the next pass. Because the walk only ever asks for values under other keys, an interrupted run
//! resumes by running again: what it finished is not read twice.

use latchkey_core::Error;
use latchkey_core::sealed_columns::{SEALED_COLUMNS, SealedColumn};
use latchkey_core::store::Store;
use latchkey_crypto::{Aad, Keyring};

/// How a re-seal runs.
#[derive(Debug, Clone, Copy)]
pub struct ResealOptions {
    /// Values read and written per batch.
    pub batch_size: u32,
    /// Stop (as if interrupted) after this many values were sealed again; for tests of resuming.
    pub stop_after: Option<u64>,
}

impl Default for ResealOptions {
    fn default() -> Self {
        Self { batch_size: 100, stop_after: None }
    }
}

/// A value that could not be opened, so it stays as it is. Names its place, never its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealFailure {
    pub column: SealedColumn,
    pub row_id: String,
    /// Why it did not open (tampered, moved from another row, an unknown key, malformed).
    pub reason: String,
}

impl std::fmt::Display for ResealFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of row {}: {}", self.column, self.row_id, self.reason)
    }
}

/// What a re-seal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Values now sealed with the current key.
    pub resealed: u64,
    /// Values a server changed between read and write; the next pass looks at them again.
    pub changed_meanwhile: u64,
    /// Values that did not open.
    pub failures: Vec<ResealFailure>,
    /// Whether the run stopped early ([`ResealOptions::stop_after`]).
    pub interrupted: bool,
}

/// How far a re-seal has come, reported after every batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub column: &'a SealedColumn,
    /// Values sealed again so far, in all columns.
    pub resealed: u64,
}

/// At most this many passes over the columns; a pass after the first only finds values that servers wrote
/// with an older key while the previous pass ran.
const MAX_PASSES: u32 = 5;

/// Seals every stored value that is not under the keyring's current key again with it.
///
/// # Errors
/// Storage failures. Values that do not open are not errors here: they are listed in the report.
pub async fn reseal_all(
    store: &dyn Store,
    keyring: &Keyring,
    options: ResealOptions,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<ResealReport, Error> {
    let mut report = ResealReport::default();
    for _ in 0..MAX_PASSES {
        let before = report.resealed;
        let changed_before = report.changed_meanwhile;
        for column in SEALED_COLUMNS {
            reseal_column(store, keyring, column, options, &mut report, progress).await?;
            if report.interrupted {
                return Ok(report);
            }
        }
        let changed = report.changed_meanwhile > changed_before;
        if report.resealed == before || !changed {
            break;
        }
    }
    Ok(report)
}

async fn reseal_column(
    store: &dyn Store,
    keyring: &Keyring,
    column: &SealedColumn,
    options: ResealOptions,
    report: &mut ResealReport,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<(), Error> {
    let current = keyring.current_id().0.to_be_bytes();
    let mut after: Option<String> = None;
    loop {
        let batch =
            store.sealed_values_not_under(column, &current, after.as_deref(), options.batch_size.max(1)).await?;
        if batch.is_empty() {
            return Ok(());
        }
        for cell in batch {
            if options.stop_after.is_some_and(|limit| report.resealed >= limit) {
                report.interrupted = true;
                return Ok(());
            }
            let aad = Aad::new(column.table, column.column, &cell.row_id);
            match keyring.open(&cell.sealed, &aad) {
                Ok(plain) => {
                    let fresh = keyring.seal(&plain, &aad);
                    if store.replace_sealed_value(column, &cell.row_id, &cell.sealed, &fresh).await? {
                        report.resealed += 1;
                    } else {
                        report.changed_meanwhile += 1;
                    }
                }
                Err(err) => {
                    tracing::error!(
                        table = column.table,
                        column = column.column,
                        row = %cell.row_id,
                        error = %err,
                        "a sealed value could not be opened to seal it again; it is left as it is"
                    );
                    report.failures.push(ResealFailure {
                        column: *column,
                        row_id: cell.row_id.clone(),
                        reason: err.to_string(),
                    });
                }
            }
            after = Some(cell.row_id);
        }
        progress(Progress { column, resealed: report.resealed });
    }
}

#[cfg(test)]
mod tests {
    use latchkey_core::model::{ConnectionId, FlowId, UserId};
    use latchkey_core::sealed_columns::SEALED_COLUMNS;
    use latchkey_core::webhook::Webhook;
    use latchkey_core::{Secret, Timestamp};
    use latchkey_crypto::{Aad, Keyring, MasterKey};

    use crate::sealing::{self, Column};

    /// The walker opens each value with `Aad::new(table, column, row id)`: that must be the associated data the
    /// server seals it with, for every sealed column, or a rotation would call good values tampered.
    #[test]
    fn the_walker_binds_every_column_as_the_server_seals_it() {
        let ring = Keyring::new(MasterKey::generate(), Vec::new());
        let secret = Secret::new("sealed-in-the-server");
        let connection = ConnectionId::random();
        let flow = FlowId::random();
        let user = UserId::random();
        for column in SEALED_COLUMNS {
            let (row, sealed) = match (column.table, column.column) {
                ("connections", "client_secret") => {
                    (connection.to_string(), sealing::seal(&ring, &connection, Column::ClientSecret, &secret))
                }
                ("connections", "access_token") => {
                    (connection.to_string(), sealing::seal(&ring, &connection, Column::AccessToken, &secret))
                }
                ("connections", "refresh_token") => {
                    (connection.to_string(), sealing::seal(&ring, &connection, Column::RefreshToken, &secret))
                }
                ("auth_flows", "pkce_verifier") => (flow.to_string(), sealing::seal_verifier(&ring, &flow, &secret)),
                ("device_flows", "device_code") => {
                    (connection.to_string(), sealing::seal_device_code(&ring, &connection, &secret))
                }
                ("webhooks", "secret") => {
                    // The webhook module opens with its own associated data: seal as the walker would.
                    let sealed = ring.seal_secret(&secret, &Aad::new(column.table, column.column, user.as_str()));
                    let webhook = Webhook {
                        user_id: user.clone(),
                        url: String::new(),
                        secret: sealed.clone(),
                        created_at: Timestamp(0),
                        updated_at: Timestamp(0),
                    };
                    assert_eq!(crate::webhooks::open_secret(&ring, &webhook).ok(), Some(secret.clone()));
                    (user.to_string(), sealed)
                }
                other => panic!("{other:?} is sealed but this test does not know how the server seals it"),
            };
            let aad = Aad::new(column.table, column.column, &row);
            assert_eq!(ring.open_secret(&sealed, &aad).ok(), Some(secret.clone()), "{column}");
        }
    }
}
