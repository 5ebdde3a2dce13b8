//! End-to-end tests of the HTTP API and the OAuth flow: the real server on a random loopback port, a real SQLite
//! file, and a mock provider on loopback that each test controls.

mod callback_props;
mod credential_route;
mod device_lease;
mod doors;
mod fairness;
mod flow;
mod grants;
mod guard;
mod helpers;
mod keys;
mod log_in_limits;
mod ops;
mod ownership;
mod presets;
mod provider;
mod quirks_auth;
mod quirks_endpoints;
mod quirks_response;
mod quirky;
mod refresh;
mod refresher;
mod replicas;
mod start_page;
mod storage;
mod token_reads;
mod validation;
mod webhooks;
