//! Threading: decides whether a parsed mail opens a ticket, joins one as a
//! comment, or is turned away. Pure: the store looks up the candidates, this
//! module only decides (PRODUCT.md §5).

pub mod token;

use crate::clock::Timestamp;
use crate::parse::{ParsedMail, subject};
use crate::ticket::Status;
use serde::Deserialize;

/// What to do with a reply from someone who is not part of the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StrangerPolicy {
    /// Open a new ticket linked to the one they replied to (default).
    #[default]
    NewTicket,
    /// Add their message to the ticket as an internal note agents can see.
    InternalNote,
    /// Store nothing on any ticket; the journal records the rejection.
    Reject,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub stranger: StrangerPolicy,
    /// A reply within this many days of closing reopens; later, a follow-up ticket.
    pub reopen_days: i64,
}

/// How a mail was matched to an existing ticket, in the order tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    MessageId,
    /// A delivery status notification about one of our own messages.
    BounceOf,
    ReplyToken,
    Subject,
}

/// What the thread stage needs to know about a candidate ticket.
#[derive(Debug, Clone)]
pub struct TicketFacts {
    pub id: i64,
    pub number: String,
    pub subject: String,
    pub status: Status,
    pub language: Option<String>,
    pub requester: String,
    /// The assignee's email.
    pub assignee: Option<String>,
    /// Addresses seen on the ticket's mail (From, To, Cc).
    pub participants: Vec<String>,
    pub closed_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub via: Via,
    pub ticket: TicketFacts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A reply to a ticket closed too long ago.
    FollowUp,
    /// A reply from someone who is not part of the ticket.
    StrangerReply,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::FollowUp => "follow_up",
            LinkKind::StrangerReply => "stranger_reply",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    NewTicket {
        link: Option<(i64, LinkKind)>,
    },
    Comment {
        ticket_id: i64,
        internal: bool,
        /// Set the ticket's status back to open.
        reopen: bool,
    },
    Reject {
        ticket_id: i64,
        reason: String,
    },
    /// An automatic answer (out of office) that threads onto no ticket:
    /// journaled, never a ticket.
    Ignore {
        reason: String,
    },
}

/// The keys to look up, in threading order (PRODUCT.md §5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// In-Reply-To first, then References from newest to oldest.
    pub message_ids: Vec<String>,
    pub bounce_of: Option<String>,
    pub token_ticket: Option<i64>,
    pub subject_number: Option<String>,
}

/// Works out what to look up for a mail.
pub fn lookup(
    mail: &ParsedMail,
    numbers: &subject::NumberPattern,
    token_key: Option<&[u8]>,
    support_addresses: &[String],
) -> Lookup {
    let mut message_ids: Vec<String> = Vec::new();
    for id in mail.in_reply_to.iter().chain(mail.references.iter().rev()) {
        if !message_ids.contains(id) {
            message_ids.push(id.clone());
        }
    }
    let recipients: Vec<&str> = mail
        .recipients()
        .map(|m| m.email.as_str())
        .chain(mail.delivered_to.iter().map(String::as_str))
        .collect();
    Lookup {
        message_ids,
        bounce_of: mail.bounce_of.clone(),
        token_ticket: token_key.and_then(|k| token::find(k, support_addresses, &recipients)),
        subject_number: numbers.find(&mail.subject),
    }
}

/// Decides where a mail goes, given the ticket it matched (if any).
pub fn decide(
    mail: &ParsedMail,
    candidate: Option<&Candidate>,
    sender_is_agent: bool,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    let Some(Candidate { via, ticket }) = candidate else {
        return match mail.auto_reply {
            true => Decision::Ignore {
                reason: mail
                    .auto_generated
                    .clone()
                    .unwrap_or_else(|| "automatic reply".into()),
            },
            false => Decision::NewTicket { link: None },
        };
    };
    let note = Decision::Comment {
        ticket_id: ticket.id,
        internal: true,
        reopen: false,
    };
    if *via == Via::BounceOf {
        return note;
    }
    let sender = mail.from.as_ref().map(|m| m.email.as_str()).unwrap_or("");
    let known = sender_is_agent
        || sender.eq_ignore_ascii_case(&ticket.requester)
        || ticket
            .participants
            .iter()
            .any(|p| p.eq_ignore_ascii_case(sender));
    if !known {
        return match policy.stranger {
            StrangerPolicy::NewTicket => Decision::NewTicket {
                link: Some((ticket.id, LinkKind::StrangerReply)),
            },
            StrangerPolicy::InternalNote => note,
            StrangerPolicy::Reject => Decision::Reject {
                ticket_id: ticket.id,
                reason: format!("{sender} is not a participant of {}", ticket.number),
            },
        };
    }
    if mail.auto_generated.is_some() {
        return note;
    }
    if ticket.status == Status::Closed {
        let closed_at = ticket.closed_at.unwrap_or(now);
        if now - closed_at > policy.reopen_days * 86_400 {
            return Decision::NewTicket {
                link: Some((ticket.id, LinkKind::FollowUp)),
            };
        }
    }
    let waiting = matches!(
        ticket.status,
        Status::Pending | Status::Resolved | Status::Closed
    );
    Decision::Comment {
        ticket_id: ticket.id,
        internal: false,
        reopen: waiting && !sender_is_agent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Mailbox;

    const DAY: i64 = 86_400;

    fn mail_from(email: &str) -> ParsedMail {
        ParsedMail {
            from: Some(Mailbox {
                email: email.into(),
                name: String::new(),
            }),
            ..Default::default()
        }
    }

    fn candidate(via: Via, status: Status, closed_at: Option<i64>) -> Candidate {
        Candidate {
            via,
            ticket: TicketFacts {
                id: 7,
                number: "TKT-2026-0007".into(),
                subject: "Drukarka".into(),
                status,
                language: None,
                requester: "jan@firma.pl".into(),
                assignee: None,
                participants: vec!["anna@firma.pl".into()],
                closed_at,
            },
        }
    }

    fn policy(stranger: StrangerPolicy) -> Policy {
        Policy {
            stranger,
            reopen_days: 14,
        }
    }

    #[test]
    fn no_candidate_opens_a_ticket() {
        let d = decide(
            &mail_from("a@b.pl"),
            None,
            false,
            &policy(StrangerPolicy::NewTicket),
            0,
        );
        assert_eq!(d, Decision::NewTicket { link: None });
    }

    #[test]
    fn requester_participant_and_agent_join_the_ticket() {
        let c = candidate(Via::MessageId, Status::Open, None);
        let p = policy(StrangerPolicy::Reject);
        for (who, agent) in [
            ("jan@firma.pl", false),
            ("ANNA@firma.pl", false),
            ("agent@example.com", true),
        ] {
            let d = decide(&mail_from(who), Some(&c), agent, &p, 0);
            assert_eq!(
                d,
                Decision::Comment {
                    ticket_id: 7,
                    internal: false,
                    reopen: false
                },
                "{who}"
            );
        }
    }

    #[test]
    fn stranger_follows_the_policy() {
        let c = candidate(Via::Subject, Status::Open, None);
        let m = mail_from("mallory@evil.com");
        assert_eq!(
            decide(&m, Some(&c), false, &policy(StrangerPolicy::NewTicket), 0),
            Decision::NewTicket {
                link: Some((7, LinkKind::StrangerReply))
            }
        );
        assert_eq!(
            decide(
                &m,
                Some(&c),
                false,
                &policy(StrangerPolicy::InternalNote),
                0
            ),
            Decision::Comment {
                ticket_id: 7,
                internal: true,
                reopen: false
            }
        );
        assert!(matches!(
            decide(&m, Some(&c), false, &policy(StrangerPolicy::Reject), 0),
            Decision::Reject { ticket_id: 7, .. }
        ));
    }

    #[test]
    fn closed_ticket_reopens_inside_the_window_and_follows_up_after() {
        let p = policy(StrangerPolicy::NewTicket);
        let m = mail_from("jan@firma.pl");
        let c = candidate(Via::ReplyToken, Status::Closed, Some(0));
        assert_eq!(
            decide(&m, Some(&c), false, &p, 14 * DAY),
            Decision::Comment {
                ticket_id: 7,
                internal: false,
                reopen: true
            }
        );
        assert_eq!(
            decide(&m, Some(&c), false, &p, 14 * DAY + 1),
            Decision::NewTicket {
                link: Some((7, LinkKind::FollowUp))
            }
        );
    }

    #[test]
    fn bounce_and_auto_reply_become_internal_notes() {
        let p = policy(StrangerPolicy::NewTicket);
        let bounce = candidate(Via::BounceOf, Status::Open, None);
        let d = decide(
            &mail_from("mailer-daemon@mx.pl"),
            Some(&bounce),
            false,
            &p,
            0,
        );
        assert_eq!(
            d,
            Decision::Comment {
                ticket_id: 7,
                internal: true,
                reopen: false
            }
        );

        let mut ooo = mail_from("jan@firma.pl");
        ooo.auto_generated = Some("Auto-Submitted: auto-replied".into());
        let c = candidate(Via::MessageId, Status::Pending, None);
        let d = decide(&ooo, Some(&c), false, &p, 0);
        assert_eq!(
            d,
            Decision::Comment {
                ticket_id: 7,
                internal: true,
                reopen: false
            }
        );
    }

    #[test]
    fn an_unthreaded_auto_reply_is_ignored_and_a_threaded_one_a_note() {
        let p = policy(StrangerPolicy::NewTicket);
        let mut ooo = mail_from("jan@firma.pl");
        ooo.auto_reply = true;
        ooo.auto_generated = Some("auto-reply subject \"Out of office\"".into());
        assert_eq!(
            decide(&ooo, None, false, &p, 0),
            Decision::Ignore {
                reason: "auto-reply subject \"Out of office\"".into()
            }
        );
        let c = candidate(Via::Subject, Status::Open, None);
        assert_eq!(
            decide(&ooo, Some(&c), false, &p, 0),
            Decision::Comment {
                ticket_id: 7,
                internal: true,
                reopen: false
            }
        );
    }

    #[test]
    fn lookup_orders_in_reply_to_then_newest_references() {
        let mail = ParsedMail {
            subject: "Re: [TKT-2026-0042] x".into(),
            in_reply_to: vec!["c@x".into()],
            references: vec!["a@x".into(), "b@x".into(), "c@x".into()],
            ..Default::default()
        };
        let l = lookup(&mail, &subject::NumberPattern::new("TKT"), None, &[]);
        assert_eq!(l.message_ids, vec!["c@x", "b@x", "a@x"]);
        assert_eq!(l.subject_number.as_deref(), Some("TKT-2026-0042"));
        assert_eq!(l.token_ticket, None);
    }
}
