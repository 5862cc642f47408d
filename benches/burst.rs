//! Burst benchmark: N new Telegram customers write at the same moment to
//! `ticketd run` (the release binary, the shipped config, rules and
//! templates, the agents' group configured), against a local Bot API server
//! that speaks the wire protocol and long-polls like Telegram:
//!
//!     cargo bench --bench burst -- [--customers 20] [--rounds 3]
//!
//! Prints, per round, when each customer got their answer (the ticket
//! number), counted from the moment the updates were handed out: the
//! slowest and the median. The agents' group gets a post per new ticket,
//! one a second (Telegram's limit per chat); the answers must not wait
//! behind it.

#[path = "support/args.rs"]
mod args;
#[path = "../tests/common/http.rs"]
mod http;
#[path = "../tests/common/telegram.rs"]
mod telegram;
#[path = "support/workdir.rs"]
mod workdir;

use args::{arg, percentile_ms};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workdir::{ticketd_bin, work_dir};

const AGENT_CHAT: i64 = -100_500;

fn main() -> anyhow::Result<()> {
    let customers = arg("--customers", 20) as i64;
    let rounds = arg("--rounds", 3) as i64;
    let rt = tokio::runtime::Runtime::new()?;
    let server = rt.block_on(telegram::FakeTelegram::start(vec![]));
    let dir = work_dir()?;
    let config = dir.path().join("config/ticketd.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&server.toml(dir.path()));
    text.push_str(&format!("agent_chat = {AGENT_CHAT}\n"));
    std::fs::write(&config, text)?;
    let mut child = Command::new(ticketd_bin())
        .current_dir(dir.path())
        .arg("run")
        .env_remove("TICKETD_DATABASE_URL")
        .env_remove("TICKETD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    // Let it start and settle into its long poll.
    std::thread::sleep(Duration::from_secs(3));
    let mut worst = Vec::new();
    for round in 0..rounds {
        let first = 1000 * (round + 1);
        let users: Vec<i64> = (first..first + customers).collect();
        let before = server.sends().len();
        let handed = Instant::now();
        server.push_updates(
            users
                .iter()
                .map(|u| telegram::first_message(*u + 1_000_000, *u))
                .collect(),
        );
        let deadline = handed + Duration::from_secs(60);
        let answered = loop {
            let sends = server.sends();
            let mut times: Vec<Duration> = users
                .iter()
                .filter_map(|u| {
                    sends[before..]
                        .iter()
                        .find(|(chat, _, _)| chat == u)
                        .map(|(_, _, t)| *t - handed)
                })
                .collect();
            if times.len() == users.len() {
                times.sort();
                break times;
            }
            anyhow::ensure!(Instant::now() < deadline, "not all answered within 60 s");
            std::thread::sleep(Duration::from_millis(5));
        };
        println!(
            "round {}: {customers} new customers answered: slowest {:.0} ms, median {:.0} ms",
            round + 1,
            percentile_ms(&answered, 1.0),
            percentile_ms(&answered, 0.5)
        );
        worst.push(percentile_ms(&answered, 1.0));
        // The agents' group posts drain at one a second before the next round.
        std::thread::sleep(Duration::from_secs(customers as u64 + 2));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    child.wait()?;
    worst.sort_by(f64::total_cmp);
    println!(
        "slowest answer over {rounds} rounds: {:.0} ms",
        worst.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
