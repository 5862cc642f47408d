//! The `ticketd` binary as an MTA and an admin use it: exit codes, output lines,
//! JSON, and `ticketd run` on the shipped config with no server at all.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ticketd(dir: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketd"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("TICKETD_DATABASE_URL")
        .env_remove("TICKETD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/ticketd.toml"),
        common::base_config(dir.path(), ""),
    )
    .unwrap();
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ingest_prints_one_line_and_uses_sysexits() {
    let dir = setup();
    let mail = common::fixture("gmail-new-ticket-pl-utf8.eml");
    let first = ticketd(dir.path(), &["ingest"], &mail, &[]);
    assert_eq!(
        (first.status.code(), stdout(&first).as_str()),
        (Some(0), "TKT-2026-0001 created\n")
    );
    let again = ticketd(dir.path(), &["ingest"], &mail, &[]);
    assert_eq!(
        (again.status.code(), stdout(&again).as_str()),
        (Some(0), "TKT-2026-0001 duplicate\n")
    );

    let empty = ticketd(dir.path(), &["ingest"], b"", &[]);
    assert_eq!(
        (empty.status.code(), stdout(&empty).as_str()),
        (Some(65), "quarantined: empty input\n")
    );

    let reply = common::fixture_path("gmail-quoted-reply.eml");
    let ooo = common::fixture_path("out-of-office-auto-reply.eml");
    let files = ticketd(
        dir.path(),
        &["ingest", reply.to_str().unwrap(), ooo.to_str().unwrap()],
        b"",
        &[],
    );
    assert_eq!(
        (files.status.code(), stdout(&files).as_str()),
        (
            Some(0),
            "TKT-2026-0001 comment\nauto-generated TKT-2026-0001\n"
        )
    );
}

#[test]
fn ingest_exits_75_when_the_store_is_unavailable() {
    let dir = setup();
    let mail = common::fixture("gmail-new-ticket-pl-utf8.eml");
    let down = ticketd(
        dir.path(),
        &["ingest"],
        &mail,
        &[(
            "TICKETD_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/nothing",
        )],
    );
    assert_eq!(
        down.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(stdout(&down), "");
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn tickets_list_and_show_json() {
    let dir = setup();
    ticketd(
        dir.path(),
        &["ingest"],
        &common::fixture("rfc2231-polish-attachment-name.eml"),
        &[],
    );
    let list = ticketd(
        dir.path(),
        &["tickets", "list", "--status", "new"],
        b"",
        &[],
    );
    assert!(
        stdout(&list).contains("TKT-2026-0001   new       medium"),
        "{}",
        stdout(&list)
    );
    let show = ticketd(
        dir.path(),
        &["tickets", "show", "TKT-2026-0001", "--json"],
        b"",
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["number"], "TKT-2026-0001");
    assert_eq!(v["subject"], "Faktura w załączniku");
    assert_eq!(v["requester"]["email"], "jan.kowalski@firma.pl");
    assert_eq!(v["comments"][0]["body"], "W załączniku faktura.");
    assert_eq!(v["comments"][0]["internal"], false);
    assert_eq!(v["attachments"][0]["name"], "faktura zażółć.pdf");
    assert_eq!(v["attachments"][0]["size"], 45);
    for key in [
        "status",
        "priority",
        "category",
        "assignee",
        "team",
        "tags",
        "created_at",
        "updated_at",
        "related",
        "history",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let missing = ticketd(dir.path(), &["tickets", "show", "TKT-2026-9999"], b"", &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no ticket TKT-2026-9999"));
}

#[test]
fn check_reports_a_bad_config_in_one_line() {
    let dir = setup();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[threading]\nstranger_policy = \"ignore\"\n",
    )
    .unwrap();
    let out = ticketd(dir.path(), &["--config", "bad.toml", "check"], b"", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: bad.toml: "), "{stderr}");
    assert!(stderr.contains("unknown variant `ignore`"), "{stderr}");
    let ok = ticketd(dir.path(), &["check"], b"", &[]);
    assert_eq!(ok.status.code(), Some(0));
}

/// `ticketd run` on the shipped config in an empty folder: SQLite and a
/// Maildir under var/, no server; SIGTERM stops it cleanly.
#[test]
fn run_with_the_shipped_config_needs_no_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ticketd.toml");
    std::fs::copy(shipped, dir.path().join("config/ticketd.toml")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .current_dir(dir.path())
        .arg("run")
        .env_remove("TICKETD_DATABASE_URL")
        .env_remove("TICKETD_CONFIG")
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    let inbox = dir.path().join("var/inbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !inbox.join("new").exists() {
        assert!(Instant::now() < deadline, "maildir not created");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(
        inbox.join("new/1.x.host"),
        common::fixture("gmail-new-ticket-pl-utf8.eml"),
    )
    .unwrap();
    while !inbox.join("cur/1.x.host:2,S").exists() {
        assert!(
            Instant::now() < deadline,
            "message not ingested; daemon log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // No SMTP server configured: the acknowledgement is written as an .eml file.
    let outbox = dir.path().join("var/outbox");
    let deadline = Instant::now() + Duration::from_secs(30);
    let eml = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(path) = found {
            break std::fs::read_to_string(path).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no acknowledgement in var/outbox"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(eml.contains("To: jan.kowalski@firma.pl"), "{eml}");
    assert!(eml.contains("Subject: [TKT-2026-0001] "), "{eml}");
    assert!(eml.contains("Auto-Submitted: auto-replied"), "{eml}");
    assert!(
        eml.contains("In-Reply-To: <CAJ8f3kQ1@mail.gmail.com>"),
        "{eml}"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(dir.path().join("var/ticketd.db").exists());
    let list = ticketd(dir.path(), &["tickets", "list"], b"", &[]);
    assert!(stdout(&list).contains("TKT-2026-0001"), "{}", stdout(&list));
}

#[test]
fn an_oversized_message_opens_a_ticket_from_its_headers_and_is_kept_whole() {
    let dir = setup();
    let config = common::base_config(dir.path(), "")
        .replace("[mail]\n", "[mail]\nmax_message_bytes = 2000\n");
    std::fs::write(dir.path().join("config/ticketd.toml"), config).unwrap();
    let mut mail = common::fixture("missing-message-id.eml");
    mail.extend(std::iter::repeat_n(b'x', 5000));
    let out = ticketd(dir.path(), &["ingest"], &mail, &[]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "TKT-2026-0001 created\n")
    );
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&mail));
    let kept = ticketd::store::files::content_path(&dir.path().join("quarantine"), &sha);
    assert_eq!(std::fs::read(kept).unwrap(), mail);

    let show = ticketd(dir.path(), &["tickets", "show", "TKT-2026-0001"], b"", &[]);
    let text = stdout(&show);
    assert!(text.contains("Bez identyfikatora"), "{text}");
    let note = format!(
        "message of {} bytes is over mail.max_message_bytes (2000); the original is kept in quarantine as {sha}",
        mail.len()
    );
    assert!(text.contains(&note), "{text}");
    assert!(!text.contains("xxxx"), "{text}");
    assert!(
        text.contains("message_too_large email to ola@dom.pl: pending"),
        "{text}"
    );
    assert!(!text.contains("ticket_created"), "{text}");
}

#[test]
fn check_reports_a_broken_template_with_file_and_line() {
    let dir = setup();
    std::fs::create_dir_all(dir.path().join("tpl/en")).unwrap();
    std::fs::write(
        dir.path().join("tpl/en/agent_reply.email.hbs"),
        "Subject: {{ticket.subject}}\n\n{{comment.bodyy}}\n",
    )
    .unwrap();
    let config = common::base_config(dir.path(), "[notify]\ntemplates_dir = \"tpl\"\n");
    std::fs::write(dir.path().join("config/ticketd.toml"), config).unwrap();
    let out = ticketd(dir.path(), &["check"], b"", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tpl/en/agent_reply.email.hbs:3: "),
        "{stderr}"
    );
    assert!(stderr.contains("comment.bodyy"), "{stderr}");
    assert!(stderr.contains("error: 1 template error(s)"), "{stderr}");
}
