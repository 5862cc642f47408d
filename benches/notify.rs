//! Notification benchmark against a real SMTP server (aiosmtpd in the venv
//! that `.ci/run` makes; set TICKETD_TEST_PYTHON to use another):
//!
//!     cargo bench --bench notify -- [--notifications 10000] [--latency 200]
//!
//! 1. Ingests N new tickets from N different senders into a fresh SQLite
//!    database, which queues N acknowledgements in the outbox, then times the
//!    dispatcher delivering all of them to the SMTP server: messages/s.
//! 2. Runs the `ticketd run` binary on a Maildir inbox with that SMTP server
//!    and times, for single messages, the file landing in `new/` → its
//!    acknowledgement accepted by the SMTP server: p50 / p99.

#[path = "support/args.rs"]
mod args;
#[path = "../tests/common/smtp.rs"]
mod smtp;
#[path = "../tests/common/tls.rs"]
mod tls;

use args::{arg, percentile_ms};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticketd::clock::Clock;
use ticketd::config::Config;
use ticketd::ingest::{Inbound, Pipeline};
use ticketd::notify::dispatch::Dispatcher;
use ticketd::notify::email::Mailer;

fn new_ticket(i: usize) -> Vec<u8> {
    format!(
        "From: Klient {i} <klient{i}@firma{}.pl>\r\nTo: support@example.com\r\nSubject: Zgłoszenie {i}\r\nMessage-ID: <n{i}@bench.example>\r\nContent-Language: pl\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDrukarka nie działa, proszę o pomoc ({i}).\r\n",
        i % 100
    )
    .into_bytes()
}

fn received(server: &smtp::SmtpServer) -> usize {
    std::fs::read_dir(server.maildir.join("new")).map_or(0, |d| d.count())
}

fn main() -> anyhow::Result<()> {
    let n = arg("--notifications", 10_000);
    let samples = arg("--latency", 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = smtp::SmtpServer::start();
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let config_text = format!(
            "[database]\nurl = \"sqlite://{d}/ticketd.db\"\n[mail]\nquarantine_dir = \"{d}/q\"\n[attachments]\ndir = \"{d}/a\"\n[[maildir]]\nname = \"inbox\"\npath = \"{d}/inbox\"\n{}pool_size = 32\n",
            server.toml()
        );
        std::fs::write(dir.path().join("ticketd.toml"), &config_text)?;
        let config = Config::parse(&config_text)?;
        let store = ticketd::app::open_store(&config).await?;
        let pipeline = Pipeline::new(
            &config,
            &ticketd::app::context(&config, store.clone(), Clock::System)?,
        );

        let t = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
            let batch: Vec<Inbound> = chunk.iter().map(|&i| Inbound::new("bench", i.to_string(), new_ticket(i))).collect();
            pipeline.ingest(&batch).await?;
        }
        println!("queued {n} acknowledgements (ingest of {n} new tickets) in {:.2} s", t.elapsed().as_secs_f64());

        let dispatcher = Dispatcher {
            store: store.clone(),
            mailer: Mailer::new(&config)?,
            webhooks: ticketd::notify::webhook::Webhooks::new(&config).unwrap(),
            telegram: None,
            discord: None,
            clock: Clock::System,
            instance: "bench".into(),
            max_age_seconds: 3600,
            concurrency: 32,
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        let t = Instant::now();
        while dispatcher.deliver_due().await? > 0 {}
        let secs = t.elapsed().as_secs_f64();
        let got = received(&server);
        anyhow::ensure!(got == n, "the SMTP server received {got} of {n}");
        println!("delivered {n} notifications to the SMTP server in {secs:.2} s: {:.0} messages/s", n as f64 / secs);
        println!("outbox: {:?}", store.outbox_counts().await?);
        store.close().await;

        // Latency through the running daemon: Maildir inbox → SMTP server accepted the ack.
        let inbox = dir.path().join("inbox");
        ticketd::source::maildir::ensure_layout(&inbox)?;
        let mut daemon = Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .args(["--config", "ticketd.toml", "run"])
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .spawn()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut latencies = Vec::with_capacity(samples);
        for k in 0..samples {
            let before = received(&server);
            let name = format!("{}.bench{k}.host", 1_800_000_000 + k);
            std::fs::write(inbox.join("tmp").join(&name), new_ticket(n + k))?;
            let t = Instant::now();
            std::fs::rename(inbox.join("tmp").join(&name), inbox.join("new").join(&name))?;
            while received(&server) == before {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "no acknowledgement for sample {k}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies.push(t.elapsed());
        }
        Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status()?;
        daemon.wait()?;
        latencies.sort();
        println!(
            "Maildir → acknowledgement accepted by SMTP over {samples} messages: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            percentile_ms(&latencies, 0.5),
            percentile_ms(&latencies, 0.99),
            latencies.last().map_or(0.0, |l| l.as_secs_f64() * 1000.0)
        );
        Ok(())
    })
}
