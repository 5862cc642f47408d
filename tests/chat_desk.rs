//! The agents' chat desk on Telegram, against a local Bot API server and the
//! real SMTP test server: agents answer customers by replying to a ticket's
//! notification, give commands with role checks, strangers are ignored;
//! chat customers get agents' replies in their chat and use /status and
//! /close.

#[macro_use]
mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/smtp.rs"]
mod smtp;
#[path = "common/telegram.rs"]
mod telegram;
#[path = "common/tls.rs"]
mod tls;

use common::Env;
use serde_json::json;
use smtp::{SmtpServer, header};
use telegram::{AGENT_CHAT, FakeTelegram, agent_message, private_message};
use ticketd::notify::dispatch::Dispatcher;
use ticketd::source::telegram::TelegramSource;
use ticketd::store::Backend;

const MANAGER: i64 = 7;
const AGENT: i64 = 8;
const VIEWER: i64 = 9;
const STRANGER: i64 = 666;

/// `[telegram]` with the agents' group, and three agents with Telegram ids.
fn desk_config(server: &FakeTelegram, dir: &std::path::Path, smtp: &str) -> String {
    format!(
        r#"{smtp}
{telegram}agent_chat = {AGENT_CHAT}

[[team]]
name = "billing"

[[agent]]
email = "anna@example.com"
name = "Anna Nowak"
role = "manager"
telegram = {MANAGER}

[[agent]]
email = "olek@example.com"
name = "Olek"
telegram = {AGENT}
teams = ["support"]

[[agent]]
email = "vera@example.com"
role = "viewer"
telegram = {VIEWER}
"#,
        telegram = server.toml(dir),
    )
}

/// Delivers mail only: chat messages stay queued (Telegram's one message
/// per second per chat would make the test slow); they are read from the
/// outbox instead.
fn mail_dispatcher(env: &Env) -> Dispatcher {
    Dispatcher {
        telegram: None,
        ..env.dispatcher()
    }
}

/// (event, body) of the chat messages queued for `chat`, oldest first.
async fn chat_messages(env: &Env, chat: i64) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT event, body FROM outbox WHERE channel = 'telegram' AND recipient = $1
         ORDER BY id",
    )
    .bind(chat.to_string())
    .fetch_all(env.store.pool())
    .await
    .unwrap()
}

/// The bot's answers in the agents' chat, oldest first.
async fn bot_answers(env: &Env) -> Vec<String> {
    chat_messages(env, AGENT_CHAT)
        .await
        .into_iter()
        .filter(|(e, _)| e == "chat_answer")
        .map(|(_, b)| b)
        .collect()
}

async fn journal(env: &Env) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT outcome, COALESCE(reason, '') FROM ingest_journal
         WHERE source = 'telegram' ORDER BY id",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap()
}

fn mail(from: &str, subject: &str, id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

async fn agents_answer_and_give_commands_from_their_chat(backend: Backend) {
    let server = FakeTelegram::start(vec![]).await;
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with_config(backend, &desk_config(&server, dir.path(), &smtp.toml())).await;
    let number = env
        .ingest(&mail(
            "Jan Kowalski <jan@firma.pl>",
            "Drukarka nie działa",
            "d1@firma.pl",
            "Od rana nic nie drukuje.",
        ))
        .await
        .ticket
        .unwrap();
    // The agents' group hears of the new ticket; its text names the ticket.
    let notices = chat_messages(&env, AGENT_CHAT).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    let (event, notice) = &notices[0];
    assert_eq!(event, "new_ticket");
    assert!(
        notice.contains(&number) && notice.contains("Od rana"),
        "{notice}"
    );
    let on_ticket = Some(notice.as_str());
    let other = format!("{number} · other");
    server.push_updates(vec![
        agent_message(1, 101, AGENT, "Proszę zrestartować drukarkę.", on_ticket),
        agent_message(2, 102, AGENT, "/priority high", on_ticket),
        agent_message(3, 103, AGENT, "/assign anna", on_ticket),
        agent_message(4, 104, MANAGER, &format!("/assign {number} olek"), None),
        agent_message(5, 105, VIEWER, "/close", on_ticket),
        agent_message(6, 106, VIEWER, &format!("/show {number}"), None),
        agent_message(7, 107, STRANGER, "/close", on_ticket),
        agent_message(8, 108, AGENT, &format!("/note {number} dzwoniłem"), None),
        agent_message(9, 109, AGENT, "/tickets mine", None),
        agent_message(10, 110, AGENT, "/priority urgent", Some(&other)),
        agent_message(11, 111, AGENT, "/frobnicate", None),
        agent_message(12, 112, AGENT, "who has lunch?", None),
        agent_message(13, 113, AGENT, "/show TKT-2026-9999", None),
        agent_message(14, 114, MANAGER, "/status pending", on_ticket),
    ]);
    let source = TelegramSource::new(&env.config).unwrap().unwrap();
    assert_eq!(source.poll_once(&env.pipeline, 0).await.unwrap(), 14);

    let ticket = env.show(&number).await;
    assert_eq!(ticket.priority, "high");
    assert_eq!(ticket.assignee.as_deref(), Some("olek@example.com"));
    assert_eq!(ticket.status, "pending");
    assert!(
        ticket.first_response_at.is_some(),
        "the reply is a response"
    );
    let comments: Vec<(&str, bool, &str)> = ticket
        .comments
        .iter()
        .skip(1)
        .map(|c| (c.author.as_str(), c.internal, c.body.as_str()))
        .collect();
    assert_eq!(
        comments,
        [
            ("olek@example.com", false, "Proszę zrestartować drukarkę."),
            ("olek@example.com", true, "dzwoniłem"),
        ]
    );
    // Changes are the agents' own in the history.
    let by = |field: &str| {
        ticket
            .history
            .iter()
            .filter(|h| h.field == field)
            .map(|h| (h.actor.clone(), h.new.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by("priority"),
        [("olek@example.com".to_string(), "high".to_string())]
    );
    assert_eq!(
        by("assignee"),
        [(
            "anna@example.com".to_string(),
            "olek@example.com".to_string()
        )]
    );

    // Each message is journaled; the stranger and the chatter are not taken.
    let outcomes = journal(&env).await;
    let kinds: Vec<&str> = outcomes.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "comment", "command", "rejected", "command", "rejected", "command", "rejected",
            "comment", "command", "rejected", "rejected", "rejected", "rejected", "command"
        ],
        "{outcomes:?}"
    );
    assert!(
        outcomes[6].1.contains("not a configured agent"),
        "{outcomes:?}"
    );

    // The bot answers in the agents' chat: what changed, refusals, lists.
    let answers = bot_answers(&env).await;
    let expect = [
        format!("{number}: priority medium → high"),
        "only managers and admins assign tickets to others".to_string(),
        format!("{number}: assignee none → olek@example.com"),
        "viewers can look".to_string(),
        "Drukarka nie działa".to_string(),
        format!("{number}: note added"),
        format!("{number} · new · high · olek@example.com"),
        "usage: /priority".to_string(),
        "unknown command /frobnicate".to_string(),
        "there is no ticket TKT-2026-9999".to_string(),
        format!("{number}: status new → pending"),
    ];
    assert_eq!(answers.len(), expect.len(), "{answers:#?}");
    for (answer, expected) in answers.iter().zip(&expect) {
        assert!(
            answer.contains(expected.as_str()),
            "{answer:?} lacks {expected:?}"
        );
    }

    // The customer gets the reply and the status notice by mail (not the note).
    mail_dispatcher(&env).deliver_due().await.unwrap();
    let received = smtp.messages();
    let to_jan: Vec<&String> = received
        .iter()
        .filter(|m| header(m, "X-Rcpt-To").as_deref() == Some("jan@firma.pl"))
        .collect();
    assert_eq!(to_jan.len(), 3, "ack, reply, status: {received:#?}");
    // Delivered concurrently, so in any order.
    assert!(
        to_jan.iter().any(|m| m.contains("zrestartowa")),
        "{to_jan:#?}"
    );
    assert!(!received.iter().any(|m| m.contains("dzwoni")));

    // The customer's answer by mail reaches the agents' chat.
    env.ingest(&mail(
        "Jan Kowalski <jan@firma.pl>",
        &format!("Re: [{number}] Drukarka nie działa"),
        "d2@firma.pl",
        "Zrestartowałem, dalej nic.",
    ))
    .await;
    let (event, last) = chat_messages(&env, AGENT_CHAT).await.pop().unwrap();
    assert_eq!(event, "requester_comment");
    assert!(
        last.contains(&number) && last.contains("dalej nic"),
        "{last}"
    );
    env.finish().await;
}
for_each_backend!(agents_answer_and_give_commands_from_their_chat);

async fn chat_customers_get_replies_in_their_chat_and_use_status_and_close(backend: Backend) {
    let server = FakeTelegram::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with_config(backend, &desk_config(&server, dir.path(), "")).await;
    server.push_updates(vec![private_message(
        1,
        10,
        json!({"text": "Nie mogę się zalogować"}),
    )]);
    let source = TelegramSource::new(&env.config).unwrap().unwrap();
    source.poll_once(&env.pipeline, 0).await.unwrap();
    let number: String = sqlx::query_scalar("SELECT number FROM tickets")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    // An agent answers by mail …
    env.ingest(&mail(
        "Agnieszka Agent <agent@example.com>",
        &format!("Re: [{number}] Nie mogę się zalogować"),
        "a1@example.com",
        "Hasło zresetowane.",
    ))
    .await;
    // … and another from the agents' chat; both reach the customer's chat.
    let notice = chat_messages(&env, AGENT_CHAT).await[0].1.clone();
    server.push_updates(vec![
        agent_message(2, 101, AGENT, "Proszę spróbować teraz.", Some(&notice)),
        private_message(3, 11, json!({"text": "/status"})),
        private_message(4, 12, json!({"text": "/close"})),
        private_message(5, 13, json!({"text": "/status"})),
    ]);
    source.poll_once(&env.pipeline, 0).await.unwrap();
    let to_customer: Vec<(String, String)> = chat_messages(&env, 42).await;
    let events: Vec<&str> = to_customer.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        events,
        [
            "ticket_created",
            "agent_reply",
            "agent_reply",
            "chat_answer",
            "status_changed",
            "chat_answer"
        ],
        "{to_customer:#?}"
    );
    assert!(to_customer[1].1.contains("Hasło zresetowane"));
    assert!(to_customer[2].1.contains("spróbować teraz"));
    assert!(
        to_customer[3].1.contains(&number) && to_customer[3].1.contains("Twoje zgłoszenia"),
        "{}",
        to_customer[3].1
    );
    assert!(to_customer[5].1.contains("Nie ma tu otwartych"));
    let ticket = env.show(&number).await;
    assert_eq!(ticket.status, "closed");
    assert!(
        ticket
            .history
            .iter()
            .any(|h| h.actor == "telegram:42" && h.new.as_deref() == Some("closed")),
        "{:?}",
        ticket.history
    );
    // The agents' chat hears the customer opened it, not the commands.
    let to_agents: Vec<String> = chat_messages(&env, AGENT_CHAT)
        .await
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(to_agents, ["new_ticket"]);
    env.finish().await;
}
for_each_backend!(chat_customers_get_replies_in_their_chat_and_use_status_and_close);

async fn customers_send_photos_and_files(backend: Backend) {
    let server = FakeTelegram::start(vec![]).await;
    let photo: Vec<u8> = (0..=255u8).cycle().take(700).collect();
    server.add_file("p1", &photo);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::configured(backend, &server.toml(dir.path()), |c| {
        c.attachments.max_bytes = 1000
    })
    .await;
    let document = |name: &str, id: &str, size: u64| {
        json!({"document": {"file_id": id, "file_unique_id": id, "file_size": size,
                            "file_name": name, "mime_type": "application/pdf"}})
    };
    server.push_updates(vec![
        private_message(
            1,
            10,
            json!({"photo": [{"file_id": "p1", "file_unique_id": "p1", "file_size": 700,
                              "width": 640, "height": 480}]}),
        ),
        private_message(2, 11, document("skan.pdf", "big", 5000)),
        private_message(3, 12, document("umowa.pdf", "gone", 10)),
    ]);
    let source = TelegramSource::new(&env.config).unwrap().unwrap();
    assert_eq!(source.poll_once(&env.pipeline, 0).await.unwrap(), 3);
    let number: String = sqlx::query_scalar("SELECT number FROM tickets")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    let ticket = env.show(&number).await;
    assert_eq!(ticket.subject, "[photo-10.jpg]");
    let attachments: Vec<(&str, i64, bool)> = ticket
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.size, a.stored))
        .collect();
    assert_eq!(
        attachments,
        [
            ("photo-10.jpg", 700, true),
            ("skan.pdf", 5000, false),
            ("umowa.pdf", 10, false)
        ]
    );
    let kept = ticketd::store::files::content_path(
        &env.config.attachments.dir,
        &ticket.attachments[0].sha256,
    );
    assert_eq!(std::fs::read(kept).unwrap(), photo);
    // The file over the limit was not even asked for.
    let asked: Vec<String> = server
        .calls()
        .iter()
        .filter(|(m, _)| m == "GetFile")
        .map(|(_, p)| p["file_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(asked, ["p1", "gone"]);
    env.finish().await;
}
for_each_backend!(customers_send_photos_and_files);

async fn every_command_works_from_the_agents_chat(backend: Backend) {
    let server = FakeTelegram::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with_config(backend, &desk_config(&server, dir.path(), "")).await;
    let first = env
        .ingest(&mail(
            "Jan <jan@firma.pl>",
            "Drukarka",
            "c1@firma.pl",
            "Nie drukuje.",
        ))
        .await
        .ticket
        .unwrap();
    let second = env
        .ingest(&mail(
            "Ola <ola@firma.pl>",
            "Faktura",
            "c2@firma.pl",
            "Zła kwota.",
        ))
        .await
        .ticket
        .unwrap();
    let notice = chat_messages(&env, AGENT_CHAT).await[0].1.clone();
    assert!(notice.contains(&first), "{notice}");
    let on_first = Some(notice.as_str());
    server.push_updates(vec![
        agent_message(1, 201, AGENT, "/take", on_first),
        agent_message(2, 202, AGENT, "/tickets unassigned", None),
        agent_message(3, 203, AGENT, "/close", on_first),
        agent_message(4, 204, AGENT, &format!("/reopen {first}"), None),
        agent_message(5, 205, AGENT, &format!("/reply {second} Dzień dobry"), None),
        agent_message(6, 206, AGENT, "/help", None),
        agent_message(7, 207, AGENT, "/tickets breached", None),
    ]);
    let source = TelegramSource::new(&env.config).unwrap().unwrap();
    assert_eq!(source.poll_once(&env.pipeline, 0).await.unwrap(), 7);
    // A month later both tickets are past their SLA targets.
    env.clock.advance(30 * 86_400);
    server.push_updates(vec![agent_message(
        8,
        208,
        AGENT,
        "/tickets breached",
        None,
    )]);
    assert_eq!(source.poll_once(&env.pipeline, 0).await.unwrap(), 1);

    let one = env.show(&first).await;
    assert_eq!(one.assignee.as_deref(), Some("olek@example.com"));
    assert_eq!(one.status, "open", "closed, then reopened");
    let statuses: Vec<Option<String>> = one
        .history
        .iter()
        .filter(|h| h.field == "status" && h.actor == "olek@example.com")
        .map(|h| h.new.clone())
        .collect();
    assert_eq!(statuses, [Some("closed".into()), Some("open".into())]);
    let two = env.show(&second).await;
    let reply = two.comments.last().unwrap();
    assert_eq!(
        (reply.author.as_str(), reply.internal, reply.body.as_str()),
        ("olek@example.com", false, "Dzień dobry")
    );
    let answers = bot_answers(&env).await;
    assert_eq!(answers.len(), 7, "{answers:#?}");
    assert!(answers[0].contains("assignee none → olek@example.com"));
    assert!(
        answers[1].contains(&second) && !answers[1].contains(&first),
        "{}",
        answers[1]
    );
    assert!(answers[2].contains("status new → closed"), "{}", answers[2]);
    assert!(
        answers[3].contains("status closed → open"),
        "{}",
        answers[3]
    );
    assert!(
        answers[4].starts_with("Reply to a ticket's message"),
        "{}",
        answers[4]
    );
    assert_eq!(answers[5], "No tickets.");
    assert!(
        answers[6].contains(&first) && answers[6].contains(&second),
        "{}",
        answers[6]
    );
    env.finish().await;
}
for_each_backend!(every_command_works_from_the_agents_chat);
