//! Hot reload of the rules: on a change in the rules folder (notify) and on
//! SIGHUP the whole set is read and validated again, then swapped in at once.
//! SIGHUP reloads the notification templates the same way.
//! A set with errors is refused as a whole: the errors are logged and the last
//! good set stays active.

use crate::clock::Clock;
use crate::config::Config;
use crate::rules::{Live, RuleError, load};
use crate::store::Store;
use crate::store::outbox::{self, NewNotification};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// File events closer together than this are one change (editors write twice).
const SETTLE: Duration = Duration::from_millis(200);

/// Where refused rule sets are reported besides the log: mail to the admins
/// (`[rules] alert_admins`), through the outbox.
pub struct Alert {
    pub store: Store,
    pub clock: Clock,
}

/// Watches until `cancel`.
pub async fn run(
    config: Config,
    (live, templates): (Arc<Live>, Arc<crate::notify::templates::Live>),
    alert: Option<Alert>,
    cancel: CancellationToken,
) {
    let mut last_alert: Option<String> = None;
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
        let signalled = tokio::select! {
            _ = cancel.cancelled() => return,
            Some(()) = changed.recv() => {
                tokio::time::sleep(SETTLE).await;
                while changed.try_recv().is_ok() {}
                tracing::info!("rules folder changed: reloading the rules");
                false
            }
            _ = hup => {
                tracing::info!("SIGHUP: reloading the rules");
                true
            }
        };
        if signalled {
            crate::service::reloading();
        }
        let reloaded = reload(&config, &live);
        if signalled {
            // SIGHUP also reloads the templates, validated the same way.
            let notify = &config.notify;
            let templates =
                match templates.reload(notify.templates_dir.as_deref(), &notify.default_language) {
                    Ok(()) => "templates reloaded".to_string(),
                    Err(errors) => {
                        for e in &errors {
                            tracing::error!("{e}");
                        }
                        tracing::error!("the new templates were refused; the last good set stays");
                        format!(
                            "templates refused ({} errors), the last good set stays",
                            errors.len()
                        )
                    }
                };
            // The reload is over either way: the new sets, or the last good ones.
            let rules = live.current().rules.len();
            crate::service::ready(&format!("reloaded; {rules} rules active; {templates}"));
        }
        if let (Err(errors), Some(alert)) = (reloaded, &alert) {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let text = text.join("\n");
            // The same errors again (another save of the same broken file) are not re-sent.
            if last_alert.as_deref() != Some(text.as_str()) {
                match alert_admins(&config, alert, &text).await {
                    Ok(n) => tracing::info!(admins = n, "rule errors mailed to the admins"),
                    Err(e) => tracing::warn!("cannot queue the rule errors for the admins: {e}"),
                }
                last_alert = Some(text);
            }
        } else {
            last_alert = None;
        }
    }
}

/// Queues one mail per admin with the errors; returns how many were queued.
async fn alert_admins(config: &Config, alert: &Alert, errors: &str) -> crate::store::Result<usize> {
    let admins: Vec<&str> = config
        .agent
        .iter()
        .filter(|a| a.role == crate::config::Role::Admin)
        .map(|a| a.email.as_str())
        .collect();
    let now = alert.clock.now();
    let mut tx = alert.store.begin().await?;
    for to in &admins {
        let n = NewNotification {
            ticket_id: None,
            event: "rules_refused".into(),
            channel: "email".into(),
            recipient: to.to_string(),
            automatic: true,
            message_id: None,
            in_reply_to: None,
            references: Vec::new(),
            reply_to: None,
            subject: "ticketd: new rules refused, the last good set stays active".into(),
            body: format!(
                "ticketd refused the changed rule files; it keeps running with the last good set.\n\n{errors}\n\nFix the files (`ticketd check` shows the same list); the daemon reloads on save.\n"
            ),
            html: None,
            suppressed: None,
        };
        outbox::enqueue(&mut tx, &n, now).await?;
    }
    tx.commit().await?;
    Ok(admins.len())
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
