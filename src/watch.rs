//! Folder watching (notify) for the Maildir source and the rules reload:
//! a wake-up on every change to the folder's entries. Reads are not changes,
//! so a watcher does not wake itself by reading what it watches.

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::Path;
use tokio::sync::mpsc::Sender;

/// Sends `()` on `wake` (dropping it when one is already waiting) whenever an
/// entry of `dir` is created, modified, renamed or removed.
pub fn watch_dir(dir: &Path, wake: Sender<()>) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let changed = match event {
            Ok(e) => !matches!(e.kind, EventKind::Access(_)),
            // Overflow or a watch error: look again rather than miss a change.
            Err(_) => true,
        };
        if changed {
            let _ = wake.try_send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Like [`watch_dir`], and also reports by name the files that are complete:
/// closed after writing (`cp`, an MTA that writes in place) or moved in (the
/// Maildir way, `tmp/` → `new/`). They go into `finished`.
pub fn watch_arrivals(
    dir: &Path,
    wake: Sender<()>,
    finished: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
) -> notify::Result<RecommendedWatcher> {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let Ok(e) = event else {
            let _ = wake.try_send(());
            return;
        };
        let complete = matches!(
            e.kind,
            EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
        );
        if complete && let Ok(mut names) = finished.lock() {
            // A rename reports (from, to): the last path is the new name.
            if let Some(name) = e.paths.last().and_then(|p| p.file_name()?.to_str()) {
                names.insert(name.to_string());
            }
        }
        if complete || !matches!(e.kind, EventKind::Access(_)) {
            let _ = wake.try_send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
