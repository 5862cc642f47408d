//! The outbox dispatcher: sends due notifications, retries temporary failures
//! with exponential backoff up to `notify.max_age_hours`, records permanent
//! ones in the ticket history. A notification is marked sent only after the
//! server accepted it; a crash in between resends it with the same Message-ID.

use super::discord::Discord;
use super::email::Mailer;
use super::send::SendError;
use super::telegram::Telegram;
use super::webhook::Webhooks;
use crate::clock::Clock;
use crate::clock::Timestamp;
use crate::store::Store;
use crate::store::outbox::Pending;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 200;
/// How long a claimed batch is this instance's: longer than the slowest
/// batch takes. A batch claimed by an instance that died is sent by another
/// one once the others see it gone (three lease periods without a
/// heartbeat), or after this at the latest.
const CLAIM_SECONDS: i64 = 600;
/// A notification still unsent this long after its batch was claimed has its
/// claim checked again before it goes out: an instance paused (not dead)
/// for longer than three lease periods has had its claims handed to the
/// others meanwhile, and must not send them too.
const RECHECK_AFTER: Duration = Duration::from_secs(5);

pub struct Dispatcher {
    pub store: Store,
    pub mailer: Mailer,
    pub webhooks: Webhooks,
    /// The Telegram bot, when one is configured.
    pub telegram: Option<Telegram>,
    /// The Discord bot, when one is configured.
    pub discord: Option<Discord>,
    pub clock: Clock,
    /// This instance's id: its claims on the outbox are under it.
    pub instance: String,
    pub max_age_seconds: i64,
    /// Sends in flight at once (at least two).
    pub concurrency: usize,
    /// Rung by ingest after a commit that queued something.
    pub wake: Arc<Notify>,
}

/// One claimed notification and how its attempt went; `None`: left to the
/// instance that holds its claim now.
type Attempt = (Pending, Option<Result<(), SendError>>);

/// Deliveries that finished are recorded at the latest this long after the
/// first of them, even while slower sends are still out.
const RECORD_WITHIN: Duration = Duration::from_millis(100);

impl Dispatcher {
    /// Delivers until `shutdown`, then finishes the sends in flight and
    /// records them. Up to `concurrency` sends are out at once, each on its
    /// own: one that is slow (a server's 10 s back-off, a chat's pace) never
    /// holds up the others, and a free slot is filled with the next due
    /// notification at once. Finished deliveries are recorded in groups of
    /// at most `concurrency`, so a crash resends at most those in flight and
    /// one such group.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut out = FuturesUnordered::new();
        let mut finished: Vec<Attempt> = Vec::new();
        let mut first_finished = Instant::now();
        let mut claim_at = Instant::now();
        loop {
            let free = self.width().saturating_sub(out.len());
            if free > 0 && Instant::now() >= claim_at {
                claim_at = self.claim_into(&mut out, free).await;
            }
            let record = !finished.is_empty()
                && (out.is_empty()
                    || finished.len() >= self.width()
                    || first_finished.elapsed() >= RECORD_WITHIN);
            if record {
                self.record_or_keep(&mut finished).await;
                continue;
            }
            let has_slot = out.len() < self.width();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(attempt) = out.next(), if !out.is_empty() => {
                    if finished.is_empty() {
                        first_finished = Instant::now();
                    }
                    finished.push(attempt);
                }
                _ = self.wake.notified() => claim_at = Instant::now(),
                _ = tokio::time::sleep_until(claim_at.into()), if has_slot => {}
                _ = tokio::time::sleep_until((first_finished + RECORD_WITHIN).into()),
                    if !finished.is_empty() => {}
            }
        }
        while let Some(attempt) = out.next().await {
            finished.push(attempt);
        }
        self.record_or_keep(&mut finished).await;
    }

    /// Sends in flight at once: never fewer than two, whatever the config.
    fn width(&self) -> usize {
        self.concurrency.max(2)
    }

    /// Claims up to `free` due notifications and starts their sends; returns
    /// when to claim again (at once when there may be more).
    async fn claim_into<'a>(
        &'a self,
        out: &mut FuturesUnordered<BoxFuture<'a, Attempt>>,
        free: usize,
    ) -> Instant {
        let claimed = self
            .store
            .claim_notifications(self.clock.now(), free as i64, CLAIM_SECONDS, &self.instance)
            .await;
        match claimed {
            Ok(batch) => {
                let more = batch.len() == free;
                let at = Instant::now();
                for n in batch {
                    out.push(Box::pin(self.attempt(n, at)));
                }
                match more {
                    true => Instant::now(),
                    false => Instant::now() + self.idle().await,
                }
            }
            Err(e) => {
                tracing::warn!("outbox: {e:#}");
                Instant::now() + Duration::from_secs(1)
            }
        }
    }

    /// How long nothing is due: until the next due notification, between
    /// 0.2 and 5 s.
    async fn idle(&self) -> Duration {
        let wait = match self.store.next_notification_due().await {
            Ok(Some(due)) => Duration::from_secs((due - self.clock.now()).clamp(0, 5) as u64),
            _ => Duration::from_secs(5),
        };
        wait.max(Duration::from_millis(200))
    }

    /// Records `finished`; when the store cannot take it now, keeps it to
    /// record with the next group (the claims keep the rows from being sent
    /// again meanwhile).
    async fn record_or_keep(&self, finished: &mut Vec<Attempt>) {
        if let Err(e) = self.record(finished).await {
            tracing::warn!("outbox: cannot record deliveries yet: {e:#}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        finished.clear();
    }

    /// Sends what is due now and records how each went; returns how many
    /// were handled.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let due = self
            .store
            .claim_notifications(self.clock.now(), BATCH, CLAIM_SECONDS, &self.instance)
            .await?;
        self.deliver(due, Instant::now()).await
    }

    /// Sends `claimed`, a batch this instance claimed at `claimed_at`, and
    /// records how each went, in groups of at most `concurrency` as they
    /// finish; a notification whose claim has passed to another instance
    /// since (see [`RECHECK_AFTER`]) is left to it.
    pub async fn deliver(
        &self,
        claimed: Vec<Pending>,
        claimed_at: Instant,
    ) -> anyhow::Result<usize> {
        let count = claimed.len();
        let mut attempts = futures::stream::iter(claimed)
            .map(|n| self.attempt(n, claimed_at))
            .buffer_unordered(self.width());
        let mut finished = Vec::with_capacity(self.width());
        while let Some(attempt) = attempts.next().await {
            finished.push(attempt);
            if finished.len() >= self.width() {
                self.record(&finished).await?;
                finished.clear();
            }
        }
        self.record(&finished).await?;
        Ok(count)
    }

    /// One send, unless the claim on it has passed to another instance.
    async fn attempt(&self, n: Pending, claimed_at: Instant) -> Attempt {
        if claimed_at.elapsed() >= RECHECK_AFTER && !self.still_ours(&n).await {
            return (n, None);
        }
        let result = match n.channel.as_str() {
            "webhook" => self.webhooks.send(&n).await,
            "telegram" => match &self.telegram {
                Some(telegram) => telegram.send(&n).await,
                None => Err(SendError::Temporary(
                    "no [telegram] bot is configured".into(),
                )),
            },
            "discord" => match &self.discord {
                Some(discord) => discord.send(&n, (&self.store, self.clock.now())).await,
                None => Err(SendError::Temporary(
                    "no [discord] bot is configured".into(),
                )),
            },
            _ => self.mailer.send(&n).await,
        };
        (n, Some(result))
    }

    /// Records how a group of attempts went, in one transaction (a
    /// permanent failure in one of its own, with its ticket's history).
    async fn record(&self, finished: &[Attempt]) -> anyhow::Result<()> {
        let now = self.clock.now();
        let mut outcome = Recorded::default();
        for (n, result) in finished {
            let Some(result) = result else { continue };
            match plan(n, result, now, self.max_age_seconds) {
                Next::Sent => outcome.sent.push(n.id),
                Next::Retry(e, at) => outcome.retry.push((n.id, e, at)),
                Next::Later(at) => outcome.later.push((n.id, at)),
                Next::Failed(e) => {
                    tracing::warn!(id = n.id, recipient = %n.recipient, "notification failed permanently: {e}");
                    self.store.mark_failed(n, &e, now).await?;
                }
            }
        }
        self.store
            .mark_delivered(&outcome.sent, &outcome.retry, &outcome.later, now)
            .await?;
        Ok(())
    }

    /// Whether this instance still holds the claim on `n` (when the store
    /// cannot tell, it is not sent now: it stays due for whoever holds it).
    async fn still_ours(&self, n: &Pending) -> bool {
        match self.store.claim_holder(n.id).await {
            Ok(holder) if holder.as_deref() == Some(self.instance.as_str()) => true,
            Ok(holder) => {
                tracing::warn!(
                    id = n.id,
                    holder = holder.as_deref().unwrap_or("nobody"),
                    "outbox: a claim of this instance was released while it was held up; left to the holder"
                );
                false
            }
            Err(e) => {
                tracing::warn!(
                    id = n.id,
                    "outbox: cannot check a claim, not sending now: {e}"
                );
                false
            }
        }
    }
}

/// A group's bookkeeping: sent, to retry (with the error and when), and
/// paced (not tried: due again then).
#[derive(Default)]
struct Recorded {
    sent: Vec<i64>,
    retry: Vec<(i64, String, Timestamp)>,
    later: Vec<(i64, Timestamp)>,
}

/// What becomes of a notification after an attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Sent,
    /// Failed for now: the error, and the next attempt's time.
    Retry(String, Timestamp),
    /// Not tried (its route's pace): due again then.
    Later(Timestamp),
    Failed(String),
}

/// Pure: what an attempt's result means at `now` (whole seconds; a wait is
/// rounded up, so it never comes due early).
fn plan(n: &Pending, result: &Result<(), SendError>, now: Timestamp, max_age: i64) -> Next {
    let after = |wait: &Duration| now + (wait.as_millis().div_ceil(1000) as i64).max(1);
    let too_old = |at: Timestamp| at - n.created_at >= max_age;
    match result {
        Ok(()) => Next::Sent,
        Err(SendError::Permanent(e)) => Next::Failed(e.clone()),
        Err(SendError::NotYet(wait)) => Next::Later(after(wait)),
        Err(e @ SendError::RetryAfter(wait)) if !too_old(after(wait)) => {
            Next::Retry(e.to_string(), after(wait))
        }
        Err(e @ SendError::Temporary(_)) if !too_old(now) => {
            let delay = (1i64 << n.attempts.clamp(0, 9)).min(300);
            tracing::debug!(
                id = n.id,
                retry_in = delay,
                "notification not sent yet: {e}"
            );
            Next::Retry(e.to_string(), now + delay)
        }
        Err(e) => Next::Failed(format!("gave up after {} attempts: {e}", n.attempts + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(attempts: i64) -> Pending {
        Pending {
            id: 1,
            ticket_id: Some(1),
            channel: "telegram".into(),
            recipient: "42".into(),
            attempts,
            created_at: 1000,
            ..Pending::default()
        }
    }

    #[test]
    fn waits_round_up_and_pacing_is_no_attempt() {
        let n = pending(0);
        let wait = |ms| Err(SendError::RetryAfter(Duration::from_millis(ms)));
        assert!(matches!(
            plan(&n, &wait(1900), 1000, 3600),
            Next::Retry(_, 1002)
        ));
        assert!(matches!(
            plan(&n, &wait(2000), 1000, 3600),
            Next::Retry(_, 1002)
        ));
        assert!(matches!(
            plan(&n, &wait(10), 1000, 3600),
            Next::Retry(_, 1001)
        ));
        let paced = Err(SendError::NotYet(Duration::from_millis(300)));
        assert_eq!(plan(&n, &paced, 1000, 3600), Next::Later(1001));
        assert_eq!(plan(&n, &Ok(()), 1000, 3600), Next::Sent);
    }

    #[test]
    fn temporary_failures_back_off_until_too_old() {
        let t = Err(SendError::Temporary("HTTP 500".into()));
        assert!(matches!(
            plan(&pending(3), &t, 1000, 3600),
            Next::Retry(_, 1008)
        ));
        assert!(matches!(plan(&pending(3), &t, 4600, 3600), Next::Failed(_)));
        let p = Err(SendError::Permanent("chat not found".into()));
        assert_eq!(
            plan(&pending(0), &p, 1000, 3600),
            Next::Failed("chat not found".into())
        );
    }
}
