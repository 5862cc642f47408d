//! Chat intake: one update from a chat source in one transaction. A
//! customer's message opens a ticket, or becomes a comment on that
//! customer's open ticket from the same channel; a message that is not taken
//! gets its answer; every update is journaled, and the source's position is
//! saved with it, so the source acknowledges only what is durable.

use super::{Outcome, OutcomeKind, Pipeline, outcome};
use crate::apply;
use crate::parse::chat::{Ask, ChatMessage, Intake, Refusal, subject_of};
use crate::rules::{Action, Event};
use crate::store::checkpoints::{self, Checkpoint};
use crate::store::tickets::{self as t, AuthorKind, Direction, JournalEntry, StoredAttachment};
use crate::store::{self, Tx, changes, desk, directory, files};
use crate::ticket::{Channel, Notice, Status};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One update of a chat source, ready for the transaction.
pub struct ChatUpdate {
    /// The source's id of the update (Telegram's `update_id`).
    pub id: i64,
    pub intake: Intake,
    /// The message's files, already stored by the source.
    pub attachments: Vec<StoredAttachment>,
    /// A second checkpoint that moves past this update in the same
    /// transaction (Discord: the position in its channel).
    pub checkpoint: Option<String>,
}

impl Pipeline {
    /// Takes a chat source's updates (`source`: e.g. `telegram`) in one
    /// transaction, which also saves the source's next position (the last
    /// id + 1); returns one outcome per update. When the batch fails on
    /// anything but an unavailable store, each update is taken in its own
    /// transaction, so one bad update cannot hold back the rest.
    pub async fn ingest_chat(
        &self,
        source: &str,
        updates: &[ChatUpdate],
    ) -> store::Result<Vec<Outcome>> {
        match self.chat_batch(source, updates).await {
            Err(store::Error::Unavailable(e)) => Err(store::Error::Unavailable(e)),
            Err(e) if updates.len() > 1 => {
                tracing::warn!(error = %e, "chat batch failed; taking its updates one by one");
                let mut outcomes = Vec::with_capacity(updates.len());
                for u in updates {
                    match self.chat_batch(source, std::slice::from_ref(u)).await {
                        Ok(one) => outcomes.extend(one),
                        Err(store::Error::Unavailable(e)) => {
                            return Err(store::Error::Unavailable(e));
                        }
                        Err(e) => outcomes.push(self.chat_poison(source, u, &e).await?),
                    }
                }
                Ok(outcomes)
            }
            other => other,
        }
    }

    /// An update the store refuses even alone: what it holds is kept in the
    /// quarantine folder and journaled, and the source moves past it, so it
    /// cannot block the ones after it.
    async fn chat_poison(
        &self,
        source: &str,
        update: &ChatUpdate,
        error: &store::Error,
    ) -> store::Result<Outcome> {
        let kept = format!("{:#?}", update.intake);
        let sha256 = files::put(self.quarantine_dir(), kept.as_bytes())
            .map_err(|e| store::Error::Unavailable(format!("cannot write quarantine: {e}")))?;
        let reason = format!("the store rejected it: {error}");
        let now = self.clock.now();
        let key = format!("{source}:update:{}", update.id);
        let mut tx = self.store.begin().await?;
        super::journal_quarantined(&mut tx, source, &key, &sha256, &reason, now).await?;
        let next = Checkpoint {
            validity: 0,
            position: update.id + 1,
        };
        checkpoints::save(&mut tx, source, next, now).await?;
        if let Some(name) = &update.checkpoint {
            checkpoints::save(&mut tx, name, next, now).await?;
        }
        tx.commit().await?;
        tracing::warn!(source, update = update.id, "update quarantined: {reason}");
        Ok(outcome(OutcomeKind::Quarantined, None, Some(reason)))
    }

    async fn chat_batch(
        &self,
        source: &str,
        updates: &[ChatUpdate],
    ) -> store::Result<Vec<Outcome>> {
        let Some(last) = updates.last() else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        // As for mail: history, outbox, comments and new tickets' rows and
        // numbers are written at commit.
        tx.defer_appends();
        read_ahead(&mut tx, updates).await?;
        let mut outcomes = Vec::with_capacity(updates.len());
        for u in updates {
            let outcome = self.take_update(&mut tx, source, u, now).await?;
            tracing::debug!(source, update = u.id, "{outcome}");
            outcomes.push(outcome);
            if let Some(name) = &u.checkpoint {
                let next = Checkpoint {
                    validity: 0,
                    position: u.id + 1,
                };
                checkpoints::save(&mut tx, name, next, now).await?;
            }
        }
        let next = Checkpoint {
            validity: 0,
            position: last.id + 1,
        };
        checkpoints::save(&mut tx, source, next, now).await?;
        let numbers = tx.commit().await?;
        for o in &mut outcomes {
            numbers.replace_in_option(&mut o.ticket);
            numbers.replace_in_option(&mut o.reason);
        }
        self.outbox_wake.notify_one();
        self.sla_wake.notify_one();
        Ok(outcomes)
    }

    async fn take_update(
        &self,
        tx: &mut Tx,
        source: &str,
        update: &ChatUpdate,
        now: i64,
    ) -> store::Result<Outcome> {
        let key = format!("{source}:update:{}", update.id);
        let attachments = update.attachments.as_slice();
        let intake = &update.intake;
        let result = match intake {
            Intake::Message(m) => self.store_chat(tx, source, (m, attachments), now).await?,
            Intake::Agent(m) => self.agent_message(tx, source, m, now).await?,
            Intake::Asked {
                platform,
                chat,
                user,
                language,
                ask,
            } => {
                let asked = ((*platform, *chat), *user, language.as_deref());
                self.customer_asked(tx, (source, &key), asked, *ask, now)
                    .await?
            }
            Intake::Refused {
                platform,
                chat,
                refusal,
                language,
            } => {
                let reason = match refusal {
                    Refusal::Greeting => "a greeting",
                    Refusal::NoWords => "no words to make a ticket of",
                    Refusal::UnknownCommand => "a command customers cannot use",
                };
                self.notifier
                    .chat_answer(
                        tx,
                        (refusal_kind(*refusal), Value::Null),
                        ((*platform, *chat), language.as_deref()),
                        now,
                    )
                    .await?;
                self.chat_rejected(tx, (source, &key), "", reason.into(), now)
                    .await?
            }
            Intake::Ignored(reason) => {
                self.chat_rejected(tx, (source, &key), "", reason.clone(), now)
                    .await?
            }
        };
        Ok(result)
    }

    async fn store_chat(
        &self,
        tx: &mut Tx,
        source: &str,
        (m, attachments): (&ChatMessage, &[StoredAttachment]),
        now: i64,
    ) -> store::Result<Outcome> {
        if let Some(known) = t::known_message(tx, &m.key).await? {
            let reason = "message already ingested";
            let hash = hash(&m.text);
            let mut entry = journal_entry((source, &m.key), &hash, now);
            entry.outcome = OutcomeKind::Duplicate.as_str();
            entry.reason = Some(reason);
            t::journal(tx, &entry).await?;
            let number = t::ticket_number(tx, known.ticket_id).await?;
            return Ok(outcome(OutcomeKind::Duplicate, number, Some(reason.into())));
        }
        let user = m.user.to_string();
        let identity = (m.platform.as_str(), user.as_str());
        let contact =
            directory::contact_for(tx, identity, &m.name, m.language.as_deref(), now).await?;
        let author = format!("{}:{user}", m.platform);
        let open = t::open_ticket_of(tx, contact.id, m.platform).await?;
        let reopen = matches!(open, Some((_, _, Status::Pending)));
        let (kind, ticket_id, number, event) = match open {
            Some((ticket_id, number, status)) => {
                if reopen {
                    t::set_status(tx, ticket_id, status, Status::Open, &author, None, now).await?;
                }
                (OutcomeKind::Comment, ticket_id, number, Event::CommentAdded)
            }
            None => {
                let (ticket_id, number) = self.open_chat_ticket(tx, m, &contact, now).await?;
                let created = (OutcomeKind::Created, Event::TicketCreated);
                (created.0, ticket_id, number, created.1)
            }
        };
        let comment_id = t::add_comment(
            tx,
            &t::NewComment {
                ticket_id,
                author: &author,
                author_kind: AuthorKind::Requester,
                body: &m.text,
                stripped: "",
                internal: false,
                channel: m.platform,
                auto_generated: false,
                message_id: Some(&m.key),
                now,
            },
        )
        .await?;
        t::record_message_id(tx, &m.key, ticket_id, Some(comment_id), Direction::In, now).await?;
        for a in attachments {
            t::add_attachment(tx, ticket_id, comment_id, a, now).await?;
        }
        let message = chat_facts(source, m);
        let applied = self.rules(now).run(tx, event, ticket_id, &message).await?;
        let changed = reopen || !applied.matched.is_empty();
        self.chat_clocks(tx, ticket_id, kind == OutcomeKind::Created, changed)
            .await?;
        if applied.spam_by.is_none() {
            self.notify_chat(
                tx,
                (ticket_id, kind == OutcomeKind::Created),
                (m, &message),
                now,
            )
            .await?;
        }
        let hash = hash(&m.text);
        let mut entry = journal_entry((source, &m.key), &hash, now);
        entry.outcome = kind.as_str();
        entry.ticket_id = Some(ticket_id);
        entry.comment_id = Some(comment_id);
        t::journal(tx, &entry).await?;
        Ok(outcome(kind, Some(number), None))
    }

    /// The clocks of a chat message's ticket: a new one's planned from its
    /// fields as the rules left them, then its row; an existing one's
    /// recomputed only when something they depend on `changed` (or
    /// `idle_after` follows all activity).
    async fn chat_clocks(
        &self,
        tx: &mut Tx,
        ticket_id: i64,
        created: bool,
        changed: bool,
    ) -> store::Result<()> {
        let policies = &self.settings.current().policies;
        if created {
            let state = changes::ticket_state(tx, ticket_id).await?;
            store::sla::arm_new(tx, state.as_ref(), policies).await?;
            store::drafts::flush(tx, ticket_id).await
        } else if changed || policies.follows_activity() {
            store::sla::reschedule(tx, ticket_id, policies).await
        } else {
            Ok(())
        }
    }

    /// A new ticket from a customer's first chat message: (id, number).
    async fn open_chat_ticket(
        &self,
        tx: &mut Tx,
        m: &ChatMessage,
        contact: &directory::Contact,
        now: i64,
    ) -> store::Result<(i64, String)> {
        let number = t::next_number(tx, &self.number_prefix, crate::clock::year_of(now)).await?;
        let ticket_id = t::create_ticket(
            tx,
            &t::NewTicket {
                number: &number,
                subject: &subject_of(&m.text),
                priority: self.default_priority,
                requester: (contact, &format!("{}:{}", m.platform, m.user)),
                channel: m.platform,
                language: m.language.as_deref(),
                auto_generated: false,
                team: None,
                due: crate::sla::Due::default(),
                actor: &format!("{}:{}", m.platform, m.user),
                now,
            },
        )
        .await?;
        Ok((ticket_id, number))
    }

    /// The agents' notices of a customer's chat message, and the customer's
    /// acknowledgement of a new ticket.
    async fn notify_chat(
        &self,
        tx: &mut Tx,
        (ticket_id, created): (i64, bool),
        (m, message): (&ChatMessage, &apply::Message),
        now: i64,
    ) -> store::Result<()> {
        let Some(state) = changes::ticket_state(tx, ticket_id).await? else {
            return Ok(());
        };
        let about = apply::subject_of(&state, message);
        let to_agents = if created {
            Notice::NewTicket
        } else {
            Notice::RequesterComment
        };
        self.notifier.to_agents(tx, &about, to_agents, now).await?;
        if created {
            self.notifier
                .chat(tx, &about, Notice::TicketCreated, (m.platform, m.chat), now)
                .await?;
        } else if let Some(assignee) = &state.assignee {
            self.notifier
                .automatic(tx, &about, Notice::RequesterComment, assignee, None, now)
                .await?;
        }
        Ok(())
    }

    /// Journals a chat message that was not taken, and why.
    pub(super) async fn chat_rejected(
        &self,
        tx: &mut Tx,
        journal: (&str, &str),
        text: &str,
        reason: String,
        now: i64,
    ) -> store::Result<Outcome> {
        let hash = hash(text);
        let mut entry = journal_entry(journal, &hash, now);
        entry.outcome = OutcomeKind::Rejected.as_str();
        entry.reason = Some(&reason);
        t::journal(tx, &entry).await?;
        Ok(outcome(OutcomeKind::Rejected, None, Some(reason)))
    }

    /// A customer's `/status` (their unresolved tickets) or `/close` (the
    /// open ticket of this chat, closed on the rules' path as if an agent
    /// did it, so the customer gets the status notice).
    async fn customer_asked(
        &self,
        tx: &mut Tx,
        journal: (&str, &str),
        ((platform, chat), user, language): ((Channel, i64), i64, Option<&str>),
        ask: Ask,
        now: i64,
    ) -> store::Result<Outcome> {
        let user_id = user.to_string();
        let tickets = desk::unresolved_of(tx, (platform.as_str(), &user_id)).await?;
        let listed = |lines: &[desk::Line]| {
            Value::Array(
                lines
                    .iter()
                    .map(|l| json!({"number": l.number, "status": l.status, "subject": l.subject}))
                    .collect(),
            )
        };
        let open = tickets.iter().find(|l| l.channel == platform.as_str());
        let (kind, ticket, what) = match (ask, open) {
            (Ask::Status, _) if !tickets.is_empty() => (
                "status",
                None,
                format!("/status: {} tickets", tickets.len()),
            ),
            (Ask::Close, Some(line)) => {
                let actor = format!("{platform}:{user}");
                self.rules(now)
                    .run_command(tx, &actor, &Action::Close, line.id)
                    .await?;
                store::sla::reschedule(tx, line.id, &self.settings.current().policies).await?;
                ("", Some(line), format!("/close: {} closed", line.number))
            }
            _ => ("nothing_open", None, "nothing open".to_string()),
        };
        // A closed ticket's own notice answers /close.
        if !kind.is_empty() {
            self.notifier
                .chat_answer(
                    tx,
                    (kind, listed(&tickets)),
                    ((platform, chat), language),
                    now,
                )
                .await?;
        }
        let hash = hash("");
        let mut entry = journal_entry(journal, &hash, now);
        entry.outcome = OutcomeKind::Command.as_str();
        entry.reason = Some(&what);
        entry.ticket_id = ticket.map(|l| l.id);
        t::journal(tx, &entry).await?;
        Ok(outcome(
            OutcomeKind::Command,
            ticket.map(|l| l.number.clone()),
            Some(what),
        ))
    }
}

/// The journal's content hash of a chat text.
pub(super) fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub(super) fn journal_entry<'a>(
    (source, key): (&'a str, &'a str),
    hash: &'a str,
    now: i64,
) -> JournalEntry<'a> {
    JournalEntry {
        source,
        source_key: key,
        message_id: None,
        content_hash: hash,
        outcome: "",
        reason: None,
        ticket_id: None,
        comment_id: None,
        now,
    }
}

/// What a batch of customers' chat messages will look up, one query each:
/// their dedupe keys and their contacts.
async fn read_ahead(tx: &mut Tx, updates: &[ChatUpdate]) -> store::Result<()> {
    let messages: Vec<&ChatMessage> = updates
        .iter()
        .filter_map(|u| match &u.intake {
            Intake::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    let keys: Vec<&str> = messages.iter().map(|m| m.key.as_str()).collect();
    t::read_ahead_message_ids(tx, &keys).await?;
    for platform in [Channel::Telegram, Channel::Discord] {
        let mut users: Vec<String> = (messages.iter())
            .filter(|m| m.platform == platform)
            .map(|m| m.user.to_string())
            .collect();
        users.sort_unstable();
        users.dedup();
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        if !users.is_empty() {
            directory::read_ahead_contacts(tx, platform.as_str(), &users).await?;
        }
    }
    Ok(())
}

/// What the `chat_answer` template says to a refused message.
fn refusal_kind(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Greeting => "greeting",
        Refusal::NoWords => "no_words",
        Refusal::UnknownCommand => "unknown_command",
    }
}

/// What rules see of a chat message.
fn chat_facts(source: &str, m: &ChatMessage) -> apply::Message {
    let facts = crate::rules::Facts {
        subject: subject_of(&m.text),
        body: m.text.clone(),
        from: format!("{}:{}", m.platform, m.user),
        channel: m.platform.as_str().into(),
        mailbox: source.into(),
        language: m.language.clone(),
        author: Some(AuthorKind::Requester.as_str().into()),
        attachment_names: m.files.iter().map(|f| f.name.clone()).collect(),
        ..crate::rules::Facts::default()
    };
    apply::Message {
        facts,
        message_id: None,
    }
}
