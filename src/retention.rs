//! Retention: the ingest journal and the raw copies in the quarantine folder
//! are kept for `[retention]` days (forever when unset), pruned hourly.
//! Tickets, comments and attachments are never pruned here.

use crate::clock::Clock;
use crate::config::Retention;
use crate::store::Store;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(3600);

/// What one pruning removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub journal_rows: u64,
    pub quarantined_files: u64,
}

/// Prunes once: journal rows older than `journal_days`, quarantine files
/// last changed more than `quarantine_days` ago.
pub async fn prune(
    store: &Store,
    retention: &Retention,
    quarantine_dir: &Path,
    now: i64,
) -> anyhow::Result<Pruned> {
    let mut pruned = Pruned::default();
    if let Some(days) = retention.journal_days {
        pruned.journal_rows = store.prune_journal(now - i64::from(days) * 86_400).await?;
    }
    if let Some(days) = retention.quarantine_days {
        let cutoff = SystemTime::now() - Duration::from_secs(u64::from(days) * 86_400);
        pruned.quarantined_files = prune_files(quarantine_dir, cutoff)?;
    }
    Ok(pruned)
}

/// Removes the files under `dir` (one level of subfolders, as the
/// content-addressed layout has) last modified before `cutoff`.
fn prune_files(dir: &Path, cutoff: SystemTime) -> std::io::Result<u64> {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            removed += prune_files(&path, cutoff)?;
        } else if meta.modified()? < cutoff {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Prunes hourly until `cancel`.
pub async fn run(
    store: Store,
    clock: Clock,
    (retention, quarantine_dir): (Retention, std::path::PathBuf),
    cancel: CancellationToken,
) {
    if retention.journal_days.is_none() && retention.quarantine_days.is_none() {
        return;
    }
    loop {
        match prune(&store, &retention, &quarantine_dir, clock.now()).await {
            Ok(p) if p != Pruned::default() => tracing::info!(
                journal_rows = p.journal_rows,
                quarantined_files = p.quarantined_files,
                "retention: pruned"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention: {e:#}"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
