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
