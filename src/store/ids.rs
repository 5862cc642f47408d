//! Row ids a transaction that holds its rows back takes ahead, so a row has
//! its id before it is written: from the PostgreSQL sequence a few at a
//! time (the unused ones of the last round are gaps, nothing more), or after
//! SQLite's highest, whose write lock the transaction holds.

use super::{Backend, Error, Result, Tx};
use sqlx::Row;

/// Ids a PostgreSQL transaction takes from a sequence at a time.
const IDS_AHEAD: i64 = 32;

/// The tables whose rows get their ids ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Tickets,
    Comments,
}

/// The ids a transaction has taken ahead for one table.
#[derive(Default)]
pub(crate) struct IdsAhead {
    /// Taken from the sequence, unused yet (PostgreSQL).
    taken: Vec<i64>,
    /// The next free id and every one after it (SQLite).
    from: Option<i64>,
}

impl IdsAhead {
    fn next(&mut self) -> Option<i64> {
        if let Some(id) = self.taken.pop() {
            return Some(id);
        }
        let id = self.from?;
        self.from = Some(id + 1);
        Some(id)
    }
}

/// The next id for a row of `table` (only in a transaction that holds its
/// appends back).
pub(crate) async fn next(tx: &mut Tx, table: Table) -> Result<i64> {
    if let Some(id) = tx.held().and_then(|held| held.ids(table).next()) {
        return Ok(id);
    }
    let ids = take(tx, table).await?;
    let held = tx
        .held()
        .ok_or_else(|| Error::Permanent("ids taken ahead outside a held transaction".into()))?;
    *held.ids(table) = ids;
    held.ids(table)
        .next()
        .ok_or_else(|| Error::Permanent("no id was taken".into()))
}

async fn take(tx: &mut Tx, table: Table) -> Result<IdsAhead> {
    let (sequence, highest) = match table {
        Table::Tickets => (
            "SELECT nextval(pg_get_serial_sequence('tickets', 'id'))
             FROM generate_series(1, $1) ORDER BY 1 DESC",
            "SELECT COALESCE(MAX(id), 0) FROM tickets",
        ),
        Table::Comments => (
            "SELECT nextval(pg_get_serial_sequence('comments', 'id'))
             FROM generate_series(1, $1) ORDER BY 1 DESC",
            "SELECT COALESCE(MAX(id), 0) FROM comments",
        ),
    };
    Ok(match tx.backend() {
        Backend::Postgres => IdsAhead {
            taken: sqlx::query(sequence)
                .bind(IDS_AHEAD)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?,
            from: None,
        },
        Backend::Sqlite => {
            let highest: i64 = sqlx::query(highest)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
            IdsAhead {
                taken: Vec::new(),
                from: Some(highest + 1),
            }
        }
    })
}
