//! The fault matrix, Maildir intake: writers that do not rename into `new/`
//! (`cp`, a script with `>`), writers that pause, and files that stay empty
//! (issue 21). Real files and the real inotify watcher under `app::run`.

mod common;

use common::{Env, fixture, with_message_id};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    for _ in 0..secs * 20 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Writes `raw` into `path` the way `cp` does: create (empty), then the bytes
/// in pieces with pauses, then close.
fn slow_copy(path: &Path, raw: &[u8], pause: Duration) {
    let mut file = std::fs::File::create(path).unwrap();
    std::thread::sleep(pause);
    let (head, tail) = raw.split_at(raw.len() / 2);
    file.write_all(head).unwrap();
    file.flush().unwrap();
    std::thread::sleep(pause);
    file.write_all(tail).unwrap();
}

// 21 messages copied into new/ by a non-atomic writer, and one file that stays
// empty. Failed on e4d9901: files seen while empty were quarantined as
// "empty input" and moved to cur/ (9 of 21 lost).
on_both_backends!(non_atomic_writers_lose_nothing, |env: Env| async move {
    let root = env.dir.path().join("Maildir");
    ticketd::source::maildir::ensure_layout(&root).unwrap();
    let mut config = env.config.clone();
    config.maildir = vec![ticketd::config::Maildir {
        name: "support".into(),
        path: root.clone(),
        rescan_seconds: 3600,
        empty_seconds: 3,
    }];
    let daemon = common::App::start(config);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let base = fixture("gmail-new-ticket-pl-utf8.eml");
    let writers: Vec<_> = (0..21)
        .map(|i| {
            let raw = with_message_id(&base, &format!("cp-{i}@firma.pl"));
            let path = root.join(format!("new/17650{i:02}.cp.host"));
            std::thread::spawn(move || slow_copy(&path, &raw, Duration::from_millis(300)))
        })
        .collect();
    // A writer that opened the file and has not written yet.
    let empty = root.join("new/1765099.empty.host");
    std::fs::File::create(&empty).unwrap();
    for w in writers {
        w.join().unwrap();
    }
    wait_until("the copies", 20, || count(&root.join("cur")) == 21).await;
    // The empty file is still waiting: never quarantined on first sight.
    assert!(empty.exists());
    wait_until("the empty file's time", 20, || !empty.exists()).await;
    daemon.stop().await;

    assert_eq!(env.count("SELECT COUNT(*) FROM tickets").await, 21);
    let outcomes: Vec<(String, String)> =
        sqlx::query_as("SELECT outcome, source_key FROM ingest_journal ORDER BY source_key")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    let quarantined: Vec<&str> = outcomes
        .iter()
        .filter(|(o, _)| o == "quarantined")
        .map(|(_, k)| k.as_str())
        .collect();
    assert_eq!(quarantined, ["1765099.empty.host"]);
    assert_eq!(outcomes.len(), 22, "{outcomes:?}");
    env.finish().await;
});
