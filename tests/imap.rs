//! The IMAP source against a real Dovecot started by the test (PRODUCT.md §3, §12).

mod common;
#[path = "common/dovecot.rs"]
mod dovecot;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/smtp.rs"]
mod smtp;
#[path = "common/tls.rs"]
mod tls;

use common::{Env, fixture, with_message_id};
use dovecot::{Dovecot, append, flags};
use std::time::Duration;
use ticketd::store::Backend;

async fn ticket_count(env: &Env) -> usize {
    env.store
        .list_tickets(None, 100_000, 0)
        .await
        .unwrap()
        .len()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn imap_env(backend: Backend, dovecot: &Dovecot, tls: &str, extra: &str) -> Env {
    Env::with_config(backend, &dovecot.mailbox_toml("support", tls, extra)).await
}

async fn waiting_mail_idle_and_threading(backend: Backend) {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    append(
        &mut client,
        "INBOX",
        &[fixture("gmail-new-ticket-pl-utf8.eml")],
    )
    .await;
    let env = imap_env(backend, &dovecot, "none", "backfill = \"all\"").await;
    let daemon = common::App::start(env.config.clone());

    wait_for("the waiting message", async || {
        ticket_count(&env).await == 1
    })
    .await;
    // Arrives while the daemon is in IDLE.
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(
        &mut client,
        "INBOX",
        &[
            fixture("gmail-quoted-reply.eml"),
            fixture("iso-8859-2-qp-subject.eml"),
        ],
    )
    .await;
    wait_for("the IDLE wake", async || ticket_count(&env).await == 2).await;
    wait_for("the reply", async || {
        env.show("TKT-2026-0001").await.comments.len() == 2
    })
    .await;
    daemon.stop().await;

    let t = env.show("TKT-2026-0001").await;
    assert_eq!(t.comments[1].body, "Restart nie pomógł, nadal to samo.");
    let seen = flags(&mut client, "INBOX").await;
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|(_, f)| f.iter().any(|x| x == "Seen")),
        "{seen:?}"
    );
    let cp = env.store.checkpoint("imap:support").await.unwrap().unwrap();
    assert_eq!(cp.position, 3);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_mail_idle_and_threading_sqlite() {
    waiting_mail_idle_and_threading(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_mail_idle_and_threading_postgres() {
    waiting_mail_idle_and_threading(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_move_and_quarantine_folder() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    append(
        &mut client,
        "INBOX",
        &[
            fixture("gmail-new-ticket-pl-utf8.eml"),
            b"\x00\x01garbage\x02".to_vec(),
        ],
    )
    .await;
    let env = imap_env(
        common::backend(),
        &dovecot,
        "starttls",
        "backfill = \"all\"\nafter = \"move:Processed\"",
    )
    .await;
    let daemon = common::App::start(env.config.clone());
    wait_for("both messages handled", async || {
        flags(&mut client, "INBOX").await.is_empty()
    })
    .await;
    daemon.stop().await;
    assert_eq!(flags(&mut client, "Processed").await.len(), 1);
    assert_eq!(flags(&mut client, "Quarantine").await.len(), 1);
    assert_eq!(ticket_count(&env).await, 1);
    assert_eq!(
        env.store
            .journal_for(
                "imap:support",
                &format!("{}:2", validity(&mut client).await)
            )
            .await
            .unwrap()[0]
            .0,
        "quarantined"
    );
    env.finish().await;
}

async fn validity(client: &mut async_imap::Session<tokio::net::TcpStream>) -> u32 {
    client.select("INBOX").await.unwrap().uid_validity.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_delete_over_implicit_tls_keeps_what_it_cannot_take() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    append(
        &mut client,
        "INBOX",
        &[
            fixture("gmail-new-ticket-pl-utf8.eml"),
            b"\x00\x01garbage\x02".to_vec(),
        ],
    )
    .await;
    let env = imap_env(
        common::backend(),
        &dovecot,
        "implicit",
        "backfill = \"all\"\nafter = \"delete\"",
    )
    .await;
    let daemon = common::App::start(env.config.clone());
    wait_for("the good message deleted", async || {
        flags(&mut client, "INBOX").await.len() == 1
    })
    .await;
    daemon.stop().await;
    let left = flags(&mut client, "INBOX").await;
    assert_eq!(left[0].0, 2);
    assert!(
        left[0].1.iter().any(|f| f.contains("TicketdHeld")),
        "{left:?}"
    );
    assert!(
        !left[0].1.iter().any(|f| f == "Seen" || f == "Deleted"),
        "{left:?}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_unseen_skips_read_mail_and_none_skips_everything() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    append(
        &mut client,
        "INBOX",
        &[fixture("iso-8859-2-qp-subject.eml")],
    )
    .await;
    client.select("INBOX").await.unwrap();
    let _: Vec<_> =
        futures::TryStreamExt::try_collect(client.uid_store("1", "+FLAGS (\\Seen)").await.unwrap())
            .await
            .unwrap();
    append(
        &mut client,
        "INBOX",
        &[fixture("gmail-new-ticket-pl-utf8.eml")],
    )
    .await;
    let env = imap_env(common::backend(), &dovecot, "none", "").await;
    let daemon = common::App::start(env.config.clone());
    wait_for("the unseen message", async || ticket_count(&env).await == 1).await;
    daemon.stop().await;
    assert_eq!(
        env.show("TKT-2026-0001").await.subject,
        "Drukarka w biurze nie działa"
    );
    env.finish().await;

    // Unread mail from before the first start is left alone: not taken, not
    // marked read.
    append(&mut client, "INBOX", &[fixture("gmail-quoted-reply.eml")]).await;
    let env = imap_env(common::backend(), &dovecot, "none", "backfill = \"none\"").await;
    let daemon = common::App::start(env.config.clone());
    wait_for("the checkpoint", async || {
        env.store
            .checkpoint("imap:support")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    append(
        &mut client,
        "INBOX",
        &[fixture("windows-1250-8bit-body.eml")],
    )
    .await;
    wait_for("the new message", async || ticket_count(&env).await == 1).await;
    daemon.stop().await;
    assert_eq!(env.show("TKT-2026-0001").await.subject, "Logowanie – błąd");
    let old = flags(&mut client, "INBOX").await;
    assert!(
        !old[2].1.iter().any(|f| f.contains("Seen")),
        "the old unread message stays unread: {old:?}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uidvalidity_reset_rescans_without_duplicates() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    let messages = [
        fixture("gmail-new-ticket-pl-utf8.eml"),
        fixture("gmail-quoted-reply.eml"),
    ];
    append(&mut client, "Support", &messages).await;
    let env = imap_env(
        common::backend(),
        &dovecot,
        "none",
        "folder = \"Support\"\nbackfill = \"all\"",
    )
    .await;
    let daemon = common::App::start(env.config.clone());
    wait_for("the first pass", async || {
        env.show_opt("TKT-2026-0001")
            .await
            .is_some_and(|t| t.comments.len() == 2)
    })
    .await;
    daemon.stop().await;
    let before = env.store.checkpoint("imap:support").await.unwrap().unwrap();

    // Recreating the folder gives it a new UIDVALIDITY; the same mail is in it again.
    client.select("INBOX").await.unwrap();
    client.delete("Support").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    append(&mut client, "Support", &messages).await;
    append(
        &mut client,
        "Support",
        &[fixture("iso-8859-2-qp-subject.eml")],
    )
    .await;
    let daemon = common::App::start(env.config.clone());
    wait_for("the rescan", async || ticket_count(&env).await == 2).await;
    wait_for("all acknowledged", async || {
        flags(&mut client, "Support")
            .await
            .iter()
            .all(|(_, f)| f.iter().any(|x| x == "Seen"))
    })
    .await;
    daemon.stop().await;
    let after = env.store.checkpoint("imap:support").await.unwrap().unwrap();
    assert_ne!(before.validity, after.validity);
    assert_eq!(env.show("TKT-2026-0001").await.comments.len(), 2);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_dovecot_restart() {
    let mut dovecot = Dovecot::start();
    let env = imap_env(common::backend(), &dovecot, "none", "backfill = \"all\"").await;
    let daemon = common::App::start(env.config.clone());
    {
        let mut client = dovecot.client().await;
        append(
            &mut client,
            "INBOX",
            &[fixture("gmail-new-ticket-pl-utf8.eml")],
        )
        .await;
    }
    wait_for("the first message", async || ticket_count(&env).await == 1).await;
    dovecot.restart();
    let mut client = dovecot.client().await;
    append(
        &mut client,
        "INBOX",
        &[fixture("iso-8859-2-qp-subject.eml")],
    )
    .await;
    wait_for("a message after the restart", async || {
        ticket_count(&env).await == 2
    })
    .await;
    daemon.stop().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_recorded_not_downloaded() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    let mut big = fixture("gmail-new-ticket-pl-utf8.eml");
    big.extend(std::iter::repeat_n(b'x', 300_000));
    append(&mut client, "INBOX", &[big]).await;
    let env = Env::configured(
        common::backend(),
        &dovecot.mailbox_toml("support", "none", "backfill = \"all\""),
        |c| c.mail.max_message_bytes = 100_000,
    )
    .await;
    let daemon = common::App::start(env.config.clone());
    wait_for("the stub ticket", async || ticket_count(&env).await == 1).await;
    daemon.stop().await;
    let t = env.show("TKT-2026-0001").await;
    assert_eq!(t.subject, "Drukarka w biurze nie działa");
    assert!(
        t.comments[0]
            .body
            .contains("is over mail.max_message_bytes (100000); not downloaded"),
        "{}",
        t.comments[0].body
    );
    let told: Vec<_> = t
        .notifications
        .iter()
        .map(|n| (n.event.as_str(), n.recipient.as_str()))
        .collect();
    assert_eq!(told, [("message_too_large", "jan.kowalski@firma.pl")]);
    let v = validity(&mut client).await;
    let (_, reason) = &env
        .store
        .journal_for("imap:support", &format!("{v}:1"))
        .await
        .unwrap()[0];
    assert!(reason.as_deref().unwrap().contains("not downloaded"));
    let left = flags(&mut client, "INBOX").await;
    assert!(
        left[0].1.iter().any(|f| f.contains("TicketdHeld")),
        "{left:?}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_acknowledgement_is_completed_on_the_next_session() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    append(
        &mut client,
        "INBOX",
        &[
            fixture("gmail-new-ticket-pl-utf8.eml"),
            with_message_id(&fixture("gmail-new-ticket-pl-utf8.eml"), "second@x"),
        ],
    )
    .await;
    let env = imap_env(common::backend(), &dovecot, "none", "backfill = \"all\"").await;
    // As if a session committed both messages and died before flagging them.
    env.store
        .set_checkpoint(
            "imap:support",
            ticketd::store::checkpoints::Checkpoint {
                validity: i64::from(validity(&mut client).await),
                position: 2,
            },
            common::START,
        )
        .await
        .unwrap();
    let daemon = common::App::start(env.config.clone());
    wait_for("the leftovers flagged", async || {
        flags(&mut client, "INBOX")
            .await
            .iter()
            .all(|(_, f)| f.iter().any(|x| x == "Seen"))
    })
    .await;
    daemon.stop().await;
    assert_eq!(
        ticket_count(&env).await,
        0,
        "committed messages were ingested again"
    );
    env.finish().await;
}

/// A TCP server that accepts and then answers with `greeting` (or nothing).
async fn fake_server(greeting: &'static [u8]) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(greeting).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    port
}

fn mailbox_for(port: u16, tls: &str) -> ticketd::config::Mailbox {
    let toml = format!(
        "[[mailbox]]\nname = \"x\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nusername = \"u\"\npassword = \"p\"\ntimeout_seconds = 1\n"
    );
    ticketd::config::Config::parse(&toml)
        .unwrap()
        .mailbox
        .remove(0)
}

#[tokio::test]
async fn a_silent_or_garbled_server_times_out_with_an_error() {
    let silent = fake_server(b"").await;
    let started = std::time::Instant::now();
    let err = ticketd::source::imap::login(&mailbox_for(silent, "none"))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("server greeting: no answer within 1 s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let garbled = fake_server(b"\x00\xff this is not IMAP\r\n* BYE\r\n").await;
    assert!(
        ticketd::source::imap::login(&mailbox_for(garbled, "none"))
            .await
            .is_err()
    );

    // A TLS handshake with a server that speaks plain text fails cleanly too.
    let plain = fake_server(b"* OK plain text only\r\n").await;
    assert!(
        ticketd::source::imap::login(&mailbox_for(plain, "starttls"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_authentication_error() {
    let dovecot = Dovecot::start();
    let toml = dovecot
        .mailbox_toml("support", "none", "")
        .replace(dovecot::PASSWORD, "wrong");
    let mb = ticketd::config::Config::parse(&toml)
        .unwrap()
        .mailbox
        .remove(0);
    let err = ticketd::source::imap::login(&mb).await.err().unwrap();
    assert!(err.to_string().starts_with("login refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mailboxes_run_side_by_side_with_their_teams() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    append(
        &mut client,
        "INBOX",
        &[fixture("gmail-new-ticket-pl-utf8.eml")],
    )
    .await;
    append(
        &mut client,
        "Sales",
        &[fixture("iso-8859-2-qp-subject.eml")],
    )
    .await;
    let both = dovecot.mailbox_toml("support", "none", "backfill = \"all\"\nteam = \"support\"")
        + &dovecot.mailbox_toml(
            "sales",
            "starttls",
            "backfill = \"all\"\nfolder = \"Sales\"\nsupport_addresses = [\"sales@example.com\"]",
        );
    let env = Env::with_config(common::backend(), &both).await;
    let daemon = common::App::start(env.config.clone());
    wait_for("both mailboxes", async || ticket_count(&env).await == 2).await;
    daemon.stop().await;
    let mut teams: Vec<(String, Option<String>)> = Vec::new();
    for number in ["TKT-2026-0001", "TKT-2026-0002"] {
        let t = env.show(number).await;
        teams.push((t.subject, t.team));
    }
    teams.sort();
    assert_eq!(
        teams,
        [
            (
                "Drukarka w biurze nie działa".to_string(),
                Some("support".to_string())
            ),
            ("Zamówienie nr 123 - błąd płatności".to_string(), None),
        ]
    );
    assert!(env.store.checkpoint("imap:sales").await.unwrap().is_some());
    env.finish().await;
}

/// The UIDs flagged \Seen in a folder.
async fn seen(client: &mut async_imap::Session<tokio::net::TcpStream>) -> Vec<u32> {
    let all = flags(client, "INBOX").await;
    all.into_iter()
        .filter(|(_, f)| f.iter().any(|x| x == "Seen"))
        .map(|(uid, _)| uid)
        .collect()
}

/// A drain of many batches across a PostgreSQL outage: nothing is
/// acknowledged while the database is down (a batch fetched but not
/// committed stays unseen), and afterwards every message is stored and
/// acknowledged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_drain_acknowledges_nothing_uncommitted() {
    const MESSAGES: usize = 600;
    let mut pg = postgres::PrivatePostgres::start();
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    let mail: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| {
            format!(
                "From: c{i}@example.org\r\nTo: support@example.com\r\nSubject: m{i}\r\n\
                 Message-ID: <outage-{i}@example.org>\r\n\r\n{}\r\n",
                "Drukarka nie działa. ".repeat(200)
            )
            .into_bytes()
        })
        .collect();
    append(&mut client, "INBOX", &mail).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = dovecot.mailbox_toml("support", "none", "backfill = \"all\"\nbatch_size = 25");
    let mut config =
        ticketd::config::Config::parse(&common::base_config(dir.path(), &extra)).unwrap();
    config.database.url = pg.url();
    let daemon = common::App::start(config);
    let store = ticketd::store::Store::connect(&pg.url(), 2).await.unwrap();
    let stored = async |store: &ticketd::store::Store| -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tickets")
            .fetch_one(store.pool())
            .await
            .unwrap_or(0)
    };
    wait_for("a few batches", async || stored(&store).await >= 100).await;
    store.close().await;
    pg.stop();
    let at_outage = seen(&mut client).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        seen(&mut client).await,
        at_outage,
        "acknowledged while the database was down"
    );
    assert!(at_outage.len() < MESSAGES, "drained before the outage");
    pg.restart_after(Duration::ZERO);
    let store = ticketd::store::Store::connect(&pg.url(), 2).await.unwrap();
    let mut waited = 0;
    while stored(&store).await < MESSAGES as i64 || seen(&mut client).await.len() < MESSAGES {
        assert!(
            waited < 600,
            "not all stored and acknowledged after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    daemon.stop().await;
    let distinct: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT message_id) FROM message_ids WHERE message_id LIKE 'outage-%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        (stored(&store).await, distinct),
        (MESSAGES as i64, MESSAGES as i64)
    );
    store.close().await;
}
