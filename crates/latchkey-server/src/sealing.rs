//! Where each sealed column lives, so that every seal and open of a connection's secret binds it to the same row
//! and column (a value copied to another row or column fails to open).

use latchkey_core::model::{ConnectionId, FlowId};
use latchkey_core::{Error, Sealed, Secret};
use latchkey_crypto::{Aad, Keyring};

/// The sealed columns.
#[derive(Debug, Clone, Copy)]
pub enum Column {
    ClientSecret,
    AccessToken,
    RefreshToken,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Self::ClientSecret => "client_secret",
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

fn connection_aad(id: &ConnectionId, column: Column) -> Aad {
    Aad::new("connections", column.name(), id.as_str())
}

fn device_aad(id: &ConnectionId) -> Aad {
    Aad::new("device_flows", "device_code", id.as_str())
}

fn flow_aad(id: &FlowId) -> Aad {
    Aad::new("auth_flows", "pkce_verifier", id.as_str())
}

/// Seals a secret of a connection.
#[must_use]
pub fn seal(keyring: &Keyring, id: &ConnectionId, column: Column, secret: &Secret) -> Sealed {
    keyring.seal_secret(secret, &connection_aad(id, column))
}

/// Opens a secret of a connection; a failure names the row and column, never the content.
///
/// # Errors
/// [`Error::Crypto`] when the value does not open (wrong key, tampered, or moved from another row).
pub fn open(keyring: &Keyring, id: &ConnectionId, column: Column, sealed: &Sealed) -> Result<Secret, Error> {
    keyring.open_secret(sealed, &connection_aad(id, column)).map_err(|e| {
        tracing::error!(connection = %id, column = column.name(), error = %e, "a sealed value failed to open");
        Error::Crypto(format!(
            "the {col} of connection {id} (connections.{col}, row {id}) could not be decrypted: {e}",
            col = column.name()
        ))
    })
}

/// Seals a flow's PKCE verifier.
#[must_use]
pub fn seal_verifier(keyring: &Keyring, id: &FlowId, verifier: &Secret) -> Sealed {
    keyring.seal_secret(verifier, &flow_aad(id))
}

/// Opens a flow's PKCE verifier.
///
/// # Errors
/// [`Error::Crypto`] when it does not open.
pub fn open_verifier(keyring: &Keyring, id: &FlowId, sealed: &Sealed) -> Result<Secret, Error> {
    keyring
        .open_secret(sealed, &flow_aad(id))
        .map_err(|e| Error::Crypto(format!("the PKCE verifier of flow {id} could not be decrypted: {e}")))
}

/// Seals the RFC 8628 device code of a connection's device flow.
#[must_use]
pub fn seal_device_code(keyring: &Keyring, id: &ConnectionId, device_code: &Secret) -> Sealed {
    keyring.seal_secret(device_code, &device_aad(id))
}

/// Opens the device code of a connection's device flow.
///
/// # Errors
/// [`Error::Crypto`] when it does not open.
pub fn open_device_code(keyring: &Keyring, id: &ConnectionId, sealed: &Sealed) -> Result<Secret, Error> {
    keyring
        .open_secret(sealed, &device_aad(id))
        .map_err(|e| Error::Crypto(format!("the device code of connection {id} could not be decrypted: {e}")))
}
