//! Notifications through the outbox to a real SMTP server (aiosmtpd).

mod common;
#[path = "common/smtp.rs"]
mod smtp;
#[path = "common/tls.rs"]
mod tls;

use common::{Env, fixture, with_message_id};
use smtp::{SmtpServer, header};
use std::sync::Arc;
use ticketd::notify::dispatch::Dispatcher;
use ticketd::notify::email::Mailer;
use ticketd::store::Backend;

fn dispatcher(env: &Env) -> Dispatcher {
    Dispatcher {
        store: env.store.clone(),
        mailer: Mailer::new(&env.config).unwrap(),
        webhooks: ticketd::notify::webhook::Webhooks::new(&env.config).unwrap(),
        telegram: None,
        discord: None,
        clock: env.clock.clone(),
        instance: "test".into(),
        max_age_seconds: env.config.notify.max_age_hours * 3600,
        concurrency: 2,
        wake: Arc::new(tokio::sync::Notify::new()),
    }
}

async fn env_with(backend: Backend, server_toml: &str) -> Env {
    Env::with_config(backend, server_toml).await
}

async fn acknowledgement_threads_the_customers_reply(backend: Backend) {
    let server = SmtpServer::start();
    let env = env_with(backend, &server.toml()).await;
    env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
    assert_eq!(dispatcher(&env).deliver_due().await.unwrap(), 1);
    let received = server.messages();
    assert_eq!(received.len(), 1);
    let ack = &received[0];
    assert_eq!(
        header(ack, "X-Rcpt-To").as_deref(),
        Some("jan.kowalski@firma.pl")
    );
    let subject = mail_parser::MessageParser::default()
        .parse(ack.as_bytes())
        .unwrap()
        .subject()
        .unwrap()
        .to_string();
    assert_eq!(
        subject,
        "[TKT-2026-0001] Otrzymaliśmy Twoje zgłoszenie: Drukarka w biurze nie działa"
    );
    assert_eq!(
        header(ack, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        header(ack, "X-Auto-Response-Suppress").as_deref(),
        Some("All")
    );
    assert_eq!(header(ack, "X-Ticketd-Loop").as_deref(), Some("ticketd"));
    assert_eq!(
        header(ack, "In-Reply-To").as_deref(),
        Some("<CAJ8f3kQ1@mail.gmail.com>")
    );
    assert!(
        header(ack, "References")
            .unwrap()
            .contains("<CAJ8f3kQ1@mail.gmail.com>")
    );
    let reply_to = header(ack, "Reply-To").unwrap();
    assert!(
        reply_to.starts_with("support+t") && reply_to.ends_with("@example.com"),
        "{reply_to}"
    );
    let our_id = header(ack, "Message-ID").unwrap();
    assert!(our_id.starts_with("<ticketd.TKT-2026-0001."), "{our_id}");

    // The customer answers the acknowledgement with a new subject: In-Reply-To threads it.
    let reply = format!(
        "From: Jan Kowalski <jan.kowalski@firma.pl>\r\nTo: support@example.com\r\nSubject: jeszcze jedno\r\nMessage-ID: <reply-to-ack@firma.pl>\r\nIn-Reply-To: {our_id}\r\n\r\nZapomniałem dodać numer seryjny: 12345.\r\n"
    );
    assert_eq!(
        env.ingest(reply.as_bytes()).await.to_string(),
        "TKT-2026-0001 comment"
    );
    // Our own message coming back is recognized, not stored again.
    assert_eq!(
        env.ingest(ack.as_bytes()).await.kind,
        ticketd::ingest::OutcomeKind::Duplicate
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_threads_the_customers_reply_sqlite() {
    acknowledgement_threads_the_customers_reply(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgement_threads_the_customers_reply_postgres() {
    acknowledgement_threads_the_customers_reply(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_retries_until_the_server_comes_back() {
    let port = smtp::free_port();
    let toml = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_seconds = 2\n"
    );
    let env = env_with(common::backend(), &toml).await;
    env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
    let d = dispatcher(&env);
    assert_eq!(d.deliver_due().await.unwrap(), 1);
    assert_eq!(
        env.store.outbox_counts().await.unwrap(),
        [("pending".to_string(), 1)]
    );
    // Backed off: nothing is due until the clock moves.
    assert_eq!(d.deliver_due().await.unwrap(), 0);
    let server = SmtpServer::start_on(port);
    env.clock.advance(2);
    assert_eq!(d.deliver_due().await.unwrap(), 1);
    assert_eq!(server.messages().len(), 1);
    assert_eq!(
        env.store.outbox_counts().await.unwrap(),
        [("sent".to_string(), 1)]
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_send_and_mark_resends_with_the_same_message_id() {
    let server = SmtpServer::start();
    let env = env_with(common::backend(), &server.toml()).await;
    env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
    let d = dispatcher(&env);
    // The first process sent it and died before marking it sent.
    let pending = env
        .store
        .due_notifications(env.clock.now(), 10)
        .await
        .unwrap();
    d.mailer.send(&pending[0]).await.unwrap();
    // The next one finds it still pending and sends it again.
    assert_eq!(d.deliver_due().await.unwrap(), 1);
    let received = server.messages();
    assert_eq!(received.len(), 2);
    assert_eq!(
        header(&received[0], "Message-ID"),
        header(&received[1], "Message-ID")
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_fails_for_good_and_shows_in_the_history_a_4xx_is_retried() {
    let server = SmtpServer::start();
    let env = env_with(common::backend(), &server.toml()).await;
    let mail = String::from_utf8(fixture("missing-message-id.eml")).unwrap();
    env.ingest(mail.replace("ola@dom.pl", "reject-me@dom.pl").as_bytes())
        .await;
    env.ingest(mail.replace("ola@dom.pl", "defer-me@dom.pl").as_bytes())
        .await;
    let d = dispatcher(&env);
    assert_eq!(d.deliver_due().await.unwrap(), 2);
    assert_eq!(
        env.store.outbox_counts().await.unwrap(),
        [("failed".to_string(), 1), ("pending".to_string(), 1)]
    );
    let rejected = env.show("TKT-2026-0001").await;
    let h = rejected
        .history
        .iter()
        .find(|h| h.field == "notification.failed")
        .expect("history row");
    assert!(h.new.as_deref().unwrap().contains("550"), "{h:?}");
    assert!(server.messages().is_empty());
    env.finish().await;
}

on_both_backends!(
    an_auto_responder_ping_pong_stops_at_the_limit,
    |env: Env| async move {
        // A broken auto-responder that marks nothing as automatic and never threads:
        // every message opens a ticket whose acknowledgement it would answer again.
        for i in 0..15 {
            let raw = format!(
                "From: Bot <helpful-bot@vendor.example>\r\nTo: support@example.com\r\nSubject: Thanks for your message {i}\r\nMessage-ID: <bot-{i}@vendor.example>\r\n\r\nWe got your message.\r\n"
            );
            env.ingest(raw.as_bytes()).await;
            env.clock.advance(60);
        }
        assert_eq!(
            env.store.outbox_counts().await.unwrap(),
            [("pending".to_string(), 10), ("suppressed".to_string(), 5)]
        );
        let t = env.show("TKT-2026-0011").await;
        let h = t
            .history
            .iter()
            .find(|h| h.field == "notification.suppressed")
            .unwrap();
        assert_eq!(
            h.new.as_deref(),
            Some(
                "rate limit: 10 automatic messages to helpful-bot@vendor.example in the last hour"
            )
        );
        // An hour later the limit has room again.
        env.clock.advance(3600);
        let again = with_message_id(
            &fixture("gmail-new-ticket-pl-utf8.eml"),
            "bot-again@vendor.example",
        );
        let again = String::from_utf8(again).unwrap().replace(
            "Jan Kowalski <jan.kowalski@firma.pl>",
            "Bot <helpful-bot@vendor.example>",
        );
        env.ingest(again.as_bytes()).await;
        assert_eq!(
            env.store.outbox_counts().await.unwrap(),
            [("pending".to_string(), 11), ("suppressed".to_string(), 5)]
        );
        env.finish().await;
    }
);

on_both_backends!(
    no_acknowledgement_to_automatic_mail_or_our_own_address,
    |env: Env| async move {
        env.ingest_fixture("newsletter-list-id.eml").await;
        env.ingest_fixture("bounce-of-our-notification.eml").await;
        let own = String::from_utf8(fixture("missing-message-id.eml"))
            .unwrap()
            .replace("Ola <ola@dom.pl>", "support+x@example.com");
        env.ingest(own.as_bytes()).await;
        assert_eq!(
            env.store.outbox_counts().await.unwrap(),
            [("suppressed".to_string(), 3)]
        );
        let reasons: Vec<String> = futures::future::join_all(
            ["TKT-2026-0001", "TKT-2026-0002", "TKT-2026-0003"].map(|n| env.show(n)),
        )
        .await
        .into_iter()
        .map(|t| {
            t.history
                .iter()
                .find(|h| h.field == "notification.suppressed")
                .unwrap()
                .new
                .clone()
                .unwrap()
        })
        .collect();
        assert!(
            reasons[0].contains("auto-generated (Precedence: bulk)"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("auto-generated"), "{reasons:?}");
        assert!(
            reasons[2].contains("one of our own addresses"),
            "{reasons:?}"
        );
        env.finish().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_email_reply_reaches_requester_and_participants() {
    let server = SmtpServer::start();
    let env = env_with(common::backend(), &server.toml()).await;
    env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await; // Cc: anna.nowak@firma.pl
    let reply = "From: Agnieszka <agent@example.com>\r\nTo: jan.kowalski@firma.pl\r\nSubject: Re: [TKT-2026-0001] Drukarka\r\nMessage-ID: <agent-1@example.com>\r\nIn-Reply-To: <CAJ8f3kQ1@mail.gmail.com>\r\n\r\nProszę wyłączyć i włączyć drukarkę.\r\n";
    assert_eq!(
        env.ingest(reply.as_bytes()).await.to_string(),
        "TKT-2026-0001 comment"
    );
    assert_eq!(dispatcher(&env).deliver_due().await.unwrap(), 3);
    let mut replies: Vec<(String, String)> = server
        .messages()
        .iter()
        .filter(|m| header(m, "Auto-Submitted").is_none())
        .map(|m| (header(m, "X-Rcpt-To").unwrap(), m.clone()))
        .collect();
    replies.sort();
    let to: Vec<&str> = replies.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(to, ["anna.nowak@firma.pl", "jan.kowalski@firma.pl"]);
    let body = mail_parser::MessageParser::default()
        .parse(replies[1].1.as_bytes())
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned();
    assert!(
        body.starts_with("Proszę wyłączyć i włączyć drukarkę."),
        "{body}"
    );
    assert_eq!(
        header(&replies[1].1, "In-Reply-To").as_deref(),
        Some("<agent-1@example.com>")
    );
    env.finish().await;
}

async fn secure_delivery(tls: &str) {
    let server = SmtpServer::start_secure(tls, "mailer:pa55word");
    let toml = format!(
        "[smtp]\nhost = \"localhost\"\nport = {}\ntls = \"{tls}\"\nca_file = \"{}\"\nusername = \"mailer\"\npassword = \"pa55word\"\ntimeout_seconds = 5\n",
        server.port,
        server.ca_file().display()
    );
    let env = env_with(common::backend(), &toml).await;
    env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
    dispatcher(&env).deliver_due().await.unwrap();
    let error: Option<String> = sqlx::Row::try_get(
        &sqlx::query("SELECT last_error FROM outbox")
            .fetch_one(env.store.pool())
            .await
            .unwrap(),
        0,
    )
    .unwrap();
    assert_eq!(server.messages().len(), 1, "{error:?}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_starttls_with_auth() {
    secure_delivery("starttls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_implicit_tls_with_auth() {
    secure_delivery("implicit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_smtp_server_times_out_and_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                drop(socket);
            });
        }
    });
    let toml = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_seconds = 1\n"
    );
    let env = env_with(common::backend(), &toml).await;
    env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
    let started = std::time::Instant::now();
    dispatcher(&env).deliver_due().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let pending = env
        .store
        .due_notifications(env.clock.now() + 10, 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    env.finish().await;
}

#[test]
fn addresses_with_line_breaks_never_reach_a_header() {
    let config = ticketd::config::Config::parse("").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config;
    config.mail.outbox_dir = dir.path().to_path_buf();
    let mailer = Mailer::new(&config).unwrap();
    let mut n = ticketd::store::outbox::Pending {
        id: 1,
        ticket_id: None,
        event: "agent_reply".into(),
        channel: "email".into(),
        recipient: "victim@example.com\r\nBcc: all@example.com".into(),
        automatic: false,
        message_id: Some("x@example.com".into()),
        in_reply_to: None,
        references: Vec::new(),
        reply_to: None,
        subject: "hi\r\nBcc: all@example.com".into(),
        body: "body".into(),
        html: None,
        attempts: 0,
        created_at: 0,
    };
    assert!(matches!(
        mailer.build(&n),
        Err(ticketd::notify::send::SendError::Permanent(_))
    ));
    n.recipient = "ok@example.com".into();
    let message = String::from_utf8(mailer.build(&n).unwrap().formatted()).unwrap();
    assert!(!message.contains("\r\nBcc:"), "{message}");
    assert!(
        message.contains("Subject: hi Bcc: all@example.com"),
        "{message}"
    );
}

// The same loop arriving in batches: each batch reads the recipient's counts
// ahead once and adds its own acknowledgements to them.
on_both_backends!(
    a_batched_ping_pong_stops_at_the_limit,
    |env: Env| async move {
        let pipeline = env.pipeline_clone();
        let bot = |i: usize| {
            format!(
                "From: Bot <helpful-bot@vendor.example>\r\nTo: support@example.com\r\nSubject: Thanks for your message {i}\r\nMessage-ID: <bot-{i}@vendor.example>\r\n\r\nWe got your message.\r\n"
            )
        };
        let first: Vec<String> = (0..7).map(bot).collect();
        Env::ingest_batch(&pipeline, "a", &first).await;
        env.clock.advance(60);
        let second: Vec<String> = (7..15).map(bot).collect();
        Env::ingest_batch(&pipeline, "b", &second).await;
        assert_eq!(
            env.store.outbox_counts().await.unwrap(),
            [("pending".to_string(), 10), ("suppressed".to_string(), 5)]
        );
        env.finish().await;
    }
);
