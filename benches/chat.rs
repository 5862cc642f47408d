//! Chat intake benchmark against a local Telegram Bot API server (the tests'
//! fake, speaking the real wire protocol):
//!
//!     cargo bench --bench chat -- [--messages 1000] [--customers 250]
//!
//! Queues N private messages from C customers (each customer's first
//! message opens a ticket, the rest comment on it) and times the Telegram
//! source taking them all: long-poll `getUpdates` (100 per call), one
//! transaction per update into a fresh SQLite database, the answer queued
//! in the outbox. Prints messages/s.

#[path = "support/args.rs"]
mod args;
#[path = "../tests/common/http.rs"]
mod http;
#[path = "../tests/common/telegram.rs"]
mod telegram;

use args::arg;
use serde_json::json;
use std::time::Instant;
use ticketd::clock::Clock;
use ticketd::config::Config;
use ticketd::ingest::Pipeline;
use ticketd::source::telegram::TelegramSource;

fn main() -> anyhow::Result<()> {
    let n = arg("--messages", 1000);
    let customers = arg("--customers", 250).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = telegram::FakeTelegram::start(vec![]).await;
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let config_text = format!(
            "[database]\nurl = \"sqlite://{d}/ticketd.db\"\n[mail]\nquarantine_dir = \"{d}/q\"\noutbox_dir = \"{d}/outbox\"\n[attachments]\ndir = \"{d}/a\"\n{}",
            server.toml(dir.path())
        );
        let config = Config::parse(&config_text)?;
        let store = ticketd::app::open_store(&config).await?;
        let pipeline = Pipeline::new(
            &config,
            &ticketd::app::context(&config, store.clone(), Clock::System)?,
        );
        let updates = (0..n)
            .map(|i| {
                let user = (i % customers) as i64 + 1000;
                let mut update = telegram::private_message(
                    i as i64 + 1,
                    i as i64 + 1,
                    json!({"text": format!("Drukarka nie działa, wiadomość {i}")}),
                );
                let message = &mut update["message"];
                message["chat"]["id"] = json!(user);
                message["from"]["id"] = json!(user);
                update
            })
            .collect();
        server.push_updates(updates);
        let source = TelegramSource::new(&config)?.expect("telegram is configured");

        let t = Instant::now();
        let mut taken = 0;
        while taken < n {
            taken += source.poll_once(&pipeline, 0).await?;
        }
        let secs = t.elapsed().as_secs_f64();
        let tickets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets")
            .fetch_one(store.pool())
            .await?;
        let comments: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM comments")
            .fetch_one(store.pool())
            .await?;
        anyhow::ensure!(
            tickets == customers.min(n) as i64 && comments == n as i64,
            "{tickets} tickets and {comments} comments from {n} messages"
        );
        println!(
            "{n} Telegram messages from {customers} customers → {tickets} tickets, {comments} comments in {secs:.2} s: {:.0} messages/s",
            n as f64 / secs
        );
        store.close().await;
        Ok(())
    })
}
