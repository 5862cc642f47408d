//! IMAP benchmark against a private Dovecot (needs dovecot-imapd installed):
//!
//!     cargo bench --bench imap -- [--messages 5000] [--latency 200] [--seed 21]
//!
//! 1. APPENDs N messages of the realistic corpus (as `benches/shipped.rs`:
//!    2–50 KB, 15 % with attachments, three languages, replies, automatic
//!    mail), then starts `ticketd run` in a work dir holding the shipped
//!    `config/`, `rules/` and `templates/`, the mailbox added to the shipped
//!    `ticketd.toml` as an admin would (`backfill = "all"`, every other
//!    setting its default: batches of 100, `\Seen` flags set after each
//!    commit), SQLite at `var/ticketd.db`. Times the drain until every
//!    message's checkpoint is committed: messages/s end to end, with the
//!    daemon's notifications going out to `var/outbox` meanwhile.
//! 2. With the daemon idle in IDLE, APPENDs single messages one at a time and
//!    times APPEND → committed (its Message-ID in the store): p50 / p99.
//! 3. Reports the daemon process's peak RSS (VmHWM) over the whole run.

#[path = "support/args.rs"]
mod args;
#[path = "../tests/common/dovecot.rs"]
mod dovecot;
#[path = "support/messages.rs"]
mod messages;
#[path = "../tests/common/tls.rs"]
mod tls;
#[path = "support/workdir.rs"]
mod workdir;

use args::{arg, percentile_ms};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ticketd::store::Store;

/// The daemon under test, killed if the bench ends early (an error must not
/// leave a `ticketd run` behind to load the machine).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

async fn committed(store: &Store, message_id: &str) -> bool {
    // The journal: every outcome (an automatic reply threading onto
    // nothing is journaled, but gets no message_ids row).
    sqlx::query("SELECT 1 FROM ingest_journal WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(store.pool())
        .await
        .unwrap()
        .is_some()
}

fn main() -> anyhow::Result<()> {
    let n = arg("--messages", 5_000);
    let latency_samples = arg("--latency", 200);
    let seed = arg("--seed", 21) as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dovecot = dovecot::Dovecot::start();
        let mut client = dovecot.client().await;
        let t = Instant::now();
        let _ = client.create("INBOX").await;
        let mut rng = messages::Seeded::new(seed);
        let mut bytes = 0;
        for i in 0..n {
            let raw = messages::realistic(i, &mut rng);
            bytes += raw.len();
            client.append("INBOX", None, None, raw).await?;
        }
        println!(
            "appended {n} messages ({:.0} MB) in {:.1} s",
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );

        let dir = workdir::work_dir()?;
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.path().join("var/inbox").join(sub))?;
        }
        let db = format!("sqlite://{}/var/ticketd.db", dir.path().display());
        let shipped = std::fs::read_to_string(dir.path().join("config/ticketd.toml"))?;
        let mailbox = dovecot.mailbox_toml("bench", "none", "backfill = \"all\"");
        std::fs::write(
            dir.path().join("config/ticketd.toml"),
            format!("{shipped}\n{mailbox}"),
        )?;
        let status = Command::new(workdir::ticketd_bin())
            .args(["migrate"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "migrate failed");
        let store = Store::connect(&db, 2).await?;

        let start = Instant::now();
        let mut daemon = Daemon(
            Command::new(workdir::ticketd_bin())
                .args(["run"])
                .current_dir(dir.path())
                .env_remove("TICKETD_DATABASE_URL")
                .env_remove("TICKETD_CONFIG")
                .env("RUST_LOG", "warn")
                .spawn()?,
        );
        let pid = daemon.0.id();
        let mut peak = 0;
        // The first commit seen: (time since start, messages it covered).
        let mut first: Option<(f64, i64)> = None;
        loop {
            peak = peak.max(vm_hwm_kib(pid));
            let position = store.checkpoint("imap:bench").await?.map_or(0, |cp| cp.position);
            if position > 0 && first.is_none() {
                first = Some((start.elapsed().as_secs_f64(), position));
            }
            if position >= n as i64 {
                break;
            }
            anyhow::ensure!(start.elapsed() < Duration::from_secs(600), "drain took over 10 minutes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        println!("drained {n} messages in {secs:.2} s: {:.0} messages/s (process start to last commit)", n as f64 / secs);
        if let Some((at, covered)) = first.filter(|(at, _)| *at < secs) {
            println!(
                "first commit {at:.2} s after start (start-up, connect, first batch); after it {} messages in {:.2} s: {:.0} messages/s",
                n as i64 - covered,
                secs - at,
                (n as i64 - covered) as f64 / (secs - at)
            );
        }

        tokio::time::sleep(Duration::from_millis(500)).await; // let it settle into IDLE
        let mut latencies = Vec::with_capacity(latency_samples);
        for k in 0..latency_samples {
            let i = n + k;
            let t = Instant::now();
            client.append("INBOX", None, None, messages::message(i)).await?;
            let id = messages::message_id(i);
            while !committed(&store, &id).await {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "message {i} not committed");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            latencies.push(t.elapsed());
            peak = peak.max(vm_hwm_kib(pid));
        }
        latencies.sort();
        println!(
            "APPEND → committed over {latency_samples} single messages: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            percentile_ms(&latencies, 0.50),
            percentile_ms(&latencies, 0.99),
            latencies.last().unwrap().as_secs_f64() * 1000.0
        );
        peak = peak.max(vm_hwm_kib(pid));
        Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        daemon.0.wait()?;
        println!("daemon peak RSS: {:.1} MB", peak as f64 / 1024.0);
        store.close().await;
        Ok(())
    })
}
