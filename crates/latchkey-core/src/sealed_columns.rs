//! Every column that holds a sealed value, and the storage interface that key rotation uses to walk them.
//!
//! A sealed value is bound (by its associated data) to `table`, `column` and the row's id, so the list below is
//! also the list of associated-data names. A new sealed column is one more line in [`SEALED_COLUMNS`]; the
//! rotation, the key status and the conformance checks then cover it.

use async_trait::async_trait;

use crate::{Result, Sealed};

/// Where sealed values live: a table, its sealed column and the column whose text is the row id in the
/// associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// The column holding the row id that the associated data names (the primary key).
    pub row_id: &'static str,
}

impl SealedColumn {
    const fn new(table: &'static str, column: &'static str, row_id: &'static str) -> Self {
        Self { table, column, row_id }
    }
}

impl std::fmt::Display for SealedColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// Every sealed column of the schema. The names are fixed identifiers of the code, never input, so backends
/// may write them into SQL text.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn::new("connections", "client_secret", "id"),
    SealedColumn::new("connections", "access_token", "id"),
    SealedColumn::new("connections", "refresh_token", "id"),
    SealedColumn::new("auth_flows", "pkce_verifier", "id"),
    SealedColumn::new("device_flows", "device_code", "connection_id"),
    SealedColumn::new("webhooks", "secret", "user_id"),
];

/// The 4 bytes after a sealed value's format byte: the id of the master key that sealed it. Stored values
/// too short to hold one give fewer bytes.
pub type KeyIdBytes = Vec<u8>;

/// One sealed value and the id of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCell {
    pub row_id: String,
    pub sealed: Sealed,
}

/// What key rotation needs from storage: read sealed values in batches, replace one only if it did not change
/// meanwhile, and count values by the key that sealed them.
#[async_trait]
pub trait SealedValueStore: Send + Sync {
    /// Up to `limit` non-null values of `column` whose key id (bytes 2 to 5) is not `current_key`, in the
    /// order of their row id, starting after the row id `after`. Damaged values too short to name a key are
    /// included, so that the walk reports them.
    async fn sealed_values_not_under(
        &self,
        column: &SealedColumn,
        current_key: &[u8; 4],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SealedCell>>;

    /// Replaces the value of `column` in the row `row_id` with `new`, only if it still holds exactly `old`
    /// (a running server may have written a fresh value since it was read). Returns whether it was replaced.
    async fn replace_sealed_value(
        &self,
        column: &SealedColumn,
        row_id: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool>;

    /// How many non-null values of `column` each key id seals, in the order of the key id bytes.
    async fn count_sealed_by_key(&self, column: &SealedColumn) -> Result<Vec<(KeyIdBytes, u64)>>;
}
