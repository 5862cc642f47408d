//! Scale-out benchmark against a private Dovecot and the machine's
//! PostgreSQL (TICKETD_TEST_PG, else postgres://postgres@127.0.0.1:5432/postgres):
//!
//!     cargo bench --bench cluster -- [--messages 4000] [--budget 500] [--failover 0]
//!
//! 1. One `ticketd run` drains one mailbox of N messages into SQLite, then
//!    into PostgreSQL: messages/s from start to the last checkpoint.
//! 2. Two mailboxes of N each into PostgreSQL, by one instance and by two:
//!    2N / time, and the speed-up of two instances; then again with each
//!    instance given a CPU budget of its own (`--budget 500` millicores, a
//!    cgroup CPU quota), as if on a small machine of its own: adding an
//!    instance then adds CPU, as adding a host would, while PostgreSQL and
//!    Dovecot share the rest of this machine. Each run also reports how busy
//!    the machine's CPUs were (all processes, from /proc/stat), and the
//!    two-mailbox runs when the leases were spread out (every instance
//!    holding one) and the rate from then on.
//! 3. Failover with two instances on one mailbox: the holder is frozen
//!    (SIGSTOP: alive, so its lease must expire; as a hung or cut-off
//!    machine), then another holder is killed (SIGKILL: a dead process on the
//!    same host is taken over at once); each time a new message is APPENDed
//!    and timed until committed by the other instance.

#[path = "support/args.rs"]
mod args;
#[path = "support/budget.rs"]
mod budget;
#[path = "../tests/common/dovecot.rs"]
mod dovecot;
#[path = "support/messages.rs"]
mod messages;
#[path = "../tests/common/tls.rs"]
mod tls;

use args::arg;
use sqlx::{Connection, Executor};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ticketd::store::Store;

const LEASE_SECONDS: u32 = 20;

fn admin_url() -> String {
    std::env::var("TICKETD_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database named `name`; returns its URL.
async fn fresh_pg(name: &str) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let admin = admin_url();
    let mut conn = sqlx::AnyConnection::connect(&admin).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

fn write_config(dir: &Path, db: &str, mailboxes: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("ticketd.toml");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"{db}\"\nlease_seconds = {LEASE_SECONDS}\n[mail]\nquarantine_dir = \"{d}/q\"\noutbox_dir = \"{d}/out\"\n[attachments]\ndir = \"{d}/a\"\n{mailboxes}",
            d = dir.display()
        ),
    )?;
    Ok(path)
}

fn start(config: &Path) -> anyhow::Result<Child> {
    start_on(config, None)
}

/// Starts `ticketd run`, inside `budget` when given, as if it had a small
/// machine of its own.
fn start_on(config: &Path, budget: Option<&budget::Budget>) -> anyhow::Result<Child> {
    let program = env!("CARGO_BIN_EXE_ticketd");
    let mut command = match budget {
        Some(b) => b.command(program),
        None => Command::new(program),
    };
    Ok(command
        .arg("--config")
        .arg(config)
        .arg("run")
        .env(
            "RUST_LOG",
            std::env::var("TICKETD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("TICKETD_DATABASE_URL")
        .stdout(Stdio::null())
        .spawn()?)
}

/// Running daemons, killed when dropped (also when the benchmark fails).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How a drain went: seconds until every mailbox's checkpoint reached `n`,
/// and when the leases were spread out.
struct Progress {
    secs: f64,
    /// Seconds until every mailbox had a holder and every instance (as many
    /// as there are mailboxes, at most) held one, and the messages done by
    /// then: the start-up hand-over (see `Cluster::hold`) is over.
    spread: (f64, i64),
}

async fn drained(
    store: &Store,
    mailboxes: &[&str],
    (n, instances): (usize, usize),
    started: Instant,
) -> anyhow::Result<Progress> {
    let mut spread = None;
    loop {
        let mut done = 0;
        let mut holders = Vec::new();
        for m in mailboxes {
            let lease = format!("imap:{m}");
            let position = store
                .checkpoint(&lease)
                .await
                .ok()
                .flatten()
                .map_or(0, |cp| cp.position);
            done += position.min(n as i64);
            if spread.is_none() {
                holders.push(store.lease_holder(&lease).await.ok().flatten());
            }
        }
        if spread.is_none() && holders.iter().all(Option::is_some) {
            holders.sort();
            holders.dedup();
            if holders.len() == instances.min(mailboxes.len()) {
                spread = Some((started.elapsed().as_secs_f64(), done));
            }
        }
        if done == (n * mailboxes.len()) as i64 {
            let secs = started.elapsed().as_secs_f64();
            return Ok(Progress {
                secs,
                spread: spread.unwrap_or((secs, done)),
            });
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "drain took over 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn committed(store: &Store, message_id: &str) -> bool {
    sqlx::query("SELECT 1 FROM message_ids WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(store.pool())
        .await
        .ok()
        .flatten()
        .is_some()
}

/// How the instances of a run may use the machine's cores.
#[derive(Clone, Copy, PartialEq)]
enum Cores {
    Shared,
    /// Each instance at most this many millicores (its own cgroup quota).
    Budget(u64),
}

/// What one run measured.
struct Drain {
    secs: f64,
    /// Seconds until the leases were spread out (see [`Progress`]), and
    /// messages/s from then on.
    spread_secs: f64,
    steady: f64,
    /// The share of the machine's CPUs busy meanwhile.
    busy: f64,
    /// With budgets: the share of quota periods the instances were held
    /// back, averaged (near 1: the budget was the limit).
    throttled: f64,
}

/// Drains `mailboxes` (N messages each) with `instances` processes on `db`.
async fn run(
    dovecot: &dovecot::Dovecot,
    db: &str,
    mailboxes: &[(&str, &str)],
    (instances, cores): (usize, Cores),
    n: usize,
) -> anyhow::Result<Drain> {
    let dir = tempfile::tempdir()?;
    let toml: String = mailboxes
        .iter()
        .map(|(name, folder)| {
            dovecot.mailbox_toml(
                name,
                "none",
                &format!("folder = \"{folder}\"\nbackfill = \"all\"\nbatch_size = 200"),
            )
        })
        .collect();
    let config = write_config(dir.path(), db, &toml)?;
    let status = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "migrate failed");
    let store = Store::connect(db, 2).await?;
    let started = Instant::now();
    let cpu = args::cpu_jiffies();
    let budgets = match cores {
        Cores::Shared => Vec::new(),
        Cores::Budget(millicores) => (0..instances)
            .map(|k| budget::Budget::new(&format!("ticketd-bench-{k}"), millicores))
            .collect::<Result<_, _>>()?,
    };
    let children = Children(
        (0..instances)
            .map(|k| start_on(&config, budgets.get(k)))
            .collect::<Result<_, _>>()?,
    );
    let names: Vec<&str> = mailboxes.iter().map(|(name, _)| *name).collect();
    let progress = drained(&store, &names, (n, instances), started).await?;
    let (spread_secs, done) = progress.spread;
    let left = (n * names.len()) as f64 - done as f64;
    let steady = left / (progress.secs - spread_secs);
    let busy = args::busy_between(cpu, args::cpu_jiffies());
    let throttled = budgets.iter().map(|b| b.throttled()).sum::<f64>() / instances as f64;
    drop(children);
    drop(budgets);
    store.close().await;
    Ok(Drain {
        secs: progress.secs,
        spread_secs,
        steady,
        busy,
        throttled,
    })
}

/// The two-mailbox runs once the leases are spread out: the second
/// instance gets its lease from the first one within a second or two of
/// starting, a one-time cost that the drain from start includes.
fn steady_line(single: &Drain, double: &Drain) -> String {
    format!(
        "after the leases were spread ({:.1} s and {:.1} s): {:.0} and {:.0} messages/s, {:.2}× one instance",
        single.spread_secs,
        double.spread_secs,
        single.steady,
        double.steady,
        double.steady / single.steady
    )
}

fn main() -> anyhow::Result<()> {
    let n = arg("--messages", 4000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dovecot = dovecot::Dovecot::start();
        let mut client = dovecot.client().await;
        let t = Instant::now();
        for (folder, offset) in [("INBOX", 0), ("Second", n)] {
            let _ = client.create(folder).await;
            for i in 0..n {
                client.append(folder, None, None, messages::message(offset + i)).await?;
            }
        }
        println!("appended 2 × {n} messages in {:.1} s", t.elapsed().as_secs_f64());
        // Messages stay unflagged for the next run: each run starts on a
        // fresh database, whose checkpoints are empty.
        let one = [("one", "INBOX")];
        let two = [("one", "INBOX"), ("two", "Second")];

        let dir = tempfile::tempdir()?;
        if arg("--throughput", 1) == 1 {
        let sqlite = format!("sqlite://{}/ticketd.db", dir.path().display());
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        println!("CPU busy: share of all {cores} cores, with Dovecot and PostgreSQL on the same machine");
        let d = run(&dovecot, &sqlite, &one, (1, Cores::Shared), n).await?;
        println!("1 instance, 1 mailbox, SQLite:      {n} in {:.2} s = {:.0} messages/s, CPU busy {:.0}%", d.secs, n as f64 / d.secs, d.busy * 100.0);
        let d = run(&dovecot, &fresh_pg("ticketd_bench_a").await?, &one, (1, Cores::Shared), n).await?;
        println!("1 instance, 1 mailbox, PostgreSQL:  {n} in {:.2} s = {:.0} messages/s, CPU busy {:.0}%", d.secs, n as f64 / d.secs, d.busy * 100.0);
        let single = run(&dovecot, &fresh_pg("ticketd_bench_b").await?, &two, (1, Cores::Shared), n).await?;
        println!("1 instance, 2 mailboxes, PostgreSQL: {} in {:.2} s = {:.0} messages/s, CPU busy {:.0}%", 2 * n, single.secs, 2.0 * n as f64 / single.secs, single.busy * 100.0);
        let double = run(&dovecot, &fresh_pg("ticketd_bench_c").await?, &two, (2, Cores::Shared), n).await?;
        println!("2 instances, 2 mailboxes, PostgreSQL: {} in {:.2} s = {:.0} messages/s ({:.2}× one instance), CPU busy {:.0}%", 2 * n, double.secs, 2.0 * n as f64 / double.secs, single.secs / double.secs, double.busy * 100.0);
        println!("  {}", steady_line(&single, &double));
        // As on small machines of their own: each instance with its own CPU
        // budget (PostgreSQL and Dovecot share the rest of this machine).
        let millicores = arg("--budget", 500) as u64;
        match budget::Budget::new("ticketd-bench-probe", millicores) {
            Err(e) => println!("budget runs skipped: {e}"),
            Ok(probe) => {
                drop(probe);
                let cores = Cores::Budget(millicores);
                let single = run(&dovecot, &fresh_pg("ticketd_bench_e").await?, &two, (1, cores), n).await?;
                println!("1 instance with {millicores} millicores, 2 mailboxes, PostgreSQL: {} in {:.2} s = {:.0} messages/s, throttled {:.0}% of periods, CPU busy {:.0}%", 2 * n, single.secs, 2.0 * n as f64 / single.secs, single.throttled * 100.0, single.busy * 100.0);
                let double = run(&dovecot, &fresh_pg("ticketd_bench_f").await?, &two, (2, cores), n).await?;
                println!("2 instances with {millicores} millicores each, 2 mailboxes, PostgreSQL: {} in {:.2} s = {:.0} messages/s ({:.2}× one instance), throttled {:.0}% of periods, CPU busy {:.0}%", 2 * n, double.secs, 2.0 * n as f64 / double.secs, single.secs / double.secs, double.throttled * 100.0, double.busy * 100.0);
                println!("  {}", steady_line(&single, &double));
            }
        }
        }
        if arg("--failover", 1) == 0 {
            return Ok(());
        }
        // Failover.
        let db = fresh_pg("ticketd_bench_d").await?;
        let fail_dir = tempfile::tempdir()?;
        let toml = dovecot.mailbox_toml("one", "none", "backfill = \"none\"");
        let config = write_config(fail_dir.path(), &db, &toml)?;
        let children = Children((0..3).map(|_| start(&config)).collect::<Result<_, _>>()?);
        let store = Store::connect(&db, 2).await?;
        // backfill = "none": only mail after the holder's first session counts.
        let t = Instant::now();
        while store.checkpoint("imap:one").await.ok().flatten().is_none() {
            anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "no instance started the mailbox");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (k, signal) in ["-STOP", "-KILL"].iter().enumerate() {
            // A message the current holder takes, so it is working.
            let warm = 10 * n + 2 * k;
            client.append("INBOX", None, None, messages::message(warm)).await?;
            let t = Instant::now();
            while !committed(&store, &messages::message_id(warm)).await {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "no holder took message {warm}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let holder = store.lease_holder("imap:one").await?.expect("a holder");
            let pid: u32 = holder.rsplit(':').nth(1).unwrap_or("0").parse()?;
            Command::new("kill").args([*signal, &pid.to_string()]).status()?;
            let t = Instant::now();
            let probe = warm + 1;
            client.append("INBOX", None, None, messages::message(probe)).await?;
            while !committed(&store, &messages::message_id(probe)).await {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "no failover within 2 minutes");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            println!(
                "failover after {signal} of the holder (lease {LEASE_SECONDS} s): {:.1} s until another instance committed the next message",
                t.elapsed().as_secs_f64()
            );
        }
        drop(children);
        store.close().await;
        Ok(())
    })
}
