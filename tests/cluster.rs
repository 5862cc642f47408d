//! Several instances on one database: leases give each source to one
//! instance at a time and pass to another when the holder dies; outbox
//! claims share delivery without sending anything twice; instances with
//! other rules or clocks are warned about. Store-level on both backends,
//! then real ticketd processes on PostgreSQL.

#[macro_use]
mod common;
#[path = "common/dovecot.rs"]
mod dovecot;
#[path = "common/http.rs"]
mod http;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/smtp.rs"]
mod smtp;
#[path = "common/telegram.rs"]
mod telegram;
#[path = "common/tls.rs"]
mod tls;

use common::Env;
use std::collections::HashSet;
use std::time::Duration;
use ticketd::store::outbox::{self, NewNotification};

on_both_backends!(
    a_lease_is_one_holders_until_it_expires,
    |env: Env| async move {
        let store = &env.store;
        assert!(store.acquire_lease("imap:support", "a", 2).await.unwrap());
        assert!(
            !store.acquire_lease("imap:support", "b", 2).await.unwrap(),
            "held by a"
        );
        assert!(
            store.acquire_lease("imap:other", "b", 2).await.unwrap(),
            "another source is free"
        );
        assert!(
            store.acquire_lease("imap:support", "a", 2).await.unwrap(),
            "a renews"
        );
        assert_eq!(
            store.lease_holder("imap:support").await.unwrap().as_deref(),
            Some("a")
        );
        // a stops renewing: after expiry (by the database's clock) b takes it.
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert_eq!(store.lease_holder("imap:support").await.unwrap(), None);
        assert!(store.acquire_lease("imap:support", "b", 2).await.unwrap());
        assert!(
            !store.acquire_lease("imap:support", "a", 2).await.unwrap(),
            "a lost it"
        );
        // A release by a former holder changes nothing; b's own release frees it.
        store.release_lease("imap:support", "a").await.unwrap();
        assert!(!store.acquire_lease("imap:support", "c", 2).await.unwrap());
        store.release_lease("imap:support", "b").await.unwrap();
        assert!(store.acquire_lease("imap:support", "c", 2).await.unwrap());
        // Taking over from a dead holder works only while it still holds it.
        assert!(
            !store
                .take_over_lease("imap:support", "b", "d", 2)
                .await
                .unwrap()
        );
        assert!(
            store
                .take_over_lease("imap:support", "c", "d", 2)
                .await
                .unwrap()
        );
        assert_eq!(
            store.lease_holder("imap:support").await.unwrap().as_deref(),
            Some("d")
        );
    }
);

// A source that spends most of its time inside write transactions keeps its
// lease: the renewal waits for the transaction to end (on SQLite, for the
// write lock) while the work goes on, instead of stalling it until the
// renewal times out and the source is stopped.
on_both_backends!(
    a_source_busy_in_transactions_keeps_its_lease,
    |env: Env| async move {
        // Renewed every second; a renewal that fails twice in a row stops the work.
        let cluster = ticketd::cluster::Cluster::new(env.store.clone(), 3, vec!["busy".into()]);
        let cancel = tokio_util::sync::CancellationToken::new();
        let starts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            stop.cancel();
        });
        cluster
            .hold("busy", cancel, |token| {
                let (store, starts, commits) = (env.store.clone(), starts.clone(), commits.clone());
                async move {
                    starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    while !token.is_cancelled() {
                        let mut tx = store.begin().await.unwrap();
                        let position = commits.load(std::sync::atomic::Ordering::SeqCst) as i64;
                        let cp = ticketd::store::checkpoints::Checkpoint {
                            validity: 1,
                            position,
                        };
                        ticketd::store::checkpoints::save(&mut tx, "busy", cp, 0)
                            .await
                            .unwrap();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        tx.commit().await.unwrap();
                        commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            })
            .await;
        assert_eq!(
            starts.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the work was stopped and restarted"
        );
        assert!(commits.load(std::sync::atomic::Ordering::SeqCst) >= 10);
        env.finish().await;
    }
);

/// Exactly `messages` tickets, one per message (their subjects differ).
async fn assert_one_ticket_each(store: &ticketd::store::Store, messages: usize) {
    use processes::count;
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM tickets").await,
        messages as i64
    );
    assert_eq!(
        count(store, "SELECT COUNT(DISTINCT subject) FROM tickets").await,
        messages as i64
    );
}

/// Queues `count` mails to distinct customers, due at `now`.
async fn queue_notifications(store: &ticketd::store::Store, count: usize, now: i64) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..count {
        let n = NewNotification {
            event: "test".into(),
            channel: "email".into(),
            recipient: format!("klient{i}@firma.pl"),
            subject: format!("Powiadomienie {i}"),
            body: "Treść.".into(),
            ..Default::default()
        };
        outbox::enqueue(&mut tx, &n, now).await.unwrap();
    }
    tx.commit().await.unwrap();
}

on_both_backends!(
    concurrent_claims_share_the_outbox_without_overlap,
    |env: Env| async move {
        let now = env.clock.now();
        queue_notifications(&env.store, 600, now).await;
        // Four claimers at once, as four instances' dispatchers would.
        let claims = (0..4).map(|i| {
            let store = env.store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let by = format!("instance-{i}");
                    let batch = store.claim_notifications(now, 50, 600, &by).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|n| n.id));
                }
            })
        });
        let mut all = Vec::new();
        for claim in claims {
            all.extend(claim.await.unwrap());
        }
        let distinct: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(
            (all.len(), distinct.len()),
            (600, 600),
            "each claimed exactly once"
        );
        // Claimed rows are nobody else's until the claim lapses …
        assert!(
            env.store
                .claim_notifications(now + 599, 50, 600, "other")
                .await
                .unwrap()
                .is_empty()
        );
        // … then another instance may take what a dead one left.
        assert_eq!(
            env.store
                .claim_notifications(now + 600, 1000, 600, "other")
                .await
                .unwrap()
                .len(),
            600
        );
    }
);

/// An instance on "host" with no sources, for the outbox claim tests.
fn instance(id: &str) -> ticketd::store::leases::Instance {
    ticketd::store::leases::Instance {
        id: id.into(),
        host: "host".into(),
        rules_digest: "1111111111111111".into(),
        clock_offset: 0,
        sources: Vec::new(),
    }
}

// The claims of an instance that stops beating are released as soon as the
// others see it gone, not when the claim lapses; a live instance's stay.
on_both_backends!(
    claims_of_a_gone_instance_are_released,
    |env: Env| async move {
        let now = env.clock.now();
        queue_notifications(&env.store, 30, now).await;
        let (live, dead) = (instance("live"), instance("dead"));
        env.store.instance_heartbeat(&live, 60).await.unwrap();
        env.store.instance_heartbeat(&dead, 60).await.unwrap();
        let by_live = env.store.claim_notifications(now, 10, 600, "live").await;
        let by_dead = env.store.claim_notifications(now, 20, 600, "dead").await;
        assert_eq!((by_live.unwrap().len(), by_dead.unwrap().len()), (10, 20));
        // Both seen just now: nothing is released.
        assert_eq!(env.store.release_claims_of_gone(now, 60).await.unwrap(), 0);
        // "dead" was last seen 61 s ago; "live" beats on.
        sqlx::query("UPDATE instances SET seen_at = seen_at - 61 WHERE id = 'dead'")
            .execute(env.store.pool())
            .await
            .unwrap();
        env.store.instance_heartbeat(&live, 60).await.unwrap();
        assert_eq!(env.store.release_claims_of_gone(now, 60).await.unwrap(), 20);
        let taken = env
            .store
            .claim_notifications(now, 100, 600, "live")
            .await
            .unwrap();
        assert_eq!(
            taken.len(),
            20,
            "the dead instance's claims, and only those"
        );
        let ids: Vec<i64> = taken.iter().map(|n| n.id).collect();
        env.store.mark_delivered(&ids, &[], &[], now).await.unwrap();
        // Gone for a day: forgotten, unless it still holds claims.
        sqlx::query("UPDATE instances SET seen_at = seen_at - 86400")
            .execute(env.store.pool())
            .await
            .unwrap();
        assert_eq!(env.store.forget_gone_instances(86400).await.unwrap(), 1);
        let left = env
            .count("SELECT COUNT(*) FROM instances WHERE id = 'live'")
            .await;
        assert_eq!(left, 1, "kept while it holds claims");
        let claimed = env
            .count("SELECT COUNT(*) FROM outbox WHERE claimed_by IS NOT NULL")
            .await;
        let sent = env
            .count("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
            .await;
        assert_eq!(
            (claimed, sent),
            (10, 20),
            "recorded deliveries hold no claim"
        );
    }
);

// The wiring: a running instance's heartbeat is what releases them.
on_both_backends!(
    a_heartbeat_releases_the_claims_of_a_gone_instance,
    |env: Env| async move {
        let now = env.clock.now();
        queue_notifications(&env.store, 5, now).await;
        env.store
            .instance_heartbeat(&instance("dead"), 60)
            .await
            .unwrap();
        let claimed = env.store.claim_notifications(now, 10, 600, "dead").await;
        assert_eq!(claimed.unwrap().len(), 5);
        sqlx::query("UPDATE instances SET seen_at = seen_at - 10 WHERE id = 'dead'")
            .execute(env.store.pool())
            .await
            .unwrap();
        // A one-second lease: gone after three seconds without a beat.
        let live = ticketd::cluster::Cluster::new(env.store.clone(), 1, Vec::new());
        let cancel = tokio_util::sync::CancellationToken::new();
        let beating = tokio::spawn({
            let (clock, cancel) = (env.clock.clone(), cancel.clone());
            async move {
                live.heartbeat(|| "1111111111111111".into(), clock, cancel)
                    .await
            }
        });
        let mut released = 0;
        for _ in 0..50 {
            released = env
                .count(
                    "SELECT COUNT(*) FROM outbox WHERE claimed_by IS NULL AND status = 'pending'",
                )
                .await;
            if released == 5 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        cancel.cancel();
        beating.await.unwrap();
        assert_eq!(released, 5, "released by the live instance's heartbeat");
        let again = env.store.claim_notifications(now, 10, 600, "other").await;
        assert_eq!(again.unwrap().len(), 5, "due again at once");
    }
);

// An instance held up (paused) past three lease periods in the middle of a
// batch must not send what its claims were released for meanwhile; what is
// still its own it sends.
on_both_backends!(
    a_held_up_dispatcher_leaves_released_claims_alone,
    |env: Env| async move {
        let now = env.clock.now();
        queue_notifications(&env.store, 2, now).await;
        let dispatcher = env.dispatcher();
        let claimed = env
            .store
            .claim_notifications(now, 10, 600, &dispatcher.instance)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        let (theirs, ours) = (claimed[0].id, claimed[1].id);
        // Meanwhile the first one was released and claimed by another instance.
        sqlx::query("UPDATE outbox SET claimed_by = 'other' WHERE id = $1")
            .bind(theirs)
            .execute(env.store.pool())
            .await
            .unwrap();
        let claimed_at = std::time::Instant::now() - std::time::Duration::from_secs(60);
        dispatcher.deliver(claimed, claimed_at).await.unwrap();
        let written = std::fs::read_dir(&env.config.mail.outbox_dir)
            .unwrap()
            .count();
        assert_eq!(written, 1, "only the notification still claimed is sent");
        let state = |id: i64| {
            let pool = env.store.pool().clone();
            async move {
                sqlx::query_as::<_, (String, Option<String>)>(
                    "SELECT status, claimed_by FROM outbox WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };
        assert_eq!(
            state(theirs).await,
            ("pending".into(), Some("other".into()))
        );
        assert_eq!(state(ours).await, ("sent".into(), None));
    }
);

on_both_backends!(
    instances_see_each_others_rules_and_clocks,
    |env: Env| async move {
        use ticketd::store::leases::Instance;
        let clock = env.store.database_now().await.unwrap();
        let local = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (clock - local).abs() <= 1,
            "database clock {clock}, local {local}"
        );
        let a = Instance {
            id: "host-a:1:aa".into(),
            host: "host-a".into(),
            rules_digest: "1111111111111111".into(),
            clock_offset: 0,
            sources: vec!["imap:one".into()],
        };
        let b = Instance {
            id: "host-b:2:bb".into(),
            host: "host-b".into(),
            rules_digest: "2222222222222222".into(),
            clock_offset: 9,
            sources: Vec::new(),
        };
        assert!(
            env.store
                .instance_heartbeat(&a, 60)
                .await
                .unwrap()
                .is_empty()
        );
        let seen_by_b = env.store.instance_heartbeat(&b, 60).await.unwrap();
        assert_eq!(seen_by_b, std::slice::from_ref(&a));
        let warnings = ticketd::cluster::warnings(&b, &seen_by_b);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("9 s ahead of the database's"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("instance host-a:1:aa on host-a runs a different rule set"));
        // Each instance's sources and held leases, for sharing out the work.
        assert!(
            env.store
                .acquire_lease("imap:one", &a.id, 60)
                .await
                .unwrap()
        );
        let loads = env.store.instance_loads(60).await.unwrap();
        let held: Vec<(&str, &[String], i64)> = loads
            .iter()
            .map(|l| (l.id.as_str(), l.sources.as_slice(), l.held))
            .collect();
        assert_eq!(
            held,
            [
                ("host-a:1:aa", &["imap:one".to_string()][..], 1),
                ("host-b:2:bb", &[][..], 0)
            ]
        );
        // A released lease goes to an instance with its share only after
        // it has been free for the time asked.
        env.store.release_lease("imap:one", &a.id).await.unwrap();
        assert!(
            !env.store
                .acquire_idle_lease("imap:one", &b.id, 60, 60)
                .await
                .unwrap()
        );
        assert!(
            env.store
                .acquire_idle_lease("imap:one", &b.id, 60, 0)
                .await
                .unwrap()
        );
        assert!(
            !env.store
                .acquire_idle_lease("imap:never-held", &b.id, 60, 60)
                .await
                .unwrap(),
            "a lease nobody held is free from its first request on"
        );
        env.store.instance_gone(&a.id).await.unwrap();
        assert!(
            env.store
                .instance_heartbeat(&b, 60)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

/// Three `ticketd run` processes share one database with 1,000 SLA warnings
/// due and a rule scheduled every two seconds: each warning fires once, and
/// each slot of the schedule runs once (one digest per slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_fire_each_sla_event_and_cron_slot_once() {
    use processes::*;
    const TICKETS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("10-cluster.toml"),
        "[[rule]]\nname = \"warned\"\non = \"sla.warning\"\nthen = [{ add_tag = \"sla-warned\" }]\n\n\
         [[rule]]\nname = \"every two seconds\"\non = \"schedule\"\nschedule = \"*/2 * * * * *\"\n\
         then = [{ digest = { to = \"managers\" } }]\n",
    )
    .unwrap();
    let extra = format!(
        "[rules]\ndir = \"{}\"\n[[agent]]\nemail = \"boss@example.com\"\nrole = \"manager\"\n",
        rules.display()
    );
    let (store, config, database) = database(dir.path(), &extra).await;
    store.migrate().await.unwrap();
    // Tickets opened 6 h 30 min ago: 80 % of the 8 h first-response target
    // has passed (a warning is due), the target itself has not.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let settings = ticketd::config::Config::load(&config).unwrap();
    let clock = ticketd::clock::Clock::manual(now - 6 * 3600 - 30 * 60);
    let pipeline = ticketd::ingest::Pipeline::new(
        &settings,
        &ticketd::app::context(&settings, store.clone(), clock).unwrap(),
    );
    let batch: Vec<ticketd::ingest::Inbound> = (0..TICKETS)
        .map(|i| ticketd::ingest::Inbound::new("test", format!("sla-{i}"), mail(i)))
        .collect();
    for chunk in batch.chunks(100) {
        pipeline.ingest(chunk).await.unwrap();
    }

    let daemons: Vec<Daemon> = (0..3)
        .map(|i| Daemon::start(&config, dir.path().join(format!("ticketd-{i}.log"))))
        .collect();
    let warned = "SELECT COUNT(*) FROM ticket_history WHERE rule = 'warned'";
    until(
        "every warning fired",
        Duration::from_secs(120),
        &daemons,
        || async { count(&store, warned).await >= TICKETS as i64 },
    )
    .await;
    let runs = "SELECT COUNT(*) FROM schedule_runs WHERE rule = 'every two seconds'";
    until(
        "three slots ran",
        Duration::from_secs(30),
        &daemons,
        || async { count(&store, runs).await >= 3 },
    )
    .await;
    // Let a late duplicate show itself, if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(daemons);

    assert_eq!(count(&store, warned).await, TICKETS as i64);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(DISTINCT ticket_id) FROM ticket_history WHERE rule = 'warned'"
        )
        .await,
        TICKETS as i64
    );
    // One statement, so both counts come from one snapshot: a killed
    // daemon's last COMMIT may still land on the server meanwhile.
    assert_eq!(
        count(
            &store,
            "SELECT (SELECT COUNT(*) FROM outbox
                     WHERE event = 'daily_digest' AND recipient = 'boss@example.com')
                  - (SELECT COUNT(*) FROM schedule_runs WHERE rule = 'every two seconds')"
        )
        .await,
        0,
        "one digest per slot"
    );
    store.close().await;
    common::drop_database(&database).await;
}

mod processes {
    //! Real ticketd processes sharing one PostgreSQL database.
    use super::common;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};
    use ticketd::store::{Backend, Store};

    pub struct Daemon {
        pub child: Child,
        pub log: PathBuf,
    }

    impl Daemon {
        pub fn start(config: &Path, log: PathBuf) -> Daemon {
            let child = Command::new(env!("CARGO_BIN_EXE_ticketd"))
                .arg("--config")
                .arg(config)
                .arg("run")
                .env_remove("TICKETD_DATABASE_URL")
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            Daemon { child, log }
        }

        pub fn log(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        pub fn kill(&mut self, signal: &str) {
            Command::new("kill")
                .args([signal, &self.child.id().to_string()])
                .status()
                .unwrap();
            let _ = self.child.wait();
        }
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A fresh PostgreSQL database, its store and a config for it.
    pub async fn database(dir: &Path, extra: &str) -> (Store, PathBuf, String) {
        let (url, name) = common::fresh_database(Backend::Postgres, dir).await;
        let config = dir.join("ticketd.toml");
        let text = common::base_config(
            dir,
            &format!(
                "[database]\nurl = \"{url}\"\nmax_connections = 4\nlease_seconds = 3\n{extra}"
            ),
        );
        std::fs::write(&config, text).unwrap();
        let store = Store::connect(&url, 2).await.unwrap();
        (store, config, name.unwrap())
    }

    pub async fn count(store: &Store, sql: &'static str) -> i64 {
        use sqlx::Row;
        // -1 until the instances have migrated the database.
        match sqlx::query(sql).fetch_one(store.pool()).await {
            Ok(row) => row.try_get(0).unwrap(),
            Err(_) => -1,
        }
    }

    /// Waits until `done` or panics after `limit` with the daemons' logs.
    pub async fn until<F: std::future::Future<Output = bool>>(
        what: &str,
        limit: Duration,
        daemons: &[Daemon],
        mut done: impl FnMut() -> F,
    ) {
        let deadline = Instant::now() + limit;
        while !done().await {
            if Instant::now() > deadline {
                let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
                panic!(
                    "{what}: not within {limit:?}; logs:\n{}",
                    logs.join("\n-----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn mail(i: usize) -> Vec<u8> {
    format!(
        "From: Klient {i} <klient{i}@firma.pl>\r\nTo: support@example.com\r\nSubject: Zgłoszenie nr {i}\r\n\
         Message-ID: <cluster-{i}@firma.pl>\r\nDate: Fri, 20 Nov 2026 10:00:00 +0100\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nTreść zgłoszenia {i}.\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_drain_one_mailbox_exactly_once_while_the_holder_is_killed() {
    use processes::*;
    const MESSAGES: usize = 5000;
    let dovecot = dovecot::Dovecot::start();
    let mut client = dovecot.client().await;
    let batch: Vec<Vec<u8>> = (0..MESSAGES).map(mail).collect();
    dovecot::append(&mut client, "INBOX", &batch).await;
    let dir = tempfile::tempdir().unwrap();
    let mailbox = dovecot.mailbox_toml("support", "none", "backfill = \"all\"\nbatch_size = 100");
    let (store, config, database) = database(dir.path(), &mailbox).await;

    // Three instances start at once (and migrate at once).
    let mut daemons: Vec<Daemon> = (0..3)
        .map(|i| Daemon::start(&config, dir.path().join(format!("ticketd-{i}.log"))))
        .collect();
    until(
        "a quarter drained",
        Duration::from_secs(120),
        &daemons,
        || async { count(&store, "SELECT COUNT(*) FROM tickets").await >= (MESSAGES / 4) as i64 },
    )
    .await;
    // SIGKILL the instance holding the mailbox, mid-way.
    let holder = store
        .lease_holder("imap:support")
        .await
        .unwrap()
        .expect("a holder");
    let pid: u32 = holder.rsplit(':').nth(1).unwrap().parse().unwrap();
    let victim = daemons
        .iter()
        .position(|d| d.child.id() == pid)
        .expect("one of ours");
    let before = count(&store, "SELECT COUNT(*) FROM tickets").await;
    daemons[victim].kill("-KILL");
    let killed = std::time::Instant::now();
    until(
        "another instance took over",
        Duration::from_secs(30),
        &daemons,
        || async {
            count(&store, "SELECT COUNT(*) FROM tickets").await > before
                && store
                    .lease_holder("imap:support")
                    .await
                    .unwrap()
                    .is_some_and(|h| h != holder)
        },
    )
    .await;
    eprintln!(
        "failover: {:.1} s from SIGKILL to the next commit by another instance",
        killed.elapsed().as_secs_f64()
    );
    until(
        "all drained",
        Duration::from_secs(300),
        &daemons,
        || async { count(&store, "SELECT COUNT(*) FROM tickets").await >= MESSAGES as i64 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Each message exactly once: one ticket each, one "created" each.
    assert_one_ticket_each(&store, MESSAGES).await;
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM ingest_journal WHERE outcome = 'created'"
        )
        .await,
        MESSAGES as i64
    );
    // Numbers stayed unique and gap-free across the instances.
    assert_eq!(
        count(&store, "SELECT COUNT(DISTINCT number) FROM tickets").await,
        MESSAGES as i64
    );
    let last = format!("TKT-{}-{:04}", chrono_year(), MESSAGES);
    let numbers: Vec<String> =
        sqlx::query_scalar("SELECT number FROM tickets ORDER BY number DESC LIMIT 1")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(numbers, [last]);
    let survivors: Vec<String> = daemons.iter().map(Daemon::log).collect();
    assert!(
        survivors.iter().any(|l| l.contains("lease taken")),
        "{survivors:?}"
    );
    drop(daemons);
    store.close().await;
    common::drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_deliver_every_notification_exactly_once() {
    use processes::*;
    const NOTIFICATIONS: usize = 5000;
    let server = smtp::SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (store, config, database) = database(dir.path(), &server.toml()).await;
    store.migrate().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    queue_notifications(&store, NOTIFICATIONS, now).await;

    let daemons: Vec<Daemon> = (0..3)
        .map(|i| Daemon::start(&config, dir.path().join(format!("ticketd-{i}.log"))))
        .collect();
    let started = std::time::Instant::now();
    until("all sent", Duration::from_secs(300), &daemons, || async {
        count(&store, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await
            >= NOTIFICATIONS as i64
    })
    .await;
    eprintln!(
        "{NOTIFICATIONS} notifications sent by three instances in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = server.messages();
    let subjects: HashSet<String> = received
        .iter()
        .filter_map(|m| smtp::header(m, "Subject"))
        .collect();
    assert_eq!(
        (received.len(), subjects.len()),
        (NOTIFICATIONS, NOTIFICATIONS),
        "each notification exactly once at the SMTP server"
    );
    drop(daemons);
    store.close().await;
    common::drop_database(&database).await;
}

fn chrono_year() -> i32 {
    use chrono::Datelike;
    chrono::Utc::now().year()
}

on_both_backends!(
    a_database_newer_than_the_binary_is_refused,
    |env: Env| async move {
        let future = match env.backend {
            ticketd::store::Backend::Postgres => {
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'future', TRUE, '\\x00'::bytea, 0)"
            }
            ticketd::store::Backend::Sqlite => {
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'future', 1, X'00', 0)"
            }
        };
        sqlx::query(future).execute(env.store.pool()).await.unwrap();
        let error = env.store.migrate().await.unwrap_err().to_string();
        assert!(
            error.contains("the database has schema version 9999, newer than this ticketd knows"),
            "{error}"
        );
        env.finish().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_is_copied_into_postgresql_and_verified() {
    let env = Env::new(ticketd::store::Backend::Sqlite).await;
    let mut numbers = Vec::new();
    for fixture in [
        "gmail-new-ticket-pl-utf8.eml",
        "iso-8859-2-qp-subject.eml",
        "rfc2231-polish-attachment-name.eml",
        "html-only-newsletter-style.eml",
        "out-of-office-auto-reply.eml",
    ] {
        if let Some(n) = env.ingest(&common::fixture(fixture)).await.ticket
            && !numbers.contains(&n)
        {
            numbers.push(n);
        }
    }
    assert!(numbers.len() >= 4, "{numbers:?}");
    let config = env.dir.path().join("ticketd.toml");
    std::fs::write(
        &config,
        common::base_config(
            env.dir.path(),
            &format!("[database]\nurl = \"{}\"\n", env.database_url),
        ),
    )
    .unwrap();
    let (target_url, target_db) =
        common::fresh_database(ticketd::store::Backend::Postgres, env.dir.path()).await;
    let copy = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .arg("--config")
            .arg(&config)
            .args(["copy-to", &target_url])
            .env_remove("TICKETD_DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = copy();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("every table's rows and checksum match"),
        "{stdout}"
    );
    let tickets_line = format!(" {} rows", numbers.len());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("tickets ") && l.contains(&tickets_line)),
        "{stdout}"
    );

    // The same tickets, comments, attachments and history on PostgreSQL.
    let target = ticketd::store::Store::connect(&target_url, 2)
        .await
        .unwrap();
    for number in &numbers {
        let before = serde_json::to_value(env.show(number).await).unwrap();
        let after =
            serde_json::to_value(target.ticket_detail(number).await.unwrap().unwrap()).unwrap();
        assert_eq!(before, after, "{number}");
    }
    // Work goes on there: the next ticket gets the next number and id.
    let mut config = env.config.clone();
    config.database.url = target_url.clone();
    let pipeline = ticketd::ingest::Pipeline::new(
        &config,
        &ticketd::app::context(&config, target.clone(), env.clock.clone()).unwrap(),
    );
    let batch = [ticketd::ingest::Inbound::new("test", "after-copy", mail(1))];
    let next = pipeline.ingest(&batch).await.unwrap().pop().unwrap();
    let expected = format!("TKT-2026-{:04}", numbers.len() + 1);
    assert_eq!(next.ticket.as_deref(), Some(expected.as_str()), "{next}");

    // A second copy into the now used database is refused, changing nothing.
    let again = copy();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("the target database is not empty"),
        "{stderr}"
    );
    target.close().await;
    common::drop_database(&target_db.unwrap()).await;
    env.finish().await;
}

/// Delivers mail `i` into a Maildir as an MTA does (tmp/, then new/).
fn deliver(maildir: &std::path::Path, i: usize) {
    let name = format!("{i}.delivered.host");
    std::fs::write(maildir.join("tmp").join(&name), mail(i)).unwrap();
    std::fs::rename(
        maildir.join("tmp").join(&name),
        maildir.join("new").join(&name),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_mid_run_loses_nothing() {
    use processes::*;
    const MESSAGES: usize = 1000;
    let mut pg = postgres::PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(inbox.join(sub)).unwrap();
    }
    let config = dir.path().join("ticketd.toml");
    let extra = format!(
        "[database]\nurl = \"{}\"\nlease_seconds = 3\n[[maildir]]\nname = \"inbox\"\npath = \"{}\"\n",
        pg.url(),
        inbox.display()
    );
    std::fs::write(&config, common::base_config(dir.path(), &extra)).unwrap();
    let daemons = vec![Daemon::start(&config, dir.path().join("ticketd.log"))];
    let store = ticketd::store::Store::connect(&pg.url(), 2).await.unwrap();
    for i in 0..MESSAGES / 2 {
        deliver(&inbox, i);
    }
    until("half stored", Duration::from_secs(60), &daemons, || async {
        count(&store, "SELECT COUNT(*) FROM tickets").await >= (MESSAGES / 4) as i64
    })
    .await;
    // The database goes away for longer than a lease while mail keeps coming.
    store.close().await;
    pg.stop();
    for i in MESSAGES / 2..MESSAGES {
        deliver(&inbox, i);
    }
    std::thread::sleep(Duration::from_secs(5));
    let waiting = std::fs::read_dir(inbox.join("new")).unwrap().count();
    assert!(
        waiting > 0,
        "nothing may be acknowledged while the database is down"
    );
    pg.restart_after(Duration::ZERO);
    let store = ticketd::store::Store::connect(&pg.url(), 2).await.unwrap();
    until(
        "all stored after the restart",
        Duration::from_secs(120),
        &daemons,
        || async { count(&store, "SELECT COUNT(*) FROM tickets").await >= MESSAGES as i64 },
    )
    .await;
    until(
        "all acknowledged",
        Duration::from_secs(30),
        &daemons,
        || async { std::fs::read_dir(inbox.join("new")).unwrap().count() == 0 },
    )
    .await;
    assert_one_ticket_each(&store, MESSAGES).await;
    assert_eq!(
        std::fs::read_dir(inbox.join("cur")).unwrap().count(),
        MESSAGES
    );
    // The source stopped before its lease could lapse, and took it again.
    let log = daemons[0].log();
    assert!(log.contains("cannot renew the lease"), "{log}");
    assert_eq!(log.matches("lease taken").count(), 2, "{log}");
    drop(daemons);
    store.close().await;
}

/// Two instances with one Telegram bot: only the lease holder polls, so no
/// update is fetched twice; after a SIGKILL of the holder the other one polls
/// on from the saved offset, and every update is taken once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_polls_a_telegram_bot_and_another_takes_over() {
    use processes::*;
    use serde_json::json;
    const UPDATES: i64 = 200;
    let server = telegram::FakeTelegram::start(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let (store, config, database) = database(dir.path(), &server.toml(dir.path())).await;
    store.migrate().await.unwrap();
    let push = |from: i64| {
        server.push_updates(
            (from..from + UPDATES)
                .map(|i| {
                    let text = format!("Wiadomość numer {i}");
                    telegram::private_message(i, i, json!({ "text": text }))
                })
                .collect(),
        )
    };
    let mut daemons: Vec<Daemon> = (0..2)
        .map(|i| Daemon::start(&config, dir.path().join(format!("ticketd-{i}.log"))))
        .collect();
    push(1);
    let journaled = "SELECT COUNT(*) FROM ingest_journal WHERE source = 'telegram'";
    until(
        "the first updates taken",
        Duration::from_secs(60),
        &daemons,
        || async { count(&store, journaled).await >= UPDATES },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count(&store, journaled).await,
        UPDATES,
        "two pollers would journal updates twice"
    );

    let holder = store.lease_holder("telegram").await.unwrap().unwrap();
    let victim = daemons
        .iter()
        .position(|d| holder.contains(&format!(":{}:", d.child.id())))
        .unwrap_or_else(|| panic!("holder {holder} is none of the daemons"));
    daemons[victim].kill("-KILL");
    push(1 + UPDATES);
    until(
        "the rest taken after the takeover",
        Duration::from_secs(60),
        &daemons,
        || async {
            count(
                &store,
                "SELECT COUNT(DISTINCT source_key) FROM ingest_journal WHERE source = 'telegram'",
            )
            .await
                >= 2 * UPDATES
        },
    )
    .await;
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM ingest_journal WHERE source = 'telegram' AND outcome <> 'duplicate'"
        )
        .await,
        2 * UPDATES,
        "each update taken once"
    );
    assert_ne!(
        store.lease_holder("telegram").await.unwrap().unwrap(),
        holder
    );
    drop(daemons);
    store.close().await;
    common::drop_database(&database).await;
}

/// Work spreads over the instances: one instance alone takes both Maildir
/// sources; a second one started later is handed one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_is_handed_half_of_the_sources() {
    use processes::*;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let maildirs = format!(
        "[[maildir]]\nname = \"one\"\npath = \"{d}/one\"\n[[maildir]]\nname = \"two\"\npath = \"{d}/two\"\n"
    );
    let (store, config, database) = database(dir.path(), &maildirs).await;
    store.migrate().await.unwrap();
    let holders = || async {
        let mut ids = Vec::new();
        for name in ["maildir:one", "maildir:two"] {
            ids.push(store.lease_holder(name).await.unwrap());
        }
        ids
    };
    let mut daemons = vec![Daemon::start(&config, dir.path().join("ticketd-0.log"))];
    until(
        "the first instance holds both",
        Duration::from_secs(30),
        &daemons,
        || async {
            let h = holders().await;
            h[0].is_some() && h[0] == h[1]
        },
    )
    .await;
    daemons.push(Daemon::start(&config, dir.path().join("ticketd-1.log")));
    until(
        "one source each",
        Duration::from_secs(30),
        &daemons,
        || async {
            let h = holders().await;
            h[0].is_some() && h[1].is_some() && h[0] != h[1]
        },
    )
    .await;
    assert!(
        daemons[0].log().contains("lease handed back"),
        "{}",
        daemons[0].log()
    );
    // Mail still arrives in both, each taken once.
    for (i, folder) in ["one", "two"].iter().enumerate() {
        deliver(&dir.path().join(folder), i);
    }
    until(
        "both messages stored",
        Duration::from_secs(30),
        &daemons,
        || async { count(&store, "SELECT COUNT(*) FROM tickets").await == 2 },
    )
    .await;
    drop(daemons);
    store.close().await;
    common::drop_database(&database).await;
}
