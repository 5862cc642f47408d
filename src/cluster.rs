//! Several ticketd instances on one (PostgreSQL) database. Each source runs
//! only while its instance holds the source's lease; a dead instance's
//! leases expire and another instance takes its sources over, continuing
//! from the checkpoints. Leases spread out: a free one goes to the least
//! busy instance that runs its source, and an instance that holds two more
//! than another hands one over. Every instance also says every third of a
//! lease period that it runs, with its sources, rule set and clock, so the
//! others can share out the work and differences are warned about.

use crate::store::Store;
use crate::store::leases::{ClusterView, Instance, Load};
use std::future::Future;
use std::sync::Arc;
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
    /// The leases of the sources this instance runs.
    sources: Vec<String>,
    /// Taken while one of this instance's sources decides whether to take
    /// or hand back its lease, so they decide one after another.
    balance: Arc<tokio::sync::Mutex<()>>,
}

/// How a spell of holding a lease ended.
enum Held {
    /// The source stopped by itself (or on shutdown).
    Done,
    /// The lease was lost or could not be renewed.
    Lost,
    /// Handed to a less busy instance; the guard keeps this instance's other
    /// sources from deciding until the lease is released.
    HandedBack(tokio::sync::OwnedMutexGuard<()>),
}

/// An instance gone this long (seconds) leaves `ticketd instances`.
const FORGET_AFTER: i64 = 24 * 3600;

impl Cluster {
    /// `sources`: the lease names of the sources this instance will run.
    pub fn new(store: Store, lease_seconds: u32, sources: Vec<String>) -> Cluster {
        let host = host_name();
        let nonce: u32 = rand_u32();
        Cluster {
            store,
            id: format!("{host}:{}:{nonce:08x}", std::process::id()),
            host,
            lease_seconds: i64::from(lease_seconds),
            sources,
            balance: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn renew_every(&self) -> Duration {
        Duration::from_millis((self.lease_seconds as u64 * 1000 / 3).max(500))
    }

    /// How often a standby instance looks for a lease to take, and a holder
    /// whether to hand one back: often, so that work moves within a second
    /// (renewals stay at a third of the lease).
    fn look_every(&self) -> Duration {
        self.renew_every().min(Duration::from_secs(1))
    }

    /// Runs `work` while this instance holds the lease `name`: waits until
    /// it is free, renews it, and stops `work` (through its token) when the
    /// lease is lost or cannot be renewed before it would expire. Leases
    /// spread over the instances: a free one goes to the least busy instance
    /// that runs its source, and a busy instance hands one to an idle one.
    /// Returns when `cancel` fires or `work` ends by itself; the lease is
    /// released.
    pub async fn hold<F, Fut>(&self, name: &str, cancel: CancellationToken, work: F)
    where
        F: Fn(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        let every = self.renew_every();
        let look = self.look_every();
        let mut waiting_said = false;
        loop {
            if !self.take(name).await {
                if !std::mem::replace(&mut waiting_said, true) {
                    tracing::info!(lease = name, "held by another instance; standing by");
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(look) => continue,
                }
            }
            tracing::info!(lease = name, instance = %self.id, "lease taken: working this source");
            waiting_said = false;
            let inner = cancel.child_token();
            let work = work(inner.clone());
            tokio::pin!(work);
            let mut renewed = Instant::now();
            let held = loop {
                tokio::select! {
                    _ = &mut work => break Held::Done,
                    _ = tokio::time::sleep(look) => {}
                }
                if renewed.elapsed() + look / 2 < every {
                    // Between renewals: only whether to hand the lease back
                    // (`work` goes on meanwhile, as during a renewal).
                    let check = tokio::time::timeout(look, self.hand_back_due(name));
                    let due = tokio::select! {
                        _ = &mut work => break Held::Done,
                        due = check => due.ok().flatten(),
                    };
                    if let Some(turn) = due {
                        break Held::HandedBack(turn);
                    }
                    continue;
                }
                // `work` goes on meanwhile: on SQLite the renewal waits for
                // the write lock, which `work` may hold in a transaction it
                // must finish.
                let renewal = tokio::select! {
                    _ = &mut work => break Held::Done,
                    renewal = self.renew(name) => renewal,
                };
                if let Some(held) = self.after_renewal(name, renewal, &mut renewed).await {
                    break held;
                }
            };
            match held {
                Held::Done => {
                    self.release(name).await;
                    return;
                }
                Held::Lost => {
                    inner.cancel();
                    work.await;
                }
                Held::HandedBack(turn) => {
                    // The source finishes what it has begun; then the lease goes.
                    inner.cancel();
                    work.await;
                    self.hand_back(name, turn, &cancel).await;
                }
            }
            if cancel.is_cancelled() {
                return;
            }
        }
    }

    /// Renews `name` once. A database that does not answer counts as one
    /// that refuses: the renewal may not outlast the lease.
    async fn renew(&self, name: &str) -> crate::store::Result<bool> {
        let renewal = self.store.acquire_lease(name, &self.id, self.lease_seconds);
        tokio::time::timeout(self.renew_every(), renewal)
            .await
            .unwrap_or_else(|_| {
                Err(crate::store::Error::Unavailable(
                    "no answer within a third of the lease".into(),
                ))
            })
    }

    /// What a renewal's answer means: the lease is kept (`None`), or lost
    /// (refused, or unanswered until too close to its expiry), or due to be
    /// handed back.
    async fn after_renewal(
        &self,
        name: &str,
        renewal: crate::store::Result<bool>,
        renewed: &mut Instant,
    ) -> Option<Held> {
        match renewal {
            Ok(true) => {
                *renewed = Instant::now();
                self.hand_back_due(name).await.map(Held::HandedBack)
            }
            Ok(false) => {
                tracing::warn!(
                    lease = name,
                    "lease lost to another instance; stopping this source"
                );
                Some(Held::Lost)
            }
            Err(e) => {
                // Stop before the lease can expire: another instance may take it then.
                let left = Duration::from_secs(self.lease_seconds as u64)
                    .saturating_sub(renewed.elapsed());
                if left <= self.renew_every() {
                    tracing::warn!(
                        lease = name,
                        "cannot renew the lease ({e}); stopping this source until the database answers"
                    );
                    return Some(Held::Lost);
                }
                tracing::warn!(lease = name, "cannot renew the lease: {e}");
                None
            }
        }
    }

    /// Releases a lease handed back, then waits a renewal period before
    /// trying to take it again (or until `cancel`).
    async fn hand_back(
        &self,
        name: &str,
        turn: tokio::sync::OwnedMutexGuard<()>,
        cancel: &CancellationToken,
    ) {
        self.release(name).await;
        drop(turn);
        tracing::info!(
            lease = name,
            "lease handed back for a less busy instance to take"
        );
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(self.renew_every()) => {}
        }
    }

    /// Tries once to take `name`: at once when no other instance that runs
    /// it is less busy (or the holder is a dead process on this host), else
    /// only once it has been free for a whole lease period.
    async fn take(&self, name: &str) -> bool {
        let _turn = self.balance.lock().await;
        let fair = match self.store.instance_loads(self.lease_seconds).await {
            Ok(loads) => may_take(&self.id, name, &loads),
            Err(_) => true,
        };
        let acquired = match fair {
            true => {
                self.store
                    .acquire_lease(name, &self.id, self.lease_seconds)
                    .await
            }
            false => {
                self.store
                    .acquire_idle_lease(name, &self.id, self.lease_seconds, self.lease_seconds)
                    .await
            }
        };
        match acquired {
            Ok(true) => true,
            Ok(false) => self.take_from_dead(name).await,
            Err(e) => {
                tracing::warn!(lease = name, "cannot take the lease: {e}");
                false
            }
        }
    }

    /// This instance's turn to hand `name` back, when another instance that
    /// runs it is idler by two leases or more.
    async fn hand_back_due(&self, name: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let turn = self.balance.clone().lock_owned().await;
        let loads = self.store.instance_loads(self.lease_seconds).await.ok()?;
        should_hand_back(&self.id, name, &loads).then_some(turn)
    }

    async fn release(&self, name: &str) {
        if let Err(e) = self.store.release_lease(name, &self.id).await {
            tracing::warn!(lease = name, "cannot release the lease: {e}");
        }
    }

    /// Makes the outbox claims of dead processes on this host (this
    /// instance's killed predecessor) due again at once, instead of after
    /// three lease periods: they were in flight when it died, and nobody
    /// else will send them.
    async fn release_claims_of_dead(
        &self,
        clock: &crate::clock::Clock,
    ) -> crate::store::Result<()> {
        for holder in self.store.claim_holders().await? {
            if !process_gone(&holder, &self.host) {
                continue;
            }
            let released = self.store.release_claims_of(&holder, clock.now()).await?;
            if released > 0 {
                tracing::warn!(
                    dead = %holder,
                    "outbox: {released} notifications claimed by a stopped process on this host are due again"
                );
            }
        }
        Ok(())
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

    /// Says every third of a lease period that this instance runs, with its
    /// sources and `digest` of its rule set, warns about instances with
    /// other rules or clocks, releases the outbox claims of instances gone
    /// for three lease periods and forgets instances gone for a day.
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
                _ = tokio::time::sleep(self.renew_every()) => {}
            }
        }
        if let Err(e) = self.store.instance_gone(&self.id).await {
            tracing::debug!("cannot remove this instance from the list: {e}");
        }
    }

    /// Says once that this instance runs (before its sources start, so the
    /// others count it when they share out the leases).
    pub async fn announce(&self, digest: &str, clock: &crate::clock::Clock) {
        if let Err(e) = self.beat(digest, clock).await {
            tracing::warn!("instance heartbeat: {e}");
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
            sources: self.sources.clone(),
        };
        let gone_after = 3 * self.lease_seconds;
        let others = self.store.instance_heartbeat(&me, gone_after).await?;
        let released = self
            .store
            .release_claims_of_gone(clock.now(), gone_after)
            .await?;
        if released > 0 {
            tracing::warn!(
                "outbox: {released} notifications claimed by an instance that stopped beating are due again"
            );
        }
        self.release_claims_of_dead(clock).await?;
        self.store.forget_gone_instances(FORGET_AFTER).await?;
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

/// `ticketd instances`: one line per instance (running, or gone after
/// `gone_after` seconds without a heartbeat) with the leases it holds and
/// the outbox claims it has in flight, then one line per lease.
pub fn render(view: &ClusterView, gone_after: i64) -> String {
    let mut out = String::new();
    let held_by = |id: &str| -> Vec<&str> {
        view.leases
            .iter()
            .filter(|(_, holder, expires)| holder == id && *expires > view.now)
            .map(|(name, _, _)| name.as_str())
            .collect()
    };
    out.push_str(&format!(
        "{:<33} {:<8} {:<10} {:<12} {:<7} {:<6} LEASES\n",
        "INSTANCE", "STATE", "SEEN", "RULES", "CLOCK", "CLAIMS"
    ));
    for (i, seen) in &view.instances {
        let ago = view.now - seen;
        let state = if ago > gone_after { "gone" } else { "running" };
        let claims = view
            .claims
            .iter()
            .find(|(id, _)| id == &i.id)
            .map_or(0, |(_, n)| *n);
        let leases = held_by(&i.id);
        out.push_str(&format!(
            "{:<33} {state:<8} {:<10} {:<12} {:<7} {claims:<6} {}\n",
            i.id,
            format!("{ago} s ago"),
            short(&i.rules_digest),
            format!("{:+} s", i.clock_offset),
            if leases.is_empty() {
                "-".to_string()
            } else {
                leases.join(", ")
            }
        ));
    }
    let unknown = view
        .claims
        .iter()
        .filter(|(id, _)| !view.instances.iter().any(|(i, _)| &i.id == id));
    for (id, n) in unknown {
        out.push_str(&format!(
            "{id:<33} unknown  {:<10} {:<12} {:<7} {n:<6} -\n",
            "-", "-", "-"
        ));
    }
    out.push_str(&format!("\n{:<23} {:<33} EXPIRES\n", "LEASE", "HOLDER"));
    for (name, holder, expires) in &view.leases {
        let left = expires - view.now;
        let (holder, expires) = if left > 0 && !holder.is_empty() {
            (holder.as_str(), format!("in {left} s"))
        } else {
            ("(free)", format!("{} s ago", -left))
        };
        out.push_str(&format!("{name:<23} {holder:<33} {expires}\n"));
    }
    out
}

/// Whether `me` may take the free lease `name` at once: no other live
/// instance that runs its source holds fewer leases.
pub fn may_take(me: &str, name: &str, loads: &[Load]) -> bool {
    let Some(mine) = loads.iter().find(|l| l.id == me) else {
        return true;
    };
    others_running(me, name, loads).all(|l| l.held >= mine.held)
}

/// Whether `me` should hand its lease `name` back: another live instance
/// that runs the source holds two leases fewer or less, so moving it evens
/// the work out (a difference of one would only move it to and fro).
pub fn should_hand_back(me: &str, name: &str, loads: &[Load]) -> bool {
    let Some(mine) = loads.iter().find(|l| l.id == me) else {
        return false;
    };
    others_running(me, name, loads).any(|l| l.held + 2 <= mine.held)
}

/// The live instances other than `me` that run the source of lease `name`.
fn others_running<'a>(
    me: &'a str,
    name: &'a str,
    loads: &'a [Load],
) -> impl Iterator<Item = &'a Load> {
    loads
        .iter()
        .filter(move |l| l.id != me && l.sources.iter().any(|s| s == name))
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
            sources: Vec::new(),
        }
    }

    fn load(id: &str, sources: &[&str], held: i64) -> Load {
        Load {
            id: id.into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            held,
        }
    }

    #[test]
    fn instances_show_their_state_leases_and_claims() {
        let view = ClusterView {
            now: 1000,
            instances: vec![
                (instance("a:1:x", "1111111111111111aaaa", 0), 998),
                (instance("b:2:y", "2222222222222222bbbb", -3), 900),
            ],
            leases: vec![
                ("imap:one".into(), "a:1:x".into(), 1015),
                ("imap:two".into(), "b:2:y".into(), 950),
            ],
            claims: vec![("b:2:y".into(), 20), ("c:3:z".into(), 5)],
        };
        let text = render(&view, 60);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[1],
            [
                "a:1:x",
                "running",
                "2",
                "s",
                "ago",
                "111111111111",
                "+0",
                "s",
                "0",
                "imap:one"
            ]
        );
        assert_eq!(
            rows[2],
            [
                "b:2:y",
                "gone",
                "100",
                "s",
                "ago",
                "222222222222",
                "-3",
                "s",
                "20",
                "-"
            ]
        );
        assert_eq!(rows[3], ["c:3:z", "unknown", "-", "-", "-", "5", "-"]);
        assert_eq!(rows[6], ["imap:one", "a:1:x", "in", "15", "s"]);
        assert_eq!(rows[7], ["imap:two", "(free)", "50", "s", "ago"]);
        assert_eq!(rows.len(), 8, "{text}");
    }

    #[test]
    fn a_free_lease_goes_to_the_least_busy_instance_that_runs_its_source() {
        let loads = [
            load("a", &["imap:one", "imap:two"], 1),
            load("b", &["imap:one", "imap:two"], 0),
            load("c", &["telegram"], 0),
        ];
        assert!(!may_take("a", "imap:two", &loads), "b is idler");
        assert!(may_take("b", "imap:two", &loads));
        assert!(!may_take("a", "telegram", &loads), "c runs the bot, idle");
        assert!(may_take("a", "maildir:x", &loads), "no one else runs it");
        // A tie goes to whoever asks first; an instance not yet counted may take.
        let even = [load("a", &["imap:one"], 0), load("b", &["imap:one"], 0)];
        assert!(may_take("a", "imap:one", &even) && may_take("b", "imap:one", &even));
        assert!(may_take("new", "imap:one", &loads));
    }

    #[test]
    fn a_lease_is_handed_back_only_when_that_evens_the_work_out() {
        let both = ["imap:one", "imap:two", "imap:three"];
        let lopsided = [load("a", &both, 2), load("b", &both, 0)];
        assert!(should_hand_back("a", "imap:one", &lopsided));
        assert!(!should_hand_back("b", "imap:one", &lopsided));
        // 2 against 1 would only swap the imbalance round.
        let near = [load("a", &both, 2), load("b", &both, 1)];
        assert!(!should_hand_back("a", "imap:one", &near));
        // An idle instance without this source gets nothing.
        let other = [load("a", &both, 3), load("c", &["telegram"], 0)];
        assert!(!should_hand_back("a", "imap:one", &other));
        assert!(!should_hand_back("gone", "imap:one", &lopsided));
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
