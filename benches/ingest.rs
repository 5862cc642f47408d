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

const POLISH: &[&str] = &[
    "Drukarka w biurze nie działa od rana, proszę o pilną pomoc.",
    "Nie mogę się zalogować do konta, hasło jest odrzucane.",
    "Faktura za październik ma złą kwotę, proszę o korektę.",
];
const ENGLISH: &[&str] = &[
    "The export to CSV fails with an error since the last update.",
    "Please add a second user to our subscription.",
    "Our invoice shows the wrong VAT number.",
];
const GERMAN: &[&str] = &[
    "Der Lizenzschlüssel wird nicht angenommen.",
    "Bitte um Rückruf wegen der Rechnung.",
];

/// The i-th generated message. Every fifth message answers an earlier one.
fn message(i: usize) -> Vec<u8> {
    let customer = i % 997;
    let date = "Fri, 20 Nov 2026 10:00:00 +0100";
    match i % 20 {
        // Replies with a quote, threading by In-Reply-To onto an earlier new ticket.
        4 | 9 | 14 | 19 => {
            let original = i - 4;
            let oc = original % 997;
            format!(
                "From: Customer {oc} <customer{oc}@firma{}.pl>\r\nTo: support@example.com\r\nSubject: Re: case {original}\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nIn-Reply-To: <m{original}@bench.example>\r\nReferences: <m{original}@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nDziękuję, nadal nie działa.\r\n\r\nW dniu 20.11.2026 o 10:00, Support pisze:\r\n> Proszę zrestartować urządzenie.\r\n> Pozdrawiamy\r\n",
                oc % 50
            )
            .into_bytes()
        }
        // ISO-8859-2 quoted-printable.
        7 => {
            let mut m = format!(
                "From: =?ISO-8859-2?Q?Zofia_=A3=B1cka?= <zofia{customer}@sklep.pl>\r\nTo: support@example.com\r\nSubject: =?ISO-8859-2?Q?b=B3=B1d_p=B3atno=B6ci_{i}?=\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-8859-2\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            )
            .into_bytes();
            m.extend(b"P=B3atno=B6=E6 nie przesz=B3a, =BF=F3=B3ta karta.\r\n");
            m
        }
        // HTML only.
        11 => format!(
            "From: Maria <maria{customer}@kwiaty.pl>\r\nTo: support@example.com\r\nSubject: konto {i}\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Dzień dobry,</p><ul><li>krok 1</li><li>krok 2</li></ul><p>Maria</p></body></html>\r\n"
        )
        .into_bytes(),
        // Out-of-office reply.
        17 => format!(
            "From: Customer <ooo{customer}@firma.pl>\r\nTo: support@example.com\r\nSubject: Automatic reply\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n"
        )
        .into_bytes(),
        // New tickets, multipart/alternative like Gmail sends them.
        n => {
            let text = match n % 3 {
                0 => POLISH[i % POLISH.len()],
                1 => ENGLISH[i % ENGLISH.len()],
                _ => GERMAN[i % GERMAN.len()],
            };
            format!(
                "From: Customer {customer} <customer{customer}@firma{}.pl>\r\nTo: support@example.com\r\nSubject: case {i}\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b{i}\"\r\n\r\n--b{i}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\r\n-- \r\nCustomer {customer}\r\n--b{i}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div>{text}</div>\r\n--b{i}--\r\n",
                customer % 50
            )
            .into_bytes()
        }
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
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
        let pipeline = Pipeline::new(&config, store.clone(), Clock::System)?;

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
        println!("peak RSS: {:.1} MB", peak_rss_kib() as f64 / 1024.0);
        Ok(())
    })
}
