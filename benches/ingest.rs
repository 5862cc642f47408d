//! Ingest benchmark: generates N realistic messages (new tickets in Polish,
//! English and German, ISO-8859-2 and HTML-only ones, quoted replies that
//! thread by In-Reply-To, auto-replies) and ingests them through the full
//! pipeline into a fresh SQLite database with durable commits
//! (WAL, synchronous=FULL), in batches.
//!
//!     cargo bench --bench ingest -- [--messages 10000] [--batch 200] [--database-url URL]
//!
//! Prints messages/s and the process's peak RSS (VmHWM).

use std::time::Instant;
use ticketd::clock::Clock;
use ticketd::config::Config;
use ticketd::ingest::{Inbound, OutcomeKind, Pipeline};

#[path = "support/args.rs"]
mod support;

#[path = "support/messages.rs"]
mod messages;
use messages::message;

struct Args {
    messages: usize,
    batch: usize,
    database_url: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        messages: 10_000,
        batch: 200,
        database_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => {
                a.messages = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.messages)
            }
            "--batch" => a.batch = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.batch),
            "--database-url" => a.database_url = it.next(),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn main() -> anyhow::Result<()> {
    let args = args();
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut config = Config::parse("")?;
        config.database.url = args
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
        config.attachments.dir = dir.path().join("attachments");
        config.mail.quarantine_dir = dir.path().join("quarantine");
        let store = ticketd::app::open_store(&config).await?;
        let pipeline = Pipeline::new(
            &config,
            &ticketd::app::context(&config, store.clone(), Clock::System)?,
        );

        if std::env::var_os("PARSE_ONLY").is_some() {
            let t = Instant::now();
            for n in 0..args.messages {
                let _ = ticketd::parse::parse(&message(n));
            }
            println!("parse only: {:.2} s", t.elapsed().as_secs_f64());
        }
        let start = Instant::now();
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        let mut i = 0;
        while i < args.messages {
            let end = (i + args.batch).min(args.messages);
            let batch: Vec<Inbound> = (i..end)
                .map(|n| Inbound::new("bench", n.to_string(), message(n)))
                .collect();
            for o in pipeline.ingest(&batch).await? {
                *counts.entry(o.kind.as_str()).or_default() += 1;
                anyhow::ensure!(
                    o.kind != OutcomeKind::Quarantined,
                    "generated message quarantined: {o}"
                );
            }
            i = end;
        }
        let secs = start.elapsed().as_secs_f64();
        store.close().await;
        println!(
            "ingested {} messages in {:.2} s: {:.0} messages/s (batch {}, {:?})",
            args.messages,
            secs,
            args.messages as f64 / secs,
            args.batch,
            store.backend()
        );
        println!("outcomes: {counts:?}");
        println!(
            "peak RSS: {:.1} MB",
            support::status_kib("VmHWM:") as f64 / 1024.0
        );
        Ok(())
    })
}
