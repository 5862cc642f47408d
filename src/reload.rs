//! Hot reload of the rules: on a change in the rules folder (notify) and on
//! SIGHUP the whole set is read and validated again, then swapped in at once.
//! SIGHUP reloads the notification templates the same way.
//! A set with errors is refused as a whole: the errors are logged and the last
//! good set stays active.

use crate::clock::Clock;
use crate::config::Config;
use crate::notify::Notifier;
use crate::rules::{Live, RuleError, load};
use crate::settings::Settings;
use crate::store::Store;
use crate::store::outbox::{self, NewNotification};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// File events closer together than this are one change (editors write twice).
const SETTLE: Duration = Duration::from_millis(200);

/// Where refused rule sets are reported besides the log: mail to the admins
/// (`[rules] alert_admins`), through the outbox.
pub struct Alert {
    pub store: Store,
    pub clock: Clock,
}

/// What a reload swaps: the handles the running daemon reads through.
pub struct Handles {
    pub rules: Arc<Live>,
    pub settings: Arc<crate::live::Live<Settings>>,
    /// Its templates and the agents' addresses.
    pub notifier: Notifier,
    /// Agents, teams and organizations are synced into it.
    pub store: Store,
}

impl Handles {
    pub fn of(context: &crate::context::Context) -> Handles {
        Handles {
            rules: context.rules.clone(),
            settings: context.settings.clone(),
            notifier: context.notifier.clone(),
            store: context.store.clone(),
        }
    }
}

/// The SIGHUP listener, installed before the daemon says READY (a SIGHUP
/// before it is installed would end the process).
pub fn hangup() -> Option<Signal> {
    signal(SignalKind::hangup())
        .map_err(|e| tracing::warn!("cannot listen for SIGHUP: {e}"))
        .ok()
}

/// Watches the rules folder, and `hangup` when given, until `cancel`.
pub async fn run(
    mut config: Config,
    handles: Handles,
    (alert, mut hangup): (Option<Alert>, Option<Signal>),
    cancel: CancellationToken,
) {
    let mut last_alert: Option<String> = None;
    let (tx, mut changed) = tokio::sync::mpsc::channel::<()>(1);
    // What sources, database and listeners run with until a restart.
    let started = config.source.as_ref().map(|s| s.table.clone());
    let mut watched = config.rules.dir.clone();
    let mut _watcher = watch_rules(watched.as_deref(), tx.clone());
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
                tracing::info!("SIGHUP: reloading the config, rules and templates");
                true
            }
        };
        let reloaded = if signalled {
            crate::service::reloading();
            let (status, reloaded) = reload_all(&mut config, started.as_ref(), &handles).await;
            crate::service::ready(&status);
            if config.rules.dir != watched {
                watched = config.rules.dir.clone();
                _watcher = watch_rules(watched.as_deref(), tx.clone());
            }
            reloaded
        } else {
            reload(&config, &handles.rules)
        };
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

fn watch_rules(
    dir: Option<&std::path::Path>,
    tx: tokio::sync::mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
    let dir = dir?;
    crate::watch::watch_dir(dir, tx)
        .map_err(|e| {
            tracing::warn!(dir = %dir.display(), "cannot watch the rules folder (reload with SIGHUP): {e}")
        })
        .ok()
}

/// SIGHUP: the config file, then the rules and the templates, each
/// validated before it is taken. A new config is taken together with the
/// rules it validates (rules name its teams, agents and calendars): when
/// either is refused, both last good ones stay. Returns the status line and
/// the rules' outcome.
async fn reload_all(
    config: &mut Config,
    started: Option<&toml::Table>,
    handles: &Handles,
) -> (String, Result<usize, Vec<RuleError>>) {
    let mut status = vec!["reloaded".to_string()];
    let fresh = match config.source.as_ref().map(|s| Config::load(&s.path)) {
        None => None,
        Some(Ok(fresh)) if table(&fresh) == table(config) => {
            status.push("config unchanged".into());
            None
        }
        Some(Ok(fresh)) => Some(fresh),
        Some(Err(e)) => {
            tracing::error!("the changed config was refused: {e:#}; the last good config stays");
            status.push("config refused".into());
            None
        }
    };
    let reloaded = match fresh {
        Some(fresh) => match take_config(config, fresh, handles).await {
            Ok(()) => {
                status.push("config reloaded".into());
                Ok(handles.rules.current().rules.len())
            }
            Err(Refused::Rules(errors)) => {
                status.push("config and rules refused".into());
                Err(errors)
            }
            Err(Refused::Store(e)) => {
                tracing::error!(
                    "cannot sync agents, teams and organizations: {e}; the last good config stays"
                );
                status.push("config refused (database)".into());
                reload(config, &handles.rules)
            }
        },
        None => reload(config, &handles.rules),
    };
    status.push(format!(
        "{} rules active",
        handles.rules.current().rules.len()
    ));
    let notify = &config.notify;
    let templates = handles.notifier.templates();
    match templates.reload(notify.templates_dir.as_deref(), &notify.default_language) {
        Ok(()) => status.push("templates reloaded".into()),
        Err(errors) => {
            log_refused(
                &errors,
                "the new templates were refused; the last good set stays",
            );
            status.push(format!(
                "templates refused ({} errors), the last good set stays",
                errors.len()
            ));
        }
    }
    if let (Some(started), Some(now)) = (started, &config.source) {
        let restart = restart_needed(started, &now.table);
        if !restart.is_empty() {
            tracing::warn!(
                sections = %restart.join(", "),
                "these config changes take effect only after a restart"
            );
            status.push(format!("restart needed for {}", restart.join(", ")));
        }
    }
    (status.join("; "), reloaded)
}
fn table(config: &Config) -> Option<&toml::Table> {
    config.source.as_ref().map(|s| &s.table)
}

/// Why a changed config was not taken.
enum Refused {
    /// Its rules do not validate.
    Rules(Vec<RuleError>),
    /// Its agents, teams and organizations could not be written.
    Store(crate::store::Error),
}

/// Validates the rules against `fresh`, syncs its directory into the
/// database, then swaps rules, settings and the notifier's agents at once.
async fn take_config(config: &mut Config, fresh: Config, handles: &Handles) -> Result<(), Refused> {
    let set = load::load_configured(&fresh).map_err(|errors| {
        log_refused(
            &errors,
            "the changed config and its rules were refused; the last good ones stay active",
        );
        Refused::Rules(errors)
    })?;
    handles
        .store
        .sync_directory(&fresh)
        .await
        .map_err(Refused::Store)?;
    let count = set.rules.len();
    handles.rules.replace(set);
    handles.settings.replace(Settings::of(&fresh));
    handles.notifier.set_agents(&fresh);
    tracing::info!(
        rules = count,
        agents = fresh.agent.len(),
        teams = fresh.team.len(),
        "config reloaded"
    );
    *config = fresh;
    Ok(())
}

/// Config keys a running daemon takes on SIGHUP: whole sections, or some
/// keys of a section. Everything else is read once at start.
const LIVE: &[(&str, Option<&[&str]>)] = &[
    ("agent", None),
    ("team", None),
    ("organization", None),
    ("sla", None),
    ("calendar", None),
    ("rules", Some(&["dir", "calendar", "max_depth"])),
    ("notify", Some(&["templates_dir", "default_language"])),
];

/// The top-level sections of the config file whose changes need a restart
/// (the database, sources, SMTP, listeners …), sorted.
pub fn restart_needed(started: &toml::Table, new: &toml::Table) -> Vec<String> {
    let without_live = |key: &str, value: Option<&toml::Value>| -> Option<toml::Value> {
        let mut value = value?.clone();
        match LIVE.iter().find(|(k, _)| *k == key) {
            Some((_, None)) => return None,
            Some((_, Some(keys))) => {
                if let Some(table) = value.as_table_mut() {
                    table.retain(|k, _| !keys.contains(&k));
                }
            }
            None => {}
        }
        Some(value)
    };
    let mut keys: Vec<&String> = new.keys().collect();
    keys.extend(started.keys().filter(|k| !new.contains_key(*k)));
    let mut changed: Vec<String> = keys
        .into_iter()
        .filter(|k| without_live(k, started.get(*k)) != without_live(k, new.get(*k)))
        .map(|k| k.to_string())
        .collect();
    changed.sort();
    changed
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
            log_refused(
                &errors,
                "the new rules were refused; the last good rule set stays active",
            );
            Err(errors)
        }
    }
}

/// Each error on its own line, then what was kept.
fn log_refused(errors: &[impl std::fmt::Display], kept: &str) {
    for e in errors {
        tracing::error!("{e}");
    }
    tracing::error!(errors = errors.len(), "{kept}");
}

#[cfg(test)]
mod tests {
    use super::restart_needed;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn only_sections_read_at_start_need_a_restart() {
        let started = table(
            "[database]\nurl = \"sqlite://a.db\"\n[rules]\ndir = \"r\"\ntime_zone = \"UTC\"\n\
             [notify]\nfrom = \"a@x\"\ntemplates_dir = \"t\"\n[[agent]]\nemail = \"a@x\"\n",
        );
        // Agents, the rules folder and the templates change live.
        let live = table(
            "[database]\nurl = \"sqlite://a.db\"\n[rules]\ndir = \"r2\"\ntime_zone = \"UTC\"\n\
             [notify]\nfrom = \"a@x\"\ntemplates_dir = \"t2\"\n[[agent]]\nemail = \"b@x\"\n",
        );
        assert!(restart_needed(&started, &live).is_empty());
        // The database, the cron time zone, the sender, a new mailbox and a
        // removed section do not.
        let restart = table(
            "[database]\nurl = \"sqlite://b.db\"\n[rules]\ndir = \"r\"\ntime_zone = \"Europe/Warsaw\"\n\
             [[mailbox]]\nname = \"m\"\n",
        );
        assert_eq!(
            restart_needed(&started, &restart),
            ["database", "mailbox", "notify", "rules"]
        );
    }
}
