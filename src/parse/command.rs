//! What an agent's message in the agents' chat asks for: a command, a reply
//! to a ticket, or nothing (the agents talking among themselves); and
//! whether the agent's role allows it. Pure.
//!
//! The ticket is the one named by a command's first argument, else the one
//! the replied-to notification names.

use crate::config::Role;
use crate::parse::subject::NumberPattern;
use crate::ticket::{Priority, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Assign the ticket to oneself.
    Take,
    /// Assign to an agent (email, or the part before the `@`) or a team.
    Assign(String),
    Priority(Priority),
    Status(Status),
    Close,
    Reopen,
    /// An internal note.
    Note(String),
    /// A public comment, delivered to the requester.
    Reply(String),
    Tickets(Filter),
    Show,
    Help,
}

/// Which tickets `/tickets` lists (unresolved ones only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    Mine,
    Unassigned,
    Breached,
}

/// A command and the ticket it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub command: Command,
    /// The ticket number, when the command names or answers one.
    pub ticket: Option<String>,
}

/// The usage lines the bot answers `/help` and mistakes with.
pub const USAGE: &str = "\
Reply to a ticket's message to answer the customer, or use:
/take · /assign AGENT|TEAM · /priority low|medium|high|critical
/status new|open|pending|resolved|closed · /close · /reopen
/note TEXT (internal) · /reply NUMBER TEXT · /show NUMBER
/tickets [mine|unassigned|breached]
In a reply to a ticket's message the NUMBER may be left out.";

/// `Ok(None)`: not for the bot (not a command, not a reply to a ticket);
/// `Err`: a one-line answer saying what is wrong and how to write it.
pub fn parse(
    text: &str,
    replied: Option<&str>,
    numbers: &NumberPattern,
) -> Result<Option<Order>, String> {
    let from_reply = replied.and_then(|r| numbers.find(r));
    let Some(rest) = text.strip_prefix('/') else {
        return Ok(match from_reply {
            Some(ticket) if !text.trim().is_empty() => Some(Order {
                command: Command::Reply(text.trim().to_string()),
                ticket: Some(ticket),
            }),
            _ => None,
        });
    };
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let name = name.split('@').next().unwrap_or("");
    let args = args.trim();
    // A leading ticket number names the ticket; else the replied-to one.
    let (named, args) = match args.split_once(char::is_whitespace) {
        Some((first, more)) if is_number(first, numbers) => (numbers.find(first), more.trim()),
        None if is_number(args, numbers) => (numbers.find(args), ""),
        _ => (None, args),
    };
    let ticket = named.or(from_reply);
    let command = match name {
        "help" | "start" => Command::Help,
        "take" => no_args(name, args, Command::Take)?,
        "close" => no_args(name, args, Command::Close)?,
        "reopen" => no_args(name, args, Command::Reopen)?,
        "show" => no_args(name, args, Command::Show)?,
        "assign" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [who] => Command::Assign(who.to_string()),
            _ => return Err("usage: /assign [NUMBER] AGENT|TEAM".into()),
        },
        "priority" => match args.parse() {
            Ok(p) => Command::Priority(p),
            Err(_) => return Err("usage: /priority [NUMBER] low|medium|high|critical".into()),
        },
        "status" => match args.parse() {
            Ok(s) => Command::Status(s),
            Err(_) => {
                return Err("usage: /status [NUMBER] new|open|pending|resolved|closed".into());
            }
        },
        "note" | "reply" if args.is_empty() => {
            return Err(format!("usage: /{name} [NUMBER] TEXT"));
        }
        "note" => Command::Note(args.to_string()),
        "reply" => Command::Reply(args.to_string()),
        "tickets" => Command::Tickets(match args {
            "" => Filter::All,
            "mine" => Filter::Mine,
            "unassigned" => Filter::Unassigned,
            "breached" => Filter::Breached,
            _ => return Err("usage: /tickets [mine|unassigned|breached]".into()),
        }),
        other => return Err(format!("unknown command /{other}\n{USAGE}")),
    };
    let needs_ticket = !matches!(command, Command::Tickets(_) | Command::Help);
    if needs_ticket && ticket.is_none() {
        return Err(format!(
            "/{name}: which ticket? Reply to its message or give its number first, \
             e.g. /{name} {} …",
            numbers.example()
        ));
    }
    Ok(Some(Order {
        command,
        ticket: ticket.filter(|_| needs_ticket),
    }))
}

fn is_number(word: &str, numbers: &NumberPattern) -> bool {
    numbers
        .find(word)
        .is_some_and(|n| n.len() == word.trim_matches(['[', ']']).len())
}

fn no_args(name: &str, args: &str, command: Command) -> Result<Command, String> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(format!("usage: /{name} [NUMBER] (no other arguments)"))
    }
}

impl Command {
    /// Whether the command changes the ticket (viewers may only look).
    pub fn changes(&self) -> bool {
        !matches!(self, Command::Tickets(_) | Command::Show | Command::Help)
    }
}

/// Whether `role` may give `command`; `own` says an `/assign` names the
/// agent themself. Viewers only look; assigning to someone else is for
/// managers and admins.
pub fn permitted(role: Role, command: &Command, own: bool) -> Result<(), String> {
    match (role, command) {
        (Role::Viewer, c) if c.changes() => {
            Err("viewers can look (/tickets, /show) but not change tickets".into())
        }
        (Role::Agent, Command::Assign(_)) if !own => {
            Err("only managers and admins assign tickets to others; /take takes it yourself".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers() -> NumberPattern {
        NumberPattern::new("TKT")
    }

    fn order(text: &str, replied: Option<&str>) -> Result<Option<Order>, String> {
        parse(text, replied, &numbers())
    }

    const NOTICE: Option<&str> = Some("TKT-2026-0007 · Jan: Drukarka nie działa");

    fn about(command: Command, ticket: &str) -> Result<Option<Order>, String> {
        Ok(Some(Order {
            command,
            ticket: Some(ticket.into()),
        }))
    }

    #[test]
    fn a_reply_to_a_notification_is_a_public_reply_and_chatter_is_nothing() {
        assert_eq!(
            order("Proszę zrestartować drukarkę.", NOTICE),
            about(
                Command::Reply("Proszę zrestartować drukarkę.".into()),
                "TKT-2026-0007"
            )
        );
        assert_eq!(order("lunch?", None), Ok(None));
        assert_eq!(order("ok", Some("no number here")), Ok(None));
    }

    #[test]
    fn commands_take_the_ticket_from_the_reply_or_their_first_argument() {
        assert_eq!(
            order("/take", NOTICE),
            about(Command::Take, "TKT-2026-0007")
        );
        assert_eq!(
            order("/priority@ticketd_bot TKT-2026-0009 high", NOTICE),
            about(Command::Priority(Priority::High), "TKT-2026-0009")
        );
        assert_eq!(
            order("/status tkt-2026-0009 pending", None),
            about(Command::Status(Status::Pending), "TKT-2026-0009")
        );
        assert_eq!(
            order("/assign anna@example.com", NOTICE),
            about(Command::Assign("anna@example.com".into()), "TKT-2026-0007")
        );
        assert_eq!(
            order("/note TKT-2026-0009 called, no answer", None),
            about(Command::Note("called, no answer".into()), "TKT-2026-0009")
        );
        assert_eq!(
            order("/reply TKT-2026-0009 Dzień dobry", None),
            about(Command::Reply("Dzień dobry".into()), "TKT-2026-0009")
        );
        assert_eq!(
            order("/show TKT-2026-0009", None),
            about(Command::Show, "TKT-2026-0009")
        );
        assert_eq!(
            order("/tickets breached", NOTICE),
            Ok(Some(Order {
                command: Command::Tickets(Filter::Breached),
                ticket: None
            }))
        );
    }

    #[test]
    fn mistakes_get_their_usage() {
        let err = |text: &str, replied| order(text, replied).unwrap_err();
        assert!(err("/priority urgent", NOTICE).starts_with("usage: /priority"));
        assert!(err("/status", NOTICE).starts_with("usage: /status"));
        assert!(
            err("/take", None).contains("which ticket?"),
            "{}",
            err("/take", None)
        );
        assert!(err("/take now", NOTICE).starts_with("usage: /take"));
        assert!(err("/assign", NOTICE).starts_with("usage: /assign"));
        assert!(err("/assign a b", NOTICE).starts_with("usage: /assign"));
        assert!(err("/note", NOTICE).starts_with("usage: /note"));
        assert!(err("/reply TKT-2026-0001", None).starts_with("usage: /reply"));
        assert!(err("/tickets all-of-them", None).starts_with("usage: /tickets"));
        assert!(err("/frobnicate", NOTICE).starts_with("unknown command /frobnicate"));
        assert!(err("/", NOTICE).starts_with("unknown command /"));
    }

    #[test]
    fn roles_limit_commands() {
        let assign = Command::Assign("ola@example.com".into());
        assert!(permitted(Role::Viewer, &Command::Show, false).is_ok());
        assert!(permitted(Role::Viewer, &Command::Tickets(Filter::Mine), false).is_ok());
        assert!(permitted(Role::Viewer, &Command::Take, false).is_err());
        assert!(permitted(Role::Viewer, &Command::Reply("x".into()), false).is_err());
        assert!(permitted(Role::Agent, &Command::Take, false).is_ok());
        assert!(permitted(Role::Agent, &assign, false).is_err());
        assert!(permitted(Role::Agent, &assign, true).is_ok());
        assert!(permitted(Role::Manager, &assign, false).is_ok());
        assert!(permitted(Role::Admin, &assign, false).is_ok());
    }
}
