//! A watched Maildir: files in `new/` are ingested in batches and moved to
//! `cur/` (flagged seen) only after the batch's commit. A crash in between
//! leaves them in `new/`; the next pass finds them again and the Message-ID
//! check turns them into duplicates, so each is stored exactly once.
//!
//! A file is taken only once it is complete: moved in (`tmp/` → `new/`, at
//! once) or closed after writing (`cp`), as the watcher reports, or else
//! unchanged for [`SETTLE`]. An empty file is a writer that has not written
//! yet: it waits, and is quarantined only when it stays empty for the
//! Maildir's `empty_seconds`.

use super::{BATCH_BYTES, read_bounded};
use crate::config;
use crate::ingest::{Inbound, Pipeline};
use crate::store;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 200;
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a file the watcher did not see finished must stay unchanged
/// before it counts as complete.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Names in `new/` the watcher saw closed after writing or moved in.
pub type Finished = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// Whether a file in `new/` can be taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Take,
    /// Still being written, or empty: look again shortly.
    Wait,
}

/// Pure: a file of `size` bytes, last modified `age` ago, that the watcher
/// saw `finished` (closed after writing, or moved in) or not.
pub fn readiness(size: u64, age: Duration, finished: bool, empty_after: Duration) -> Readiness {
    let complete = match size {
        0 => age >= empty_after,
        _ => finished || age >= SETTLE,
    };
    match complete {
        true => Readiness::Take,
        false => Readiness::Wait,
    }
}

/// What a pass did: messages acknowledged, and whether files wait to settle.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub acknowledged: usize,
    pub waiting: bool,
}

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
    let finished = Finished::default();
    let _watcher = crate::watch::watch_arrivals(&maildir.path.join("new"), wake_tx, {
        let finished = finished.clone();
        move |name| {
            if let Ok(mut names) = finished.lock() {
                names.insert(name.to_string());
            }
        }
    })
    .with_context(|| format!("cannot watch {}", maildir.path.display()))?;
    tracing::info!(%source, path = %maildir.path.display(), "watching maildir");

    let rescan = Duration::from_secs(maildir.rescan_seconds.max(1));
    let empty_after = Duration::from_secs(maildir.empty_seconds);
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut next = rescan;
        match drain(
            pipeline,
            &source,
            &maildir.path,
            (&finished, empty_after),
            &shutdown,
        )
        .await
        {
            Ok(pass) => {
                backoff = Duration::from_secs(1);
                if pass.acknowledged > 0 {
                    tracing::info!(%source, count = pass.acknowledged, "ingested");
                }
                if pass.waiting {
                    next = next.min(SETTLE / 4);
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
            _ = tokio::time::sleep(next) => {}
        }
    }
}

/// Ingests everything complete in `new/`, batch by batch (at most [`BATCH`]
/// messages and about [`BATCH_BYTES`] of raw bytes each).
pub async fn drain(
    pipeline: &Pipeline,
    source: &str,
    root: &Path,
    (finished, empty_after): (&Finished, Duration),
    shutdown: &CancellationToken,
) -> store::Result<Pass> {
    let mut pass = Pass::default();
    let mut seen_waiting = std::collections::HashSet::new();
    loop {
        let names = list_new(root).map_err(io_unavailable)?;
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| !seen_waiting.contains(n))
            .collect();
        if names.is_empty() || shutdown.is_cancelled() {
            pass.waiting = !seen_waiting.is_empty();
            return Ok(pass);
        }
        let mut rest = names.as_slice();
        while !rest.is_empty() {
            let (batch, taken) = read_batch(
                pipeline,
                source,
                root,
                rest,
                (finished, empty_after),
                &mut seen_waiting,
            )?;
            rest = &rest[taken..];
            if !batch.is_empty() {
                pipeline.ingest(&batch).await?;
            }
            for m in &batch {
                acknowledge(root, &m.source_key).map_err(io_unavailable)?;
            }
            if let Ok(mut set) = finished.lock() {
                for m in &batch {
                    set.remove(&m.source_key);
                }
            }
            pass.acknowledged += batch.len();
            if shutdown.is_cancelled() {
                return Ok(pass);
            }
        }
    }
}

/// Reads the next batch from `names`: the messages (each keyed by its file
/// name, to acknowledge after the commit) and how many names it went
/// through. Files not complete yet go to `waiting`.
fn read_batch(
    pipeline: &Pipeline,
    source: &str,
    root: &Path,
    names: &[String],
    (finished, empty_after): (&Finished, Duration),
    waiting: &mut std::collections::HashSet<String>,
) -> store::Result<(Vec<Inbound>, usize)> {
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    let mut taken = 0;
    for name in names {
        if batch.len() >= BATCH || (bytes >= BATCH_BYTES && !batch.is_empty()) {
            break;
        }
        taken += 1;
        let path = root.join("new").join(name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_unavailable(e)),
        };
        let meta = file.metadata().map_err(io_unavailable)?;
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        let done = finished.lock().is_ok_and(|set| set.contains(name));
        if readiness(meta.len(), age, done, empty_after) == Readiness::Wait {
            waiting.insert(name.clone());
            continue;
        }
        bytes += meta.len().min(pipeline.max_message_bytes);
        let received = read_bounded(file, pipeline.max_message_bytes, pipeline.quarantine_dir())
            .map_err(io_unavailable)?;
        batch.push(received.into_inbound(source, name.clone(), pipeline.max_message_bytes));
    }
    Ok((batch, taken))
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_file_is_taken_once_complete() {
        let ms = Duration::from_millis;
        // Moved in or closed after writing: at once.
        assert_eq!(readiness(10, ms(1), true, MINUTE), Readiness::Take);
        // Still fresh, no event: wait until it has been still for SETTLE.
        assert_eq!(readiness(10, ms(10), false, MINUTE), Readiness::Wait);
        assert_eq!(readiness(10, SETTLE, false, MINUTE), Readiness::Take);
        // Empty: a writer that has not written yet, even when closed.
        assert_eq!(readiness(0, ms(1), true, MINUTE), Readiness::Wait);
        assert_eq!(
            readiness(0, Duration::from_secs(59), false, MINUTE),
            Readiness::Wait
        );
        assert_eq!(readiness(0, MINUTE, false, MINUTE), Readiness::Take);
    }
}
