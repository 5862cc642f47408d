//! `ticketd ingest` as an admin runs it: the release binary in a work dir
//! holding the shipped `config/`, `rules/` and `templates/` (SQLite at
//! `var/ticketd.db`), on a realistic corpus with a fixed seed: 2–50 KB mail,
//! 15 % with attachments, Polish, English and German, quoted replies that
//! thread, out-of-office replies.
//!
//!     cargo bench --bench shipped -- [--messages 10000] [--seed 21]
//!
//! Prints messages/s and peak RSS (VmHWM) of one `ticketd ingest` of all the
//! files, then SQL statements per message from a second run of the same
//! corpus into a fresh work dir with sqlx's statement log on
//! (`RUST_LOG=sqlx::query=debug`; that run is not timed). `TICKETD_BIN=PATH`
//! measures another build. `--write-corpus DIR` only writes the corpus
//! into `DIR/mail/` (to profile `ticketd ingest` on it by hand).

#[path = "support/args.rs"]
mod args;
#[path = "support/messages.rs"]
mod messages;
#[path = "support/workdir.rs"]
mod workdir;

use args::arg;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workdir::{ticketd_bin, work_dir};

fn peak_kib(pid: u32) -> u64 {
    args::process_status_kib(&pid.to_string(), "VmHWM:")
}

/// Writes the corpus into `dir/mail/` and returns the paths.
fn corpus(dir: &Path, n: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail)?;
    let mut rng = messages::Seeded::new(seed);
    (0..n)
        .map(|i| {
            let path = mail.join(format!("{i:06}.eml"));
            std::fs::write(&path, messages::realistic(i, &mut rng))?;
            Ok(path.display().to_string())
        })
        .collect()
}

/// One `ticketd ingest` of `files` in `dir`: seconds, peak RSS in MB, and
/// what it wrote on standard error.
fn ingest(dir: &Path, files: &[String], log: &str) -> anyhow::Result<(f64, f64, String)> {
    let started = Instant::now();
    let mut child = Command::new(ticketd_bin())
        .current_dir(dir)
        .arg("ingest")
        .args(files)
        .env_remove("TICKETD_DATABASE_URL")
        .env_remove("TICKETD_CONFIG")
        .env("RUST_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut text);
        }
        text
    });
    let mut peak = 0;
    while child.try_wait()?.is_none() {
        peak = peak.max(peak_kib(child.id()));
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    let status = child.wait()?;
    let log = reader.join().unwrap_or_default();
    anyhow::ensure!(status.code() == Some(0), "ticketd ingest: {status}\n{log}");
    Ok((secs, peak as f64 / 1024.0, log))
}

fn main() -> anyhow::Result<()> {
    let n = arg("--messages", 10_000);
    let seed = arg("--seed", 21) as u64;
    if let Some(dir) = std::env::args()
        .skip_while(|a| a != "--write-corpus")
        .nth(1)
    {
        let files = corpus(Path::new(&dir), n, seed)?;
        println!("{} messages in {dir}/mail", files.len());
        return Ok(());
    }
    let dir = work_dir()?;
    let files = corpus(dir.path(), n, seed)?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{n} messages, {:.1} MB in all (seed {seed})",
        bytes as f64 / 1e6
    );
    let (secs, peak, _) = ingest(dir.path(), &files, "warn")?;
    println!(
        "ticketd ingest, shipped config and rules: {:.0} messages/s ({secs:.1} s), peak RSS {peak:.0} MB",
        n as f64 / secs
    );
    let counted = work_dir()?;
    let (_, _, log) = ingest(counted.path(), &files, "warn,sqlx::query=debug")?;
    let kinds = statement_kinds(&log);
    let statements: usize = kinds.iter().map(|(_, count)| count).sum();
    println!(
        "SQL statements: {statements} ({:.2} per message); the most frequent:",
        statements as f64 / n as f64
    );
    for (summary, count) in kinds.iter().take(12) {
        println!("  {:>7.3}/msg  {summary}", *count as f64 / n as f64);
    }
    Ok(())
}

/// The statements in sqlx's log by their summary (the statement's first
/// words), most frequent first.
fn statement_kinds(log: &str) -> Vec<(String, usize)> {
    let mut kinds: std::collections::HashMap<String, usize> = Default::default();
    for line in log.lines().filter(|l| l.contains("sqlx::query")) {
        let Some(at) = line.find("summary=\"") else {
            continue;
        };
        let rest = &line[at + 9..];
        let summary = rest.split('"').next().unwrap_or(rest);
        *kinds.entry(summary.to_string()).or_default() += 1;
    }
    let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    kinds
}
