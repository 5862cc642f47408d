//! Source checkpoints: how far a source's messages are committed.

use super::{Result, Store, Tx};
use crate::clock::Timestamp;
use sqlx::Row;

/// A source's position, e.g. an IMAP folder's UIDVALIDITY and last committed UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub validity: i64,
    pub position: i64,
}

pub async fn save(tx: &mut Tx, source: &str, cp: Checkpoint, now: Timestamp) -> Result<()> {
    sqlx::query(
        "INSERT INTO source_checkpoints (source, validity, position, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (source) DO UPDATE SET validity = $2, position = $3, updated_at = $4",
    )
    .bind(source)
    .bind(cp.validity)
    .bind(cp.position)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    pub async fn checkpoint(&self, source: &str) -> Result<Option<Checkpoint>> {
        let row =
            sqlx::query("SELECT validity, position FROM source_checkpoints WHERE source = $1")
                .bind(source)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(Checkpoint {
                validity: r.try_get(0)?,
                position: r.try_get(1)?,
            })
        })
        .transpose()
    }

    /// The checkpoints whose names start with `prefix` (a source's
    /// per-channel positions, e.g. `discord:`).
    pub async fn checkpoints_under(&self, prefix: &str) -> Result<Vec<(String, Checkpoint)>> {
        let rows = sqlx::query(
            "SELECT source, validity, position FROM source_checkpoints
             WHERE substr(source, 1, length($1)) = $1 ORDER BY source",
        )
        .bind(prefix)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    Checkpoint {
                        validity: r.try_get(1)?,
                        position: r.try_get(2)?,
                    },
                ))
            })
            .collect()
    }

    /// Sets a checkpoint outside an ingest (first start, UIDVALIDITY change).
    pub async fn set_checkpoint(&self, source: &str, cp: Checkpoint, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        save(&mut tx, source, cp, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
