//! Notifications to a Telegram chat, through the outbox, against a local
//! server that speaks the Bot API (teloxide pointed at it with `api_url`).

#[macro_use]
mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/telegram.rs"]
mod telegram;

use common::Env;
use serde_json::json;
use telegram::{Answer, FakeTelegram, private_message};
use ticketd::source::telegram::TelegramSource;
use ticketd::store::Backend;

const RULES: &str = r#"
[[rule]]
name = "tell the agents' group"
on = "ticket.created"
then = [{ notify = { template = "ticket_escalated", to = "telegram:-100777" } }]
"#;

fn mail(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Jan <jan@firma.pl>\r\nTo: support@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <tg-1@firma.pl>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

async fn a_rule_notifies_a_telegram_chat_and_waits_out_a_429(backend: Backend) {
    let server = FakeTelegram::start(vec![Answer::TooMany(2)]).await;
    let dir = tempfile::tempdir().unwrap();
    let (env, _rules) = Env::with_rules(backend, &server.toml(dir.path()), RULES).await;
    let number = env
        .ingest(&mail("Faktura źle wystawiona", "Proszę o korektę."))
        .await
        .ticket
        .unwrap();
    let dispatcher = env.dispatcher();
    // The acknowledgement (by mail) and the chat message, which gets a 429 …
    let queued = env.show(&number).await.notifications;
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert_eq!(dispatcher.deliver_due().await.unwrap(), 2);
    let first = chat_notice(&env, &number).await;
    assert_eq!(
        (first.status.as_str(), first.recipient.as_str()),
        ("pending", "-100777")
    );
    assert!(
        first
            .last_error
            .as_deref()
            .unwrap()
            .contains("retry after 2"),
        "{first:?}"
    );
    let limited_at = std::time::Instant::now();
    // … is not tried again before retry_after has passed …
    env.clock.advance(1);
    assert_eq!(dispatcher.deliver_due().await.unwrap(), 0);
    // … and then goes out: due in the outbox, and the chat's hold (kept to
    // the millisecond in real time) over.
    env.clock.advance(1);
    tokio::time::sleep_until((limited_at + std::time::Duration::from_secs(2)).into()).await;
    assert_eq!(dispatcher.deliver_due().await.unwrap(), 1);
    assert_eq!(chat_notice(&env, &number).await.status, "sent");

    let calls = server.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (method, params) in &calls {
        assert_eq!(method, "SendMessage");
        assert_eq!(params["chat_id"], -100777);
    }
    let text = calls[1].1["text"].as_str().unwrap();
    assert!(text.contains(&number), "{text}");
    assert!(text.contains("Faktura źle wystawiona"), "{text}");
    env.finish().await;
}
for_each_backend!(a_rule_notifies_a_telegram_chat_and_waits_out_a_429);

async fn chat_notice(env: &Env, number: &str) -> ticketd::store::queries::NotificationView {
    env.show(number)
        .await
        .notifications
        .into_iter()
        .find(|n| n.channel == "telegram")
        .unwrap()
}

#[tokio::test]
async fn a_chat_recipient_needs_a_configured_bot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("10-test.toml"), RULES).unwrap();
    let catalog = ticketd::rules::Catalog::default();
    let errors = ticketd::rules::load::load_dir(dir.path(), &catalog).unwrap_err();
    let message = errors[0].to_string();
    assert!(
        message.contains("telegram:-100777 needs a [telegram] bot in the config"),
        "{message}"
    );
}

async fn customers_open_a_ticket_and_comment_from_a_private_chat(backend: Backend) {
    let server = FakeTelegram::start(vec![]).await;
    let mut edit = private_message(
        4,
        10,
        json!({"text": "Drukarka nie działa!", "edit_date": 1}),
    );
    edit["edited_message"] = edit["message"].take();
    server.push_updates(vec![
        private_message(1, 10, json!({"text": "Drukarka nie działa\nod rana"})),
        private_message(2, 11, json!({"text": "Nadal nie działa"})),
        private_message(3, 12, json!({"text": "👍"})),
        edit,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with_config(backend, &server.toml(dir.path())).await;
    let source = TelegramSource::new(&env.config).unwrap().unwrap();
    assert_eq!(source.poll_once(&env.pipeline, 0).await.unwrap(), 4);

    // One ticket from the first message, the second a comment on it.
    let numbers: Vec<String> = sqlx::query_scalar("SELECT number FROM tickets")
        .fetch_all(env.store.pool())
        .await
        .unwrap();
    assert_eq!(numbers.len(), 1, "{numbers:?}");
    let ticket = env.show(&numbers[0]).await;
    assert_eq!(ticket.subject, "Drukarka nie działa");
    assert!(ticket.comments.iter().all(|c| c.channel == "telegram"));
    assert_eq!(ticket.requester.name, "Jan Kowalski");
    let bodies: Vec<&str> = ticket.comments.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies, ["Drukarka nie działa\nod rana", "Nadal nie działa"]);

    // The next poll asks from offset 5; a server that sends everything again
    // changes nothing (the saved offset and the dedupe key both hold).
    assert_eq!(source.poll_once(&env.pipeline, 0).await.unwrap(), 0);
    let offsets: Vec<i64> = server
        .calls()
        .iter()
        .filter(|(m, _)| m == "GetUpdates")
        .map(|(_, p)| p["offset"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(offsets, [0, 5]);
    server.replay_everything();
    let again = TelegramSource::new(&env.config).unwrap().unwrap();
    assert_eq!(again.poll_once(&env.pipeline, 0).await.unwrap(), 0);
    assert_eq!(env.show(&numbers[0]).await.comments.len(), 2);

    // Every update is journaled with its outcome.
    let journal: Vec<(String, String)> =
        sqlx::query_as("SELECT source_key, outcome FROM ingest_journal ORDER BY id")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    let outcomes: Vec<&str> = journal.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["created", "comment", "rejected", "rejected"],
        "{journal:?}"
    );

    // The customer gets the ticket number, and an answer to the thumbs-up
    // a second later (one message per second per chat).
    let dispatcher = env.dispatcher();
    dispatcher.deliver_due().await.unwrap();
    env.clock.advance(1);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    dispatcher.deliver_due().await.unwrap();
    let sent: Vec<String> = server
        .calls()
        .iter()
        .filter(|(m, p)| m == "SendMessage" && p["chat_id"] == 42)
        .map(|(_, p)| p["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[0].contains(&numbers[0]), "{sent:?}");
    assert!(sent[1].contains("słowami"), "{sent:?}");
    env.finish().await;
}
for_each_backend!(customers_open_a_ticket_and_comment_from_a_private_chat);
