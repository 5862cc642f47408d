//! Domain vocabulary shared by every stage: statuses, priorities, ticket numbers.

use std::fmt;
use std::str::FromStr;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The names, in declaration order (priorities: lowest first).
            pub const NAMES: &'static [&'static str] = &[$($text),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected one of: {})",
                        stringify!($name).to_ascii_lowercase(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(
    /// Where a ticket stands. `Pending` means waiting for the customer.
    Status { New = "new", Open = "open", Pending = "pending", Resolved = "resolved", Closed = "closed" }
);

text_enum!(
    Priority { Low = "low", Medium = "medium", High = "high", Critical = "critical" }
);

text_enum!(
    /// The channel a message came in on or goes out by.
    Channel { Email = "email", Telegram = "telegram", Discord = "discord" }
);

text_enum!(
    /// A notification: each has its templates (`templates/LANG/NAME.{email,chat}.hbs`).
    Notice {
        TicketCreated = "ticket_created",
        AgentReply = "agent_reply",
        TicketAssigned = "ticket_assigned",
        RequesterComment = "requester_comment",
        StatusChanged = "status_changed",
        TicketResolved = "ticket_resolved",
        SlaWarning = "sla_warning",
        SlaBreached = "sla_breached",
        MessageTooLarge = "message_too_large",
        AutoClose = "auto_close",
        TicketEscalated = "ticket_escalated",
        PendingReminder = "pending_reminder",
        DailyDigest = "daily_digest",
        SlaReport = "sla_report",
        ChatAnswer = "chat_answer",
        NewTicket = "new_ticket",
    }
);

/// A chat address (`telegram:ID`, `discord:ID`): the platform and the chat
/// (or user) id.
pub fn chat_address(text: &str) -> Option<(Channel, i64)> {
    let (platform, id) = text.split_once(':')?;
    let platform = match platform {
        "telegram" => Channel::Telegram,
        "discord" => Channel::Discord,
        _ => return None,
    };
    Some((platform, id.parse().ok()?))
}

impl Priority {
    /// The priority one step up (critical stays critical).
    pub fn escalated(self) -> Priority {
        let all = Priority::ALL;
        let i = all.iter().position(|p| *p == self).unwrap_or(0);
        all[(i + 1).min(all.len() - 1)]
    }
}

/// Formats a ticket number: `TKT-2026-0042`.
pub fn format_number(prefix: &str, year: i32, seq: i64) -> String {
    format!("{prefix}-{year}-{seq:04}")
}

/// Who wrote a comment, relative to the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorKind {
    Requester,
    Participant,
    Agent,
    Stranger,
    System,
}

impl AuthorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorKind::Requester => "requester",
            AuthorKind::Participant => "participant",
            AuthorKind::Agent => "agent",
            AuthorKind::Stranger => "stranger",
            AuthorKind::System => "system",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_climbs_one_step_and_stops_at_critical() {
        assert_eq!(Priority::Low.escalated(), Priority::Medium);
        assert_eq!(Priority::High.escalated(), Priority::Critical);
        assert_eq!(Priority::Critical.escalated(), Priority::Critical);
    }

    #[test]
    fn numbers_are_zero_padded_and_grow() {
        assert_eq!(format_number("TKT", 2026, 42), "TKT-2026-0042");
        assert_eq!(format_number("HD", 2026, 12345), "HD-2026-12345");
    }

    #[test]
    fn statuses_round_trip_and_reject_unknown() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), *s);
        }
        assert!("wip".parse::<Status>().unwrap_err().contains("new, open"));
    }
}
