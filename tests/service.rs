//! ticketd under systemd: the unit file passes `systemd-analyze verify` and
//! scores well in `systemd-analyze security`; the real binary, started with
//! `NOTIFY_SOCKET` pointing at a socket the test reads, says READY, pings
//! the watchdog, says RELOADING and READY around SIGHUP (keeping its rules
//! when the new ones are broken) and STOPPING on SIGTERM, and exits 0;
//! its `/metrics` parse as Prometheus text and move with the traffic.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RULE: &str = r#"
[[rule]]
name = "vip"
on = "ticket.created"
when = { from.ends_with = "@vip.example" }
then = [{ set_priority = "high" }]
"#;

/// The shipped unit with ExecStart pointing at the binary under test.
fn unit_for_test(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/ticketd.service"
    ))
    .unwrap()
    .replace("/usr/local/bin/ticketd", env!("CARGO_BIN_EXE_ticketd"));
    let path = dir.join("ticketd.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (package systemd; .ci/run installs it)");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ticketd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}

/// Receives notify messages until one contains `want`; returns it.
fn wait_for(socket: &UnixDatagram, want: &str, log: &dyn Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "no {want:?}; daemon log:\n{}",
            log()
        );
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.lines().any(|l| l == want || l.starts_with(want)) {
                return message;
            }
        }
    }
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the metrics listener: the whole response.
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "metrics listener: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The samples of a Prometheus text exposition (`name{labels}` → value);
/// fails on a line that is not a comment or a sample.
fn samples(response: &str) -> std::collections::HashMap<String, f64> {
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{l}"));
            (name.to_string(), value)
        })
        .collect()
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_daemon_tells_systemd_where_it_stands() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path());
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("10-vip.toml"), RULE).unwrap();
    let port = free_port();
    let extra = format!(
        "{db}[rules]\ndir = \"{r}\"\n[notify]\ntemplates_dir = \"{d}/templates\"\n[service]\nstop_timeout_seconds = 5\n\
         [metrics]\nlisten = \"127.0.0.1:{port}\"\n[[maildir]]\nname = \"inbox\"\npath = \"{d}/inbox\"\n",
        db = db.toml(),
        d = dir.path().display(),
        r = rules.display()
    );
    let config = dir.path().join("ticketd.toml");
    std::fs::write(&config, common::base_config(dir.path(), &extra)).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("TICKETD_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let pid = child.id();

    let ready = wait_for(&socket, "READY=1", &log);
    assert!(
        ready.contains("STATUS=running: 0 mailboxes, 1 maildirs"),
        "{ready}"
    );
    let ping = wait_for(&socket, "WATCHDOG=1", &log);
    assert!(ping.contains("outbox 0 pending"), "{ping}");

    // Health and metrics; a message moves the counters.
    assert!(get(port, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(get(port, "/readyz").starts_with("HTTP/1.1 200"));
    let created = "ticketd_messages_total{source=\"maildir:inbox\",outcome=\"created\"}";
    let before = samples(&get(port, "/metrics"));
    assert_eq!(before.get(created), None, "{before:?}");
    let inbox = dir.path().join("inbox");
    std::fs::write(
        inbox.join("tmp/1.m.host"),
        common::fixture("gmail-new-ticket-pl-utf8.eml"),
    )
    .unwrap();
    std::fs::rename(inbox.join("tmp/1.m.host"), inbox.join("new/1.m.host")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let now = samples(&get(port, "/metrics"));
        if now.contains_key(created) {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "no ingest in metrics; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(after[created], 1.0);
    assert_eq!(after["ticketd_tickets{status=\"new\"}"], 1.0);
    assert!(after["ticketd_rule_evaluations_total"] >= 1.0, "{after:?}");
    assert!(
        after["ticketd_process_resident_memory_bytes"] > 1e6,
        "{after:?}"
    );

    // A broken rule file, a broken template and SIGHUP: RELOADING, then
    // READY with the old rule and the old templates.
    std::fs::write(
        rules.join("20-broken.toml"),
        "[[rule]]\nname = \"x\"\non = \"nope\"\n",
    )
    .unwrap();
    let templates = dir.path().join("templates/en");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("ticket_created.chat.hbs"), "{{#if}}broken").unwrap();
    kill(pid, "-HUP");
    let reloading = wait_for(&socket, "RELOADING=1", &log);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let again = wait_for(&socket, "READY=1", &log);
    assert!(
        again.contains("STATUS=reloaded; config unchanged; 1 rules active; templates refused"),
        "{again}"
    );
    // Fixed, the next SIGHUP takes the templates.
    std::fs::write(
        templates.join("ticket_created.chat.hbs"),
        "Zgłoszenie {{ticket.number}}",
    )
    .unwrap();
    kill(pid, "-HUP");
    let fixed = wait_for(&socket, "STATUS=reloaded", &log);
    assert!(fixed.contains("templates reloaded"), "{fixed}");

    kill(pid, "-TERM");
    wait_for(&socket, "STOPPING=1", &log);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}; log:\n{}", log());
    assert!(
        log().contains("refused"),
        "the broken rules are reported:\n{}",
        log()
    );
}

/// The daemon started on `config`, with its notify socket and stderr log.
struct Daemon {
    child: std::process::Child,
    socket: UnixDatagram,
    log_path: std::path::PathBuf,
}

impl Daemon {
    fn start(dir: &std::path::Path, config: &std::path::Path) -> Daemon {
        let socket_path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log_path = dir.join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("TICKETD_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            socket,
            log_path,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_for(&self, want: &str) -> String {
        wait_for(&self.socket, want, &|| self.log())
    }

    fn reload(&self) -> String {
        kill(self.child.id(), "-HUP");
        self.wait_for("RELOADING=1");
        self.wait_for("READY=1")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_rereads_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path());
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("10-vip.toml"), RULE).unwrap();
    let settings = |extra: &str| {
        common::base_config(
            dir.path(),
            &format!(
                "{db}[rules]\ndir = \"{r}\"\n\
                 [[maildir]]\nname = \"inbox\"\npath = \"{d}/inbox\"\n{extra}",
                db = db.toml(),
                d = dir.path().display(),
                r = rules.display()
            ),
        )
    };
    let config = dir.path().join("ticketd.toml");
    std::fs::write(&config, settings("")).unwrap();
    let daemon = Daemon::start(dir.path(), &config);
    daemon.wait_for("READY=1");

    // A config that does not parse is refused; the daemon keeps running on
    // the last good one.
    std::fs::write(&config, settings("[service\n")).unwrap();
    let refused = daemon.reload();
    assert!(
        refused.contains("STATUS=reloaded; config refused; 1 rules active"),
        "{refused}"
    );

    // A rule naming a team the config does not have yet: refused with the
    // config that lacks it.
    let billing = "[[rule]]\nname = \"billing\"\non = \"ticket.created\"\n\
                   when = { subject.contains = \"Faktura\" }\nthen = [{ set_team = \"billing\" }]\n";
    std::fs::write(rules.join("20-billing.toml"), billing).unwrap();
    std::fs::write(&config, settings("[service]\nstop_timeout_seconds = 7\n")).unwrap();
    let refused = daemon.reload();
    assert!(
        refused.contains("config and rules refused; 1 rules active"),
        "{refused}"
    );

    // The config that adds the team is taken together with the rule; the
    // changed [service] takes effect only after a restart, and says so.
    std::fs::write(
        &config,
        settings("[service]\nstop_timeout_seconds = 7\n[[team]]\nname = \"billing\"\n"),
    )
    .unwrap();
    let taken = daemon.reload();
    assert!(
        taken.contains(
            "config reloaded; 2 rules active; templates reloaded; restart needed for service"
        ),
        "{taken}"
    );

    // Mail now meets the new rule and team.
    let inbox = dir.path().join("inbox");
    std::fs::write(
        inbox.join("tmp/1.m.host"),
        "From: jan@firma.pl\r\nTo: support@example.com\r\nSubject: Faktura 12/2026\r\n\
         Message-ID: <reload-1@firma.pl>\r\n\r\nZla kwota.\r\n",
    )
    .unwrap();
    std::fs::rename(inbox.join("tmp/1.m.host"), inbox.join("new/1.m.host")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let tickets = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .arg("--config")
            .arg(&config)
            .args(["tickets", "list", "--json"])
            .env_remove("TICKETD_DATABASE_URL")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("Faktura") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no ticket; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(tickets.contains("TKT-2026-0001"), "{tickets}");
    let shown = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .arg("--config")
        .arg(&config)
        .args(["tickets", "show", "TKT-2026-0001"])
        .env_remove("TICKETD_DATABASE_URL")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.lines().any(|l| l == "team billing"), "{shown}");
    assert!(daemon.log().contains("take effect only after a restart"));
}

fn burst_mail(i: usize) -> Vec<u8> {
    format!(
        "From: Klient {i} <klient{i}@firma.pl>\r\nTo: support@example.com\r\nSubject: Zgłoszenie {i}\r\n\
         Message-ID: <burst-{i}@firma.pl>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTreść {i}.\r\n"
    )
    .into_bytes()
}

fn wait_exit(
    child: &mut std::process::Child,
    log: &dyn Fn() -> String,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "still running; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_in_a_burst_of_mail_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path());
    let extra = format!(
        "{db}[[maildir]]\nname = \"inbox\"\npath = \"{d}/inbox\"\n",
        db = db.toml(),
        d = dir.path().display()
    );
    let config = dir.path().join("ticketd.toml");
    std::fs::write(&config, common::base_config(dir.path(), &extra)).unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env_remove("TICKETD_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap()
    };
    let inbox = dir.path().join("inbox");
    let mut child = start();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !inbox.join("tmp").exists() {
        assert!(Instant::now() < deadline, "no maildir; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
    const MAILS: usize = 300;
    for i in 0..MAILS {
        let name = format!("{i}.burst.host");
        std::fs::write(inbox.join("tmp").join(&name), burst_mail(i)).unwrap();
        std::fs::rename(inbox.join("tmp").join(&name), inbox.join("new").join(&name)).unwrap();
        if i == MAILS / 3 {
            kill(child.id(), "-TERM");
        }
    }
    assert!(wait_exit(&mut child, &log).success(), "log:\n{}", log());
    // Started again, it takes what was left in new/.
    let mut child = start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(inbox.join("new")).unwrap().count() > 0 {
        assert!(
            Instant::now() < deadline,
            "new/ not drained; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(child.id(), "-TERM");
    assert!(wait_exit(&mut child, &log).success(), "log:\n{}", log());
    let listed = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .arg("--config")
        .arg(&config)
        .args(["tickets", "list", "--limit", "1000", "--json"])
        .env_remove("TICKETD_DATABASE_URL")
        .output()
        .unwrap();
    let tickets: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(tickets.as_array().unwrap().len(), MAILS, "every mail once");
    assert_eq!(std::fs::read_dir(inbox.join("cur")).unwrap().count(), MAILS);
}
