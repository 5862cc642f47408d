//! Retention prunes the ingest journal and old quarantine files, and
//! nothing else.

#[macro_use]
mod common;

use std::time::{Duration, SystemTime};
use ticketd::config::Retention;
use ticketd::retention::{Pruned, prune};
use ticketd::store::Backend;

async fn old_journal_rows_and_quarantine_files_go(backend: Backend) {
    let env = common::Env::new(backend).await;
    let number = env
        .ingest(&common::fixture("gmail-new-ticket-pl-utf8.eml"))
        .await
        .ticket
        .unwrap();
    let quarantine = &env.config.mail.quarantine_dir;
    std::fs::create_dir_all(quarantine.join("ab")).unwrap();
    let old = quarantine.join("ab/old");
    std::fs::write(&old, b"raw").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(40 * 86_400))
        .unwrap();
    std::fs::write(quarantine.join("ab/new"), b"raw").unwrap();
    env.clock.advance(31 * 86_400);
    let recent = env
        .ingest(&common::with_message_id(
            &common::fixture("gmail-new-ticket-pl-utf8.eml"),
            "recent@firma.pl",
        ))
        .await;
    assert!(recent.ticket.is_some());

    let keep_forever = Retention::default();
    let none = prune(&env.store, &keep_forever, quarantine, env.clock.now())
        .await
        .unwrap();
    assert_eq!(none, Pruned::default());
    let thirty = Retention {
        journal_days: Some(30),
        quarantine_days: Some(30),
    };
    let pruned = prune(&env.store, &thirty, quarantine, env.clock.now())
        .await
        .unwrap();
    assert_eq!(
        pruned,
        Pruned {
            journal_rows: 1,
            quarantined_files: 1
        }
    );
    assert!(!old.exists() && quarantine.join("ab/new").exists());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ingest_journal")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
    // The ticket itself stays.
    assert_eq!(env.show(&number).await.number, number);
    env.finish().await;
}
for_each_backend!(old_journal_rows_and_quarantine_files_go);
