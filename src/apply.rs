//! Applying rules: builds the [`Facts`] of a ticket, asks the rule set what to
//! do for an event, and carries the actions out inside the transaction of the
//! change that raised the event. Every change is recorded in the history with
//! the rule's name; changes raise follow-up events (`ticket.assigned`,
//! `status.changed`, `ticket.updated`) that run the rules again, at most
//! `[rules] max_depth` levels deep, so two rules cannot ping-pong forever.

use crate::clock::Timestamp;
use crate::notify::{Notifier, Subject};
use crate::rules::action::{Assignee, Recipient, Strategy};
use crate::rules::{Action, Change, Event, Facts, RuleSet};
use crate::store::changes::{self, By, Field, Owner, TicketState};
use crate::store::outbox::{self, NewNotification};
use crate::store::tickets::{self as t, AuthorKind};
use crate::store::{self, Tx};
use crate::ticket::{Channel, Notice, Status};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const ACTOR: &str = "rules";

/// Where actions come from: the event, the rule (none for an agent's
/// command) and the actor recorded in the history.
#[derive(Clone, Copy)]
struct Origin<'a> {
    event: Event,
    rule: Option<&'a str>,
    actor: &'a str,
}

/// An event raised by the actions of a chain of rules.
struct Raised {
    event: Event,
    chain: Vec<String>,
}

/// What the message the event came with looks like to conditions (empty
/// for events without one).
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub facts: Facts,
    /// The inbound Message-ID, so notifications thread under it.
    pub message_id: Option<String>,
}

/// What the caller must know after the rules ran.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    /// The rule that dropped the ticket as spam (no acknowledgement then).
    pub spam_by: Option<String>,
    /// Names of the rules that matched, in order.
    pub matched: Vec<String>,
    /// The ticket as the rules left it, when known without reading it again.
    pub ticket: Option<TicketState>,
}

pub struct Rules<'a> {
    pub set: Arc<RuleSet>,
    /// The rules' calendar (and the rest of the reloadable settings), as
    /// they were when the transaction began.
    pub settings: Arc<crate::settings::Settings>,
    pub notifier: &'a Notifier,
    pub now: Timestamp,
    /// The addresses of a team's members and managers, read once per
    /// `Rules` (teams do not change inside its transaction).
    people: Mutex<People>,
}

/// Addresses by (managers rather than members, team).
type People = HashMap<(bool, Option<String>), Vec<String>>;

impl<'a> Rules<'a> {
    pub fn new(
        set: Arc<RuleSet>,
        settings: Arc<crate::settings::Settings>,
        notifier: &'a Notifier,
        now: Timestamp,
    ) -> Rules<'a> {
        Rules {
            set,
            settings,
            notifier,
            now,
            people: Mutex::default(),
        }
    }
}

impl Rules<'_> {
    /// Runs `event` for ticket `id` and its follow-ups.
    pub async fn run(
        &self,
        tx: &mut Tx,
        event: Event,
        id: i64,
        message: &Message,
    ) -> store::Result<Applied> {
        let mut applied = Applied::default();
        let start = Raised {
            event,
            chain: Vec::new(),
        };
        self.follow(tx, vec![start], id, message, &mut applied)
            .await?;
        Ok(applied)
    }

    /// Carries out the actions `rule` decided on for ticket `id` (a
    /// scheduled run), then the follow-up events they raise.
    pub async fn run_actions(
        &self,
        tx: &mut Tx,
        (event, rule): (Event, &str),
        actions: &[Action],
        id: i64,
    ) -> store::Result<Applied> {
        let origin = Origin {
            event,
            rule: Some(rule),
            actor: ACTOR,
        };
        self.carry_out(tx, origin, actions, id).await
    }

    /// Carries out a change an agent asked for (a chat command) on ticket
    /// `id`, recorded as `actor`'s, then the follow-up events it raises:
    /// the same path as the rules' own changes.
    pub async fn run_command(
        &self,
        tx: &mut Tx,
        actor: &str,
        action: &Action,
        id: i64,
    ) -> store::Result<Applied> {
        let origin = Origin {
            event: Event::TicketUpdated,
            rule: None,
            actor,
        };
        self.carry_out(tx, origin, std::slice::from_ref(action), id)
            .await
    }

    async fn carry_out(
        &self,
        tx: &mut Tx,
        origin: Origin<'_>,
        actions: &[Action],
        id: i64,
    ) -> store::Result<Applied> {
        let message = Message::default();
        let by = origin.rule.unwrap_or(origin.actor).to_string();
        let mut applied = Applied {
            matched: origin.rule.map(String::from).into_iter().collect(),
            ..Applied::default()
        };
        let raised = self
            .act_all(tx, origin, id, actions, &message, &mut applied)
            .await?
            .into_iter()
            .map(|event| Raised {
                event,
                chain: vec![by.clone()],
            })
            .collect();
        self.follow(tx, raised, id, &message, &mut applied).await?;
        Ok(applied)
    }

    /// Evaluates queued events and the events their actions raise, at most
    /// `max_depth` levels deep; deeper, the chain of rules is logged and the
    /// events dropped (two rules undoing each other stop here).
    async fn follow(
        &self,
        tx: &mut Tx,
        mut queue: Vec<Raised>,
        id: i64,
        message: &Message,
        applied: &mut Applied,
    ) -> store::Result<()> {
        // The message's facts once (its lower-cased text with them); each
        // pass puts the ticket's fields over them.
        let mut facts = message.facts.clone();
        while let Some(Raised { event, chain }) = queue.pop() {
            if chain.len() > self.set.max_depth {
                let rules = chain.join(" → ");
                tracing::warn!(
                    ticket = id,
                    %event,
                    %rules,
                    "rule loop: follow-up events stopped after {} levels",
                    self.set.max_depth
                );
                let why = format!("{event} not evaluated after {rules}");
                t::history(tx, id, ACTOR, "rule_loop", None, Some(&why), None, self.now).await?;
                continue;
            }
            if self.set.rules.iter().all(|r| !r.on.contains(&event)) {
                continue;
            }
            let Some(state) = changes::ticket_state(tx, id).await? else {
                return Ok(());
            };
            refresh(&mut facts, &state, self.now);
            facts.business_hours = self
                .settings
                .calendar
                .as_ref()
                .is_some_and(|c| c.is_open(self.now));
            // One follow-up per event and pass (the next pass reads the
            // ticket afresh), named by the rules that raised it.
            let mut next: Vec<(Event, Vec<String>)> = Vec::new();
            let started = std::time::Instant::now();
            let traces = self.set.decide(event, &facts);
            crate::metrics::rules_evaluated(started.elapsed());
            for trace in traces {
                if !trace.matched {
                    continue;
                }
                applied.matched.push(trace.rule.clone());
                let origin = Origin {
                    event,
                    rule: Some(&trace.rule),
                    actor: ACTOR,
                };
                let raised = self
                    .act_all(tx, origin, id, &trace.actions, message, applied)
                    .await?;
                for raised in raised {
                    match next.iter_mut().find(|(e, _)| *e == raised) {
                        Some((_, by)) if !by.contains(&trace.rule) => by.push(trace.rule.clone()),
                        Some(_) => {}
                        None => next.push((raised, vec![trace.rule.clone()])),
                    }
                }
            }
            applied.ticket = changes::ticket_state(tx, id).await?;
            queue.extend(next.into_iter().map(|(event, by)| Raised {
                event,
                chain: chain.iter().cloned().chain([by.join("+")]).collect(),
            }));
        }
        Ok(())
    }

    /// Carries out one rule's actions in order, each on the ticket as the
    /// ones before left it (the transaction keeps it up to date). Returns
    /// the events the actions raised.
    async fn act_all(
        &self,
        tx: &mut Tx,
        origin: Origin<'_>,
        id: i64,
        actions: &[Action],
        message: &Message,
        applied: &mut Applied,
    ) -> store::Result<Vec<Event>> {
        let mut raised = Vec::new();
        for action in actions {
            let Some(current) = changes::ticket_state(tx, id).await? else {
                break;
            };
            let events = self
                .act(tx, origin, &current, action, message, applied)
                .await?;
            raised.extend(events);
        }
        Ok(raised)
    }

    /// Carries out one action; returns the events it raised.
    async fn act(
        &self,
        tx: &mut Tx,
        origin: Origin<'_>,
        state: &TicketState,
        action: &Action,
        message: &Message,
        applied: &mut Applied,
    ) -> store::Result<Vec<Event>> {
        let Origin { event, rule, actor } = origin;
        let by = By {
            actor,
            rule,
            now: self.now,
        };
        // Who did it, for the spam mark and the webhook payload.
        let who = rule.unwrap_or(actor);
        let id = state.id;
        Ok(match action {
            Action::SetCategory(_)
            | Action::SetPriority(_)
            | Action::SetTeam(_)
            | Action::AddTag(_)
            | Action::RemoveTag(_)
            | Action::SetStatus(_)
            | Action::Close => {
                let mut events = Vec::new();
                for change in action.changes(state.priority) {
                    events.extend(self.change(tx, state, change, by, message).await?);
                }
                events
            }
            // No status notice to a spammer: the status is set, not announced.
            Action::Spam => {
                applied.spam_by = Some(who.to_string());
                for change in action.changes(state.priority) {
                    match change {
                        Change::Status(s) => {
                            t::set_status(tx, id, state.status, s, actor, rule, self.now).await?
                        }
                        other => {
                            self.change(tx, state, other, by, message).await?;
                        }
                    }
                }
                Vec::new()
            }
            Action::Assign(who) => self.assign(tx, state, who, by, message).await?,
            Action::Note(text) => {
                self.note(tx, id, text, rule).await?;
                Vec::new()
            }
            Action::Notify { template, to } => {
                let subject = subject_of(state, message);
                self.notify_each(tx, state, &subject, *template, std::slice::from_ref(to))
                    .await?;
                Vec::new()
            }
            Action::AutoReply { template } => {
                self.auto_reply(tx, state, *template, message).await?;
                Vec::new()
            }
            Action::Escalate { to, template } => {
                for change in action.changes(state.priority) {
                    self.change(tx, state, change, by, message).await?;
                }
                self.escalated(tx, state.id, (to, *template), message)
                    .await?
            }
            // Summaries of a scheduled run: the scheduler sends them once per run.
            Action::Digest { .. } | Action::Report { .. } => Vec::new(),
            Action::Webhook(name) => {
                let payload = webhook_payload(state, event, who, message, self.now);
                webhook(tx, id, (event, name, who), &payload, self.now).await?;
                Vec::new()
            }
        })
    }

    /// An internal note by the system, in the history under its rule.
    async fn note(
        &self,
        tx: &mut Tx,
        id: i64,
        text: &str,
        rule: Option<&str>,
    ) -> store::Result<()> {
        t::add_comment(
            tx,
            &t::NewComment {
                ticket_id: id,
                author: ACTOR,
                author_kind: AuthorKind::System,
                body: text,
                stripped: "",
                internal: true,
                channel: Channel::Email,
                auto_generated: false,
                message_id: None,
                now: self.now,
            },
        )
        .await?;
        t::history(tx, id, ACTOR, "note", None, Some(text), rule, self.now).await
    }

    /// `template` to the message's sender (else the requester), under the
    /// loop rules of automatic mail.
    async fn auto_reply(
        &self,
        tx: &mut Tx,
        state: &TicketState,
        template: Notice,
        message: &Message,
    ) -> store::Result<()> {
        let subject = subject_of(state, message);
        let to = if message.facts.from.is_empty() {
            state.requester.clone()
        } else {
            message.facts.from.clone()
        };
        let auto = message.facts.auto_generated.then_some("auto-generated");
        self.notifier
            .automatic(tx, &subject, template, &to, auto, self.now)
            .await
    }

    /// Makes one change in the store; returns the events it raised.
    async fn change(
        &self,
        tx: &mut Tx,
        state: &TicketState,
        change: Change<'_>,
        by: By<'_>,
        message: &Message,
    ) -> store::Result<Vec<Event>> {
        let id = state.id;
        let changed = match change {
            Change::Status(s) => return self.set_status(tx, state, s, by, message).await,
            Change::Assignee(email) => {
                let agent = Assignee::Agent(email.to_string());
                return self.assign(tx, state, &agent, by, message).await;
            }
            Change::Category(c) => changes::set_field(tx, state, Field::Category(c), by).await?,
            Change::Priority(p) => changes::set_field(tx, state, Field::Priority(p), by).await?,
            Change::Team(team) => {
                let old = state.team.as_deref();
                changes::set_owner(tx, id, Owner::Team, old, team, by).await?
            }
            Change::Tag(tag, on) => changes::set_tag(tx, id, tag, on, by).await?,
        };
        Ok(match changed {
            true => vec![Event::TicketUpdated],
            false => Vec::new(),
        })
    }

    /// After an escalation: `template` to `to`.
    async fn escalated(
        &self,
        tx: &mut Tx,
        id: i64,
        (to, template): (&Recipient, Notice),
        message: &Message,
    ) -> store::Result<Vec<Event>> {
        let Some(state) = changes::ticket_state(tx, id).await? else {
            return Ok(Vec::new());
        };
        let subject = subject_of(&state, message);
        self.notify_each(tx, &state, &subject, template, std::slice::from_ref(to))
            .await?;
        Ok(vec![Event::TicketUpdated])
    }

    async fn set_status(
        &self,
        tx: &mut Tx,
        state: &TicketState,
        new: Status,
        by: By<'_>,
        message: &Message,
    ) -> store::Result<Vec<Event>> {
        let old = state.status;
        if old == new {
            return Ok(Vec::new());
        }
        t::set_status(tx, state.id, old, new, by.actor, by.rule, by.now).await?;
        let event = if new == Status::Resolved {
            Notice::TicketResolved
        } else {
            Notice::StatusChanged
        };
        if let Some(state) = changes::ticket_state(tx, state.id).await? {
            let subject = subject_of(&state, message);
            let auto = message.facts.auto_generated.then_some("auto-generated");
            self.notifier
                .automatic(tx, &subject, event, &state.requester, auto, by.now)
                .await?;
        }
        Ok(vec![Event::StatusChanged])
    }

    async fn assign(
        &self,
        tx: &mut Tx,
        state: &TicketState,
        who: &Assignee,
        by: By<'_>,
        message: &Message,
    ) -> store::Result<Vec<Event>> {
        let agent = match who {
            Assignee::Agent(a) => Some(a.clone()),
            Assignee::Team { team, strategy } => {
                changes::set_owner(tx, state.id, Owner::Team, state.team.as_deref(), team, by)
                    .await?;
                match strategy {
                    Strategy::RoundRobin => changes::round_robin(tx, team).await?,
                    Strategy::LeastOpen => changes::least_open(tx, team).await?,
                }
            }
        };
        let Some(agent) = agent else {
            return Ok(vec![Event::TicketUpdated]);
        };
        if !changes::set_owner(
            tx,
            state.id,
            Owner::Assignee,
            state.assignee.as_deref(),
            &agent,
            by,
        )
        .await?
        {
            return Ok(Vec::new());
        }
        if let Some(state) = changes::ticket_state(tx, state.id).await? {
            let subject = subject_of(&state, message);
            self.notifier
                .automatic(tx, &subject, Notice::TicketAssigned, &agent, None, by.now)
                .await?;
        }
        Ok(vec![Event::TicketAssigned])
    }

    /// Sends `template` about the ticket, once to each address the
    /// recipients stand for (automatic mail: the loop rules apply).
    pub async fn notify_each(
        &self,
        tx: &mut Tx,
        state: &TicketState,
        subject: &Subject<'_>,
        template: Notice,
        to: &[Recipient],
    ) -> store::Result<()> {
        let mut addresses = Vec::new();
        for r in to {
            match r {
                Recipient::Chat(platform, chat) => {
                    self.notifier
                        .chat(tx, subject, template, (*platform, *chat), self.now)
                        .await?
                }
                email => addresses.extend(self.recipients(tx, state, email).await?),
            }
        }
        addresses.sort();
        addresses.dedup();
        for address in &addresses {
            self.notifier
                .automatic(tx, subject, template, address, None, self.now)
                .await?;
        }
        Ok(())
    }

    /// The addresses a recipient stands for on this ticket.
    async fn recipients(
        &self,
        tx: &mut Tx,
        state: &TicketState,
        to: &Recipient,
    ) -> store::Result<Vec<String>> {
        let managers = match to {
            Recipient::Requester => return Ok(vec![state.requester.clone()]),
            Recipient::Assignee => return Ok(state.assignee.iter().cloned().collect()),
            Recipient::Address(a) => return Ok(vec![a.clone()]),
            Recipient::Chat(..) => return Ok(Vec::new()),
            Recipient::Team if state.team.is_none() => return Ok(Vec::new()),
            Recipient::Team => false,
            Recipient::Managers => true,
        };
        let key = (managers, state.team.clone());
        if let Some(known) = self.people().get(&key) {
            return Ok(known.clone());
        }
        let found = match (managers, &state.team) {
            (true, team) => changes::managers(tx, team.as_deref()).await?,
            (false, Some(team)) => changes::team_members(tx, team)
                .await?
                .into_iter()
                .map(|(_, email)| email)
                .collect(),
            (false, None) => Vec::new(),
        };
        self.people().insert(key, found.clone());
        Ok(found)
    }

    fn people(&self) -> std::sync::MutexGuard<'_, People> {
        self.people.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The JSON a webhook receives.
fn webhook_payload(
    state: &TicketState,
    event: Event,
    rule: &str,
    message: &Message,
    now: Timestamp,
) -> serde_json::Value {
    serde_json::json!({
        "event": event.as_str(),
        "rule": rule,
        "at": crate::clock::rfc3339(now),
        "ticket": {
            "number": state.number,
            "subject": state.subject,
            "status": state.status,
            "priority": state.priority,
            "category": state.category,
            "channel": state.channel,
            "requester": state.requester,
            "assignee": state.assignee,
            "team": state.team,
            "organization": state.organization,
            "tags": state.tags,
            "created_at": crate::clock::rfc3339(state.created_at),
        },
        "message": {
            "from": message.facts.from,
            "subject": message.facts.subject,
            "message_id": message.message_id,
        },
    })
}

/// The ticket's state under the message's own facts.
pub fn facts_of(state: &TicketState, message: &Facts, now: Timestamp) -> Facts {
    let mut f = message.clone();
    refresh(&mut f, state, now);
    f
}

/// Puts the ticket's fields over a message's facts.
fn refresh(f: &mut Facts, state: &TicketState, now: Timestamp) {
    if f.subject.is_empty() {
        f.subject = state.subject.clone();
    }
    if f.from.is_empty() {
        f.from = state.requester.clone();
    }
    f.channel = state.channel.as_str().to_string();
    if f.language.is_none() {
        f.language = state.language.clone();
    }
    f.category = state.category.clone();
    f.priority = state.priority.as_str().to_string();
    f.status = state.status.as_str().to_string();
    f.tags = state.tags.clone();
    f.assignee = state.assignee.clone();
    f.team = state.team.clone();
    f.organization = state.organization.clone();
    f.age_seconds = (now - state.created_at).max(0);
    f.idle_seconds = (now - state.updated_at).max(0);
}

/// What a notification about the ticket says.
pub fn subject_of<'a>(state: &'a TicketState, message: &'a Message) -> Subject<'a> {
    Subject {
        ticket_id: state.id,
        number: &state.number,
        subject: &state.subject,
        status: state.status.as_str(),
        priority: state.priority.as_str(),
        category: &state.category,
        requester_email: &state.requester,
        requester_name: &state.requester_name,
        assignee: state
            .assignee
            .as_deref()
            .map(|e| (state.assignee_name.as_deref().unwrap_or(""), e)),
        team: state.team.as_deref(),
        language: state.language.as_deref(),
        in_reply_to: message.message_id.as_deref(),
        comment_author: if message.facts.from.is_empty() {
            &state.requester
        } else {
            &message.facts.from
        },
        comment_body: &message.facts.body,
        sla: None,
    }
}

/// Queues a webhook call named `name` with `payload`.
async fn webhook(
    tx: &mut Tx,
    id: i64,
    (event, name, who): (Event, &str, &str),
    payload: &serde_json::Value,
    now: i64,
) -> store::Result<()> {
    let n = NewNotification {
        ticket_id: Some(id),
        event: event.as_str().into(),
        channel: "webhook".into(),
        recipient: name.to_string(),
        automatic: false,
        message_id: None,
        in_reply_to: None,
        references: Vec::new(),
        reply_to: None,
        subject: who.to_string(),
        body: payload.to_string(),
        html: None,
        suppressed: None,
    };
    outbox::enqueue(tx, &n, now).await?;
    Ok(())
}
