//! Scheduled rules in the store: one `schedule_runs` row per rule and cron
//! slot, inserted in the transaction that carries the run out, so a slot runs
//! once however many instances or restarts see it due.

use super::{Result, Store, Tx};
use crate::clock::Timestamp;
use sqlx::Row;
use std::collections::HashMap;

/// Claims `slot` of `rule`: true for exactly one caller, ever. Under
/// PostgreSQL a second instance waits for the first one's transaction and
/// then finds the row.
pub async fn claim_slot(tx: &mut Tx, rule: &str, slot: Timestamp, now: Timestamp) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO schedule_runs (rule, slot, fired_at, tickets) VALUES ($1, $2, $3, 0)
         ON CONFLICT (rule, slot) DO NOTHING",
    )
    .bind(rule)
    .bind(slot)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

/// Records how many tickets a run matched.
pub async fn record_run(tx: &mut Tx, rule: &str, slot: Timestamp, tickets: usize) -> Result<()> {
    sqlx::query("UPDATE schedule_runs SET tickets = $1 WHERE rule = $2 AND slot = $3")
        .bind(tickets as i64)
        .bind(rule)
        .bind(slot)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The latest slot run of each scheduled rule.
    pub async fn last_slots(&self) -> Result<HashMap<String, Timestamp>> {
        sqlx::query("SELECT rule, MAX(slot) FROM schedule_runs GROUP BY rule")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The runs of one rule, oldest first: (slot, tickets matched).
    pub async fn schedule_runs(&self, rule: &str) -> Result<Vec<(Timestamp, i64)>> {
        sqlx::query("SELECT slot, tickets FROM schedule_runs WHERE rule = $1 ORDER BY slot")
            .bind(rule)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
