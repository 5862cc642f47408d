//! Wiring for `ticketd run`: opens the store, starts the sources, and stops
//! them cleanly when `shutdown` resolves (SIGTERM/SIGINT in production, a
//! future in tests).

use crate::clock::Clock;
use crate::config::Config;
use crate::context::Context;
use crate::ingest::Pipeline;
use crate::notify::Notifier;
use crate::notify::dispatch::Dispatcher;
use crate::notify::email::Mailer;
use crate::notify::templates::Templates;
use crate::settings::Settings;
use crate::source::{imap, maildir};
use crate::store::Store;
use anyhow::{Context as _, Result};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connects, migrates and syncs agents/teams/organizations from the config.
pub async fn open_store(config: &Config) -> Result<Store> {
    let store = Store::connect(&config.database.url, config.database.max_connections)
        .await
        .context("cannot open the database")?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    store
        .sync_directory(config)
        .await
        .context("cannot sync agents, teams and organizations from the config")?;
    Ok(store)
}

/// The application context: reads the rules folder, the templates and the
/// reply-token key, once.
pub fn context(config: &Config, store: Store, clock: Clock) -> Result<Context> {
    let rules = crate::rules::load::load_configured(config).map_err(rule_errors)?;
    let templates = Templates::load(
        config.notify.templates_dir.as_deref(),
        &config.notify.default_language,
    )
    .map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(lines.join("\n"))
    })?;
    let token_key = config.reply_token_key()?;
    Ok(Context {
        notifier: Notifier::new(config, templates, token_key.clone())?,
        store,
        clock,
        rules: Arc::new(crate::rules::Live::new(rules)),
        settings: Arc::new(crate::live::Live::new(Settings::of(config))),
        token_key,
        sla_wake: Arc::new(Notify::new()),
        outbox_wake: Arc::new(Notify::new()),
    })
}

/// Every rule problem, one per line.
pub fn rule_errors(errors: Vec<crate::rules::RuleError>) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("{} rule error(s):\n{}", errors.len(), lines.join("\n"))
}

/// Runs the daemon until `shutdown` completes.
pub async fn run(
    config: Config,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let store = open_store(&config).await?;
    let context = context(&config, store.clone(), clock)?;
    let pipeline = Arc::new(Pipeline::new(&config, &context));
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();

    spawn_reload_and_scheduler(&tasks, &config, &context, &cancel);
    // Each source runs only while this instance holds its lease, so
    // instances sharing a database never work one source twice.
    let telegram = crate::source::telegram::TelegramSource::new(&config)?;
    let discord = crate::source::discord::DiscordSource::new(&config)?;
    let leases: Vec<String> = (config.maildir.iter())
        .map(|md| maildir_lease(&md.name))
        .chain(config.mailbox.iter().map(|mb| imap_lease(&mb.name)))
        .chain(telegram.as_ref().map(|_| "telegram".to_string()))
        .chain(discord.as_ref().map(|_| "discord".to_string()))
        .collect();
    let cluster =
        crate::cluster::Cluster::new(store.clone(), config.database.lease_seconds, leases);
    cluster
        .announce(&pipeline.rules.current().digest, &pipeline.clock)
        .await;
    let dispatcher = dispatcher(&config, &context, cluster.id.clone())?;
    {
        let cancel = cancel.clone();
        tasks.spawn(async move { dispatcher.run(cancel).await });
    }
    let chats = (telegram, discord);
    spawn_sources(&tasks, (&config, &pipeline, &cluster), chats, &cancel);
    {
        let (rules, clock, cancel) = (
            pipeline.rules.clone(),
            pipeline.clock.clone(),
            cancel.clone(),
        );
        let cluster = cluster.clone();
        tasks.spawn(async move {
            cluster
                .heartbeat(move || rules.current().digest.clone(), clock, cancel)
                .await
        });
    }
    spawn_upkeep(&tasks, &config, &context, &cancel).await?;
    let summary = summary(&config);
    {
        let (store, cancel, summary) = (store.clone(), cancel.clone(), summary.clone());
        tasks.spawn(
            async move { crate::service::watch(store, move || summary.clone(), cancel).await },
        );
    }
    tasks.close();
    tracing::info!(
        maildirs = config.maildir.len(),
        mailboxes = config.mailbox.len(),
        rules = pipeline.rules.current().rules.len(),
        "ticketd running"
    );
    crate::service::ready(&summary);

    shutdown.await;
    crate::service::stopping();
    tracing::info!("stopping: finishing messages in flight");
    cancel.cancel();
    let deadline = std::time::Duration::from_secs(config.service.stop_timeout_seconds);
    if tokio::time::timeout(deadline, tasks.wait()).await.is_err() {
        tracing::warn!(
            "stopping: tasks still busy after {} s; exiting (uncommitted work is retried on the next start)",
            deadline.as_secs()
        );
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Rule reloads (the rules folder, SIGHUP) and the SLA and rule scheduler.
fn spawn_reload_and_scheduler(
    tasks: &TaskTracker,
    config: &Config,
    context: &Context,
    cancel: &CancellationToken,
) {
    {
        let (config, cancel) = (config.clone(), cancel.clone());
        let handles = crate::reload::Handles::of(context);
        let hangup = crate::reload::hangup();
        let alert = config.rules.alert_admins.then(|| crate::reload::Alert {
            store: context.store.clone(),
            clock: context.clock.clone(),
        });
        tasks.spawn(
            async move { crate::reload::run(config, handles, (alert, hangup), cancel).await },
        );
    }
    {
        let scheduler = crate::scheduler::Scheduler::of(context, config);
        let cancel = cancel.clone();
        tasks.spawn(async move { scheduler.run(cancel).await });
    }
}

/// The outbox dispatcher: SMTP, .eml files, webhooks and the chats.
fn dispatcher(config: &Config, context: &Context, instance: String) -> Result<Dispatcher> {
    Ok(Dispatcher {
        store: context.store.clone(),
        mailer: Mailer::new(config)?,
        webhooks: crate::notify::webhook::Webhooks::new(config)?,
        telegram: crate::notify::telegram::Telegram::new(config)?,
        discord: crate::notify::discord::Discord::new(config)?,
        clock: context.clock.clone(),
        instance,
        max_age_seconds: config.notify.max_age_hours * 3600,
        // The SMTP pool bounds the mail in flight; the rest is for the chats and webhooks.
        concurrency: config.smtp.as_ref().map_or(4, |s| s.pool_size as usize) + 4,
        wake: context.outbox_wake.clone(),
    })
}

type Chats = (
    Option<crate::source::telegram::TelegramSource>,
    Option<crate::source::discord::DiscordSource>,
);

/// A task per source, each worked only while this instance holds its lease.
fn spawn_sources(
    tasks: &TaskTracker,
    (config, pipeline, cluster): (&Config, &Arc<Pipeline>, &crate::cluster::Cluster),
    (telegram, discord): Chats,
    cancel: &CancellationToken,
) {
    for md in config.maildir.clone() {
        let (pipeline, cancel, cluster) = (pipeline.clone(), cancel.clone(), cluster.clone());
        tasks.spawn(async move {
            let (pipeline, md) = (&pipeline, &md);
            let lease = maildir_lease(&md.name);
            cluster
                .hold(&lease, cancel, |cancel| async move {
                    if let Err(e) = maildir::run(pipeline, md, cancel).await {
                        tracing::error!(maildir = %md.name, "maildir source stopped: {e:#}");
                    }
                })
                .await
        });
    }
    for mb in config.mailbox.clone() {
        let (pipeline, cancel, cluster) = (pipeline.clone(), cancel.clone(), cluster.clone());
        tasks.spawn(async move {
            let (pipeline, mb) = (&pipeline, &mb);
            let lease = imap_lease(&mb.name);
            cluster
                .hold(&lease, cancel, |cancel| imap::run(pipeline, mb, cancel))
                .await
        });
    }
    if let Some(source) = telegram {
        let (pipeline, cancel, cluster) = (pipeline.clone(), cancel.clone(), cluster.clone());
        tasks.spawn(async move {
            let (pipeline, source) = (&pipeline, &source);
            cluster
                .hold("telegram", cancel, |cancel| source.run(pipeline, cancel))
                .await
        });
    }
    if let Some(source) = discord {
        let (pipeline, cancel, cluster) = (pipeline.clone(), cancel.clone(), cluster.clone());
        tasks.spawn(async move {
            let (pipeline, source) = (&pipeline, &source);
            cluster
                .hold("discord", cancel, |cancel| source.run(pipeline, cancel))
                .await
        });
    }
}

/// Metrics, retention and the systemd watchdog.
async fn spawn_upkeep(
    tasks: &TaskTracker,
    config: &Config,
    context: &Context,
    cancel: &CancellationToken,
) -> Result<()> {
    let (store, clock) = (&context.store, &context.clock);
    if let Some(metrics) = &config.metrics {
        let listener = tokio::net::TcpListener::bind(&metrics.listen)
            .await
            .with_context(|| format!("metrics: cannot listen on {}", metrics.listen))?;
        tracing::info!(address = %listener.local_addr()?, "metrics: listening");
        let (store, clock, cancel) = (store.clone(), clock.clone(), cancel.clone());
        tasks.spawn(async move { crate::metrics::serve(listener, store, clock, cancel).await });
    }
    {
        let (store, clock, cancel) = (store.clone(), clock.clone(), cancel.clone());
        let kept = (config.retention.clone(), config.mail.quarantine_dir.clone());
        tasks.spawn(async move { crate::retention::run(store, clock, kept, cancel).await });
    }
    {
        let (store, clock, cancel) = (store.clone(), clock.clone(), cancel.clone());
        let kept = (config.retention.clone(), config.mail.quarantine_dir.clone());
        tasks.spawn(async move { crate::retention::run(store, clock, kept, cancel).await });
    }
    Ok(())
}

/// The one-line status systemd shows: what the daemon watches.
fn summary(config: &Config) -> String {
    let mut parts = vec![
        format!("{} mailboxes", config.mailbox.len()),
        format!("{} maildirs", config.maildir.len()),
    ];
    if config.telegram.is_some() {
        parts.push("telegram".into());
    }
    if config.discord.is_some() {
        parts.push("discord".into());
    }
    format!("running: {}", parts.join(", "))
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    // A second signal while stopping: exit at once.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
}

/// The lease of a Maildir source.
fn maildir_lease(name: &str) -> String {
    format!("maildir:{name}")
}

/// The lease of an IMAP mailbox.
fn imap_lease(name: &str) -> String {
    format!("imap:{name}")
}
