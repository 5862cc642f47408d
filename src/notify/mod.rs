//! Notifications: templates, the transactional outbox and its senders.
//!
//! [`Notifier`] decides and renders inside the transaction of the change that
//! causes a notification and writes it to the outbox; the dispatcher
//! (`dispatch.rs`) delivers it later. Automatic mail obeys the loop rules:
//! never to auto-generated mail, our own addresses or robots, and at most
//! `auto_reply_per_hour` / `_per_day` per recipient; every suppressed message
//! is recorded with its reason.

pub mod discord;
pub mod dispatch;
pub mod email;
pub mod pace;
pub mod send;
pub mod smtp;
pub mod telegram;
pub mod templates;
pub mod webhook;

use crate::clock::Timestamp;
use crate::config::Config;
use crate::store::outbox::{self, NewNotification};
use crate::store::{self, Tx, tickets};
use crate::thread::token;
use crate::ticket::{Channel, Notice, chat_address};
use serde_json::{Value, json};
use templates::Templates;

/// What a notification is about: the ticket and the message that caused it.
pub struct Subject<'a> {
    pub ticket_id: i64,
    pub number: &'a str,
    pub subject: &'a str,
    pub status: &'a str,
    pub priority: &'a str,
    pub category: &'a str,
    pub requester_email: &'a str,
    pub requester_name: &'a str,
    /// The assignee's name and email.
    pub assignee: Option<(&'a str, &'a str)>,
    pub team: Option<&'a str>,
    pub language: Option<&'a str>,
    /// The inbound Message-ID this answers, if any.
    pub in_reply_to: Option<&'a str>,
    pub comment_author: &'a str,
    pub comment_body: &'a str,
    /// For SLA notices: which target, when it is due, whether it was missed.
    pub sla: Option<SlaNotice>,
}

#[derive(Debug, Clone, Copy)]
pub struct SlaNotice {
    /// `first_response` or `resolution`.
    pub target: &'static str,
    pub due: Timestamp,
    pub breached: bool,
}

#[derive(Clone)]
pub struct Notifier {
    /// Shared by every clone; swapped on reload.
    templates: std::sync::Arc<templates::Live>,
    from_domain: String,
    support_addresses: Vec<String>,
    /// The agents' addresses (exempt from the loop rules); shared by every
    /// clone and swapped on reload.
    agents: std::sync::Arc<crate::live::Live<Vec<String>>>,
    token_key: Option<Vec<u8>>,
    ticket_url: String,
    per_hour: i64,
    per_day: i64,
    /// The agents' Telegram group.
    agent_chat: Option<i64>,
    /// The agents' Discord channel (a thread per ticket).
    agent_channel: Option<u64>,
}

impl Notifier {
    /// A notifier with loaded `templates` and the reply-token key.
    pub fn new(
        config: &Config,
        templates: Templates,
        token_key: Option<Vec<u8>>,
    ) -> anyhow::Result<Notifier> {
        let from: lettre::message::Mailbox = config.notify.from.parse()?;
        Ok(Notifier {
            templates: std::sync::Arc::new(templates::Live::new(templates)),
            from_domain: from.email.domain().to_string(),
            support_addresses: config.support_addresses(),
            agents: std::sync::Arc::new(crate::live::Live::new(agent_addresses(config))),
            token_key,
            ticket_url: config.notify.ticket_url.clone(),
            per_hour: config.notify.auto_reply_per_hour,
            per_day: config.notify.auto_reply_per_day,
            agent_chat: config.telegram.as_ref().and_then(|t| t.agent_chat),
            agent_channel: config.discord.as_ref().and_then(|d| d.agent_channel),
        })
    }

    fn context(&self, s: &Subject<'_>, now: Timestamp) -> Value {
        json!({
            "ticket": {
                "number": s.number, "subject": s.subject, "status": s.status, "priority": s.priority,
                "category": s.category, "created_at": "",
                "link": self.ticket_url.replace("{number}", s.number),
            },
            "requester": { "name": display_name(s.requester_name, s.requester_email), "email": s.requester_email },
            "assignee": s.assignee.map(|(name, email)| json!({ "name": display_name(name, email), "email": email })),
            "team": s.team.map(|name| json!({ "name": name })),
            "comment": { "author": s.comment_author, "body": s.comment_body, "internal": false },
            "sla": s.sla.map(|n| json!({
                "target": n.target.replace('_', " "),
                "due": crate::clock::rfc3339(n.due),
                "remaining": crate::clock::span((n.due - now).max(0)),
                "breached": n.breached,
            })),
        })
    }

    /// Automatic mail about `s` (`ticket_created`, `message_too_large`,
    /// `ticket_assigned` …) to `to`; the loop rules apply (agents are exempt
    /// from the rate limits). `auto_generated` is why the inbound mail counts
    /// as automatic, if it does.
    pub async fn automatic(
        &self,
        tx: &mut Tx,
        s: &Subject<'_>,
        event: Notice,
        to: &str,
        auto_generated: Option<&str>,
        now: Timestamp,
    ) -> store::Result<()> {
        // A chat contact is reached privately.
        if let Some(person) = chat_address(to) {
            return self.to_person(tx, s, event, person, now).await;
        }
        let suppressed = match auto_generated {
            Some(why) => Some(format!("the message is auto-generated ({why})")),
            None => self.loop_check(tx, to, now).await?,
        };
        self.enqueue(tx, s, event, to, true, suppressed, now).await
    }

    /// Sends an agent's public comment to the requester and the thread's
    /// participants, each on their channel: mail, or a chat
    /// (`telegram:USER_ID`).
    pub async fn agent_reply(
        &self,
        tx: &mut Tx,
        s: &Subject<'_>,
        recipients: &[String],
        now: Timestamp,
    ) -> store::Result<()> {
        for to in recipients {
            if to.is_empty() || self.is_ours(to) || to.eq_ignore_ascii_case(s.comment_author) {
                continue;
            }
            match chat_address(to) {
                Some(person) => {
                    self.to_person(tx, s, Notice::AgentReply, person, now)
                        .await?
                }
                None => {
                    self.enqueue(tx, s, Notice::AgentReply, to, false, None, now)
                        .await?
                }
            }
        }
        Ok(())
    }

    /// The active templates (the reload task swaps them).
    pub fn templates(&self) -> std::sync::Arc<templates::Live> {
        self.templates.clone()
    }

    /// Takes the agents of a reloaded config.
    pub fn set_agents(&self, config: &Config) {
        self.agents.replace(agent_addresses(config));
    }

    /// Whether agents have a chat (a Telegram group, a Discord channel).
    pub fn agents_chat(&self) -> bool {
        self.agent_chat.is_some() || self.agent_channel.is_some()
    }

    /// `event` about the ticket to the agents' chats: the Telegram group,
    /// and the ticket's thread in the Discord channel (the sender opens it
    /// with the first message; the recipient is `thread:CHANNEL_ID`).
    pub async fn to_agents(
        &self,
        tx: &mut Tx,
        s: &Subject<'_>,
        event: Notice,
        now: Timestamp,
    ) -> store::Result<()> {
        if let Some(chat) = self.agent_chat {
            self.chat(tx, s, event, (Channel::Telegram, chat), now)
                .await?;
        }
        if let Some(channel) = self.agent_channel {
            let thread = (Channel::Discord, format!("thread:{channel}"));
            self.chat_to(tx, s, event, thread, now).await?;
        }
        Ok(())
    }

    /// A plain answer to a chat (the bot's answers to agents' commands).
    pub async fn chat_text(
        &self,
        tx: &mut Tx,
        ((platform, chat), ticket_id): ((Channel, i64), Option<i64>),
        text: &str,
        now: Timestamp,
    ) -> store::Result<()> {
        let notification = NewNotification {
            ticket_id,
            event: Notice::ChatAnswer.as_str().into(),
            channel: platform.as_str().into(),
            recipient: chat.to_string(),
            body: text.to_string(),
            ..NewNotification::default()
        };
        outbox::enqueue(tx, &notification, now).await
    }

    /// `event` about the ticket to a chat (Telegram or Discord), from the
    /// chat variant of its template. The text always names the ticket, so
    /// an agent's reply to it in the agents' chat finds the ticket.
    pub async fn chat(
        &self,
        tx: &mut Tx,
        s: &Subject<'_>,
        event: Notice,
        (platform, chat): (Channel, i64),
        now: Timestamp,
    ) -> store::Result<()> {
        self.chat_to(tx, s, event, (platform, chat.to_string()), now)
            .await
    }

    /// `event` to a person privately: a Telegram user's private chat has
    /// the user's id; on Discord the sender opens a DM (`@USER_ID`).
    async fn to_person(
        &self,
        tx: &mut Tx,
        s: &Subject<'_>,
        event: Notice,
        (platform, user): (Channel, i64),
        now: Timestamp,
    ) -> store::Result<()> {
        let recipient = match platform {
            Channel::Discord => format!("@{user}"),
            _ => user.to_string(),
        };
        self.chat_to(tx, s, event, (platform, recipient), now).await
    }

    async fn chat_to(
        &self,
        tx: &mut Tx,
        s: &Subject<'_>,
        event: Notice,
        (platform, recipient): (Channel, String),
        now: Timestamp,
    ) -> store::Result<()> {
        let (rendered, suppressed) = self.render(s.language, event, "chat", &self.context(s, now));
        let notification = NewNotification {
            ticket_id: Some(s.ticket_id),
            event: event.as_str().into(),
            channel: platform.as_str().into(),
            recipient,
            automatic: false,
            // Chat templates have no subject line: the ticket's names the
            // Discord thread a first notification opens.
            subject: format!("[{}] {}", s.number, s.subject),
            body: if rendered.text.contains(s.number) {
                rendered.text
            } else {
                format!("{} · {}", s.number, rendered.text)
            },
            suppressed,
            ..NewNotification::default()
        };
        outbox::enqueue(tx, &notification, now).await
    }

    /// The `chat_answer` template to a customer's chat, in the sender's
    /// language when we have it. `kind`: greeting, no_words,
    /// unknown_command (a message not taken), status, closed,
    /// nothing_open (answers to `/status` and `/close`); `tickets`: the
    /// tickets the answer lists (`number`, `status`, `subject`).
    pub async fn chat_answer(
        &self,
        tx: &mut Tx,
        (kind, tickets): (&str, Value),
        ((platform, chat), language): ((Channel, i64), Option<&str>),
        now: Timestamp,
    ) -> store::Result<()> {
        let context = serde_json::json!({ "kind": kind, "tickets": tickets });
        let (rendered, suppressed) = self.render(language, Notice::ChatAnswer, "chat", &context);
        let notification = NewNotification {
            event: Notice::ChatAnswer.as_str().into(),
            channel: platform.as_str().into(),
            recipient: chat.to_string(),
            body: rendered.text,
            suppressed,
            ..NewNotification::default()
        };
        outbox::enqueue(tx, &notification, now).await
    }

    /// A message about many tickets (`daily_digest`, `sla_report`) to an
    /// agent or an address, rendered in the default language from `context`.
    pub async fn summary(
        &self,
        tx: &mut Tx,
        event: Notice,
        to: &str,
        context: &Value,
        now: Timestamp,
    ) -> store::Result<()> {
        let (rendered, suppressed) = self.render(None, event, "email", context);
        let suppressed = suppressed.or_else(|| {
            self.is_ours(to)
                .then(|| format!("{to} is one of our own addresses"))
        });
        let notification = NewNotification {
            ticket_id: None,
            event: event.as_str().into(),
            channel: "email".into(),
            recipient: to.to_string(),
            automatic: true,
            message_id: Some(new_message_id(event.as_str(), &self.from_domain, now)),
            in_reply_to: None,
            references: Vec::new(),
            reply_to: None,
            subject: rendered.subject,
            body: rendered.text,
            html: rendered.html,
            suppressed,
        };
        outbox::enqueue(tx, &notification, now).await?;
        Ok(())
    }

    /// Why an automatic reply to `to` must not go out now, if it must not.
    async fn loop_check(
        &self,
        tx: &mut Tx,
        to: &str,
        now: Timestamp,
    ) -> store::Result<Option<String>> {
        if self.is_ours(to) {
            return Ok(Some(format!("{to} is one of our own addresses")));
        }
        if crate::parse::autogen::is_robot_address(to) {
            return Ok(Some(format!("{to} is a robot address")));
        }
        if self.agents.current().contains(&to.to_ascii_lowercase()) {
            return Ok(None);
        }
        let (hour, day) = outbox::automatic_counts_since(tx, to, rate_windows(now)).await?;
        if hour >= self.per_hour {
            return Ok(Some(format!(
                "rate limit: {hour} automatic messages to {to} in the last hour"
            )));
        }
        if day >= self.per_day {
            return Ok(Some(format!(
                "rate limit: {day} automatic messages to {to} in the last day"
            )));
        }
        Ok(None)
    }

    /// `event`'s template for `channel` in the contact's language (else the
    /// default); a template that fails at render time fails this one
    /// notification, visibly: the error is the reason it is suppressed.
    fn render(
        &self,
        language: Option<&str>,
        event: Notice,
        channel: &str,
        context: &Value,
    ) -> (templates::Rendered, Option<String>) {
        let templates = self.templates.current();
        let lang = templates.language_for(language);
        match templates.render(&lang, event.as_str(), channel, context) {
            Ok(r) => (r, None),
            Err(e) => (
                templates::Rendered::default(),
                Some(format!("template error: {e}")),
            ),
        }
    }

    fn is_ours(&self, address: &str) -> bool {
        let address = address.to_ascii_lowercase();
        let (local, domain) = address.split_once('@').unwrap_or((&address, ""));
        let base = format!("{}@{domain}", local.split('+').next().unwrap_or(local));
        self.support_addresses.contains(&base)
    }

    #[allow(clippy::too_many_arguments)]
    async fn enqueue(
        &self,
        tx: &mut Tx,
        s: &Subject<'_>,
        event: Notice,
        to: &str,
        automatic: bool,
        suppressed: Option<String>,
        now: Timestamp,
    ) -> store::Result<()> {
        let (rendered, error) = self.render(s.language, event, "email", &self.context(s, now));
        let suppressed = error.or(suppressed);
        let message_id = new_message_id(s.number, &self.from_domain, now);
        let mut references = outbox::thread_message_ids(tx, s.ticket_id, 20).await?;
        if let Some(id) = s.in_reply_to
            && !references.iter().any(|r| r == id)
        {
            references.push(id.to_string());
        }
        let reply_to = match (&self.token_key, self.support_addresses.first()) {
            (Some(key), Some(address)) => Some(token::address(address, key, s.ticket_id)),
            _ => None,
        };
        let notification = NewNotification {
            ticket_id: Some(s.ticket_id),
            event: event.as_str().into(),
            channel: "email".into(),
            recipient: to.to_string(),
            automatic,
            message_id: Some(message_id.clone()),
            in_reply_to: s
                .in_reply_to
                .map(String::from)
                .or_else(|| references.last().cloned()),
            references,
            reply_to,
            subject: format!("[{}] {}", s.number, rendered.subject),
            body: rendered.text,
            html: rendered.html,
            suppressed: suppressed.clone(),
        };
        outbox::enqueue(tx, &notification, now).await?;
        match suppressed {
            Some(reason) => {
                let what = format!("{event} to {to}");
                tickets::history(
                    tx,
                    s.ticket_id,
                    "outbox",
                    "notification.suppressed",
                    Some(&what),
                    Some(&reason),
                    None,
                    now,
                )
                .await
            }
            // Chosen before sending and recorded, so replies (and resends) thread.
            None => {
                tickets::record_message_id(
                    tx,
                    &message_id,
                    s.ticket_id,
                    None,
                    tickets::Direction::Out,
                    now,
                )
                .await
            }
        }
    }
}

fn display_name<'a>(name: &'a str, email: &'a str) -> &'a str {
    if name.trim().is_empty() { email } else { name }
}

/// A fresh Message-ID (without brackets): `ticketd.TKT-2026-0001.<random>@domain`.
fn new_message_id(number: &str, domain: &str, now: Timestamp) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now);
    h.write(number.as_bytes());
    format!("ticketd.{number}.{now}.{:016x}@{domain}", h.finish())
}

fn agent_addresses(config: &Config) -> Vec<String> {
    config
        .agent
        .iter()
        .map(|a| a.email.to_ascii_lowercase())
        .collect()
}

/// The starts of the automatic-mail rate limit's two windows at `now`: the
/// last hour and the last day.
pub fn rate_windows(now: Timestamp) -> (Timestamp, Timestamp) {
    (now - 3600, now - 86_400)
}
