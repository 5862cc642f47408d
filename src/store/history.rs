//! The ticket history: one row per change, naming the actor and the rule.
//! A transaction that holds its appends back writes them at commit.

use super::Result;
use super::Tx;
use super::numbers::Numbers;
use super::rows::insert_rows;
use crate::clock::Timestamp;
use sqlx::AnyConnection;

#[allow(clippy::too_many_arguments)]
pub async fn history(
    tx: &mut Tx,
    ticket_id: i64,
    actor: &str,
    field: &str,
    old: Option<&str>,
    new: Option<&str>,
    rule: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    let row = HistoryRow {
        ticket_id,
        actor: actor.to_string(),
        field: field.to_string(),
        old: old.map(String::from),
        new: new.map(String::from),
        rule: rule.map(String::from),
        at: now,
    };
    match tx.held() {
        Some(held) => held.history.push(row),
        None => write_history(tx, vec![row]).await?,
    }
    Ok(())
}

/// One change in a ticket's history.
pub(crate) struct HistoryRow {
    ticket_id: i64,
    actor: String,
    field: String,
    old: Option<String>,
    new: Option<String>,
    rule: Option<String>,
    at: Timestamp,
}

impl HistoryRow {
    pub(crate) fn renumber(&mut self, numbers: &Numbers) {
        numbers.replace_in_option(&mut self.old);
        numbers.replace_in_option(&mut self.new);
    }
}

pub(crate) async fn write_history(conn: &mut AnyConnection, rows: Vec<HistoryRow>) -> Result<()> {
    let insert = "INSERT INTO ticket_history (ticket_id, actor, field, old_value, new_value, rule, created_at)";
    insert_rows(conn, insert, 7, rows, |query, r| {
        query
            .bind(r.ticket_id)
            .bind(r.actor)
            .bind(r.field)
            .bind(r.old)
            .bind(r.new)
            .bind(r.rule)
            .bind(r.at)
    })
    .await
}
