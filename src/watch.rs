//! Folder watching (notify) for the Maildir source and the rules reload:
//! a wake-up on every change to the folder's entries. Reads are not changes,
//! so a watcher does not wake itself by reading what it watches.

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::Path;
use tokio::sync::mpsc::Sender;

/// Sends `()` on `wake` (dropping it when one is already waiting) whenever an
/// entry of `dir` is created, modified, renamed, removed or closed after
/// writing.
pub fn watch_dir(dir: &Path, wake: Sender<()>) -> notify::Result<RecommendedWatcher> {
    watch(dir, wake, |_| {})
}

/// Like [`watch_dir`], and also tells `complete` the name of each file that
/// is whole: closed after writing (`cp`, an MTA that writes in place) or
/// moved in (the Maildir way, `tmp/` → `new/`).
pub fn watch_arrivals(
    dir: &Path,
    wake: Sender<()>,
    complete: impl Fn(&str) + Send + 'static,
) -> notify::Result<RecommendedWatcher> {
    watch(dir, wake, complete)
}

fn watch(
    dir: &Path,
    wake: Sender<()>,
    complete: impl Fn(&str) + Send + 'static,
) -> notify::Result<RecommendedWatcher> {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        // Overflow or a watch error: look again rather than miss a change.
        let Ok(e) = event else {
            let _ = wake.try_send(());
            return;
        };
        let whole = matches!(
            e.kind,
            EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
        );
        // A rename reports (from, to): the last path is the new name.
        if whole && let Some(name) = e.paths.last().and_then(|p| p.file_name()?.to_str()) {
            complete(name);
        }
        if whole || !matches!(e.kind, EventKind::Access(_)) {
            let _ = wake.try_send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
