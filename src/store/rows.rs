//! Multi-row statements: placeholders for many rows, and inserts of many
//! rows in as few statements as the binding limits allow.

use super::Result;
use sqlx::{Any, AnyConnection};

/// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `columns` placeholders.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, $first+1, …` for `count` parameters: an `IN (…)` list after
/// `first - 1` other parameters.
pub(crate) fn parameter_list(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A query of the `Any` driver, as the row binders of [`insert_rows`] get it.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Writes `rows` with multi-row inserts: `insert` is the statement up to
/// `VALUES` (table and its `columns` columns), `bind` binds one row's values
/// in that order.
pub(crate) async fn insert_rows<R>(
    conn: &mut AnyConnection,
    insert: &str,
    columns: usize,
    rows: Vec<R>,
    bind: impl for<'q> Fn(AnyQuery<'q>, R) -> AnyQuery<'q>,
) -> Result<()> {
    insert_rows_then(conn, insert, columns, rows, "", bind).await
}

/// [`insert_rows`] with `then` after the values: an `ON CONFLICT` clause.
pub(crate) async fn insert_rows_then<R>(
    conn: &mut AnyConnection,
    insert: &str,
    columns: usize,
    rows: Vec<R>,
    then: &str,
    bind: impl for<'q> Fn(AnyQuery<'q>, R) -> AnyQuery<'q>,
) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<R> = rows.by_ref().take(rows_per_insert(columns)).collect();
        let values = placeholders(chunk.len(), columns);
        let sql = format!("{insert} VALUES {values} {then}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Rows per multi-row insert of `columns` columns: at most
/// [`MAX_PARAMETERS`] placeholders.
pub(crate) fn rows_per_insert(columns: usize) -> usize {
    (MAX_PARAMETERS / columns.max(1)).max(1)
}

/// Placeholders per statement. sqlx's SQLite driver looks each binding up by
/// name among all the statement's parameters, so binding costs time
/// quadratic in their number: past a few hundred, more statements of fewer
/// rows are cheaper than one big one (and SQLite's old limit was 999).
const MAX_PARAMETERS: usize = 200;

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_after_each_other() {
        assert_eq!(super::placeholders(1, 2), "($1, $2)");
        assert_eq!(super::placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::parameter_list(3, 2), "$3, $4");
    }
}
