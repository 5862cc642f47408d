//! Several ticketd instances on one (PostgreSQL) database. Each source runs
//! only while its instance holds the source's lease; a dead instance's
//! leases expire and another instance takes its sources over, continuing
//! from the checkpoints. Every instance also says every lease period that it
//! runs, with its rule set and clock, so differences are warned about.

use crate::store::Store;
use crate::store::leases::Instance;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Clocks further apart than this from the database's are warned about
/// (ticket times and SLA clocks come from the instances).
pub const MAX_CLOCK_OFFSET: i64 = 2;

#[derive(Clone)]
pub struct Cluster {
    pub store: Store,
    /// This instance: `host:pid:random`.
    pub id: String,
    host: String,
    pub lease_seconds: i64,
}

impl Cluster {
    pub fn new(store: Store, lease_seconds: u32) -> Cluster {
        let host = host_name();
        let nonce: u32 = rand_u32();
        Cluster {
            store,
            id: format!("{host}:{}:{nonce:08x}", std::process::id()),
            host,
            lease_seconds: i64::from(lease_seconds),
        }
    }

    fn renew_every(&self) -> Duration {
        Duration::from_millis((self.lease_seconds as u64 * 1000 / 3).max(500))
    }

    /// Runs `work` while this instance holds the lease `name`: waits until
    /// it is free, renews it, and stops `work` (through its token) when the
    /// lease is lost or cannot be renewed before it would expire. Returns
    /// when `cancel` fires or `work` ends by itself; the lease is released.
    pub async fn hold<F, Fut>(&self, name: &str, cancel: CancellationToken, work: F)
    where
        F: Fn(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        let every = self.renew_every();
        let mut waiting_said = false;
        loop {
            let taken = match self
                .store
                .acquire_lease(name, &self.id, self.lease_seconds)
                .await
            {
                Ok(true) => true,
                Ok(false) if self.take_from_dead(name).await => true,
                Ok(false) => {
                    if !waiting_said {
                        tracing::info!(lease = name, "held by another instance; standing by");
                        waiting_said = true;
                    }
                    false
                }
                Err(e) => {
                    tracing::warn!(lease = name, "cannot take the lease: {e}");
                    false
                }
            };
            if !taken {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(every) => continue,
                }
            }
            tracing::info!(lease = name, instance = %self.id, "lease taken: working this source");
            waiting_said = false;
            let inner = cancel.child_token();
            let work = work(inner.clone());
            tokio::pin!(work);
            let mut renewed = Instant::now();
            let lost = loop {
                tokio::select! {
                    _ = &mut work => break false,
                    _ = tokio::time::sleep(every) => {}
                }
                // A database that does not answer counts as one that refuses:
                // the renewal may not outlast the lease.
                let renewal = tokio::time::timeout(
                    every,
                    self.store.acquire_lease(name, &self.id, self.lease_seconds),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(crate::store::Error::Unavailable(
                        "no answer within a third of the lease".into(),
                    ))
                });
                match renewal {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(
                            lease = name,
                            "lease lost to another instance; stopping this source"
                        );
                        break true;
                    }
                    Err(e) => {
                        // Stop before the lease can expire: another instance may take it then.
                        let left = Duration::from_secs(self.lease_seconds as u64)
                            .saturating_sub(renewed.elapsed());
                        if left <= every {
                            tracing::warn!(
                                lease = name,
                                "cannot renew the lease ({e}); stopping this source until the database answers"
                            );
                            break true;
                        }
                        tracing::warn!(lease = name, "cannot renew the lease: {e}");
                    }
                }
            };
            if !lost {
                if let Err(e) = self.store.release_lease(name, &self.id).await {
                    tracing::warn!(lease = name, "cannot release the lease: {e}");
                }
                return;
            }
            inner.cancel();
            work.await;
            if cancel.is_cancelled() {
                return;
            }
        }
    }

    /// Takes `name` over at once when its holder ran on this host and its
    /// process is gone (a restart after a crash need not wait for expiry).
    async fn take_from_dead(&self, name: &str) -> bool {
        let Ok(Some(holder)) = self.store.lease_holder(name).await else {
            return false;
        };
        if !process_gone(&holder, &self.host) {
            return false;
        }
        let taken = self
            .store
            .take_over_lease(name, &holder, &self.id, self.lease_seconds)
            .await
            .unwrap_or(false);
        if taken {
            tracing::info!(lease = name, dead = %holder, "took the lease of a stopped process on this host");
        }
        taken
    }

    /// Says every lease period that this instance runs, with `digest` of its
    /// rule set, and warns about instances with other rules or clocks.
    pub async fn heartbeat(
        &self,
        digest: impl Fn() -> String,
        clock: crate::clock::Clock,
        cancel: CancellationToken,
    ) {
        let mut said: Vec<String> = Vec::new();
        loop {
            match self.beat(&digest(), &clock).await {
                Ok(warnings) => {
                    for w in warnings.iter().filter(|w| !said.contains(w)) {
                        tracing::warn!("{w}");
                    }
                    said = warnings;
                }
                Err(e) => tracing::warn!("instance heartbeat: {e}"),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(self.lease_seconds as u64)) => {}
            }
        }
        if let Err(e) = self.store.instance_gone(&self.id).await {
            tracing::debug!("cannot remove this instance from the list: {e}");
        }
    }

    async fn beat(
        &self,
        digest: &str,
        clock: &crate::clock::Clock,
    ) -> crate::store::Result<Vec<String>> {
        let database = self.store.database_now().await?;
        let me = Instance {
            id: self.id.clone(),
            host: self.host.clone(),
            rules_digest: digest.to_string(),
            clock_offset: clock.now() - database,
        };
        let others = self
            .store
            .instance_heartbeat(&me, 3 * self.lease_seconds)
            .await?;
        Ok(warnings(&me, &others))
    }
}

/// What an operator must hear about this instance among the others: a rule
/// set that differs (two instances would treat the same mail differently)
/// and a clock away from the database's.
pub fn warnings(me: &Instance, others: &[Instance]) -> Vec<String> {
    let mut out = Vec::new();
    if me.clock_offset.abs() > MAX_CLOCK_OFFSET {
        out.push(format!(
            "this instance's clock is {} s {} the database's: ticket times and SLA clocks will disagree between instances; run NTP",
            me.clock_offset.abs(),
            if me.clock_offset > 0 { "ahead of" } else { "behind" }
        ));
    }
    for other in others.iter().filter(|o| o.rules_digest != me.rules_digest) {
        out.push(format!(
            "instance {} on {} runs a different rule set ({} here, {} there): the same mail may be treated differently; deploy the same rules everywhere",
            other.id,
            other.host,
            short(&me.rules_digest),
            short(&other.rules_digest)
        ));
    }
    out
}

/// Whether `holder` (`host:pid:nonce`) names a process on `host` that no
/// longer runs.
fn process_gone(holder: &str, host: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(_nonce), Some(pid), Some(their_host)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    their_host == host && pid != std::process::id() && !running(pid)
}

/// Whether `pid` runs: it exists and is not a zombie (dead, not yet reaped).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "PID (COMM) STATE …"; COMM may hold spaces and parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z"),
        Err(_) => false,
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, digest: &str, offset: i64) -> Instance {
        Instance {
            id: id.into(),
            host: "h".into(),
            rules_digest: digest.into(),
            clock_offset: offset,
        }
    }

    #[test]
    fn a_holder_is_gone_only_on_this_host_without_its_process() {
        let me = format!("h:{}:ab", std::process::id());
        assert!(!process_gone(&me, "h"), "this process runs");
        assert!(process_gone("h:4294967295:ab", "h"));
        assert!(!process_gone("other:4294967295:ab", "h"), "another host's");
        assert!(!process_gone("garbage", "h"));
        // A zombie (killed, not yet reaped) is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let zombie = child.id();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(process_gone(&format!("h:{zombie}:ab"), "h"));
        child.wait().unwrap();
    }

    #[test]
    fn other_rules_and_a_skewed_clock_are_warned_about() {
        let me = instance("a", "aaaaaaaaaaaaaaaa", 0);
        assert!(warnings(&me, &[instance("b", "aaaaaaaaaaaaaaaa", 5)]).is_empty());
        let w = warnings(&me, &[instance("b", "bbbbbbbbbbbbbbbb", 0)]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains(
                "instance b on h runs a different rule set (aaaaaaaaaaaa here, bbbbbbbbbbbb there)"
            ),
            "{w:?}"
        );
        let skewed = instance("a", "aaaaaaaaaaaaaaaa", -7);
        let w = warnings(&skewed, &[]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("clock is 7 s behind the database's"), "{w:?}");
        assert!(warnings(&instance("a", "x", 2), &[]).is_empty());
    }
}
