//! Several instances on one database: a lease gives one instance a source
//! (an IMAP mailbox, a bot, a Maildir) until it expires; the holder renews
//! it. Expiry is by the database's clock, so instances' clocks may differ.
//! The instances table records each running instance's rule set and clock
//! offset, for warnings.

use super::{Backend, Result, Store};
use sqlx::Row;

/// One running instance as the others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub host: String,
    pub rules_digest: String,
    /// The instance's clock minus the database's, in seconds.
    pub clock_offset: i64,
}

impl Store {
    /// The SQL expression for the database's clock, in epoch seconds.
    fn database_clock(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "CAST(strftime('%s', 'now') AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)",
        }
    }

    /// The database's clock, in epoch seconds.
    pub async fn database_now(&self) -> Result<i64> {
        let sql = format!("SELECT {}", self.database_clock());
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(self.pool())
            .await?
            .try_get(0)?)
    }

    /// Takes `name` for `holder` for `seconds`, or renews it; false while
    /// another holder's lease has not expired.
    pub async fn acquire_lease(&self, name: &str, holder: &str, seconds: i64) -> Result<bool> {
        let now = self.database_clock();
        let sql = format!(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, {now} + $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= {now}
             RETURNING holder"
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(holder)
            .bind(seconds)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    /// Takes `name` over from `dead` (an instance known to be gone), when
    /// it still holds it.
    pub async fn take_over_lease(
        &self,
        name: &str,
        dead: &str,
        holder: &str,
        seconds: i64,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE leases SET holder = $1, expires_at = {} + $2 WHERE name = $3 AND holder = $4 RETURNING holder",
            self.database_clock()
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .bind(seconds)
            .bind(name)
            .bind(dead)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    /// Gives `name` up, when `holder` still has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Who holds `name` now (an expired lease is nobody's).
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>> {
        let sql = format!(
            "SELECT holder FROM leases WHERE name = $1 AND expires_at > {}",
            self.database_clock()
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// Records that `me` runs now, with its rule set and clock offset;
    /// returns the other instances seen within `within` seconds.
    pub async fn instance_heartbeat(&self, me: &Instance, within: i64) -> Result<Vec<Instance>> {
        let now = self.database_clock();
        let sql = format!(
            "INSERT INTO instances (id, host, rules_digest, clock_offset, seen_at)
             VALUES ($1, $2, $3, $4, {now})
             ON CONFLICT (id) DO UPDATE SET rules_digest = excluded.rules_digest,
                 clock_offset = excluded.clock_offset, seen_at = excluded.seen_at"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&me.id)
            .bind(&me.host)
            .bind(&me.rules_digest)
            .bind(me.clock_offset)
            .execute(self.pool())
            .await?;
        let sql = format!(
            "SELECT id, host, rules_digest, clock_offset FROM instances
             WHERE id <> $1 AND seen_at >= {now} - $2 ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&me.id)
            .bind(within)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(Instance {
                    id: r.try_get("id")?,
                    host: r.try_get("host")?,
                    rules_digest: r.try_get("rules_digest")?,
                    clock_offset: r.try_get("clock_offset")?,
                })
            })
            .collect()
    }

    /// Removes `id` from the running instances (on a clean stop).
    pub async fn instance_gone(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
