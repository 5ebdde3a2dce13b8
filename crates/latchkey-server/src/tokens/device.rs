//! The device poller (RFC 8628 §3.4, §3.5): while a person approves a device authorization elsewhere, latchkey
//! asks the token endpoint at the provider's interval whether they have. The schedule lives in the database
//! (`device_flows`), so a restart picks polling up where it was; due-ness and expiry follow the injectable clock,
//! and only the wake-up tick is real time (`Config::device_poll_tick`, short in tests).
//!
//! Polls run concurrently under a [`Gate`] (at most [`PER_USER`] of one user, [`PER_HOST`] to one token host,
//! [`CONCURRENCY`] in all); a flow whose share is taken stays due for a later tick, so a provider that hangs
//! delays only the polls of its own user and host.

use latchkey_core::model::{Connection, DeviceFlow, FailureWrite, Status, TokenWrite};
use latchkey_core::{Error, Result};
use latchkey_oauth::DevicePoll;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::fairness::{Gate, Pass, host_key};
use crate::sealing::{self, Column};
use crate::state::SharedState;

/// How many device flows one pass lists at most.
const BATCH: u32 = 50;
/// Polls in flight at once, in all.
const CONCURRENCY: usize = 16;
/// Polls in flight at once for one user.
const PER_USER: usize = 2;
/// Polls in flight at once towards one token endpoint host.
const PER_HOST: usize = 4;
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN_SECS: i64 = 5;
/// How long a poll lease lasts: longer than a whole provider request (30 s at most), so that only a replica that
/// died mid-poll loses it.
const POLL_LEASE_SECS: i64 = 60;

/// Runs until `shutdown` is cancelled; polls under way are finished first.
pub async fn run_device_poller(state: SharedState, shutdown: CancellationToken) {
    let tick = state.config.device_poll_tick;
    // Several replicas may run this loop over one database: each poll first takes the flow's lease.
    let owner = format!("device-{}-{}", std::process::id(), uuid::Uuid::new_v4());
    let gate = Gate::new(CONCURRENCY, PER_USER, PER_HOST);
    let mut running = JoinSet::new();
    tracing::debug!(tick_ms = tick.as_millis(), "device poller started");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
        while running.try_join_next().is_some() {}
        if gate.free() == 0 {
            continue;
        }
        let due = match state.store.device_flows_due(state.clock.now(), BATCH).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "the device poller could not read its work");
                continue;
            }
        };
        for flow in due {
            match start(&state, &gate, &flow, &owner).await {
                Ok(Some((connection, flow, pass))) => {
                    running.spawn(poll_in_turn(state.clone(), connection, flow, pass));
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(connection = %flow.connection_id, error = %err, "a device poll could not be claimed");
                }
            }
        }
    }
    while running.join_next().await.is_some() {}
    tracing::debug!("device poller stopped");
}

/// Takes a share of the gate for the flow's user and token host, then the flow's lease; `None` when either is
/// taken (the flow stays due) or the connection is gone.
async fn start(
    state: &SharedState,
    gate: &Gate,
    flow: &DeviceFlow,
    owner: &str,
) -> Result<Option<(Connection, DeviceFlow, Pass)>> {
    let Some(connection) = state.store.connection_by_id(&flow.connection_id).await? else {
        state.store.delete_device_flow(&flow.connection_id).await?;
        return Ok(None);
    };
    let host = connection.settings.resolved().map(|s| host_key(&s.token_url)).unwrap_or_default();
    let Some(pass) = gate.try_enter(connection.user_id.as_str(), &host) else {
        return Ok(None);
    };
    Ok(claim(state, flow, owner).await?.map(|flow| (connection, flow, pass)))
}

/// Polls one claimed flow, holding its share of the gate until done.
async fn poll_in_turn(state: SharedState, connection: Connection, flow: DeviceFlow, _pass: Pass) {
    if let Err(err) = poll(&state, &flow).await {
        tracing::warn!(connection = %connection.id, error = %err, "a device poll failed");
    }
}

/// Takes the poll lease of `flow` and reads it again (another replica may have polled and rescheduled it since
/// it was listed); `None` when someone else holds it or it is no longer due.
async fn claim(state: &SharedState, flow: &DeviceFlow, owner: &str) -> Result<Option<DeviceFlow>> {
    let id = &flow.connection_id;
    let now = state.clock.now();
    if !state.store.claim_device_poll(id, owner, now, now.plus_secs(POLL_LEASE_SECS)).await? {
        return Ok(None);
    }
    state.store.device_flow(id).await
}

/// Ends a device flow that failed with `status` and `message`; the connection keeps the status a failed
/// authorization leaves (`pending` unless it holds tokens of its current settings).
async fn finish(state: &SharedState, connection: &Connection, status: Status, message: String) -> Result<()> {
    let now = state.clock.now();
    // Read again: the connection may have been edited while the provider was asked.
    let current = state.store.connection_by_id(&connection.id).await?;
    let write = FailureWrite {
        status: current.as_ref().unwrap_or(connection).status_after_failed_authorization(),
        last_error: message,
        failure_count: connection.failure_count,
        retry_after: None,
        now,
    };
    let failed: Result<()> = Err(match status {
        Status::NeedsReauth => Error::NeedsReauth(write.last_error.clone()),
        _ => Error::Provider { message: write.last_error.clone(), retryable: false },
    });
    state.store.record_failure(&connection.id, &write).await?;
    state.audit.authorization_finished(connection, &failed).await;
    state.store.delete_device_flow(&connection.id).await
}

/// Polls one device flow once and acts on the answer.
async fn poll(state: &SharedState, flow: &DeviceFlow) -> Result<()> {
    let id = &flow.connection_id;
    let Some(connection) = state.store.connection_by_id(id).await? else {
        return state.store.delete_device_flow(id).await;
    };
    let handle = &connection.handle;
    let now = state.clock.now();
    let expired = || {
        format!(
            "the device code of '{handle}' expired before it was approved: start again (POST /api/v1/connections/{handle}/authorize, or reconnect in the latchkey UI) for a new code"
        )
    };
    if flow.expires_at <= now {
        tracing::info!(handle = %handle, "device authorization expired");
        return finish(state, &connection, Status::Error, expired()).await;
    }
    let settings = connection.settings.resolved()?;
    let client_secret = connection
        .client_secret
        .as_ref()
        .map(|s| sealing::open(&state.keyring, id, Column::ClientSecret, s))
        .transpose()?;
    let device_code = sealing::open_device_code(&state.keyring, id, &flow.device_code)?;
    let answer = latchkey_oauth::poll_device_token(&state.http, &settings, client_secret.as_ref(), &device_code).await;
    let now = state.clock.now();
    match answer {
        DevicePoll::Pending => {
            state.store.reschedule_device_flow(id, flow.interval_secs, now.plus_secs(flow.interval_secs)).await
        }
        DevicePoll::SlowDown => {
            let interval = flow.interval_secs + SLOW_DOWN_SECS;
            tracing::debug!(handle = %handle, interval_secs = interval, "provider asked to slow down");
            state.store.reschedule_device_flow(id, interval, now.plus_secs(interval)).await
        }
        DevicePoll::Denied => {
            tracing::info!(handle = %handle, "device authorization denied");
            let message = format!(
                "the person denied access to '{handle}' at the provider: start again (POST /api/v1/connections/{handle}/authorize, or reconnect in the latchkey UI) to ask once more"
            );
            finish(state, &connection, Status::Error, message).await
        }
        DevicePoll::Expired => {
            tracing::info!(handle = %handle, "device code expired at the provider");
            finish(state, &connection, Status::Error, expired()).await
        }
        DevicePoll::Tokens(response) => {
            let previous = connection.tokens.as_ref();
            let (tokens, refresh_at) = state.tokens.tokens_from_response(id, &response, previous, now);
            // Fenced by the version read before the poll: an edit that moved the credential route meanwhile
            // discarded this flow, and tokens from the old route must not land on the new one.
            let write = TokenWrite { tokens, refresh_at, now, expected_version: Some(connection.token_version) };
            if !state.store.save_tokens(id, &write).await? {
                tracing::info!(handle = %handle, "device authorization answered after the connection changed; dropped");
                return Ok(());
            }
            state.store.delete_device_flow(id).await?;
            state.audit.authorization_finished(&connection, &Ok::<(), Error>(())).await;
            tracing::info!(handle = %handle, "device authorization approved; connection connected");
            Ok(())
        }
        DevicePoll::Failed(err) if err.is_retryable() => {
            let wait = flow.interval_secs.max(i64::try_from(err.retry_after().map_or(0, |d| d.as_secs())).unwrap_or(0));
            tracing::warn!(handle = %handle, error = %err.describe(&settings.token_url), "device poll failed; trying again");
            state.store.reschedule_device_flow(id, flow.interval_secs, now.plus_secs(wait)).await
        }
        DevicePoll::Failed(err) => {
            let described = err.describe(&settings.token_url);
            let (status, message) = if err.needs_reauth() {
                (
                    Status::NeedsReauth,
                    format!(
                        "the provider refused the device authorization of '{handle}' ({described}): check the client ID and secret, then start again"
                    ),
                )
            } else {
                (Status::Error, format!("the device authorization of '{handle}' failed: {described}"))
            };
            tracing::warn!(handle = %handle, error = %described, "device authorization failed");
            finish(state, &connection, status, message).await
        }
    }
}
