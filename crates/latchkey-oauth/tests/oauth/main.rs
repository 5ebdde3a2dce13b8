//! Integration tests of latchkey-oauth against a mock provider on 127.0.0.1 (see `mock.rs`).

mod authorize;
mod discovery;
mod guard_props;
mod hardening;
mod mock;
mod props;
mod responses;
mod token_requests;
