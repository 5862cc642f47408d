//! `ticketd copy-to URL`: the SQLite database into an empty PostgreSQL one,
//! in one target transaction, verified table by table by row counts and an
//! order-independent checksum of the rows as read back.

use super::rows::rows_per_insert;
use super::{Backend, Store};
use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::fmt::Write as _;

/// Runtime state of the instances, not data: not copied.
const SKIPPED: &[&str] = &["_sqlx_migrations", "leases", "instances"];
/// Rows read and written per round.
const CHUNK: i64 = 1000;

/// One table as copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: String,
    pub rows: i64,
    pub checksum: String,
}

/// A column and whether it holds integers (else text); the two types the
/// schema uses.
struct Column {
    name: String,
    integer: bool,
}

/// Copies every table of `source` (SQLite) into `target` (PostgreSQL,
/// migrated and empty) and verifies each; returns what was copied.
pub async fn copy(source: &Store, target: &Store) -> Result<Vec<Copied>> {
    if source.backend != Backend::Sqlite || target.backend != Backend::Postgres {
        bail!("copy-to copies a SQLite database (the configured one) into PostgreSQL");
    }
    let mut read = source.pool.begin().await?;
    let tables = tables(&mut read).await?;
    let mut write = target.pool.begin().await?;
    for (table, _) in &tables {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let rows: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *write)
            .await
            .with_context(|| format!("the target has no table {table}: is it migrated?"))?
            .try_get(0)?;
        if rows > 0 {
            bail!(
                "the target database is not empty: {table} has {rows} rows; copy into a fresh database"
            );
        }
    }
    let mut copied = Vec::new();
    for (table, columns) in &tables {
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let mut last_rowid = i64::MIN;
        let mut rows = 0;
        loop {
            let sql = format!(
                "SELECT rowid AS copy_rowid, {} FROM {table} WHERE rowid > $1 ORDER BY rowid LIMIT $2",
                names.join(", ")
            );
            let chunk = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(last_rowid)
                .bind(CHUNK)
                .fetch_all(&mut *read)
                .await?;
            let Some(last) = chunk.last() else { break };
            last_rowid = last.try_get("copy_rowid")?;
            rows += chunk.len() as i64;
            insert(&mut write, table, columns, &chunk).await?;
        }
        reset_identity(&mut write, table, columns).await?;
        let (target_rows, target_sum) = checksum(&mut write, table, columns).await?;
        let (source_rows, source_sum) = checksum(&mut read, table, columns).await?;
        if (target_rows, &target_sum) != (source_rows, &source_sum) || rows != source_rows {
            bail!(
                "{table}: the copy differs ({source_rows} rows, checksum {source_sum} in SQLite; {target_rows} rows, checksum {target_sum} in PostgreSQL); nothing was committed"
            );
        }
        copied.push(Copied {
            table: table.clone(),
            rows,
            checksum: source_sum,
        });
    }
    write.commit().await?;
    read.rollback().await?;
    Ok(copied)
}

/// The tables in creation order (which the foreign keys follow), with their
/// columns.
async fn tables(read: &mut AnyConnection) -> Result<Vec<(String, Vec<Column>)>> {
    let names: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
    )
    .fetch_all(&mut *read)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for name in names.into_iter().filter(|n| !SKIPPED.contains(&n.as_str())) {
        let sql = format!("SELECT name, type FROM pragma_table_info('{name}') ORDER BY cid");
        let columns = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *read)
            .await?
            .iter()
            .map(|r| {
                let kind: String = r.try_get(1)?;
                Ok(Column {
                    name: r.try_get(0)?,
                    integer: kind.eq_ignore_ascii_case("INTEGER"),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        out.push((name, columns));
    }
    Ok(out)
}

async fn insert(
    write: &mut AnyConnection,
    table: &str,
    columns: &[Column],
    rows: &[AnyRow],
) -> Result<()> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    for chunk in rows.chunks(rows_per_insert(columns.len())) {
        let mut values = String::new();
        for (r, _) in chunk.iter().enumerate() {
            let placeholders: Vec<String> = (0..columns.len())
                .map(|c| format!("${}", r * columns.len() + c + 1))
                .collect();
            let sep = if r == 0 { "" } else { ", " };
            let _ = write!(values, "{sep}({})", placeholders.join(", "));
        }
        let sql = format!("INSERT INTO {table} ({}) VALUES {values}", names.join(", "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for column in columns {
                let name = column.name.as_str();
                query = if column.integer {
                    query.bind(row.try_get::<Option<i64>, _>(name)?)
                } else {
                    query.bind(row.try_get::<Option<String>, _>(name)?)
                };
            }
        }
        query
            .execute(&mut *write)
            .await
            .with_context(|| format!("cannot write {table}"))?;
    }
    Ok(())
}

/// After explicit ids, the identity continues after the largest.
async fn reset_identity(write: &mut AnyConnection, table: &str, columns: &[Column]) -> Result<()> {
    if !columns.iter().any(|c| c.name == "id" && c.integer) {
        return Ok(());
    }
    let sql = format!(
        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table}
         WHERE pg_get_serial_sequence('{table}', 'id') IS NOT NULL HAVING MAX(id) IS NOT NULL"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *write)
        .await
        .with_context(|| format!("cannot move the id sequence of {table}"))?;
    Ok(())
}

/// Rows and the sum of each row's SHA-256 (first 16 bytes), so the order
/// rows come back in does not matter.
async fn checksum(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[Column],
) -> Result<(i64, String)> {
    use sha2::{Digest, Sha256};
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let sql = format!("SELECT {} FROM {table}", names.join(", "));
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
    let (mut count, mut sum) = (0i64, 0u128);
    while let Some(row) = rows.try_next().await? {
        count += 1;
        let mut hash = Sha256::new();
        for column in columns {
            let name = column.name.as_str();
            let value = if column.integer {
                row.try_get::<Option<i64>, _>(name)?.map(|v| v.to_string())
            } else {
                row.try_get::<Option<String>, _>(name)?
            };
            match value {
                Some(v) => {
                    hash.update([1]);
                    hash.update(v.as_bytes());
                }
                None => hash.update([0]),
            }
            hash.update([0x1f]);
        }
        let digest = hash.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        sum = sum.wrapping_add(u128::from_be_bytes(first));
    }
    Ok((count, format!("{sum:032x}")))
}
