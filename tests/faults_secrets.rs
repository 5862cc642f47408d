//! The fault matrix, secrets: a config typo or a server that echoes what it
//! was sent must never put a credential into an error or a log (issue 21).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Command;

const SECRET: &str = "Hunter2-Secret-Pass";

fn check(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ticketd.toml");
    std::fs::write(&path, common::base_config(dir.path(), config)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .env_remove("TICKETD_DATABASE_URL")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

// `ticketd check` is the unit's ExecStartPre, so what it prints is in the
// journal. Failed on e4d9901 (the offending line, secret and all, was shown).
#[test]
fn config_typos_never_show_the_secret() {
    let smtp = "[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\n";
    for bad in [
        format!("{smtp}pasword = \"{SECRET}\"\n"),
        format!("{smtp}password = \"{SECRET}\n"),
        format!("{smtp}password = {{ value = \"{SECRET}\" }}\n"),
        format!(
            "[[webhook]]\nname = \"crm\"\nurl = \"http://127.0.0.1:1/h\"\nsecret = [\"{SECRET}\"]\n"
        ),
    ] {
        let (code, text) = check(&bad);
        assert_ne!(code, Some(0), "{bad}");
        assert!(!text.contains(SECRET), "secret shown for {bad:?}:\n{text}");
        assert!(text.contains("line "), "no location for {bad:?}:\n{text}");
        assert_eq!(text.trim_end().lines().count(), 1, "not one line:\n{text}");
    }
}

/// An IMAP server that echoes the LOGIN line it got in its refusal, as some
/// do; returns its port.
fn echoing_imap_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut writer = stream.try_clone().unwrap();
            let _ = writer.write_all(b"* OK IMAP4rev1 ready\r\n");
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let tag = line.split(' ').next().unwrap_or("*").to_string();
                let echo = line.trim_end();
                let _ = writer.write_all(
                    format!("{tag} NO [AUTHENTICATIONFAILED] rejected: {echo}\r\n").as_bytes(),
                );
                line.clear();
            }
        }
    });
    port
}

// Failed on e4d9901: the refusal was logged verbatim, password included.
#[tokio::test]
async fn a_server_echoing_the_login_never_logs_the_password() {
    let port = echoing_imap_server();
    let dir = tempfile::tempdir().unwrap();
    let config = ticketd::config::Config::parse(&common::base_config(
        dir.path(),
        &format!(
            "[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             tls = \"none\"\nusername = \"ann\"\npassword = \"{SECRET}\"\n"
        ),
    ))
    .unwrap();
    let err = match ticketd::source::imap::login(&config.mailbox[0]).await {
        Ok(_) => panic!("the server refuses every login"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("rejected"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
    assert!(err.contains("***"), "{err}");
}
