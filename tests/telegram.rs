//! Notifications to a Telegram chat, through the outbox, against a local
//! server that speaks the Bot API (teloxide pointed at it with `api_url`).

#[macro_use]
mod common;
#[path = "common/telegram.rs"]
mod telegram;

use common::Env;
use std::sync::Arc;
use telegram::{Answer, FakeTelegram};
use ticketd::notify::dispatch::Dispatcher;
use ticketd::store::Backend;

const RULES: &str = r#"
[[rule]]
name = "tell the agents' group"
on = "ticket.created"
then = [{ notify = { template = "ticket_escalated", to = "telegram:-100777" } }]
"#;

fn dispatcher(env: &Env) -> Dispatcher {
    Dispatcher {
        store: env.store.clone(),
        mailer: ticketd::notify::email::Mailer::new(&env.config).unwrap(),
        webhooks: ticketd::notify::webhook::Webhooks::new(&env.config).unwrap(),
        telegram: ticketd::notify::telegram::Telegram::new(&env.config).unwrap(),
        clock: env.clock.clone(),
        max_age_seconds: 3600,
        concurrency: 2,
        wake: Arc::new(tokio::sync::Notify::new()),
    }
}

fn mail(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Jan <jan@firma.pl>\r\nTo: support@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <tg-1@firma.pl>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

async fn a_rule_notifies_a_telegram_chat_and_waits_out_a_429(backend: Backend) {
    let server = FakeTelegram::start(vec![Answer::TooMany(7)]).await;
    let dir = tempfile::tempdir().unwrap();
    let (env, _rules) = Env::with_rules(backend, &server.toml(dir.path()), RULES).await;
    let number = env
        .ingest(&mail("Faktura źle wystawiona", "Proszę o korektę."))
        .await
        .ticket
        .unwrap();
    let dispatcher = dispatcher(&env);
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
            .contains("retry after 7"),
        "{first:?}"
    );
    // … is not tried again before retry_after has passed …
    env.clock.advance(6);
    assert_eq!(dispatcher.deliver_due().await.unwrap(), 0);
    // … and then goes out.
    env.clock.advance(1);
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
