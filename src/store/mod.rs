//! Storage: one sqlx `Any` pool over SQLite (WAL, the embedded default) or
//! PostgreSQL, chosen by the URL scheme. Migrations live in `migrations/sqlite`
//! and `migrations/postgres` with the same file names.

pub mod changes;
pub mod checkpoints;
pub mod comments;
pub mod copy;
pub mod desk;
pub mod directory;
pub(crate) mod drafts;
pub mod files;
mod history;
mod ids;
pub mod leases;
pub mod numbers;
pub mod outbox;
pub mod queries;
pub mod reports;
mod rows;
pub mod schedule;
pub mod sla;
pub mod state;
pub mod tickets;
mod tx;

pub use tx::Tx;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection, Executor};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// How long a writer waits for its turn (as SQLite's busy timeout).
const WRITE_TURN_WAIT: Duration = Duration::from_secs(10);

/// A true/false column: SQLite returns EXISTS as 0/1, PostgreSQL as a boolean.
pub(crate) fn flag(r: &sqlx::any::AnyRow, column: &str) -> Result<bool> {
    use sqlx::Row;
    Ok(match r.try_get::<bool, _>(column) {
        Ok(b) => b,
        Err(_) => r.try_get::<i64, _>(column)? != 0,
    })
}

/// Store errors, split by what the caller must do about them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot take the write now: unreachable, busy, locked,
    /// full, an I/O error, a broken connection or transaction, a pool
    /// timeout, and anything else not provably caused by the data written.
    /// Retry later, never quarantine (exit 75 for a pipe).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A concurrent writer got there first (unique key, serialization): retry now.
    #[error("store conflict: {0}")]
    Conflict(String),
    /// The data written was refused for what it is (a constraint, a value the
    /// database cannot hold): retrying the same data will not help.
    #[error("store error: {0}")]
    Permanent(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a database error code says about the write, on either backend.
fn classify(code: &str) -> fn(String) -> Error {
    let sqlite_primary = code.parse::<i32>().ok().map(|n| n & 0xff);
    match code {
        // PostgreSQL: unique violation, serialization failure, deadlock;
        // SQLite: unique / primary key constraint (extended codes).
        "23505" | "40001" | "40P01" | "2067" | "1555" => Error::Conflict,
        // PostgreSQL: data exceptions (class 22: a value too long, bytes that
        // are not UTF-8) and integrity constraints (class 23).
        c if c.starts_with("22") || c.starts_with("23") => Error::Permanent,
        // SQLite: TOOBIG, CONSTRAINT, MISMATCH, RANGE.
        _ if matches!(sqlite_primary, Some(18 | 19 | 20 | 25)) => Error::Permanent,
        // Busy, locked, full, I/O, connection, resources, operator
        // intervention, and whatever else: the store's trouble.
        _ => Error::Unavailable,
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::Database(db) => classify(db.code().unwrap_or_default().as_ref())(e.to_string()),
            // A value from the message that cannot be sent to the database.
            E::Encode(_) => Error::Permanent(e.to_string()),
            _ => Error::Unavailable(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            sqlx::migrate::MigrateError::VersionMissing(version) => Error::Permanent(format!(
                "the database has schema version {version}, newer than this ticketd knows \
                 (another instance was upgraded?); run the newer ticketd binary everywhere"
            )),
            other => Error::Permanent(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// PostgreSQL: two connections for short writes that must not wait on a
    /// long transaction of the caller's (new contacts; see
    /// [`directory::contact_for`]); their commits do not wait for the disk.
    side: Option<AnyPool>,
    /// SQLite: this process's writers take turns here (see [`Store::write_turn`]).
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Store {
    /// Connects to `sqlite://PATH` (created if missing, WAL mode) or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Permanent(format!(
                "database url must start with sqlite:// or postgres://, got {:?}",
                url.split(':').next().unwrap_or("")
            )));
        };
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => url.to_string(),
        };
        // One direct connection first: it fails fast and names the cause
        // (the pool would retry until its timeout and report only that).
        sqlx::AnyConnection::connect(&url).await?.close().await?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            // A connection that a failed COMMIT or ROLLBACK left inside a
            // transaction (SQLite after SQLITE_FULL) is closed, never reused.
            .before_acquire(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let side = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                AnyPoolOptions::new()
                    .max_connections(2)
                    .min_connections(0)
                    .acquire_timeout(Duration::from_secs(10))
                    // Its commits need not wait for the disk: see
                    // `directory::contact_for`.
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET synchronous_commit = off").await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(&url)?,
            ),
        };
        let writer = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Store {
            pool,
            backend,
            side,
            writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// SQLite has one writer at a time, and its busy handler is not fair: a
    /// writer that comes straight back (a source's next batch) can keep
    /// another (a lease renewal) waiting until that one gives up. So this
    /// process's writers take turns, first come first served; the turn is
    /// held until the write ends. Nothing to wait for on PostgreSQL.
    pub(crate) async fn write_turn(&self) -> Result<Option<OwnedMutexGuard<()>>> {
        let Some(writer) = &self.writer else {
            return Ok(None);
        };
        tokio::time::timeout(WRITE_TURN_WAIT, writer.clone().lock_owned())
            .await
            .map(Some)
            .map_err(|_| {
                Error::Unavailable(format!(
                    "no turn to write to the database within {} s",
                    WRITE_TURN_WAIT.as_secs()
                ))
            })
    }

    /// A consistent copy of the database in `path` (SQLite: `VACUUM INTO`,
    /// safe while ticketd writes); PostgreSQL is backed up with its own
    /// tools, so this says how. Returns what was done.
    pub async fn backup(&self, path: &Path) -> anyhow::Result<String> {
        use anyhow::Context;
        if self.backend == Backend::Postgres {
            anyhow::bail!(
                "the database is PostgreSQL: back it up with `pg_dump --format=custom --file {} DATABASE_URL` (or continuous archiving); ticketd backup copies SQLite only",
                path.display()
            );
        }
        if path.exists() {
            anyhow::bail!("{} exists already; choose a new file", path.display());
        }
        let target = path.to_str().context("the backup path is not UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await
            .with_context(|| format!("cannot write the backup to {}", path.display()))?;
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(format!(
            "backup written to {} ({size} bytes)",
            path.display()
        ))
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(side) = &self.side {
            side.close().await;
        }
    }
}

/// Makes sure the SQLite file's folder exists and the file may be created.
fn sqlite_url(url: &str) -> Result<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    let query = if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        query.to_string()
    };
    Ok(format!("sqlite://{path}?{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str) -> &'static str {
        match classify(code)(String::new()) {
            Error::Unavailable(_) => "unavailable",
            Error::Conflict(_) => "conflict",
            Error::Permanent(_) => "permanent",
        }
    }

    #[test]
    fn only_what_the_data_caused_is_permanent() {
        // SQLite: full, I/O (and an extended I/O code), busy, locked, cannot open.
        for code in ["13", "10", "778", "5", "6", "14", "1", "11", "26"] {
            assert_eq!(kind(code), "unavailable", "{code}");
        }
        // PostgreSQL: disk full, connection, admin shutdown, read-only, internal.
        for code in ["53100", "08006", "57P01", "25006", "XX000"] {
            assert_eq!(kind(code), "unavailable", "{code}");
        }
        for code in ["23505", "40001", "40P01", "2067", "1555"] {
            assert_eq!(kind(code), "conflict", "{code}");
        }
        // A NUL byte PostgreSQL cannot store, a check or NOT NULL constraint.
        for code in ["22021", "23514", "23502", "19", "275", "1299", "18"] {
            assert_eq!(kind(code), "permanent", "{code}");
        }
    }

    #[test]
    fn errors_outside_the_database_are_unavailable() {
        let begin = Error::from(sqlx::Error::BeginFailed);
        assert!(matches!(begin, Error::Unavailable(_)), "{begin}");
        let timeout = Error::from(sqlx::Error::PoolTimedOut);
        assert!(matches!(timeout, Error::Unavailable(_)), "{timeout}");
    }
}
