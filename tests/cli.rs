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

/// A folder with `config/ticketd.toml` and the database it names.
struct Site {
    dir: tempfile::TempDir,
    db: common::TestDatabase,
}

impl Site {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn setup() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path());
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/ticketd.toml"),
        common::base_config(dir.path(), &db.toml()),
    )
    .unwrap();
    Site { dir, db }
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
    assert!(stdout(&ok).contains("database reachable"), "{ok:?}");
    // An unreachable database and an unreadable password file fail it.
    let down = ticketd(
        dir.path(),
        &["check"],
        b"",
        &[("TICKETD_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
    );
    assert_eq!(down.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot reach the database"),
        "{down:?}"
    );
    std::fs::write(
        dir.path().join("secret.toml"),
        "[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
    )
    .unwrap();
    let unreadable = ticketd(dir.path(), &["--config", "secret.toml", "check"], b"", &[]);
    assert_eq!(unreadable.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unreadable.stderr).contains("cannot read password_file"),
        "{unreadable:?}"
    );
}

/// `ticketd run` on the shipped config in an empty folder: SQLite and a
/// Maildir under var/, no server; SIGTERM stops it cleanly.
#[test]
fn run_with_the_shipped_config_needs_no_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    copy_shipped(dir.path());
    let mut child = Daemon(
        Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .current_dir(dir.path())
            .arg("run")
            .env_remove("TICKETD_DATABASE_URL")
            .env_remove("TICKETD_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    let inbox = dir.path().join("var/inbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !inbox.join("tmp").exists() {
        assert!(Instant::now() < deadline, "maildir not created");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Delivered as an MTA does: written in tmp/, then renamed into new/.
    std::fs::write(
        inbox.join("tmp/1.x.host"),
        common::fixture("gmail-new-ticket-pl-utf8.eml"),
    )
    .unwrap();
    std::fs::rename(inbox.join("tmp/1.x.host"), inbox.join("new/1.x.host")).unwrap();
    while !inbox.join("cur/1.x.host:2,S").exists() {
        assert!(
            Instant::now() < deadline,
            "message not ingested; daemon log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // No SMTP server configured: the acknowledgement is written as an .eml
    // file, and so is the notice to the agent the shipped rules assigned.
    let eml = outbox_mail(dir.path(), "To: jan.kowalski@firma.pl", &log);
    let assigned = outbox_mail(dir.path(), "To: ewa@example.com", &log);
    assert!(assigned.contains("TKT-2026-0001"), "{assigned}");
    assert!(eml.contains("To: jan.kowalski@firma.pl"), "{eml}");
    assert!(eml.contains("Subject: [TKT-2026-0001] "), "{eml}");
    assert!(eml.contains("Auto-Submitted: auto-replied"), "{eml}");
    assert!(
        eml.contains("In-Reply-To: <CAJ8f3kQ1@mail.gmail.com>"),
        "{eml}"
    );
    signal(&child, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log().contains("rules reloaded rules=13") {
        assert!(
            Instant::now() < deadline,
            "no reload on SIGHUP; daemon log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, "-TERM");
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "daemon log:\n{}", log());
    assert!(
        log().contains("SIGHUP: reloading the config, rules and templates"),
        "{}",
        log()
    );
    assert!(dir.path().join("var/ticketd.db").exists());
    let list = ticketd(dir.path(), &["tickets", "list"], b"", &[]);
    assert!(stdout(&list).contains("TKT-2026-0001"), "{}", stdout(&list));
}

#[test]
fn an_oversized_message_opens_a_ticket_from_its_headers_and_is_kept_whole() {
    let dir = setup();
    let config = common::base_config(dir.path(), &dir.db.toml())
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
    let config = common::base_config(
        dir.path(),
        &format!("{}[notify]\ntemplates_dir = \"tpl\"\n", dir.db.toml()),
    );
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

/// A `ticketd run` child, killed if the test fails before stopping it.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Daemon, sig: &str) {
    let kill = Command::new("kill")
        .args([sig, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

/// The shipped config and rules, as an admin starts from them.
fn copy_shipped(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::copy(
        root.join("config/ticketd.toml"),
        dir.join("config/ticketd.toml"),
    )
    .unwrap();
    for entry in std::fs::read_dir(root.join("rules")).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join("rules").join(entry.file_name())).unwrap();
    }
}

/// The first `.eml` in var/outbox containing `needle`, waiting up to 30 s.
fn outbox_mail(dir: &Path, needle: &str, log: &dyn Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(dir.join("var/outbox"))
            .ok()
            .and_then(|d| {
                d.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .find(|text| text.contains(needle))
            });
        if let Some(text) = found {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no mail with {needle:?} in var/outbox; daemon log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn check_reports_every_rule_error_with_file_line_and_column() {
    let dir = setup();
    let config = common::base_config(
        dir.path(),
        &format!("{}[rules]\ndir = \"rules\"\n", dir.db.toml()),
    );
    std::fs::write(dir.path().join("config/ticketd.toml"), config).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/10-x.toml"),
        "[[rule]]\nname = \"x\"\non = \"ticket.create\"\nthen = [{ set_priority = \"urgent\" }]\n[rule.when]\nbody.matches = \"(?P<\"\n",
    )
    .unwrap();
    let out = ticketd(dir.path(), &["check"], b"", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(
        lines[0].starts_with("rules/10-x.toml:3:6: rule \"x\": unknown event \"ticket.create\""),
        "{stderr}"
    );
    assert!(
        lines[1]
            .starts_with("rules/10-x.toml:4:26: rule \"x\": set_priority: expected one of: low"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("rules/10-x.toml:6:16: rule \"x\": bad regex \"(?P<\""),
        "{stderr}"
    );
    assert_eq!(lines[3], "error: 3 rule error(s)");
}

#[test]
fn rules_test_explains_a_message_and_runs_the_rule_files_tests() {
    let dir = tempfile::tempdir().unwrap();
    copy_shipped(dir.path());
    std::fs::write(
        dir.path().join("m.eml"),
        "From: Prezes <prezes@bigclient.pl>\nSubject: Faktura 12/2026\n\nZła kwota.\n",
    )
    .unwrap();
    let out = ticketd(dir.path(), &["rules", "test", "m.eml"], b"", &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with("rule \"billing keywords\": matched (subject matches "),
        "{text}"
    );
    assert!(text.contains("\n    set_category billing\n"), "{text}");
    assert!(text.contains("rule \"vip domain\": matched (priority lt \"high\")\n    set_priority high\n    add_tag vip\n"), "{text}");
    assert!(
        text.contains("rule \"account keywords\": no match (category equals \"other\")"),
        "{text}"
    );
    assert!(text.contains("rule \"billing team\": matched"), "{text}");
    let other = ticketd(
        dir.path(),
        &["rules", "test", "m.eml", "--event", "sla.breached"],
        b"",
        &[],
    );
    assert_eq!(
        stdout(&other),
        "rule \"escalate on breach\": matched (priority lt \"critical\")\n    escalate ticket_escalated to managers\n"
    );

    let ok = ticketd(dir.path(), &["rules", "test"], b"", &[]);
    assert_eq!(
        (ok.status.code(), stdout(&ok).as_str()),
        (Some(0), "9 rule test(s), 0 failed\n")
    );
    std::fs::write(
        dir.path().join("rules/50-wrong.toml"),
        "[[rule]]\nname = \"wrong\"\non = \"ticket.created\"\nthen = [{ add_tag = \"x\" }]\n[rule.when]\nsubject.contains = \"faktura\"\n\n[[rule.test]]\nmessage = \"From: a@b.pl\\nSubject: Faktura\\n\\nx\\n\"\nexpect = []\n",
    )
    .unwrap();
    let failed = ticketd(dir.path(), &["rules", "test"], b"", &[]);
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(
        stdout(&failed),
        "FAIL rule \"wrong\" (test at line 8): expected [], got [\"add_tag x\"]\n10 rule test(s), 1 failed\n"
    );
}

#[test]
fn rules_replay_compares_the_current_rules_with_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    copy_shipped(dir.path());
    let db = common::TestDatabase::new(dir.path());
    let database = [("TICKETD_DATABASE_URL", db.url.as_str())];
    // Whether it is after hours depends on when the test runs.
    std::fs::remove_file(dir.path().join("rules/50-after-hours.toml")).unwrap();
    let vip =
        "From: prezes@bigclient.pl\nSubject: Pilne\nMessage-ID: <r1@x>\n\nProszę o kontakt.\n";
    let plain =
        "From: jan@firma.pl\nSubject: Drukarka nie działa\nMessage-ID: <r2@x>\n\nNie drukuje.\n";
    for mail in [vip, plain] {
        let out = ticketd(dir.path(), &["ingest"], mail.as_bytes(), &database);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_file(dir.path().join("rules/20-vip.toml")).unwrap();
    let out = ticketd(
        dir.path(),
        &["rules", "replay", "--since", "1d"],
        b"",
        &database,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("TKT-2026-0001 \"Pilne\" (") && lines[0].ends_with("DIFFERS"),
        "{text}"
    );
    assert_eq!(lines[1], "  now:  -", "{text}");
    assert_eq!(
        lines[2], "  then: vip domain: priority medium -> high; vip domain: tag - -> vip",
        "{text}"
    );
    assert!(
        lines[3].starts_with("TKT-2026-0002 \"Drukarka nie działa\" (") && lines[3].ends_with(')'),
        "{text}"
    );
    assert_eq!(
        lines[4],
        "  now:  technical keywords: set_category technical; technical team: assign team technical round_robin"
    );
    assert_eq!(
        lines[6],
        "2 ticket(s), 1 treated differently by the current rules"
    );
}

#[test]
fn report_counts_tickets_in_table_csv_and_json() {
    let dir = setup();
    for name in [
        "gmail-new-ticket-pl-utf8.eml",
        "thunderbird-de-new-ticket.eml",
    ] {
        let o = ticketd(dir.path(), &["ingest"], &common::fixture(name), &[]);
        assert!(stdout(&o).ends_with(" created\n"), "{}", stdout(&o));
    }
    let csv = ticketd(
        dir.path(),
        &["report", "--by", "category", "--format", "csv"],
        b"",
        &[],
    );
    assert_eq!(csv.status.code(), Some(0));
    let csv = stdout(&csv);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "category,created,resolved,avg_first_response_seconds,avg_resolution_seconds,sla_compliance_percent,breached"
    );
    assert_eq!(lines.last(), Some(&"total,2,0,,,,0"), "{csv}");

    let json = ticketd(dir.path(), &["report", "--format", "json"], b"", &[]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["by"], "team");
    assert_eq!(report["total"]["created"], 2);

    let table = ticketd(
        dir.path(),
        &["report", "--from", "2020-01-01", "--to", "2020-02-01"],
        b"",
        &[],
    );
    let table = stdout(&table);
    assert!(
        table.starts_with("Tickets from 2020-01-01T00:00:00Z to 2020-02-01T00:00:00Z\n"),
        "{table}"
    );
    let total: Vec<&str> = table.lines().last().unwrap().split_whitespace().collect();
    assert_eq!(total[..3], ["total", "0", "0"], "{table}");

    let bad = ticketd(dir.path(), &["report", "--from", "last tuesday"], b"", &[]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--from: \"last tuesday\" is not a date"),
        "{err}"
    );
}

#[test]
fn backup_copies_the_sqlite_database_consistently() {
    let dir = setup();
    let mail = common::fixture("gmail-new-ticket-pl-utf8.eml");
    assert_eq!(
        ticketd(dir.path(), &["ingest"], &mail, &[]).status.code(),
        Some(0)
    );
    let copy = dir.path().join("copy.db");
    let copy_arg = copy.to_str().unwrap();
    let done = ticketd(dir.path(), &["backup", copy_arg], b"", &[]);
    if common::backend() == ticketd::store::Backend::Postgres {
        // PostgreSQL has its own tools; the error names them.
        assert_eq!(done.status.code(), Some(1), "{done:?}");
        assert!(
            String::from_utf8_lossy(&done.stderr).contains("back it up with `pg_dump"),
            "{done:?}"
        );
        return;
    }
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(stdout(&done).starts_with("backup written to"), "{done:?}");
    // The copy is a database of its own with the ticket in it.
    let url = format!("sqlite://{copy_arg}");
    let listed = ticketd(
        dir.path(),
        &["tickets", "list", "--json"],
        b"",
        &[("TICKETD_DATABASE_URL", &url)],
    );
    assert!(stdout(&listed).contains("TKT-2026-0001"), "{listed:?}");
    // Never over an existing file.
    let again = ticketd(dir.path(), &["backup", copy_arg], b"", &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{again:?}"
    );
}

#[tokio::test]
async fn instances_lists_running_and_gone_instances_with_their_leases() {
    let dir = setup();
    let migrated = ticketd(dir.path(), &["migrate"], b"", &[]);
    assert_eq!(migrated.status.code(), Some(0), "{migrated:?}");
    let store = ticketd::store::Store::connect(&dir.db.url, 1)
        .await
        .unwrap();
    let instance = |id: &str| ticketd::store::leases::Instance {
        id: id.into(),
        host: "host".into(),
        rules_digest: "0123456789abcdef".into(),
        clock_offset: 0,
        sources: vec!["imap:one".into()],
    };
    for id in ["host:1:live", "host:2:dead"] {
        store.instance_heartbeat(&instance(id), 60).await.unwrap();
    }
    assert!(
        store
            .acquire_lease("imap:one", "host:1:live", 60)
            .await
            .unwrap()
    );
    // The shipped lease is 20 s: gone after a minute without a heartbeat.
    sqlx::query("UPDATE instances SET seen_at = seen_at - 100 WHERE id = 'host:2:dead'")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let shown = ticketd(dir.path(), &["instances"], b"", &[]);
    assert_eq!(shown.status.code(), Some(0), "{shown:?}");
    let text = stdout(&shown);
    let row = |first: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(first))
            .unwrap_or_else(|| panic!("no line for {first}: {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let live = row("host:1:live");
    assert_eq!(
        (live[1].as_str(), live.last().unwrap().as_str()),
        ("running", "imap:one"),
        "{text}"
    );
    let dead = row("host:2:dead");
    assert_eq!(
        (dead[1].as_str(), dead.last().unwrap().as_str()),
        ("gone", "-"),
        "{text}"
    );
    assert_eq!(row("imap:one")[1], "host:1:live", "{text}");
}
