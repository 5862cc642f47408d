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
    /// The leases it runs sources for.
    pub sources: Vec<String>,
}

/// A live instance's share of the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub id: String,
    /// The leases it runs sources for.
    pub sources: Vec<String>,
    /// How many leases it holds now.
    pub held: i64,
}

/// What `ticketd instances` shows: every instance that ran, the leases and
/// the outbox claims in flight, as the database sees them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The database's clock, epoch seconds.
    pub now: i64,
    /// Each instance with when it was last seen, latest first.
    pub instances: Vec<(Instance, i64)>,
    /// (name, holder, expires at), by name.
    pub leases: Vec<(String, String, i64)>,
    /// Pending notifications claimed, by instance.
    pub claims: Vec<(String, i64)>,
}

/// The `instances.sources` column: one lease name per line.
fn sources_of(column: &str) -> Vec<String> {
    column.lines().map(str::to_string).collect()
}

impl Store {
    /// The SQL expression for the database's clock, in epoch seconds.
    pub(super) fn database_clock(&self) -> &'static str {
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
        let _turn = self.write_turn().await?;
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
        let _turn = self.write_turn().await?;
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

    /// Takes `name` for `holder` only when it has been free for `idle`
    /// seconds: an instance that holds more than its share leaves a free
    /// lease that long to the others.
    pub async fn acquire_idle_lease(
        &self,
        name: &str,
        holder: &str,
        seconds: i64,
        idle: i64,
    ) -> Result<bool> {
        let _turn = self.write_turn().await?;
        let now = self.database_clock();
        // A lease nobody has held yet is free from now on.
        let sql = format!(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, '', {now})
             ON CONFLICT (name) DO NOTHING"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .execute(self.pool())
            .await?;
        let sql = format!(
            "UPDATE leases SET holder = $1, expires_at = {now} + $2
             WHERE name = $3 AND expires_at <= {now} - $4 RETURNING holder"
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .bind(seconds)
            .bind(name)
            .bind(idle)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    /// Gives `name` up, when `holder` still has it. The row stays, expired
    /// now, so how long the lease has been free is known.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let _turn = self.write_turn().await?;
        let sql = format!(
            "UPDATE leases SET expires_at = {} WHERE name = $1 AND holder = $2",
            self.database_clock()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every instance seen within `within` seconds, with the leases it runs
    /// and how many it holds.
    pub async fn instance_loads(&self, within: i64) -> Result<Vec<Load>> {
        let now = self.database_clock();
        let sql = format!(
            "SELECT i.id, i.sources,
                    (SELECT COUNT(*) FROM leases l WHERE l.holder = i.id AND l.expires_at > {now})
                        AS held
             FROM instances i WHERE i.seen_at >= {now} - $1 ORDER BY i.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(within)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(Load {
                    id: r.try_get("id")?,
                    sources: sources_of(&r.try_get::<String, _>("sources")?),
                    held: r.try_get("held")?,
                })
            })
            .collect()
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
        let _turn = self.write_turn().await?;
        let now = self.database_clock();
        let sql = format!(
            "INSERT INTO instances (id, host, rules_digest, clock_offset, sources, seen_at)
             VALUES ($1, $2, $3, $4, $5, {now})
             ON CONFLICT (id) DO UPDATE SET rules_digest = excluded.rules_digest,
                 clock_offset = excluded.clock_offset, sources = excluded.sources,
                 seen_at = excluded.seen_at"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&me.id)
            .bind(&me.host)
            .bind(&me.rules_digest)
            .bind(me.clock_offset)
            .bind(me.sources.join("\n"))
            .execute(self.pool())
            .await?;
        let sql = format!(
            "SELECT id, host, rules_digest, clock_offset, sources FROM instances
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
                    sources: sources_of(&r.try_get::<String, _>("sources")?),
                })
            })
            .collect()
    }

    /// The instances, leases and outbox claims for `ticketd instances`.
    pub async fn cluster_view(&self) -> Result<ClusterView> {
        let now = self.database_now().await?;
        let instances = sqlx::query(
            "SELECT id, host, rules_digest, clock_offset, sources, seen_at FROM instances
             ORDER BY seen_at DESC, id",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            let instance = Instance {
                id: r.try_get("id")?,
                host: r.try_get("host")?,
                rules_digest: r.try_get("rules_digest")?,
                clock_offset: r.try_get("clock_offset")?,
                sources: sources_of(&r.try_get::<String, _>("sources")?),
            };
            Ok((instance, r.try_get("seen_at")?))
        })
        .collect::<Result<_>>()?;
        let leases = sqlx::query("SELECT name, holder, expires_at FROM leases ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_>>()?;
        let claims = sqlx::query(
            "SELECT claimed_by, COUNT(*) FROM outbox
             WHERE status = 'pending' AND claimed_by IS NOT NULL
             GROUP BY claimed_by ORDER BY claimed_by",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
        Ok(ClusterView {
            now,
            instances,
            leases,
            claims,
        })
    }

    /// Forgets the instances not seen for `after` seconds that hold no
    /// outbox claims (those are released first); returns how many.
    pub async fn forget_gone_instances(&self, after: i64) -> Result<u64> {
        let _turn = self.write_turn().await?;
        let sql = format!(
            "DELETE FROM instances WHERE seen_at < {} - $1 AND id NOT IN
                 (SELECT claimed_by FROM outbox
                  WHERE status = 'pending' AND claimed_by IS NOT NULL)",
            self.database_clock()
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// Removes `id` from the running instances (on a clean stop).
    pub async fn instance_gone(&self, id: &str) -> Result<()> {
        let _turn = self.write_turn().await?;
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
