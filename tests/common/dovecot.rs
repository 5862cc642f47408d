//! A private Dovecot for tests and benchmarks: generated config in a temp
//! folder, a passwd-file user, Maildir storage, plain IMAP (with STARTTLS) and
//! IMAPS on random loopback ports, and a test CA for TLS.
#![allow(dead_code)]

use futures::TryStreamExt;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "support";
pub const PASSWORD: &str = "s3cret-pass";

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn id_of(user: &str, flag: &str) -> String {
    let out = Command::new("id").args([flag, user]).output().expect("id");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Dovecot {
    pub fn start() -> Dovecot {
        assert!(
            Command::new("dovecot").arg("--version").output().is_ok(),
            "dovecot is not installed (apt-get install dovecot-imapd; .ci/run does this)"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let (uid, gid) = (id_of("dovecot", "-u"), id_of("dovecot", "-g"));
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Command::new("chown")
            .args([&format!("{uid}:{gid}"), home.to_str().unwrap()])
            .status()
            .unwrap();
        std::fs::write(
            root.join("passwd"),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{}\n",
                home.display()
            ),
        )
        .unwrap();
        super::tls::write_certificates(root, "server");
        let mut d = Dovecot {
            dir,
            port: free_port(),
            tls_port: free_port(),
            child: None,
        };
        d.write_config();
        d.launch();
        d
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn write_config(&self) {
        let root = self.dir.path().display();
        let config = format!(
            r#"base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"#,
            port = self.port,
            tls_port = self.tls_port
        );
        std::fs::write(self.dir.path().join("dovecot.conf"), config).unwrap();
    }

    fn launch(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("run/master.pid"));
        let child = Command::new("dovecot")
            .args(["-F", "-c"])
            .arg(self.dir.path().join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "dovecot did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops and starts the server on the same ports (sessions are cut).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// A `[[mailbox]]` entry for ticketd pointing at this server.
    pub fn mailbox_toml(&self, name: &str, tls: &str, extra: &str) -> String {
        let port = if tls == "implicit" {
            self.tls_port
        } else {
            self.port
        };
        format!(
            "[[mailbox]]\nname = \"{name}\"\nhost = \"{host}\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{ca}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nmax_backoff_seconds = 1\ntimeout_seconds = 10\n{extra}\n",
            host = if tls == "none" {
                "127.0.0.1"
            } else {
                "localhost"
            },
            ca = self.ca_file().display()
        )
    }

    /// A plain-text client session for setting up and checking the mailbox.
    pub async fn client(&self) -> async_imap::Session<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap().unwrap();
        client
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .unwrap()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// APPENDs messages to a folder (created if missing).
pub async fn append(
    session: &mut async_imap::Session<tokio::net::TcpStream>,
    folder: &str,
    messages: &[Vec<u8>],
) {
    let _ = session.create(folder).await;
    for m in messages {
        session.append(folder, None, None, m).await.unwrap();
    }
}

/// UID → flags of every message in a folder.
pub async fn flags(
    session: &mut async_imap::Session<tokio::net::TcpStream>,
    folder: &str,
) -> Vec<(u32, Vec<String>)> {
    let mailbox = session.select(folder).await.unwrap();
    if mailbox.exists == 0 {
        return Vec::new();
    }
    let fetched: Vec<_> = session
        .uid_fetch("1:*", "(UID FLAGS)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out: Vec<(u32, Vec<String>)> = fetched
        .iter()
        // Unsolicited FETCH responses (flag changes made by other sessions) carry no UID.
        .filter_map(|f| Some((f.uid?, f.flags().map(|fl| format!("{fl:?}")).collect())))
        .collect();
    out.sort();
    out
}
