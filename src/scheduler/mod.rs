//! The scheduler: sleeps until the next due timer or cron slot (or until
//! ingest says timers moved), then fires each due threshold exactly once:
//! `sla.warning` / `sla.breached` into the rules, and the `sla_warning` /
//! `sla_breached` notices to the assignee, the team and the managers, all in
//! the transaction that marks the timer fired. Scheduled rules: `cron.rs`.

pub mod cron;

use crate::apply::{self, Rules, subject_of};
use crate::clock::Clock;
use crate::notify::{Notifier, SlaNotice};
use crate::rules::action::Recipient;
use crate::rules::{Event, Live};
use crate::store::{self, Store, changes, sla};
use crate::ticket::Notice;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Timers fired per transaction.
const BATCH: i64 = 1000;
/// Look at the timers at least this often (a cheap MIN query, not a scan).
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub struct Scheduler {
    pub store: Store,
    pub clock: Clock,
    pub rules: Arc<Live>,
    /// SLA policies and the rules' calendar; SIGHUP swaps them.
    pub settings: Arc<crate::live::Live<crate::settings::Settings>>,
    pub notifier: Notifier,
    /// Rung by ingest after commits that may have moved a timer.
    pub wake: Arc<Notify>,
    /// Rung after firing queued notifications.
    pub outbox_wake: Arc<Notify>,
    /// The time zone of scheduled rules' cron patterns.
    pub time_zone: chrono_tz::Tz,
    pub seen: cron::Seen,
}

impl Scheduler {
    /// The scheduler of the application: its store, clock, rules, settings,
    /// notifier (and so templates) and wake-ups.
    pub fn of(context: &crate::context::Context, config: &crate::config::Config) -> Scheduler {
        Scheduler {
            store: context.store.clone(),
            clock: context.clock.clone(),
            rules: context.rules.clone(),
            settings: context.settings.clone(),
            notifier: context.notifier.clone(),
            wake: context.sla_wake.clone(),
            outbox_wake: context.outbox_wake.clone(),
            time_zone: config.rules_time_zone(),
            seen: Default::default(),
        }
    }

    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            let fired = match self.fire_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("SLA scheduler: {e}");
                    0
                }
            };
            if fired > 0 {
                tracing::info!(fired, "SLA thresholds fired");
                continue;
            }
            if let Err(e) = self.run_schedules().await {
                tracing::warn!("scheduled rules: {e}");
            }
            let now = self.clock.now();
            let timer = self.store.next_timer_due().await.ok().flatten();
            let sleep = match timer.into_iter().chain(self.next_schedule(now)).min() {
                Some(due) => Duration::from_secs((due - now).max(0) as u64),
                None => MAX_SLEEP,
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep.min(MAX_SLEEP)) => {}
            }
        }
    }

    /// Fires every timer due now (at most [`BATCH`] per call); returns how
    /// many fired.
    pub async fn fire_due(&self) -> store::Result<usize> {
        let now = self.clock.now();
        let mut due = self.store.due_timers(now, BATCH).await?;
        // One timer per ticket and batch: the batch ends before a ticket's
        // second timer, which waits until its clocks were recomputed. Events
        // still fire in due order.
        let mut tickets = std::collections::HashSet::new();
        let distinct = due
            .iter()
            .take_while(|t| tickets.insert(t.ticket_id))
            .count();
        due.truncate(distinct);
        if due.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = due.iter().map(|t| t.ticket_id).collect();
        let settings = self.settings.current();
        let rules = Rules::new(self.rules.current(), settings.clone(), &self.notifier, now);
        let mut tx = self.store.begin().await?;
        // Notices and history rows go in with a few multi-row inserts.
        tx.defer_appends();
        // The tickets may have changed since (status, priority, team by any
        // path): recompute first; a timer that moved later does not fire.
        sla::reschedule_all(&mut tx, &ids, &settings.policies).await?;
        let fired = sla::fire(&mut tx, &due, now).await?;
        for timer in &fired {
            if timer.kind.is_sla() {
                self.sla_threshold(&mut tx, &rules, timer).await?;
            } else {
                self.life_cycle(&mut tx, &rules, timer).await?;
            }
        }
        // Rules may have escalated the priority: move the timers left.
        let ids: Vec<i64> = fired.iter().map(|t| t.ticket_id).collect();
        sla::reschedule_all(&mut tx, &ids, &settings.policies).await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        Ok(fired.len())
    }
}

impl Scheduler {
    /// `sla.warning` / `sla.breached` into the rules; the notice to the
    /// assignee, the team and the managers.
    async fn sla_threshold(
        &self,
        tx: &mut store::Tx,
        rules: &Rules<'_>,
        timer: &sla::DueTimer,
    ) -> store::Result<()> {
        let message = apply::Message::default();
        let breached = timer.kind.is_breach();
        let event = if breached {
            Event::SlaBreached
        } else {
            Event::SlaWarning
        };
        let applied = rules.run(tx, event, timer.ticket_id, &message).await?;
        let state = match applied.ticket {
            Some(state) => state,
            None => match changes::ticket_state(tx, timer.ticket_id).await? {
                Some(state) => state,
                None => return Ok(()),
            },
        };
        let mut about = subject_of(&state, &message);
        about.sla = Some(SlaNotice {
            target: timer.kind.target(),
            due: if breached {
                timer.due_at
            } else {
                due_of(&state, timer.kind.target()).unwrap_or(timer.due_at)
            },
            breached,
        });
        let template = if breached {
            Notice::SlaBreached
        } else {
            Notice::SlaWarning
        };
        let to = [Recipient::Assignee, Recipient::Team, Recipient::Managers];
        rules.notify_each(tx, &state, &about, template, &to).await?;
        Ok(())
    }

    /// Idle: `ticket.idle` into the rules. Pending: remind the requester,
    /// later resolve. Resolved: close. Each with its notice to the requester.
    async fn life_cycle(
        &self,
        tx: &mut store::Tx,
        rules: &Rules<'_>,
        timer: &sla::DueTimer,
    ) -> store::Result<()> {
        use crate::sla::Kind;
        use crate::ticket::Status;
        let message = apply::Message::default();
        let id = timer.ticket_id;
        let (new_status, notice) = match timer.kind {
            Kind::Idle => {
                rules.run(tx, Event::TicketIdle, id, &message).await?;
                return Ok(());
            }
            Kind::PendingReminder => (None, Notice::PendingReminder),
            Kind::PendingResolve => (Some(Status::Resolved), Notice::TicketResolved),
            _ => (Some(Status::Closed), Notice::AutoClose),
        };
        let Some(state) = changes::ticket_state(tx, id).await? else {
            return Ok(());
        };
        if let Some(new) = new_status {
            let old = state.status;
            crate::store::tickets::set_status(tx, id, old, new, ACTOR, None, rules.now).await?;
        }
        if let Some(state) = changes::ticket_state(tx, id).await? {
            let about = subject_of(&state, &message);
            self.notifier
                .automatic(tx, &about, notice, &state.requester, None, rules.now)
                .await?;
        }
        if new_status.is_some() {
            rules.run(tx, Event::StatusChanged, id, &message).await?;
        }
        Ok(())
    }
}

const ACTOR: &str = "scheduler";

/// The breach time of `target` as stored on the ticket.
fn due_of(state: &changes::TicketState, target: &str) -> Option<i64> {
    match target {
        "first_response" => state.first_response_due,
        _ => state.resolution_due,
    }
}
