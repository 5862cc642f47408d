//! Actions a matching rule decides on. Pure data: the pipeline applies them
//! inside the transaction of the change that raised the event.

use crate::ticket::{Channel, Notice, Priority, Status};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SetCategory(String),
    SetPriority(Priority),
    SetStatus(Status),
    SetTeam(String),
    AddTag(String),
    RemoveTag(String),
    Assign(Assignee),
    /// A templated notification (template = a notification event name).
    Notify {
        template: Notice,
        to: Recipient,
    },
    /// An automatic reply to the sender; the loop rules apply.
    AutoReply {
        template: Notice,
    },
    /// An internal note on the ticket.
    Note(String),
    /// Raise the priority one step and notify `to` (managers by default).
    Escalate {
        to: Recipient,
        template: Notice,
    },
    Close,
    /// Close as spam: no acknowledgement, tagged `spam`, journaled.
    Spam,
    /// A JSON POST, signed with the webhook's secret, through the outbox.
    Webhook(String),
    /// Scheduled rules only: one message listing the matching tickets to
    /// each recipient (`team`: each team its own tickets; `assignee`: each
    /// agent theirs; `managers` or an address: all of them).
    Digest {
        template: Notice,
        to: Recipient,
    },
    /// Scheduled rules only: the report of the last `period` seconds,
    /// grouped `by`, to `to`.
    Report {
        template: Notice,
        to: Recipient,
        period: i64,
        by: crate::report::GroupBy,
    },
}

impl Action {
    /// Digest and report summarize a scheduled run; the rest act on one ticket.
    pub fn is_summary(&self) -> bool {
        matches!(self, Action::Digest { .. } | Action::Report { .. })
    }

    /// What the action changes on a ticket of `priority`, in order. The
    /// facts later rules see and the store both apply these; an action that
    /// sends or records something instead changes nothing here.
    pub fn changes(&self, priority: Priority) -> Vec<Change<'_>> {
        match self {
            Action::SetCategory(v) => vec![Change::Category(v)],
            Action::SetPriority(p) => vec![Change::Priority(*p)],
            Action::SetStatus(s) => vec![Change::Status(*s)],
            Action::SetTeam(team) => vec![Change::Team(team)],
            Action::AddTag(tag) => vec![Change::Tag(tag, true)],
            Action::RemoveTag(tag) => vec![Change::Tag(tag, false)],
            Action::Assign(Assignee::Agent(email)) => vec![Change::Assignee(email)],
            // Which member gets it is the store's choice (the strategy).
            Action::Assign(Assignee::Team { team, .. }) => vec![Change::Team(team)],
            Action::Escalate { .. } => vec![Change::Priority(priority.escalated())],
            Action::Close => vec![Change::Status(Status::Closed)],
            Action::Spam => vec![Change::Tag("spam", true), Change::Status(Status::Closed)],
            _ => Vec::new(),
        }
    }
}

/// One change an action makes to a ticket's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    Category(&'a str),
    Priority(Priority),
    Status(Status),
    Team(&'a str),
    /// An agent, by email.
    Assignee(&'a str),
    /// A tag added (true) or removed.
    Tag(&'a str, bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    Agent(String),
    Team { team: String, strategy: Strategy },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    LeastOpen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Requester,
    Assignee,
    Team,
    Managers,
    Address(String),
    /// A chat: a Telegram group's id (`telegram:-1001234567890`) or a
    /// Discord channel's (`discord:1234567890`).
    Chat(Channel, i64),
}

impl Recipient {
    pub fn parse(text: &str) -> Option<Recipient> {
        Some(match text {
            "requester" => Recipient::Requester,
            "assignee" => Recipient::Assignee,
            "team" => Recipient::Team,
            "managers" => Recipient::Managers,
            a if a.contains('@') && !a.contains(char::is_whitespace) => {
                Recipient::Address(a.to_string())
            }
            chat => {
                let (platform, id) = crate::ticket::chat_address(chat)?;
                Recipient::Chat(platform, id)
            }
        })
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Recipient::Requester => "requester",
            Recipient::Assignee => "assignee",
            Recipient::Team => "team",
            Recipient::Managers => "managers",
            Recipient::Address(a) => a,
            Recipient::Chat(platform, chat) => return write!(f, "{platform}:{chat}"),
        })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastOpen => "least_open",
        })
    }
}

/// The form `ticketd rules test` prints and rule-file tests expect,
/// e.g. `set_category billing`, `assign team billing round_robin`.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::SetCategory(v) => write!(f, "set_category {v}"),
            Action::SetPriority(v) => write!(f, "set_priority {v}"),
            Action::SetStatus(v) => write!(f, "set_status {v}"),
            Action::SetTeam(v) => write!(f, "set_team {v}"),
            Action::AddTag(v) => write!(f, "add_tag {v}"),
            Action::RemoveTag(v) => write!(f, "remove_tag {v}"),
            Action::Assign(Assignee::Agent(a)) => write!(f, "assign agent {a}"),
            Action::Assign(Assignee::Team { team, strategy }) => {
                write!(f, "assign team {team} {strategy}")
            }
            Action::Notify { template, to } => write!(f, "notify {template} to {to}"),
            Action::AutoReply { template } => write!(f, "auto_reply {template}"),
            Action::Note(text) => write!(f, "note {text:?}"),
            Action::Escalate { to, template } => write!(f, "escalate {template} to {to}"),
            Action::Close => f.write_str("close"),
            Action::Spam => f.write_str("spam"),
            Action::Webhook(name) => write!(f, "webhook {name}"),
            Action::Digest { template, to } => write!(f, "digest {template} to {to}"),
            Action::Report {
                template,
                to,
                period,
                by,
            } => write!(
                f,
                "report {template} to {to} over {} by {}",
                crate::clock::span(*period),
                by.as_str()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_states_its_changes_once() {
        let escalate = Action::Escalate {
            to: Recipient::Managers,
            template: Notice::TicketEscalated,
        };
        assert_eq!(
            escalate.changes(Priority::High),
            [Change::Priority(Priority::Critical)]
        );
        assert_eq!(
            escalate.changes(Priority::Critical),
            [Change::Priority(Priority::Critical)]
        );
        assert_eq!(
            Action::Spam.changes(Priority::Low),
            [Change::Tag("spam", true), Change::Status(Status::Closed)]
        );
        assert_eq!(
            Action::Close.changes(Priority::Low),
            [Change::Status(Status::Closed)]
        );
        let team = Action::Assign(Assignee::Team {
            team: "billing".into(),
            strategy: Strategy::RoundRobin,
        });
        assert_eq!(team.changes(Priority::Low), [Change::Team("billing")]);
        assert!(Action::Note("x".into()).changes(Priority::Low).is_empty());
    }
}
