//! Life under systemd (`Type=notify`): READY once the store is migrated and
//! the sources are up, STATUS with a one-line summary, RELOADING around a
//! SIGHUP reload, STOPPING on shutdown, and WATCHDOG pings while the store
//! answers. Every call is a no-op outside systemd (no `NOTIFY_SOCKET`).

use crate::store::Store;
use sd_notify::NotifyState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// The daemon is up: READY=1 with its first status line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new status line (`systemctl status` shows it).
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// Reloading config, rules and templates (SIGHUP); [`ready`] ends it.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
}

/// Shutting down.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings the watchdog at half its interval (when systemd set one) for as
/// long as the store answers, and refreshes the status line with `summary`;
/// a store that stops answering stops the pings, and systemd restarts us.
pub async fn watch(store: Store, summary: impl Fn() -> String, cancel: CancellationToken) {
    let every = sd_notify::watchdog_enabled()
        .map(|interval| interval / 2)
        .unwrap_or(Duration::from_secs(30))
        .max(Duration::from_millis(100));
    let pinging = sd_notify::watchdog_enabled().is_some();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store.outbox_depth().await {
            Ok(depth) => {
                let line = format!("{}; outbox {depth} pending", summary());
                if pinging {
                    notify(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
                } else {
                    status(&line);
                }
            }
            Err(e) => tracing::warn!("store not answering, watchdog not pinged: {e}"),
        }
    }
}
