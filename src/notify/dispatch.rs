//! The outbox dispatcher: sends due notifications, retries temporary failures
//! with exponential backoff up to `notify.max_age_hours`, records permanent
//! ones in the ticket history. A notification is marked sent only after the
//! server accepted it; a crash in between resends it with the same Message-ID.

use super::discord::Discord;
use super::email::{Mailer, SendError};
use super::telegram::Telegram;
use super::webhook::Webhooks;
use crate::clock::Clock;
use crate::store::Store;
use crate::store::outbox::Pending;
use futures::StreamExt;
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
    /// Messages in flight at once (the SMTP pool size).
    pub concurrency: usize,
    /// Rung by ingest after a commit that queued something.
    pub wake: Arc<Notify>,
}

impl Dispatcher {
    /// Delivers until `shutdown`; finishes the batch in flight first.
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            let sent = match self.deliver_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("outbox: {e:#}");
                    0
                }
            };
            if sent > 0 {
                continue;
            }
            let wait = match self.store.next_notification_due().await {
                Ok(Some(due)) => Duration::from_secs((due - self.clock.now()).clamp(0, 5) as u64),
                _ => Duration::from_secs(5),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
            }
        }
    }

    /// Sends what is due now; returns how many were handled. Deliveries are
    /// recorded together after the batch: a crash before that resends them
    /// with the same Message-IDs.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let due = self
            .store
            .claim_notifications(self.clock.now(), BATCH, CLAIM_SECONDS, &self.instance)
            .await?;
        self.deliver(due, Instant::now()).await
    }

    /// Sends `claimed`, a batch this instance claimed at `claimed_at`, and
    /// records how each went; a notification whose claim has passed to
    /// another instance since (see [`RECHECK_AFTER`]) is left to it.
    pub async fn deliver(
        &self,
        claimed: Vec<Pending>,
        claimed_at: Instant,
    ) -> anyhow::Result<usize> {
        let count = claimed.len();
        // `None`: left to the instance that holds the claim now.
        let results: Vec<(Pending, Option<Result<(), SendError>>)> = futures::stream::iter(claimed)
            .map(|n| async move {
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
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let now = self.clock.now();
        let mut sent = Vec::new();
        let mut retry = Vec::new();
        for (n, result) in results {
            let Some(result) = result else { continue };
            match result {
                Ok(()) => sent.push(n.id),
                Err(SendError::Permanent(e)) => {
                    tracing::warn!(id = n.id, recipient = %n.recipient, "notification failed permanently: {e}");
                    self.store.mark_failed(&n, &e, now).await?;
                }
                Err(SendError::RetryAfter(wait))
                    if now + wait - n.created_at < self.max_age_seconds =>
                {
                    let e = format!("rate limited: retry after {wait} s");
                    retry.push((n.id, e, now + wait.max(1)));
                }
                Err(SendError::Temporary(e)) if now - n.created_at >= self.max_age_seconds => {
                    let reason = format!("gave up after {} attempts: {e}", n.attempts + 1);
                    self.store.mark_failed(&n, &reason, now).await?;
                }
                Err(e @ SendError::RetryAfter(_)) => {
                    let reason = format!("gave up after {} attempts: {e}", n.attempts + 1);
                    self.store.mark_failed(&n, &reason, now).await?;
                }
                Err(SendError::Temporary(e)) => {
                    let delay = (1i64 << n.attempts.clamp(0, 9)).min(300);
                    tracing::debug!(
                        id = n.id,
                        retry_in = delay,
                        "notification not sent yet: {e}"
                    );
                    retry.push((n.id, e, now + delay));
                }
            }
        }
        self.store.mark_delivered(&sent, &retry, now).await?;
        Ok(count)
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
