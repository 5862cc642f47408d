//! Service benchmark: the release binary under the conditions systemd gives
//! it (a notify socket):
//!
//!     cargo bench --bench service -- [--tickets 1000000] [--burst 500]
//!
//! 1. Fills a fresh SQLite database with N closed tickets, then times
//!    `ticketd run` from spawn to READY=1 on the notify socket.
//! 2. Idle resident memory (VmRSS) after 5 s with nothing to do.
//! 3. Shutdown under load: delivers a burst of Maildir messages and sends
//!    SIGTERM right away; times SIGTERM → exit.

#[path = "support/args.rs"]
mod args;

use args::arg;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ticketd::config::Config;

fn wait_ready(socket: &UnixDatagram) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
        {
            return Ok(());
        }
    }
    anyhow::bail!("no READY=1 within 60 s")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let tickets = arg("--tickets", 1_000_000);
    let burst = arg("--burst", 500);
    let dir = tempfile::tempdir()?;
    let d = dir.path().display();
    let config_text = format!(
        "[database]\nurl = \"sqlite://{d}/ticketd.db\"\n[mail]\nquarantine_dir = \"{d}/q\"\noutbox_dir = \"{d}/outbox\"\n\
         [attachments]\ndir = \"{d}/a\"\n[[maildir]]\nname = \"inbox\"\npath = \"{d}/inbox\"\n"
    );
    std::fs::write(dir.path().join("ticketd.toml"), &config_text)?;
    let config = Config::parse(&config_text)?;
    let rt = tokio::runtime::Runtime::new()?;
    let t = Instant::now();
    rt.block_on(async {
        let store = ticketd::app::open_store(&config).await?;
        sqlx::query("INSERT INTO contacts (name, created_at) VALUES ('Bench', 0)")
            .execute(store.pool())
            .await?;
        let sql = format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {tickets})
             INSERT INTO tickets (number, subject, status, priority, requester_id, channel,
                                  created_at, updated_at, closed_at)
             SELECT printf('TKT-2020-%07d', i), 'Zgłoszenie ' || i, 'closed', 'medium', 1, 'email',
                    i, i, i FROM n"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(store.pool())
            .await?;
        store.close().await;
        anyhow::Ok(())
    })?;
    println!(
        "filled {tickets} tickets in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let spawned = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .args(["--config", "ticketd.toml", "run"])
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "warn")
        .env_remove("TICKETD_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    wait_ready(&socket)?;
    println!(
        "start-up to READY=1 with {tickets} tickets: {:.0} ms",
        spawned.elapsed().as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "idle RSS after 5 s: {:.1} MB",
        rss_kib(child.id()) as f64 / 1024.0
    );

    let inbox = dir.path().join("inbox");
    for i in 0..burst {
        let name = format!("{i}.bench.host");
        let mail = format!(
            "From: K{i} <k{i}@firma.pl>\r\nTo: support@example.com\r\nSubject: Burst {i}\r\n\
             Message-ID: <sb-{i}@firma.pl>\r\n\r\nTreść.\r\n"
        );
        std::fs::write(inbox.join("tmp").join(&name), mail)?;
        std::fs::rename(inbox.join("tmp").join(&name), inbox.join("new").join(&name))?;
    }
    let stop = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    println!(
        "SIGTERM → exit with a burst of {burst} messages in flight: {:.0} ms ({status})",
        stop.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
