//! The behaviour every storage backend must show, as a test suite that runs against any [`Store`].
//!
//! Each check is a plain async function, named for the behaviour it pins down, that panics (through `assert!`)
//! when the store misbehaves; [`run_all`] runs them one after another. A backend's integration test opens a fresh
//! store and calls `run_all`:
//!
//! ```no_run
//! # async fn example() -> Result<(), latchkey_core::Error> {
//! let store = latchkey_store::SqliteStore::open("sqlite:///tmp/conformance/latchkey.db").await?;
//! latchkey_store::conformance::run_all(&store).await;
//! # Ok(())
//! # }
//! ```
//!
//! The checks share the one database: each creates its own users (with unique usernames) and records, so they do
//! not see each other's rows, except where a method is global by nature (the set-up token, the expiry sweeps,
//! `connections_due`). Those checks use times far before the [`T0`] that every other check works around, so that
//! their counts stay exact.

mod accounts;
mod audit;
mod connections;
mod device_flows;
mod flows;
mod refresher;
mod sealed;
mod setup;
mod tokens;
mod webhooks;

use std::collections::BTreeMap;

use latchkey_core::model::{
    ApiKey, ApiKeyId, AuthFlow, Connection, ConnectionId, Digest, FlowId, Status, StoredTokens, User, UserId,
};
use latchkey_core::settings::{ClientAuth, GrantType, OAuthSettings, Pkce, TokenRequestFormat, TokenResponseMap};
use latchkey_core::store::Store;
use latchkey_core::{Handle, Sealed, Timestamp};

/// The "present" of the checks: an arbitrary fixed time (November 2023), so results never depend on the clock.
pub const T0: Timestamp = Timestamp(1_700_000_000);

/// Runs every check against `store`, which must be freshly created and empty (the first-run set-up can only be
/// checked before any user exists). Panics on the first behaviour that differs from the storage traits' contract.
pub async fn run_all(store: &dyn Store) {
    // First: needs a store without users.
    setup::setup_completes_once_on_an_empty_store(store).await;

    setup::ping_and_backend_name(store).await;
    setup::meta_values_round_trip_and_replace(store).await;
    setup::sessions_join_their_user_and_expire(store).await;
    setup::delete_expired_sessions_removes_only_expired(store).await;

    accounts::users_round_trip(store).await;
    accounts::duplicate_username_is_a_conflict(store).await;
    accounts::api_keys_round_trip(store).await;
    accounts::api_keys_are_listed_newest_first(store).await;
    accounts::revoking_a_key_is_once_and_only_by_its_owner(store).await;
    accounts::touching_a_key_records_its_last_use(store).await;

    connections::connections_round_trip(store).await;
    connections::handles_are_unique_per_user(store).await;
    connections::connections_are_listed_by_handle(store).await;
    connections::key_and_connection_has_three_outcomes(store).await;
    connections::config_update_keeps_or_replaces_the_client_secret(store).await;
    connections::set_status_leaves_tokens_alone(store).await;
    connections::deleting_a_connection_deletes_its_flows(store).await;
    connections::reset_discards_everything_obtained_under_the_old_route(store).await;

    tokens::save_tokens_bumps_the_version_and_resets_the_state(store).await;
    tokens::save_tokens_with_a_stale_version_writes_nothing(store).await;
    tokens::save_tokens_without_refresh_token_stores_none(store).await;
    tokens::record_failure_keeps_tokens_and_releases_the_lease(store).await;
    tokens::refresh_lease_excludes_others_until_it_expires(store).await;
    tokens::connections_due_filters_and_orders(store).await;
    tokens::concurrent_claims_have_one_winner(store).await;
    tokens::concurrent_saves_of_one_version_have_one_winner(store).await;

    refresher::claim_due_refreshes_leases_what_it_returns(store).await;
    refresher::concurrent_batch_claims_are_disjoint(store).await;
    refresher::stopped_connections_are_not_claimed(store).await;
    refresher::users_take_turns_in_a_claim(store).await;

    flows::start_flow_is_single_use(store).await;
    flows::start_flow_keeps_or_replaces_the_pkce_verifier(store).await;
    flows::start_flow_refuses_expired_links(store).await;
    flows::complete_flow_succeeds_once(store).await;
    flows::delete_expired_flows_removes_only_expired(store).await;

    device_flows::device_flows_round_trip_and_replace(store).await;
    device_flows::device_flows_due_and_reschedule(store).await;
    device_flows::device_flows_go_with_their_connection(store).await;
    device_flows::device_poll_lease_has_one_holder(store).await;
    device_flows::device_flows_due_takes_users_in_turns(store).await;

    audit::audit_records_round_trip_newest_first(store).await;
    audit::audit_records_page_by_handle(store).await;
    audit::audit_batches_are_whole_and_outlive_connections(store).await;

    webhooks::webhooks_round_trip_and_replace(store).await;
    webhooks::status_changes_queue_events_for_users_with_a_webhook(store).await;
    webhooks::claims_lease_events_until_finished(store).await;
    webhooks::concurrent_webhook_claims_are_disjoint(store).await;
    webhooks::claims_take_one_event_per_user(store).await;
    webhooks::readiness_and_counts(store).await;

    // Last: walks every row of the sealed columns.
    sealed::every_sealed_column_walks_counts_and_replaces_by_key(store).await;
}

/// A random 32-byte digest (the hex digits of a UUID v4, so 122 random bits).
fn digest() -> Digest {
    let hex = UserId::random().0.replace('-', "");
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&hex.as_bytes()[..32]);
    Digest(bytes)
}

/// Sealed bytes that contain every byte value (including NUL and invalid UTF-8), then `label`.
fn sealed(label: &str) -> Sealed {
    let mut bytes: Vec<u8> = (0..=255).collect();
    bytes.extend_from_slice(label.as_bytes());
    Sealed(bytes)
}

fn handle(value: &str) -> Handle {
    Handle::parse(value).expect("the checks use valid handles")
}

/// A user with a unique username, not yet stored.
fn user_record(is_admin: bool) -> User {
    let id = UserId::random();
    User {
        username: format!("conformance-{id}"),
        id,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
        is_admin,
        created_at: T0,
    }
}

/// A stored user with a unique username.
async fn new_user(store: &dyn Store) -> User {
    let user = user_record(false);
    store.insert_user(&user).await.expect("insert_user");
    user
}

/// Settings with every field away from its default, so that a lossy round trip shows.
fn settings() -> OAuthSettings {
    OAuthSettings {
        grant_type: GrantType::AuthorizationCode,
        authorization_url: "http://127.0.0.1:9/authorize".to_owned(),
        token_url: "http://127.0.0.1:9/token".to_owned(),
        client_id: "conformance-client".to_owned(),
        scopes: "read write offline_access".to_owned(),
        pkce: Pkce::Off,
        client_auth: ClientAuth::ClientSecretBasic,
        token_request_format: TokenRequestFormat::Json,
        revocation_request_format: Some(TokenRequestFormat::Form),
        authorization_params: BTreeMap::from([("prompt".to_owned(), "consent".to_owned())]),
        token_params: BTreeMap::from([("audience".to_owned(), "api".to_owned())]),
        refresh_params: BTreeMap::from([("resource".to_owned(), "http://127.0.0.1:9/api".to_owned())]),
        request_headers: BTreeMap::from([("Api-Version".to_owned(), "2024-01-01".to_owned())]),
        scope_separator: ",".to_owned(),
        default_expires_in: Some(3600),
        refresh_url: Some("http://127.0.0.1:9/refresh".to_owned()),
        revocation_url: Some("http://127.0.0.1:9/revoke".to_owned()),
        redirect_uri: Some("http://127.0.0.1:8080/callback".to_owned()),
        refresh_client_auth: Some(ClientAuth::ClientSecretPost),
        token_response_map: TokenResponseMap {
            access_token: Some("authed_user.access_token".to_owned()),
            expires_at: Some("data.expires_at".to_owned()),
            ..TokenResponseMap::default()
        },
        keep_response_fields: vec!["instance_url".to_owned()],
        keep_callback_params: vec!["realmId".to_owned()],
        device_authorization_url: Some("http://127.0.0.1:9/device".to_owned()),
        issuer: Some("http://127.0.0.1:9/{tenant}".to_owned()),
        discovered: vec!["revocation_url".to_owned()],
        authorization_response_iss_parameter_supported: true,
        connection_params: BTreeMap::from([("tenant".to_owned(), "acme".to_owned())]),
    }
}

/// A pending connection without tokens, not yet stored.
fn connection_record(user: &UserId, handle_text: &str) -> Connection {
    Connection {
        id: ConnectionId::random(),
        user_id: user.clone(),
        handle: handle(handle_text),
        name: format!("Conformance {handle_text}"),
        provider: "custom".to_owned(),
        settings: settings(),
        client_secret: Some(sealed("client-secret")),
        status: Status::Pending,
        last_error: None,
        tokens: None,
        token_version: 0,
        failure_count: 0,
        retry_after: None,
        refresh_at: None,
        last_refreshed_at: None,
        created_at: T0,
        updated_at: T0,
    }
}

/// A stored pending connection without tokens.
async fn new_connection(store: &dyn Store, user: &UserId, handle_text: &str) -> Connection {
    let connection = connection_record(user, handle_text);
    store.insert_connection(&connection).await.expect("insert_connection");
    connection
}

/// A full token set whose sealed values carry `label`.
fn tokens(label: &str) -> StoredTokens {
    StoredTokens {
        access_token: sealed(&format!("{label}-access")),
        refresh_token: Some(sealed(&format!("{label}-refresh"))),
        token_type: "Bearer".to_owned(),
        expires_at: Some(T0.plus_secs(3600)),
        obtained_at: T0,
        scope: Some("read write".to_owned()),
        extra: BTreeMap::from([("instance_url".to_owned(), format!("https://{label}.example"))]),
    }
}

/// An unrevoked, never-used key of `user`, not yet stored.
fn api_key_record(user: &UserId, created_at: Timestamp) -> ApiKey {
    ApiKey {
        id: ApiKeyId::random(),
        user_id: user.clone(),
        name: "conformance key".to_owned(),
        prefix: "lk_conf".to_owned(),
        key_hash: digest(),
        handles: None,
        created_at,
        last_used_at: None,
        revoked_at: None,
        expires_at: None,
    }
}

/// An unstarted flow of `connection` that expires at `expires_at`, not yet stored.
fn flow_record(connection: &ConnectionId, created_at: Timestamp, expires_at: Timestamp) -> AuthFlow {
    AuthFlow {
        id: FlowId::random(),
        connection_id: connection.clone(),
        link_hash: digest(),
        state_hash: None,
        browser_hash: None,
        pkce_verifier: None,
        redirect_uri: "http://127.0.0.1:8080/callback".to_owned(),
        created_at,
        expires_at,
        started_at: None,
        completed_at: None,
    }
}
