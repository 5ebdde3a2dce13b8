//! Serving tokens and keeping them fresh: the token service (one refresh per connection at a time, carried
//! through even when the caller goes away) and the background refresher that keeps idle connections alive.

mod device;
mod policy;
mod refresher;
mod service;
mod stored;

pub use device::run_device_poller;
pub use policy::{RefreshPolicy, RefreshTuning};
pub use refresher::run_refresher;
pub use service::{FreshToken, TokenService};
