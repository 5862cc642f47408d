//! The Maildir source under `app::run`: files move from new/ to cur/ only after
//! their commit, and a file whose message was already stored is only acknowledged.

mod common;

use common::{Env, fixture};
use std::path::Path;
use std::time::Duration;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

on_both_backends!(
    maildir_messages_are_acknowledged_after_commit,
    |env: Env| async move {
        let root = env.dir.path().join("Maildir");
        ticketd::source::maildir::ensure_layout(&root).unwrap();
        // Already in new/ before start: a message, garbage, and one stored earlier
        // (as after a crash between commit and rename).
        std::fs::write(
            root.join("new/1000.a.host"),
            fixture("gmail-new-ticket-pl-utf8.eml"),
        )
        .unwrap();
        std::fs::write(root.join("new/1001.b.host"), b"\x00\x01 not mail").unwrap();
        env.ingest_as(
            "maildir:support",
            "earlier",
            &fixture("iso-8859-2-qp-subject.eml"),
        )
        .await;
        std::fs::write(
            root.join("new/1002.c.host"),
            fixture("iso-8859-2-qp-subject.eml"),
        )
        .unwrap();

        let mut config = env.config.clone();
        config.maildir = vec![ticketd::config::Maildir {
            name: "support".into(),
            path: root.clone(),
            rescan_seconds: 3600,
            empty_seconds: 60,
        }];
        let daemon = common::App::start(config);

        wait_until("the first pass", || names(&root.join("new")).is_empty()).await;
        assert_eq!(
            names(&root.join("cur")),
            ["1000.a.host:2,S", "1001.b.host:2,S", "1002.c.host:2,S"]
        );

        // A message delivered while running is picked up by the file watcher.
        std::fs::write(
            root.join("tmp/1003.d.host"),
            fixture("gmail-quoted-reply.eml"),
        )
        .unwrap();
        std::fs::rename(root.join("tmp/1003.d.host"), root.join("new/1003.d.host")).unwrap();
        wait_until("the watched message", || {
            names(&root.join("cur")).len() == 4
        })
        .await;

        daemon.stop().await;

        let outcome = |key: &'static str| {
            let store = env.store.clone();
            async move {
                store.journal_for("maildir:support", key).await.unwrap()[0]
                    .0
                    .clone()
            }
        };
        assert_eq!(outcome("1000.a.host").await, "created");
        assert_eq!(outcome("1001.b.host").await, "quarantined");
        assert_eq!(outcome("1002.c.host").await, "duplicate");
        assert_eq!(outcome("1003.d.host").await, "comment");
        assert_eq!(env.show("TKT-2026-0002").await.comments.len(), 2);
        env.finish().await;
    }
);

on_both_backends!(
    maildir_keeps_messages_while_the_store_is_down,
    |env: Env| async move {
        let root = env.dir.path().join("Maildir");
        ticketd::source::maildir::ensure_layout(&root).unwrap();
        std::fs::write(
            root.join("new/2000.a.host"),
            fixture("gmail-new-ticket-pl-utf8.eml"),
        )
        .unwrap();
        env.store.close().await;
        let cancel = tokio_util::sync::CancellationToken::new();
        let finished = ticketd::source::maildir::Finished::default();
        finished.lock().unwrap().insert("2000.a.host".into());
        let err = ticketd::source::maildir::drain(
            &env.pipeline,
            "maildir:x",
            &root,
            (&finished, Duration::from_secs(60)),
            &cancel,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ticketd::store::Error::Unavailable(_)),
            "{err}"
        );
        assert_eq!(names(&root.join("new")), ["2000.a.host"]);
        assert!(names(&root.join("cur")).is_empty());
        env.finish().await;
    }
);
