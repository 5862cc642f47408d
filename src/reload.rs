//! Hot reload of the rules: on a change in the rules folder (notify) and on
//! SIGHUP the whole set is read and validated again, then swapped in at once.
//! A set with errors is refused as a whole: the errors are logged and the last
//! good set stays active.

use crate::config::Config;
use crate::rules::{Live, RuleError, load};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// File events closer together than this are one change (editors write twice).
const SETTLE: Duration = Duration::from_millis(200);

/// Watches until `cancel`.
pub async fn run(config: Config, live: Arc<Live>, cancel: CancellationToken) {
    let (tx, mut changed) = tokio::sync::mpsc::channel::<()>(1);
    let _watcher = config.rules.dir.as_ref().and_then(|dir| {
        crate::watch::watch_dir(dir, tx)
            .map_err(|e| {
                tracing::warn!(dir = %dir.display(), "cannot watch the rules folder (reload with SIGHUP): {e}")
            })
            .ok()
    });
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let hup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            Some(()) = changed.recv() => {
                tokio::time::sleep(SETTLE).await;
                while changed.try_recv().is_ok() {}
                tracing::info!("rules folder changed: reloading the rules");
            }
            _ = hup => tracing::info!("SIGHUP: reloading the rules"),
        }
        let _ = reload(&config, &live);
    }
}

/// Reads and validates the rules; swaps them in only when all are good.
pub fn reload(config: &Config, live: &Live) -> Result<usize, Vec<RuleError>> {
    match load::load_configured(config) {
        Ok(set) => {
            let count = set.rules.len();
            live.replace(set);
            tracing::info!(rules = count, "rules reloaded");
            Ok(count)
        }
        Err(errors) => {
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!(
                errors = errors.len(),
                "the new rules were refused; the last good rule set stays active"
            );
            Err(errors)
        }
    }
}
