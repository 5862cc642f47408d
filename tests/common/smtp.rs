//! A real SMTP server for tests: aiosmtpd (tests/smtp_server.py) in the venv
//! that `.ci/run` creates, writing what it accepts to a Maildir.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    _dir: tempfile::TempDir,
    certs: Option<tempfile::TempDir>,
    child: Option<Child>,
}

pub fn python() -> String {
    std::env::var("TICKETD_TEST_PYTHON")
        .unwrap_or_else(|_| "/var/cache/ticketd-ci/venv/bin/python".into())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::start_on(free_port())
    }

    pub fn start_on(port: u16) -> SmtpServer {
        SmtpServer::start_with(port, &[])
    }

    /// A server that takes `delay_ms` over each message it accepts.
    pub fn start_slow(delay_ms: u64) -> SmtpServer {
        SmtpServer::start_env(free_port(), &[], delay_ms)
    }

    /// With TLS ("starttls" or "implicit", a test CA in the server's folder) and AUTH.
    pub fn start_secure(tls: &str, credentials: &str) -> SmtpServer {
        let certs = tempfile::tempdir().unwrap();
        super::tls::write_certificates(certs.path(), "smtp");
        let cert = certs.path().join("smtp.pem");
        let key = certs.path().join("smtp.key");
        let mut s = SmtpServer::start_with(
            free_port(),
            &[
                tls,
                cert.to_str().unwrap(),
                key.to_str().unwrap(),
                credentials,
            ],
        );
        std::fs::copy(
            certs.path().join("ca.pem"),
            s.maildir.with_file_name("ca.pem"),
        )
        .unwrap();
        s.certs = Some(certs);
        s
    }

    /// The test CA of a secure server.
    pub fn ca_file(&self) -> PathBuf {
        self.maildir.with_file_name("ca.pem")
    }

    fn start_with(port: u16, extra: &[&str]) -> SmtpServer {
        SmtpServer::start_env(port, extra, 0)
    }

    fn start_env(port: u16, extra: &[&str], delay_ms: u64) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("received");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(&maildir)
            .args(extra)
            .env("TICKETD_TEST_SMTP_DELAY_MS", delay_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (aiosmtpd venv; .ci/run makes it): {e}",
                    python()
                )
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "aiosmtpd did not start (is it installed in {}?)",
            python()
        );
        SmtpServer {
            port,
            maildir,
            _dir: dir,
            certs: None,
            child: Some(child),
        }
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A `[smtp]` section for ticketd pointing here.
    pub fn toml(&self) -> String {
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout_seconds = 5\n",
            self.port
        )
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The value of a header in a raw message (first occurrence, unfolded).
pub fn header(raw: &str, name: &str) -> Option<String> {
    let msg = mail_parser::MessageParser::default().parse(raw.as_bytes())?;
    msg.header_raw(name)
        .map(|v| v.trim().replace("\r\n", "").replace('\n', ""))
}
