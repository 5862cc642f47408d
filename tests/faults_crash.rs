//! The fault matrix, kills: SIGKILL of `ticketd run` while its dispatcher
//! sends acknowledgements to a real (slow) SMTP server, again and again
//! (issue 21). Every acknowledgement arrives; at most the sends in flight at
//! each kill, and one unrecorded group, arrive twice; a restarted instance
//! sends its dead predecessor's claims at once.

mod common;
#[path = "common/smtp.rs"]
mod smtp;
#[path = "common/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TICKETS: usize = 300;
const KILLS: usize = 3;
/// Sends in flight in `ticketd run` with `pool_size = 4`: 4 + 4.
const IN_FLIGHT: usize = 8;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &std::path::Path) -> Daemon {
    Daemon(
        Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .current_dir(dir)
            .args(["--config", "ticketd.toml", "run"])
            .env_remove("TICKETD_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Received messages by Message-ID: how many times each came.
fn received(server: &smtp::SmtpServer) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in server.messages() {
        let id = smtp::header(&m, "Message-ID").unwrap_or_default();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

fn wait_for(server: &smtp::SmtpServer, at_least: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    while received(server).len() < at_least {
        assert!(
            start.elapsed() < limit,
            "{} of {at_least} acknowledgements after {limit:?}",
            received(server).len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

// Failed on e4d9901: a kill re-sent the whole claimed batch (up to 200), and
// the restarted instance waited three lease periods (60 s) for its own dead
// predecessor's claims.
#[test]
fn kills_during_delivery_repeat_at_most_the_sends_in_flight() {
    let server = smtp::SmtpServer::start_slow(15);
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path());
    let config = common::base_config(
        dir.path(),
        &format!("{}pool_size = 4\n\n{}", server.toml(), db.toml()),
    );
    std::fs::write(dir.path().join("ticketd.toml"), config).unwrap();
    let files: Vec<String> = (0..TICKETS)
        .map(|i| {
            let path = dir.path().join(format!("m{i}.eml"));
            std::fs::write(
                &path,
                format!(
                    "From: Klient {i} <klient{i}@firma.pl>\r\nTo: support@example.com\r\n\
                     Subject: Zgłoszenie {i}\r\nMessage-ID: <kill-{i}@firma.pl>\r\n\
                     Content-Type: text/plain; charset=utf-8\r\n\r\nTreść {i}.\r\n"
                ),
            )
            .unwrap();
            path.display().to_string()
        })
        .collect();
    let ingest = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .current_dir(dir.path())
        .args(["--config", "ticketd.toml", "ingest"])
        .args(&files)
        .env_remove("TICKETD_DATABASE_URL")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ingest.success());

    for kill in 1..=KILLS {
        let mut daemon = spawn(dir.path());
        wait_for(
            &server,
            kill * TICKETS / (KILLS + 1),
            Duration::from_secs(60),
        );
        daemon.0.kill().unwrap();
        daemon.0.wait().unwrap();
    }
    let _last = spawn(dir.path());
    // The claims of the killed process are due again at once, not after
    // three lease periods (60 s with the default 20 s leases).
    let took = wait_for(&server, TICKETS, Duration::from_secs(45));
    std::thread::sleep(Duration::from_millis(500));
    let seen = received(&server);
    assert_eq!(seen.len(), TICKETS, "every ticket acknowledged");
    let repeated: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("{repeated} repeated over {KILLS} kills; the last restart finished in {took:?}");
    assert!(
        repeated <= KILLS * 2 * IN_FLIGHT,
        "{repeated} acknowledgements sent twice over {KILLS} kills"
    );
    assert!(
        took < Duration::from_secs(30),
        "the last restart took {took:?} to finish"
    );
}
