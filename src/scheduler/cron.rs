//! Scheduled rules: at each cron slot of a `schedule` rule, its conditions
//! select among the open tickets, its ticket actions run on each match, and
//! `digest` / `report` send one summary per recipient. All of it happens in
//! the transaction that claims the slot, so a slot runs once, across restarts
//! and instances.

use super::Scheduler;
use crate::apply::{Rules, facts_of};
use crate::clock::{Timestamp, span};
use crate::report::{GroupBy, Report};
use crate::rules::action::Recipient;
use crate::rules::{Action, Event, Facts, Rule, RuleSet};
use crate::store::changes::{self, TicketState};
use crate::store::{self, Tx, reports, schedule, sla};
use crate::ticket::Notice;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A digest lists at most this many tickets (and says how many more).
const DIGEST_LIMIT: usize = 100;

/// Per scheduled rule, the slot after which the next run is due: the last
/// slot run (here or by another instance), or for a rule never run, when this
/// instance first saw it (no run for a slot before the rule existed). Kept in
/// memory, so finding due slots costs no query; read from the store once per
/// rule.
#[derive(Debug, Default)]
pub struct Seen(Mutex<HashMap<String, Timestamp>>);

impl Seen {
    fn after(&self, rule: &str) -> Option<Timestamp> {
        self.lock().get(rule).copied()
    }

    fn set(&self, rule: &str, after: Timestamp) {
        self.lock().insert(rule.to_string(), after);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Timestamp>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Scheduler {
    /// Runs the due slot of every scheduled rule; returns how many ran here.
    pub async fn run_schedules(&self) -> store::Result<usize> {
        let set = self.rules.current();
        let scheduled: Vec<&Rule> = set.rules.iter().filter(|r| r.schedule.is_some()).collect();
        let now = self.clock.now();
        if scheduled.iter().any(|r| self.seen.after(&r.name).is_none()) {
            let last = self.store.last_slots().await?;
            for rule in scheduled
                .iter()
                .filter(|r| self.seen.after(&r.name).is_none())
            {
                self.seen
                    .set(&rule.name, last.get(&rule.name).copied().unwrap_or(now));
            }
        }
        let mut ran = 0;
        for rule in scheduled {
            let (Some(schedule), Some(after)) = (&rule.schedule, self.seen.after(&rule.name))
            else {
                continue;
            };
            let Some(slot) = schedule.due(after, now, self.time_zone) else {
                continue;
            };
            if self.run_slot(&set, rule, slot, now).await? {
                tracing::info!(rule = %rule.name, slot = %crate::clock::rfc3339(slot), "scheduled rule ran");
                ran += 1;
            }
            // Run here or claimed by another instance: either way done.
            self.seen.set(&rule.name, slot);
        }
        Ok(ran)
    }

    /// The next slot of any scheduled rule after `now`.
    pub fn next_schedule(&self, now: Timestamp) -> Option<Timestamp> {
        self.rules
            .current()
            .rules
            .iter()
            .filter_map(|r| r.schedule.as_ref()?.next_after(now, self.time_zone))
            .min()
    }

    /// One run of `rule` for `slot`; false when another run claimed it first.
    async fn run_slot(
        &self,
        set: &Arc<RuleSet>,
        rule: &Rule,
        slot: Timestamp,
        now: Timestamp,
    ) -> store::Result<bool> {
        let mut tx = self.store.begin().await?;
        if !schedule::claim_slot(&mut tx, &rule.name, slot, now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let settings = self.settings.current();
        let open_hours = settings.calendar.as_ref().is_some_and(|c| c.is_open(now));
        let rules = Rules::new(set.clone(), settings.clone(), &self.notifier, now);
        let matching: Vec<TicketState> = changes::open_ticket_states(&mut tx)
            .await?
            .into_iter()
            .filter(|state| {
                let mut facts = facts_of(state, &Facts::default(), now);
                facts.business_hours = open_hours;
                rule.when.matches(&facts)
            })
            .collect();
        let (summaries, actions): (Vec<&Action>, Vec<&Action>) =
            rule.then.iter().partition(|a| a.is_summary());
        if !actions.is_empty() {
            let actions: Vec<Action> = actions.into_iter().cloned().collect();
            for state in &matching {
                rules
                    .run_actions(&mut tx, (Event::Schedule, &rule.name), &actions, state.id)
                    .await?;
                sla::reschedule(&mut tx, state.id, &settings.policies).await?;
            }
        }
        for action in summaries {
            match action {
                Action::Digest { template, to } => {
                    self.digest(&mut tx, *template, to, &matching, now).await?
                }
                Action::Report {
                    template,
                    to,
                    period,
                    by,
                } => {
                    self.report(&mut tx, *template, to, (slot - period, slot), *by, now)
                        .await?
                }
                _ => {}
            }
        }
        schedule::record_run(&mut tx, &rule.name, slot, matching.len()).await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        Ok(true)
    }

    /// One digest per recipient: a team's members get the team's tickets,
    /// an assignee theirs, managers and an address all of them. Nobody gets
    /// an empty digest.
    async fn digest(
        &self,
        tx: &mut Tx,
        template: Notice,
        to: &Recipient,
        tickets: &[TicketState],
        now: Timestamp,
    ) -> store::Result<()> {
        let mut groups: BTreeMap<Option<String>, Vec<&TicketState>> = BTreeMap::new();
        for t in tickets {
            let key = match to {
                Recipient::Team => match &t.team {
                    Some(team) => Some(team.clone()),
                    None => continue,
                },
                Recipient::Assignee => match &t.assignee {
                    Some(agent) => Some(agent.clone()),
                    None => continue,
                },
                _ => None,
            };
            groups.entry(key).or_default().push(t);
        }
        for (key, list) in groups {
            let (team, addresses) = match (to, key) {
                (Recipient::Team, Some(team)) => {
                    let members = changes::team_members(tx, &team).await?;
                    (
                        Some(team),
                        members.into_iter().map(|(_, email)| email).collect(),
                    )
                }
                (Recipient::Assignee, Some(agent)) => (None, vec![agent]),
                (Recipient::Address(a), _) => (None, vec![a.clone()]),
                _ => (None, changes::managers(tx, None).await?),
            };
            let context = digest_context(team.as_deref(), &list, now);
            for address in addresses {
                self.notifier
                    .summary(tx, template, &address, &context, now)
                    .await?;
            }
        }
        Ok(())
    }

    async fn report(
        &self,
        tx: &mut Tx,
        template: Notice,
        to: &Recipient,
        (from, until): (Timestamp, Timestamp),
        by: GroupBy,
        now: Timestamp,
    ) -> store::Result<()> {
        let rows = reports::report_rows(tx, from, until).await?;
        let report = Report::build(&rows, from, until, by);
        let context = report_context(&report);
        let addresses = match to {
            Recipient::Address(a) => vec![a.clone()],
            _ => changes::managers(tx, None).await?,
        };
        for address in addresses {
            self.notifier
                .summary(tx, template, &address, &context, now)
                .await?;
        }
        Ok(())
    }
}

/// What a digest template sees (docs/templates.md).
fn digest_context(team: Option<&str>, tickets: &[&TicketState], now: Timestamp) -> Value {
    let shown: Vec<Value> = tickets
        .iter()
        .take(DIGEST_LIMIT)
        .map(|t| {
            let due = t
                .first_response_due
                .into_iter()
                .chain(t.resolution_due)
                .min();
            let sla = due.map(|d| {
                if d < now {
                    format!("SLA overdue {}", span(now - d))
                } else {
                    format!("SLA due in {}", span(d - now))
                }
            });
            json!({
                "number": t.number, "subject": t.subject, "status": t.status,
                "priority": t.priority, "assignee": t.assignee, "team": t.team,
                "age": span((now - t.created_at).max(0)), "sla": sla,
            })
        })
        .collect();
    json!({
        "digest": {
            "team": team,
            "count": tickets.len(),
            "more": tickets.len().saturating_sub(DIGEST_LIMIT),
            "tickets": shown,
        }
    })
}

/// What a report template sees (docs/templates.md).
fn report_context(report: &Report) -> Value {
    let compliance = report
        .total
        .sla_compliance_percent
        .map_or("-".to_string(), |p| format!("{p:.1} %"));
    json!({
        "report": {
            "from": report.from,
            "to": report.to,
            "by": report.by,
            "table": report.table(),
            "lines": report.lines,
            "total": {
                "created": report.total.created,
                "resolved": report.total.resolved,
                "sla_compliance": compliance,
            },
        }
    })
}
