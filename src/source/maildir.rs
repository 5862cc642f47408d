//! A watched Maildir: files in `new/` are ingested in batches and moved to
//! `cur/` (flagged seen) only after the batch's commit. A crash in between
//! leaves them in `new/`; the next pass finds them again and the Message-ID
//! check turns them into duplicates, so each is stored exactly once.

use super::{Received, read_bounded, too_large, too_large_note};
use crate::config;
use crate::ingest::{Inbound, Pipeline};
use crate::store;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 200;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Creates `new/`, `cur/` and `tmp/` if missing.
pub fn ensure_layout(root: &Path) -> std::io::Result<()> {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    Ok(())
}

/// Watches one Maildir until `shutdown` is cancelled. A batch in flight is
/// finished (committed and acknowledged) before it returns.
pub async fn run(
    pipeline: &Pipeline,
    maildir: &config::Maildir,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let source = format!("maildir:{}", maildir.name);
    ensure_layout(&maildir.path)
        .with_context(|| format!("cannot create maildir {}", maildir.path.display()))?;
    let (wake_tx, mut wake_rx) = tokio::sync::mpsc::channel::<()>(1);
    let _watcher = crate::watch::watch_dir(&maildir.path.join("new"), wake_tx)
        .with_context(|| format!("cannot watch {}", maildir.path.display()))?;
    tracing::info!(%source, path = %maildir.path.display(), "watching maildir");

    let rescan = Duration::from_secs(maildir.rescan_seconds.max(1));
    let mut backoff = Duration::from_secs(1);
    loop {
        match drain(pipeline, &source, &maildir.path, &shutdown).await {
            Ok(count) => {
                backoff = Duration::from_secs(1);
                if count > 0 {
                    tracing::info!(%source, count, "ingested");
                }
            }
            Err(e) => {
                tracing::warn!(%source, error = %e, retry_in = ?backoff, "maildir pass failed; messages stay in new/");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = wake_rx.recv() => {}
            _ = tokio::time::sleep(rescan) => {}
        }
    }
}

/// Ingests everything in `new/`, batch by batch. Returns how many messages were
/// acknowledged.
pub async fn drain(
    pipeline: &Pipeline,
    source: &str,
    root: &Path,
    shutdown: &CancellationToken,
) -> store::Result<usize> {
    let mut done = 0;
    loop {
        let names = list_new(root).map_err(io_unavailable)?;
        if names.is_empty() || shutdown.is_cancelled() {
            return Ok(done);
        }
        for chunk in names.chunks(BATCH) {
            let mut batch = Vec::with_capacity(chunk.len());
            let mut acked = Vec::with_capacity(chunk.len());
            for name in chunk {
                let path = root.join("new").join(name);
                let file = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_unavailable(e)),
                };
                match read_bounded(file, pipeline.max_message_bytes, pipeline.quarantine_dir())
                    .map_err(io_unavailable)?
                {
                    Received::Whole(raw) => {
                        batch.push(Inbound::new(source.to_string(), name.clone(), raw));
                        acked.push(name.clone());
                    }
                    Received::TooLarge {
                        sha256,
                        size,
                        header,
                    } => {
                        let note = too_large_note(size, pipeline.max_message_bytes, &sha256);
                        batch.push(too_large(source, name.clone(), &header, size, note));
                        acked.push(name.clone());
                    }
                }
            }
            if !batch.is_empty() {
                pipeline.ingest(&batch).await?;
            }
            for name in &acked {
                acknowledge(root, name).map_err(io_unavailable)?;
            }
            done += acked.len();
            if shutdown.is_cancelled() {
                return Ok(done);
            }
        }
    }
}

/// File names in `new/`, oldest name first (Maildir names start with a time).
fn list_new(root: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("new"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Moves a message from `new/` to `cur/`, flagged seen.
fn acknowledge(root: &Path, name: &str) -> std::io::Result<()> {
    let base = name.split(":2,").next().unwrap_or(name);
    let target: PathBuf = root.join("cur").join(format!("{base}:2,S"));
    std::fs::rename(root.join("new").join(name), target)
}

fn io_unavailable(e: std::io::Error) -> store::Error {
    store::Error::Unavailable(format!("maildir: {e}"))
}
