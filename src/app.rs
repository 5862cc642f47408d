//! Wiring for `ticketd run`: opens the store, starts the sources, and stops
//! them cleanly when `shutdown` resolves (SIGTERM/SIGINT in production, a
//! future in tests).

use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::Pipeline;
use crate::notify::dispatch::Dispatcher;
use crate::notify::email::Mailer;
use crate::source::{imap, maildir};
use crate::store::Store;
use anyhow::{Context, Result};
use std::sync::Arc;
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

/// Runs the daemon until `shutdown` completes.
pub async fn run(
    config: Config,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let store = open_store(&config).await?;
    let pipeline = Arc::new(Pipeline::new(&config, store.clone(), clock)?);
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();

    {
        let (config, cancel) = (config.clone(), cancel.clone());
        let handles = crate::reload::Handles::of(&pipeline);
        let hangup = crate::reload::hangup();
        let alert = config.rules.alert_admins.then(|| crate::reload::Alert {
            store: store.clone(),
            clock: pipeline.clock.clone(),
        });
        tasks.spawn(
            async move { crate::reload::run(config, handles, (alert, hangup), cancel).await },
        );
    }
    {
        let scheduler = crate::scheduler::Scheduler::of(&pipeline, &config);
        let cancel = cancel.clone();
        tasks.spawn(async move { scheduler.run(cancel).await });
    }
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
    let dispatcher = Dispatcher {
        store: store.clone(),
        mailer: Mailer::new(&config)?,
        webhooks: crate::notify::webhook::Webhooks::new(&config)?,
        telegram: crate::notify::telegram::Telegram::new(&config)?,
        discord: crate::notify::discord::Discord::new(&config)?,
        clock: pipeline.clock.clone(),
        instance: cluster.id.clone(),
        max_age_seconds: config.notify.max_age_hours * 3600,
        // The SMTP pool bounds the mail in flight; the rest is for the chats and webhooks.
        concurrency: config.smtp.as_ref().map_or(4, |s| s.pool_size as usize) + 4,
        wake: pipeline.outbox_wake.clone(),
    };
    {
        let cancel = cancel.clone();
        tasks.spawn(async move { dispatcher.run(cancel).await });
    }
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
    if let Some(metrics) = &config.metrics {
        let listener = tokio::net::TcpListener::bind(&metrics.listen)
            .await
            .with_context(|| format!("metrics: cannot listen on {}", metrics.listen))?;
        tracing::info!(address = %listener.local_addr()?, "metrics: listening");
        let (store, clock, cancel) = (store.clone(), pipeline.clock.clone(), cancel.clone());
        tasks.spawn(async move { crate::metrics::serve(listener, store, clock, cancel).await });
    }
    {
        let (store, clock, cancel) = (store.clone(), pipeline.clock.clone(), cancel.clone());
        let kept = (config.retention.clone(), config.mail.quarantine_dir.clone());
        tasks.spawn(async move { crate::retention::run(store, clock, kept, cancel).await });
    }
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
