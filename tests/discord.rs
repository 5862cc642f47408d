//! Notifications to a Discord channel, through the outbox, against a local
//! server that speaks Discord's HTTP API.

#[macro_use]
mod common;
#[path = "common/discord.rs"]
mod discord;
#[path = "common/http.rs"]
mod http;

use common::Env;
use discord::FakeDiscord;
use ticketd::store::Backend;

const RULES: &str = r#"
[[rule]]
name = "tell the agents' channel"
on = "ticket.created"
then = [{ notify = { template = "ticket_escalated", to = "discord:987654321" } }]
"#;

async fn a_rule_notifies_a_discord_channel_and_waits_out_a_429(backend: Backend) {
    let server = FakeDiscord::start(vec![2.5]).await;
    let dir = tempfile::tempdir().unwrap();
    let (env, _rules) = Env::with_rules(backend, &server.toml(dir.path()), RULES).await;
    let number = env
        .ingest(
            b"From: Jan <jan@firma.pl>\r\nTo: support@example.com\r\nSubject: Faktura @everyone\r\n\
              Message-ID: <dc-1@firma.pl>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nKorekta.\r\n",
        )
        .await
        .ticket
        .unwrap();
    let d = env.dispatcher();
    // The acknowledgement (by mail) and the channel message, which gets a 429 …
    assert_eq!(d.deliver_due().await.unwrap(), 2);
    let first = notice(&env, &number).await;
    assert_eq!(
        (first.status.as_str(), first.recipient.as_str()),
        ("pending", "987654321")
    );
    assert!(
        first
            .last_error
            .as_deref()
            .unwrap()
            .contains("retry after 3"),
        "{first:?}"
    );
    // … is not tried again before retry_after (2.5 s, rounded up) …
    env.clock.advance(2);
    assert_eq!(d.deliver_due().await.unwrap(), 0);
    // … and then goes out, naming the ticket, pinging nobody.
    env.clock.advance(1);
    assert_eq!(d.deliver_due().await.unwrap(), 1);
    assert_eq!(notice(&env, &number).await.status, "sent");
    let calls = server.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (path, authorization, body) = &calls[1];
    assert_eq!(path, "/api/v10/channels/987654321/messages");
    assert_eq!(authorization, &format!("Bot {}", discord::TOKEN));
    assert!(
        body["content"].as_str().unwrap().contains(&number),
        "{body}"
    );
    assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
    env.finish().await;
}
for_each_backend!(a_rule_notifies_a_discord_channel_and_waits_out_a_429);

async fn notice(env: &Env, number: &str) -> ticketd::store::queries::NotificationView {
    env.show(number)
        .await
        .notifications
        .into_iter()
        .find(|n| n.channel == "discord")
        .unwrap()
}

#[tokio::test]
async fn a_discord_recipient_needs_a_configured_bot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("10-test.toml"), RULES).unwrap();
    let catalog = ticketd::rules::Catalog::default();
    let errors = ticketd::rules::load::load_dir(dir.path(), &catalog).unwrap_err();
    let message = errors[0].to_string();
    assert!(
        message.contains("discord:987654321 needs a [discord] bot in the config"),
        "{message}"
    );
}
