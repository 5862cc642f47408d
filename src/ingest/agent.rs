//! The agents' chat. A configured agent's reply to a ticket's notification
//! becomes a public comment, delivered to the requester on their own
//! channel; commands change tickets on the rules' own path (history,
//! follow-up rules, SLA clocks) or answer with lists. Messages from anyone
//! else are journaled, logged and ignored.

use super::{Outcome, OutcomeKind, Pipeline, outcome};
use crate::apply;
use crate::config::Agent;
use crate::parse::chat::AgentMessage;
use crate::parse::command::{self, Command};
use crate::rules::action::Assignee;
use crate::rules::{Action, Event};
use crate::store::changes::{self, TicketState};
use crate::store::tickets::{self as t, AuthorKind, Direction};
use crate::store::{self, Tx, desk};
use crate::ticket::{Channel, Status};

/// Who an `/assign` names.
enum Target {
    Agent(String),
    Team(String),
}

impl Pipeline {
    pub(super) async fn agent_message(
        &self,
        tx: &mut Tx,
        source: &str,
        m: &AgentMessage,
        now: i64,
    ) -> store::Result<Outcome> {
        let journal = (source, m.key.as_str());
        let (agent, thread) = match self.writer(tx, m).await? {
            Ok(found) => found,
            Err(reason) => return self.chat_rejected(tx, journal, &m.text, reason, now).await,
        };
        // In a ticket's thread the thread names the ticket.
        let replied = m.replied.as_deref().or(thread.as_deref());
        let order = match command::parse(&m.text, replied, &self.number_pattern) {
            Ok(Some(order)) => order,
            Ok(None) => {
                let reason = "conversation in the agents' chat".to_string();
                return self.chat_rejected(tx, journal, &m.text, reason, now).await;
            }
            Err(usage) => return self.refuse(tx, (m, journal), usage, now).await,
        };
        let target = match &order.command {
            Command::Assign(who) => match self.target_named(who) {
                Some(target) => Some(target),
                None => {
                    let why = format!("no agent or team is called {who:?}");
                    return self.refuse(tx, (m, journal), why, now).await;
                }
            },
            _ => None,
        };
        let own = matches!(&target, Some(Target::Agent(e)) if e.eq_ignore_ascii_case(&agent.email));
        if let Err(why) = command::permitted(agent.role, &order.command, own) {
            let why = format!("{}: {why}", agent.email);
            return self.refuse(tx, (m, journal), why, now).await;
        }
        let state = match &order.ticket {
            Some(number) => match ticket_named(tx, number).await? {
                Some(state) => Some(state),
                None => {
                    let why = format!("there is no ticket {number}");
                    return self.refuse(tx, (m, journal), why, now).await;
                }
            },
            None => None,
        };
        let ticket_id = state.as_ref().map(|s| s.id);
        let (answer, comment_id) = match &state {
            Some(state) => {
                self.carry_out(tx, &agent, (&order.command, target), (state, m), now)
                    .await?
            }
            None => (self.look(tx, &agent, &order.command, now).await?, None),
        };
        if let Some(answer) = answer {
            self.notifier
                .chat_text(tx, ((m.platform, m.chat), ticket_id), &answer, now)
                .await?;
        }
        let kind = match comment_id {
            Some(_) => OutcomeKind::Comment,
            None => OutcomeKind::Command,
        };
        let what = format!("{} by {}", first_line(&m.text), agent.email);
        let hash = super::chat::hash(&m.text);
        let mut entry = super::chat::journal_entry(journal, &hash, now);
        entry.outcome = kind.as_str();
        entry.reason = Some(&what);
        entry.ticket_id = ticket_id;
        entry.comment_id = comment_id;
        t::journal(tx, &entry).await?;
        Ok(outcome(kind, order.ticket.clone(), None))
    }

    /// The configured agent who wrote `m`, and the ticket whose Discord
    /// thread it is in; or why the message is not an agent's.
    async fn writer(
        &self,
        tx: &mut Tx,
        m: &AgentMessage,
    ) -> store::Result<Result<(Agent, Option<String>), String>> {
        // On Discord the agents write in their channel or a ticket's thread.
        let thread = match m.platform {
            Channel::Discord => desk::ticket_of_thread(tx, m.platform.as_str(), m.chat).await?,
            _ => None,
        };
        if m.platform == Channel::Discord
            && thread.is_none()
            && Some(m.chat) != self.discord_agent_channel
        {
            return Ok(Err(format!(
                "message in Discord channel {}, not the agents'",
                m.chat
            )));
        }
        let id_of = |a: &&Agent| match m.platform {
            Channel::Discord => a.discord,
            _ => a.telegram,
        };
        let settings = self.settings.current();
        let Some(agent) = settings.agents.iter().find(|a| id_of(a) == Some(m.user)) else {
            let reason = format!(
                "{} user {} wrote in the agents' chat but is not a configured agent",
                m.platform, m.user
            );
            tracing::warn!("{reason}");
            return Ok(Err(reason));
        };
        Ok(Ok((agent.clone(), thread)))
    }

    /// Tells the agent what is wrong; journals the message as rejected.
    async fn refuse(
        &self,
        tx: &mut Tx,
        (m, journal): (&AgentMessage, (&str, &str)),
        why: String,
        now: i64,
    ) -> store::Result<Outcome> {
        self.notifier
            .chat_text(tx, ((m.platform, m.chat), None), &why, now)
            .await?;
        self.chat_rejected(tx, journal, &m.text, why, now).await
    }

    /// A command about one ticket. Returns the answer for the chat and the
    /// comment it added, if any.
    async fn carry_out(
        &self,
        tx: &mut Tx,
        agent: &Agent,
        (command, target): (&Command, Option<Target>),
        (state, m): (&TicketState, &AgentMessage),
        now: i64,
    ) -> store::Result<(Option<String>, Option<i64>)> {
        let action = match (command, target) {
            (Command::Show, _) => return Ok((Some(self.show(tx, state).await?), None)),
            (Command::Reply(text), _) => {
                let id = self.agent_comment(tx, agent, state, (text, false), m, now);
                return Ok((None, Some(id.await?)));
            }
            (Command::Note(text), _) => {
                let id = self.agent_comment(tx, agent, state, (text, true), m, now);
                let answer = format!("{}: note added", state.number);
                return Ok((Some(answer), Some(id.await?)));
            }
            (Command::Take, _) => Action::Assign(Assignee::Agent(agent.email.clone())),
            (Command::Assign(_), Some(Target::Agent(email))) => {
                Action::Assign(Assignee::Agent(email))
            }
            (Command::Assign(_), Some(Target::Team(team))) => Action::SetTeam(team),
            (Command::Priority(p), _) => Action::SetPriority(*p),
            (Command::Status(s), _) => Action::SetStatus(*s),
            (Command::Close, _) => Action::Close,
            (Command::Reopen, _) => Action::SetStatus(Status::Open),
            (Command::Tickets(_) | Command::Help | Command::Assign(_), _) => {
                return Ok((None, None));
            }
        };
        let actor = agent.email.to_lowercase();
        self.rules(now)
            .run_command(tx, &actor, &action, state.id)
            .await?;
        store::sla::reschedule(tx, state.id, &self.settings.current().policies).await?;
        let after = changes::ticket_state(tx, state.id).await?;
        let answer = match after {
            Some(after) => changed(state, &after),
            None => format!("{}: gone", state.number),
        };
        Ok((Some(answer), None))
    }

    /// Answers that read and change nothing: `/tickets`, `/help`.
    async fn look(
        &self,
        tx: &mut Tx,
        agent: &Agent,
        command: &Command,
        now: i64,
    ) -> store::Result<Option<String>> {
        Ok(Some(match command {
            Command::Tickets(filter) => {
                let lines = desk::list(tx, *filter, &agent.email, now).await?;
                list_text(&lines)
            }
            _ => command::USAGE.to_string(),
        }))
    }

    /// `/show`: the ticket's fields and its latest comments.
    async fn show(&self, tx: &mut Tx, s: &TicketState) -> store::Result<String> {
        let mut text = format!(
            "{} · {} · {} · {}\nRequester: {} ({})\nAssignee: {} · team: {}",
            s.number,
            s.status,
            s.priority,
            s.subject,
            s.requester_name,
            s.requester,
            s.assignee.as_deref().unwrap_or("nobody"),
            s.team.as_deref().unwrap_or("none"),
        );
        for (author, internal, body) in desk::latest_comments(tx, s.id, 3).await? {
            let note = if internal { " (internal)" } else { "" };
            text.push_str(&format!("\n\n{author}{note}:\n{}", shortened(&body, 600)));
        }
        Ok(text)
    }

    /// An agent's comment from the chat: public ones go to the requester
    /// and the participants on their channels; both run the rules and move
    /// the SLA clocks as an emailed one does.
    async fn agent_comment(
        &self,
        tx: &mut Tx,
        agent: &Agent,
        state: &TicketState,
        (text, internal): (&str, bool),
        m: &AgentMessage,
        now: i64,
    ) -> store::Result<i64> {
        let author = agent.email.to_lowercase();
        let comment_id = t::add_comment(
            tx,
            &t::NewComment {
                ticket_id: state.id,
                author: &author,
                author_kind: AuthorKind::Agent,
                body: text,
                stripped: "",
                internal,
                channel: Channel::Telegram,
                auto_generated: false,
                message_id: Some(&m.key),
                now,
            },
        )
        .await?;
        t::record_message_id(tx, &m.key, state.id, Some(comment_id), Direction::In, now).await?;
        if !internal {
            store::sla::record_first_response(tx, state.id, now).await?;
        }
        let message = apply::Message {
            facts: crate::rules::Facts {
                subject: state.subject.clone(),
                body: text.to_string(),
                from: author.clone(),
                channel: Channel::Telegram.as_str().into(),
                author: Some(AuthorKind::Agent.as_str().into()),
                ..crate::rules::Facts::default()
            },
            message_id: None,
        };
        self.rules(now)
            .run(tx, Event::CommentAdded, state.id, &message)
            .await?;
        store::sla::reschedule(tx, state.id, &self.settings.current().policies).await?;
        if !internal && let Some(after) = changes::ticket_state(tx, state.id).await? {
            let participants = t::participants(tx, state.id).await?;
            let mut recipients = vec![after.requester.clone()];
            recipients.extend(participants);
            recipients.sort();
            recipients.dedup();
            let about = apply::subject_of(&after, &message);
            self.notifier
                .agent_reply(tx, &about, &recipients, now)
                .await?;
        }
        Ok(comment_id)
    }

    /// The agent or team `/assign` names: an agent's email, the part of it
    /// before the `@`, or a team's name (any case).
    fn target_named(&self, who: &str) -> Option<Target> {
        let settings = self.settings.current();
        let agent = settings.agents.iter().find(|a| {
            a.email.eq_ignore_ascii_case(who)
                || a.email
                    .split_once('@')
                    .is_some_and(|(local, _)| local.eq_ignore_ascii_case(who))
        });
        if let Some(agent) = agent {
            return Some(Target::Agent(agent.email.to_lowercase()));
        }
        settings
            .teams
            .iter()
            .find(|t| t.eq_ignore_ascii_case(who))
            .map(|t| Target::Team(t.clone()))
    }
}

/// What a command changed, for the agents' chat.
fn changed(before: &TicketState, after: &TicketState) -> String {
    let word = |w: &'static str| Some(w.to_string());
    let fields = [
        (
            "status",
            word(before.status.as_str()),
            word(after.status.as_str()),
        ),
        (
            "priority",
            word(before.priority.as_str()),
            word(after.priority.as_str()),
        ),
        ("assignee", before.assignee.clone(), after.assignee.clone()),
        ("team", before.team.clone(), after.team.clone()),
    ];
    let changes: Vec<String> = fields
        .iter()
        .filter(|(_, old, new)| old != new)
        .map(|(name, old, new)| {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
            format!("{name} {} → {}", show(old), show(new))
        })
        .collect();
    if changes.is_empty() {
        format!("{}: nothing to change", after.number)
    } else {
        format!("{}: {}", after.number, changes.join(", "))
    }
}

fn list_text(lines: &[desk::Line]) -> String {
    if lines.is_empty() {
        return "No tickets.".into();
    }
    let mut text = lines
        .iter()
        .take(desk::LIST_LIMIT)
        .map(|l| {
            format!(
                "{} · {} · {} · {} · {}",
                l.number,
                l.status,
                l.priority,
                l.assignee.as_deref().unwrap_or("unassigned"),
                shortened(&l.subject, 60)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > desk::LIST_LIMIT {
        text.push_str("\n… and more");
    }
    text
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    let mut end = line.len().min(80);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

fn shortened(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(chars).collect();
    format!("{cut}…")
}

/// The ticket numbered `number`, as the transaction sees it.
async fn ticket_named(tx: &mut Tx, number: &str) -> store::Result<Option<TicketState>> {
    match t::ticket_id_by_number(tx, number).await? {
        Some(id) => changes::ticket_state(tx, id).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TicketState {
        TicketState {
            id: 1,
            number: "TKT-2026-0001".into(),
            subject: "Drukarka".into(),
            status: Status::Open,
            priority: crate::ticket::Priority::Medium,
            category: "other".into(),
            channel: Channel::Email,
            language: None,
            requester: "jan@firma.pl".into(),
            requester_name: "Jan".into(),
            assignee: None,
            assignee_name: None,
            team: None,
            organization: None,
            tags: Vec::new(),
            created_at: 0,
            updated_at: 0,
            first_response_due: None,
            resolution_due: None,
        }
    }

    #[test]
    fn answers_say_what_changed() {
        let before = state();
        let mut after = state();
        assert_eq!(changed(&before, &after), "TKT-2026-0001: nothing to change");
        after.priority = crate::ticket::Priority::High;
        after.assignee = Some("anna@example.com".into());
        assert_eq!(
            changed(&before, &after),
            "TKT-2026-0001: priority medium → high, assignee none → anna@example.com"
        );
    }

    #[test]
    fn lists_are_cut_and_say_so() {
        let line = |n| desk::Line {
            id: n,
            number: format!("TKT-2026-{n:04}"),
            subject: "ż".repeat(100),
            status: "new".into(),
            priority: "low".into(),
            channel: "email".into(),
            assignee: None,
        };
        assert_eq!(list_text(&[]), "No tickets.");
        let lines: Vec<_> = (1..=21).map(line).collect();
        let text = list_text(&lines);
        assert_eq!(text.lines().count(), 21, "{text}");
        assert!(text.ends_with("… and more"));
        assert!(text.starts_with("TKT-2026-0001 · new · low · unassigned · żżż"));
        assert_eq!(first_line("/note długa\nreszta"), "/note długa");
    }
}
