//! Test environment: a fresh store on SQLite (temp file) or PostgreSQL (a
//! database created for the test and dropped after), with a manual clock.
#![allow(dead_code)]

use sqlx::{Connection, Executor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use ticketd::clock::Clock;
use ticketd::config::Config;
use ticketd::ingest::{Inbound, Outcome, Pipeline};
use ticketd::store::{Backend, Store};

/// 2026-11-20 10:00:00 UTC.
pub const START: i64 = 1_795_168_800;
pub const TOKEN_KEY: &str = "test-reply-token-key-0123456789";

pub fn pg_admin_url() -> String {
    std::env::var("TICKETD_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The backend of the tests that run on one backend: `TICKETD_TEST_BACKEND`
/// (`sqlite`, the default, or `postgres`). `.ci/run` runs the suite with each;
/// the tests made by `on_both_backends!` and `for_each_backend!` run on both
/// either way.
pub fn backend() -> Backend {
    match std::env::var("TICKETD_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("TICKETD_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
    }
}

/// A fresh database on [`backend()`] for a test that starts the binary. A
/// PostgreSQL database is dropped with this value.
pub struct TestDatabase {
    pub url: String,
    pg_database: Option<String>,
}

impl TestDatabase {
    /// Creates it; callable from sync tests and from inside a runtime alike.
    pub fn new(dir: &Path) -> TestDatabase {
        let dir = dir.to_path_buf();
        let (url, pg_database) =
            on_own_runtime(async move { fresh_database(backend(), &dir).await });
        TestDatabase { url, pg_database }
    }

    /// The config section that points the binary at it.
    pub fn toml(&self) -> String {
        format!("[database]\nurl = \"{}\"\n", self.url)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.pg_database.take() {
            on_own_runtime(async move { drop_database(&name).await });
        }
    }
}

/// Runs `work` to its end on a runtime of its own, in a thread of its own.
fn on_own_runtime<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .unwrap()
}

pub struct Env {
    pub backend: Backend,
    pub store: Store,
    pub pipeline: Pipeline,
    /// What the pipeline shares with the scheduler and reload.
    pub context: ticketd::context::Context,
    pub clock: Clock,
    pub config: Config,
    /// Shared, so `on_both_backends!` can keep the folder alive for the
    /// whole test even when the body's `async move` captures only some
    /// fields of the `Env` (edition 2021) and drops the rest at once.
    pub dir: std::sync::Arc<tempfile::TempDir>,
    pub database_url: String,
    pg_database: Option<String>,
}

/// The config every test starts from; `extra` is appended (TOML).
pub fn base_config(dir: &Path, extra: &str) -> String {
    format!(
        r#"
[mail]
support_addresses = ["support@example.com"]
quarantine_dir = "{dir}/quarantine"
outbox_dir = "{dir}/outbox"

[attachments]
dir = "{dir}/attachments"

[threading]
reply_token_key = "{TOKEN_KEY}"

[[team]]
name = "support"

[[agent]]
email = "agent@example.com"
name = "Agnieszka Agent"
teams = ["support"]

[[organization]]
name = "Firma"
domains = ["firma.pl"]
{extra}
"#,
        dir = dir.display()
    )
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A URL for a fresh, empty database on `backend`.
pub async fn fresh_database(backend: Backend, dir: &Path) -> (String, Option<String>) {
    match backend {
        Backend::Sqlite => (format!("sqlite://{}/ticketd.db", dir.display()), None),
        Backend::Postgres => {
            let name = format!(
                "ticketd_test_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            );
            sqlx::any::install_default_drivers();
            let admin = pg_admin_url();
            let mut conn = sqlx::AnyConnection::connect(&admin)
                .await
                .expect("PostgreSQL for tests (set TICKETD_TEST_PG)");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .await
            .unwrap();
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            (format!("{base}/{name}"), Some(name))
        }
    }
}

pub async fn drop_database(name: &str) {
    let mut conn = sqlx::AnyConnection::connect(&pg_admin_url()).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await
    .unwrap();
}

impl Env {
    pub async fn new(backend: Backend) -> Env {
        Env::with_config(backend, "").await
    }

    pub async fn with_config(backend: Backend, extra: &str) -> Env {
        Env::configured(backend, extra, |_| {}).await
    }

    /// An environment whose config is changed by `adjust` before anything opens.
    pub async fn configured(
        backend: Backend,
        extra: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg_database) = fresh_database(backend, dir.path()).await;
        let mut config = Config::parse(&base_config(dir.path(), extra)).unwrap();
        config.database.url = database_url.clone();
        adjust(&mut config);
        let store = ticketd::app::open_store(&config).await.unwrap();
        let clock = Clock::manual(START);
        let context = ticketd::app::context(&config, store.clone(), clock.clone()).unwrap();
        let pipeline = Pipeline::new(&config, &context);
        Env {
            backend,
            store,
            pipeline,
            context,
            clock,
            config,
            dir: std::sync::Arc::new(dir),
            database_url,
            pg_database,
        }
    }

    /// An environment whose rules folder holds `rules` as `10-test.toml`, with
    /// `extra` config; the folder lives as long as the returned `TempDir`.
    pub async fn with_rules(
        backend: Backend,
        extra: &str,
        rules: &str,
    ) -> (Env, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-test.toml"), rules).unwrap();
        let rules_dir = dir.path().to_path_buf();
        let env = Env::configured(backend, extra, move |c| c.rules.dir = Some(rules_dir)).await;
        (env, dir)
    }

    /// A second pipeline on the same store and config (for concurrent ingest).
    pub fn pipeline_clone(&self) -> Pipeline {
        let context =
            ticketd::app::context(&self.config, self.store.clone(), self.clock.clone()).unwrap();
        Pipeline::new(&self.config, &context)
    }

    /// Ingests one message and returns its outcome line.
    pub async fn ingest(&self, raw: &[u8]) -> Outcome {
        let key = format!("test-{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        self.ingest_as("test", &key, raw).await
    }

    pub async fn ingest_as(&self, source: &str, key: &str, raw: &[u8]) -> Outcome {
        let batch = [Inbound::new(source, key, raw.to_vec())];
        let mut out = self.pipeline.ingest(&batch).await.unwrap();
        out.pop().unwrap()
    }

    /// Ingests `raws` as one batch (keys `KEY-0`, `KEY-1`, …) through `pipeline`.
    pub async fn ingest_batch(pipeline: &Pipeline, key: &str, raws: &[String]) -> Vec<Outcome> {
        let batch: Vec<Inbound> = raws
            .iter()
            .enumerate()
            .map(|(i, raw)| Inbound::new("pipe", format!("{key}-{i}"), raw.clone().into_bytes()))
            .collect();
        pipeline.ingest(&batch).await.unwrap()
    }

    /// The one number `sql` selects.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }

    pub async fn ingest_fixture(&self, name: &str) -> String {
        self.ingest(&fixture(name)).await.to_string()
    }

    pub async fn show(&self, number: &str) -> ticketd::store::queries::TicketDetail {
        self.store
            .ticket_detail(number)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no ticket {number}"))
    }

    pub async fn show_opt(&self, number: &str) -> Option<ticketd::store::queries::TicketDetail> {
        self.store.ticket_detail(number).await.unwrap()
    }

    /// A dispatcher for this environment: every channel its config has.
    pub fn dispatcher(&self) -> ticketd::notify::dispatch::Dispatcher {
        use ticketd::notify::{discord::Discord, email::Mailer, telegram::Telegram};
        ticketd::notify::dispatch::Dispatcher {
            store: self.store.clone(),
            mailer: Mailer::new(&self.config).unwrap(),
            webhooks: ticketd::notify::webhook::Webhooks::new(&self.config).unwrap(),
            telegram: Telegram::new(&self.config).unwrap(),
            discord: Discord::new(&self.config).unwrap(),
            clock: self.clock.clone(),
            instance: "test".into(),
            max_age_seconds: 3600,
            concurrency: 2,
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some(name) = &self.pg_database {
            drop_database(name).await;
        }
    }
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A copy of a message with another Message-ID.
pub fn with_message_id(raw: &[u8], id: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut replaced = false;
    for line in text.split_inclusive('\n') {
        if !replaced && line.to_ascii_lowercase().starts_with("message-id:") {
            out.push_str(&format!("Message-ID: <{id}>\r\n"));
            replaced = true;
        } else {
            out.push_str(line);
        }
    }
    assert!(replaced, "message has no Message-ID header");
    out.into_bytes()
}

/// Runs a test body once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        on_both_backends!($name, |_config| {}, $body);
    };
    ($name:ident, $adjust:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let env =
                    common::Env::configured(ticketd::store::Backend::Sqlite, "", $adjust).await;
                let _folder = env.dir.clone();
                ($body)(env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let env =
                    common::Env::configured(ticketd::store::Backend::Postgres, "", $adjust).await;
                let _folder = env.dir.clone();
                ($body)(env).await;
            }
        }
    };
}

/// Runs `async fn NAME(backend: Backend)` once per backend.
#[macro_export]
macro_rules! for_each_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(ticketd::store::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(ticketd::store::Backend::Postgres).await
            }
        }
    };
}

/// A `ticketd run` process in `dir` (config `ticketd.toml`), killed when
/// dropped so a failing test leaves nothing running.
pub struct Daemon(pub std::process::Child);

impl Daemon {
    /// Starts it; its log (warnings and up) goes to `log`.
    pub fn spawn(dir: &Path, log: std::process::Stdio) -> Daemon {
        Daemon(
            std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"))
                .current_dir(dir)
                .args(["--config", "ticketd.toml", "run"])
                .env_remove("TICKETD_DATABASE_URL")
                .env("RUST_LOG", "warn")
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    /// SIGKILL, and wait until it is gone.
    pub fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The one number `sql` selects from the database at `url`, read on a
/// runtime of its own (callable from sync tests).
pub fn count_at(url: &str, sql: &str) -> i64 {
    let (url, sql) = (url.to_string(), sql.to_string());
    on_own_runtime(async move {
        let store = Store::connect(&url, 1).await.unwrap();
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(store.pool())
            .await
            .unwrap();
        store.close().await;
        n
    })
}

/// `ticketd::app::run` in this process on a manual clock, as the daemon runs,
/// stopped the way a signal stops it.
pub struct App {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl App {
    pub fn start(config: Config) -> App {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(ticketd::app::run(config, Clock::manual(START), async {
            let _ = stopped.await;
        }));
        App {
            stop: Some(stop),
            task,
        }
    }

    /// Stops it and waits (at most 20 s) for a clean end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(20), self.task)
            .await
            .expect("the daemon stops")
            .unwrap()
            .unwrap();
    }
}
