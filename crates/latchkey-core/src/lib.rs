//! The domain of latchkey: what a connection, a token set and a user are, the errors a caller can act on,
//! and the storage and clock interfaces that the other crates implement or consume.
//!
//! This crate depends on nothing else of ours; every other crate depends on it.

pub mod audit;
pub mod clock;
pub mod error;
pub mod handle;
pub mod model;
pub mod sealed_columns;
pub mod secret;
pub mod settings;
pub mod store;
pub mod template;
pub mod webhook;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{Error, Result};
pub use handle::Handle;
pub use secret::{Sealed, Secret};
