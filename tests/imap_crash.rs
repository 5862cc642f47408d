//! Crash loop: `ticketd run` is killed with SIGKILL at least ten times while it
//! drains 1,000 messages from Dovecot; after the last restart every message
//! is stored exactly once and acknowledged on the server.

mod common;
#[path = "common/dovecot.rs"]
mod dovecot;
#[path = "common/tls.rs"]
mod tls;

use common::Daemon;
use dovecot::{Dovecot, append, flags};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ticketd::store::Store;

const MESSAGES: usize = 1000;

fn message(i: usize) -> Vec<u8> {
    format!(
        "From: Klient {i} <klient{i}@firma.pl>\r\nTo: support@example.com\r\nSubject: Zgłoszenie {i}\r\nMessage-ID: <crash-{i}@firma.pl>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTreść zgłoszenia numer {i}.\r\n"
    )
    .into_bytes()
}

fn spawn(dir: &std::path::Path) -> Daemon {
    Daemon::spawn(dir, Stdio::null())
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_exactly_once_across_ten_sigkills() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    let all: Vec<Vec<u8>> = (0..MESSAGES).map(message).collect();
    append(&mut client, "INBOX", &all).await;

    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path());
    let config = common::base_config(
        dir.path(),
        &dovecot.mailbox_toml("support", "none", "backfill = \"all\"\nbatch_size = 3"),
    ) + "\n"
        + &db.toml();
    std::fs::write(dir.path().join("ticketd.toml"), config).unwrap();
    // Create the schema first so the test can watch progress from the start.
    let status = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .current_dir(dir.path())
        .args(["--config", "ticketd.toml", "migrate"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let store = Store::connect(&db.url, 2).await.unwrap();

    let mut kills_mid_ingest = 0;
    let mut delay_ms = 60u64;
    while kills_mid_ingest < 10 {
        let mut child = spawn(dir.path());
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let done_before = count(&store, "SELECT COUNT(*) FROM tickets").await;
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        assert!(
            (done_before as usize) < MESSAGES,
            "the ingest finished before ten kills; only {kills_mid_ingest} landed"
        );
        kills_mid_ingest += 1;
        delay_ms = 40 + (delay_ms * 7919) % 100;
    }

    let mut child = spawn(dir.path());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = flags(&mut client, "INBOX")
            .await
            .iter()
            .filter(|(_, f)| f.iter().any(|x| x == "Seen"))
            .count();
        if seen == MESSAGES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {seen} of {MESSAGES} acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(child.0.wait().unwrap().success());

    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM tickets").await,
        MESSAGES as i64
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM comments").await,
        MESSAGES as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM ingest_journal WHERE outcome = 'created'"
        )
        .await,
        MESSAGES as i64
    );
    assert_eq!(
        count(&store, "SELECT COUNT(DISTINCT subject) FROM tickets").await,
        MESSAGES as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM ingest_journal WHERE outcome = 'quarantined'"
        )
        .await,
        0
    );
    store.close().await;
}
