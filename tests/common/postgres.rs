//! A private PostgreSQL server (initdb in a temporary folder, a free port)
//! that a test may stop and start again without touching the machine's.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    settings: Vec<String>,
}

fn bin(name: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL server binaries");
    let mut found: Vec<PathBuf> = versions
        .flatten()
        .map(|v| v.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no {name} under /usr/lib/postgresql"))
}

/// Runs as the postgres user when this process is root (initdb refuses root).
fn command(program: PathBuf) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        PrivatePostgres::start_with(tempfile::tempdir().unwrap(), &[])
    }

    /// With its data under `parent` (a small tmpfs, say) and these extra
    /// server settings (`name=value`).
    pub fn start_in(parent: &std::path::Path, settings: &[&str]) -> PrivatePostgres {
        PrivatePostgres::start_with(tempfile::tempdir_in(parent).unwrap(), settings)
    }

    fn start_with(dir: tempfile::TempDir, settings: &[&str]) -> PrivatePostgres {
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let status = command(bin("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let port = super::smtp::free_port();
        let mut pg = PrivatePostgres {
            dir,
            port,
            child: None,
            settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        pg.launch();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn launch(&mut self) {
        let child = command(bin("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .args(["-c", "fsync=off", "-c"])
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private PostgreSQL did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Fast shutdown: sessions are ended, as in a database restart.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // runuser passes the signal on to postgres.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = Command::new("pkill")
                .args([
                    "-INT",
                    "-f",
                    &format!("postgres -D {}", self.dir.path().display()),
                ])
                .status();
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                assert!(Instant::now() < deadline, "private PostgreSQL did not stop");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Whether the server answers on its port.
    pub fn is_up(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    pub fn restart_after(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.launch();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}
