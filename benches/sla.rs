//! SLA scheduler benchmark: 1,000 tickets ingested through the pipeline in the
//! same second (so their first-response targets breach in the same second),
//! plus N more open tickets with running clocks added in bulk, all on a
//! manual clock. Then the scheduler fires the 1,000 breaches: rules run (an
//! escalation), notices are queued, timers move.
//!
//!     cargo bench --bench sla -- [--open 100000] [--breaching 1000] [--database-url URL]
//!
//! Prints the time to process the breaches and the scheduler's memory beyond
//! the baseline (peak RSS after the set-up was done, via /proc/self/clear_refs).

use std::time::Instant;
use ticketd::clock::Clock;
use ticketd::config::Config;
use ticketd::ingest::{Inbound, Pipeline};
use ticketd::scheduler::Scheduler;

#[path = "support/args.rs"]
mod support;
use support::{arg, status_kib};

const START: i64 = 1_795_168_800; // 2026-11-20 10:00 UTC

const PEOPLE: &str = r#"
[[team]]
name = "billing"

[[agent]]
email = "anna@example.com"
role = "manager"
teams = ["billing"]

[[agent]]
email = "ewa@example.com"
teams = ["billing"]
"#;

const RULES: &str = r#"
[[rule]]
name = "billing"
on = "ticket.created"
then = [{ set_team = "billing" }, { assign = "ewa@example.com" }]

[[rule]]
name = "escalate on breach"
on = "sla.breached"
then = [{ escalate = true }, { add_tag = "breached" }]
"#;

fn mail(n: usize) -> Vec<u8> {
    format!(
        "From: klient{n}@firma.pl\r\nTo: support@example.com\r\nSubject: Faktura {n}\r\n\
         Message-ID: <sla-{n}@firma.pl>\r\n\r\nProszę o korektę faktury {n}.\r\n"
    )
    .into_bytes()
}

/// `count` more open tickets, created later (their targets lie after the
/// measured second), each with the timers a medium ticket has.
async fn bulk_open_tickets(store: &ticketd::store::Store, count: usize) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    let sql = format!(
        "INSERT INTO tickets (number, subject, status, priority, category, requester_id, team_id,
                              channel, created_at, updated_at, first_response_due, resolution_due)
         WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {count})
         SELECT 'BULK-' || n, 'Open ticket ' || n, 'open', 'medium', 'other',
                (SELECT MIN(requester_id) FROM tickets), (SELECT MIN(team_id) FROM tickets),
                'email', {start} + n, {start} + n, {start} + n + 28800, {start} + n + 259200
         FROM seq",
        start = START + 28_800
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *tx)
        .await?;
    for (kind, after) in [
        ("first_response.warning", 23_040),
        ("first_response.breach", 28_800),
        ("resolution.warning", 207_360),
        ("resolution.breach", 259_200),
        ("idle", 5 * 86_400),
    ] {
        let sql = format!(
            "INSERT INTO sla_timers (ticket_id, kind, due_at)
             SELECT id, '{kind}', created_at + {after} FROM tickets WHERE number LIKE 'BULK-%'"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let open = arg("--open", 100_000);
    let breaching = arg("--breaching", 1_000);
    let url = std::env::args()
        .skip_while(|a| a != "--database-url")
        .nth(1);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("10-bench.toml"), RULES)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut config = Config::parse(&format!(
            "[mail]\nsupport_addresses = [\"support@example.com\"]\n{PEOPLE}"
        ))?;
        config.database.url =
            url.unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
        config.attachments.dir = dir.path().join("attachments");
        config.mail.quarantine_dir = dir.path().join("quarantine");
        config.rules.dir = Some(dir.path().to_path_buf());
        let store = ticketd::app::open_store(&config).await?;
        let clock = Clock::manual(START);
        let context = ticketd::app::context(&config, store.clone(), clock.clone())?;
        let pipeline = Pipeline::new(&config, &context);

        let t = Instant::now();
        for chunk in (0..breaching).collect::<Vec<_>>().chunks(200) {
            let batch: Vec<Inbound> = chunk
                .iter()
                .map(|n| Inbound::new("bench", n.to_string(), mail(*n)))
                .collect();
            pipeline.ingest(&batch).await?;
        }
        bulk_open_tickets(&store, open.saturating_sub(breaching)).await?;
        println!(
            "set-up: {breaching} tickets ingested, {} added in bulk, in {:.1} s",
            open.saturating_sub(breaching),
            t.elapsed().as_secs_f64()
        );

        let scheduler = Scheduler::of(&context, &config);
        // The warnings at 80 % come first (not measured).
        clock.advance(23_040);
        while scheduler.fire_due().await? > 0 {}

        // Baseline: everything set up; from here on only the scheduler runs.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let baseline = status_kib("VmRSS:");
        clock.advance(28_800 - 23_040);
        let t = Instant::now();
        let next = store.next_timer_due().await?;
        anyhow::ensure!(next == Some(clock.now()), "the breaches are the next timers");
        let mut fired = 0;
        loop {
            let n = scheduler.fire_due().await?;
            if n == 0 {
                break;
            }
            fired += n;
        }
        let secs = t.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM:");
        anyhow::ensure!(fired == breaching, "{fired} breaches fired, expected {breaching}");
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event = 'sla_breached'")
            .fetch_one(store.pool())
            .await?;
        let escalated: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE priority = 'high'")
            .fetch_one(store.pool())
            .await?;
        println!(
            "{fired} breaches in one second processed in {:.3} s ({escalated} escalated by the rule, \
             {queued} breach notices queued) with {open} open tickets ({:?})",
            secs,
            store.backend()
        );
        println!(
            "scheduler memory beyond the baseline: {:.1} MB (baseline RSS {:.1} MB, peak {:.1} MB)",
            peak.saturating_sub(baseline) as f64 / 1024.0,
            baseline as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        store.close().await;
        Ok(())
    })
}
