//! Writes inside an ingest transaction: tickets, comments, attachments, message
//! ids, links, history and the journal. Every change to a ticket's fields goes
//! through [`set_status`] (and its siblings as they come), which also writes
//! the history row.

use super::rows::{insert_rows, insert_rows_then, parameter_list, rows_per_insert};
use super::{Error, Result, Tx};
use crate::clock::Timestamp;
use crate::sla::Due;
use crate::thread::{LinkKind, TicketFacts};
use crate::ticket::{Channel, Priority, Status, format_number};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// Takes the next ticket number for `year`. The sequence row is updated inside
/// the caller's transaction, so numbers are unique and a rollback leaves no gap.
/// A transaction that defers its appends gets a placeholder instead, replaced
/// by the real number at commit.
pub async fn next_number(tx: &mut Tx, prefix: &str, year: i32) -> Result<String> {
    if let Some(held) = tx.held() {
        return Ok(held.numbering.placeholder(prefix, year));
    }
    let seq: i64 = sqlx::query(
        "INSERT INTO ticket_sequences (year, last) VALUES ($1, 1)
         ON CONFLICT (year) DO UPDATE SET last = ticket_sequences.last + 1
         RETURNING last",
    )
    .bind(i64::from(year))
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    Ok(format_number(prefix, year, seq))
}

pub struct NewTicket<'a> {
    pub number: &'a str,
    pub subject: &'a str,
    pub priority: Priority,
    /// The requester, and where they are reached on the ticket's channel
    /// (an email address, or `telegram:USER_ID`).
    pub requester: (&'a super::directory::Contact, &'a str),
    pub channel: Channel,
    pub language: Option<&'a str>,
    pub auto_generated: bool,
    /// Team name; an unknown name leaves the ticket without a team.
    pub team: Option<&'a str>,
    /// Due times known at creation (else the caller reschedules the clocks).
    pub due: Due,
    pub actor: &'a str,
    pub now: Timestamp,
}

/// Opens a ticket as a draft: the transaction knows it at once (as rules and
/// notifications see it), and its row is written once, with the fields the
/// rules gave it, when its message is done ([`super::drafts::flush`]).
/// From here the transaction holds its appends back.
pub async fn create_ticket(tx: &mut Tx, t: &NewTicket<'_>) -> Result<i64> {
    // A draft lives in what the transaction holds back.
    tx.defer_appends();
    let id = hold_ticket(tx, t).await?;
    history(
        tx,
        id,
        t.actor,
        "created",
        None,
        Some(t.number),
        None,
        t.now,
    )
    .await?;
    Ok(id)
}

/// A new ticket as a draft, written when its message is done.
async fn hold_ticket(tx: &mut Tx, t: &NewTicket<'_>) -> Result<i64> {
    let id = super::ids::next(tx, super::ids::Table::Tickets).await?;
    let team_id = match t.team {
        Some(team) => super::drafts::directory(tx).await?.teams.get(team).copied(),
        None => None,
    };
    let draft = super::drafts::Draft {
        id,
        number: t.number.to_string(),
        subject: t.subject.to_string(),
        priority: t.priority,
        category: "other".to_string(),
        requester_id: t.requester.0.id,
        organization_id: t.requester.0.organization_id,
        channel: t.channel,
        language: t.language.map(String::from),
        auto_generated: t.auto_generated,
        created_at: t.now,
        updated_at: t.now,
        team_id,
        assignee_id: None,
        due: t.due,
        tags: match t.auto_generated {
            true => vec!["auto-generated".to_string()],
            false => Vec::new(),
        },
    };
    let (contact, address) = t.requester;
    super::state::remember(
        tx,
        &super::state::TicketState {
            id,
            number: draft.number.clone(),
            subject: draft.subject.clone(),
            status: Status::New,
            priority: t.priority,
            category: draft.category.clone(),
            channel: t.channel,
            language: draft.language.clone(),
            requester: address.to_string(),
            requester_name: contact.name.clone(),
            assignee: None,
            assignee_name: None,
            // The row names a team only if it exists.
            team: team_id.and(t.team).map(String::from),
            organization: contact.organization.clone(),
            tags: draft.tags.clone(),
            created_at: t.now,
            updated_at: t.now,
            first_response_due: t.due.first_response,
            resolution_due: t.due.resolution,
        },
    );
    super::drafts::hold(tx, draft);
    if let Some(held) = tx.held() {
        held.created.insert(id, t.now);
    }
    Ok(id)
}

pub use super::comments::{NewComment, StoredAttachment, add_attachment, add_comment};
pub use super::history::history;
pub use crate::ticket::AuthorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

pub async fn record_message_id(
    tx: &mut Tx,
    message_id: &str,
    ticket_id: i64,
    comment_id: Option<i64>,
    direction: Direction,
    now: Timestamp,
) -> Result<()> {
    let row = MessageIdRow {
        message_id: message_id.to_string(),
        ticket_id,
        comment_id,
        direction,
        at: now,
    };
    match tx.held() {
        Some(held) => held.message_ids.push(row),
        None => write_message_ids(tx, vec![row]).await?,
    }
    Ok(())
}

/// A Message-ID of a ticket's thread.
pub(crate) struct MessageIdRow {
    pub message_id: String,
    pub ticket_id: i64,
    comment_id: Option<i64>,
    direction: Direction,
    pub at: Timestamp,
}

pub(crate) async fn write_message_ids(
    conn: &mut AnyConnection,
    rows: Vec<MessageIdRow>,
) -> Result<()> {
    let insert =
        "INSERT INTO message_ids (message_id, ticket_id, comment_id, direction, created_at)";
    insert_rows(conn, insert, 5, rows, |query, r| {
        query
            .bind(r.message_id)
            .bind(r.ticket_id)
            .bind(r.comment_id)
            .bind(r.direction.as_str())
            .bind(r.at)
    })
    .await
}

/// A known Message-ID: its ticket, and whether we received or sent it.
#[derive(Clone, Copy)]
pub struct KnownMessage {
    pub ticket_id: i64,
    pub direction: Direction,
}

impl KnownMessage {
    /// From a row of (ticket_id, direction) at `first`.
    fn from_row(row: &sqlx::any::AnyRow, first: usize) -> Result<KnownMessage> {
        let direction: String = row.try_get(first + 1)?;
        Ok(KnownMessage {
            ticket_id: row.try_get(first)?,
            direction: if direction == "out" {
                Direction::Out
            } else {
                Direction::In
            },
        })
    }
}

pub async fn known_message(tx: &mut Tx, message_id: &str) -> Result<Option<KnownMessage>> {
    if let Some(held) = tx.held() {
        if let Some(row) = held.message_ids.iter().find(|r| r.message_id == message_id) {
            return Ok(Some(KnownMessage {
                ticket_id: row.ticket_id,
                direction: row.direction,
            }));
        }
        if let Some(known) = held.known_messages.get(message_id) {
            return Ok(*known);
        }
    }
    let row = sqlx::query("SELECT ticket_id, direction FROM message_ids WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| KnownMessage::from_row(&r, 0)).transpose()
}

/// Reads which of `message_ids` are stored, in one query, for a batch that
/// will ask [`known_message`] about each of them (it then answers from
/// memory). Only in a transaction that holds its appends back.
pub async fn read_ahead_message_ids(tx: &mut Tx, message_ids: &[&str]) -> Result<()> {
    if tx.held().is_none() {
        return Ok(());
    }
    let mut found: HashMap<String, KnownMessage> = HashMap::new();
    for chunk in message_ids.chunks(rows_per_insert(1)) {
        let sql = format!(
            "SELECT message_id, ticket_id, direction FROM message_ids WHERE message_id IN ({})",
            parameter_list(1, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            found.insert(row.try_get(0)?, KnownMessage::from_row(&row, 1)?);
        }
    }
    if let Some(held) = tx.held() {
        for id in message_ids {
            held.known_messages
                .insert(id.to_string(), found.get(*id).copied());
        }
    }
    Ok(())
}

pub async fn ticket_id_by_number(tx: &mut Tx, number: &str) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT id FROM tickets WHERE number = $1")
        .bind(number)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// The contact's newest unresolved ticket (new, open or pending) opened on
/// `channel`: id, number and status.
pub async fn open_ticket_of(
    tx: &mut Tx,
    contact_id: i64,
    channel: Channel,
) -> Result<Option<(i64, String, Status)>> {
    let row = sqlx::query(
        "SELECT id, number, status FROM tickets
         WHERE requester_id = $1 AND channel = $2 AND status IN ('new', 'open', 'pending')
         ORDER BY id DESC LIMIT 1",
    )
    .bind(contact_id)
    .bind(channel.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get(0)?,
            r.try_get(1)?,
            super::state::word(&r, "status")?,
        ))
    })
    .transpose()
}

pub async fn ticket_number(tx: &mut Tx, id: i64) -> Result<Option<String>> {
    let row = sqlx::query("SELECT number FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// What threading needs to know about a ticket.
pub async fn ticket_facts(tx: &mut Tx, id: i64) -> Result<Option<TicketFacts>> {
    let Some(row) = sqlx::query(
        "SELECT t.number, t.status, t.closed_at, i.address, t.subject, t.language, a.email
         FROM tickets t
         LEFT JOIN contact_identities i ON i.contact_id = t.requester_id AND i.kind = 'email'
         LEFT JOIN agents a ON a.id = t.assignee_id
         WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let participants = participants(tx, id).await?;
    Ok(Some(TicketFacts {
        id,
        number: row.try_get(0)?,
        subject: row.try_get(4)?,
        language: row.try_get(5)?,
        status: super::state::word(&row, "status")?,
        closed_at: row.try_get(2)?,
        requester: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
        assignee: row.try_get(6)?,
        participants,
    }))
}

/// The first column of every row `sql` returns for ticket `id` (bound as $1).
pub async fn strings_of(tx: &mut Tx, sql: &'static str, id: i64) -> Result<Vec<String>> {
    Ok(sqlx::query(sql)
        .bind(id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<Vec<String>, _>>()?)
}

/// A ticket's participants: those stored and those held in this transaction.
pub async fn participants(tx: &mut Tx, ticket_id: i64) -> Result<Vec<String>> {
    let mut emails = strings_of(
        tx,
        "SELECT email FROM ticket_participants WHERE ticket_id = $1",
        ticket_id,
    )
    .await?;
    if let Some(held) = tx.held() {
        for (_, email) in held.participants.iter().filter(|(id, _)| *id == ticket_id) {
            if !emails.contains(email) {
                emails.push(email.clone());
            }
        }
    }
    Ok(emails)
}

/// Adds participants to a ticket (those already on it stay once). A
/// transaction that defers its appends holds them until commit.
pub async fn add_participants(tx: &mut Tx, ticket_id: i64, emails: &[&str]) -> Result<()> {
    let rows: Vec<(i64, String)> = emails.iter().map(|e| (ticket_id, e.to_string())).collect();
    match tx.held() {
        Some(held) => {
            for row in rows {
                if !held.participants.contains(&row) {
                    held.participants.push(row);
                }
            }
            Ok(())
        }
        None => write_participants(tx, rows).await,
    }
}

pub(crate) async fn write_participants(
    conn: &mut AnyConnection,
    rows: Vec<(i64, String)>,
) -> Result<()> {
    let insert = "INSERT INTO ticket_participants (ticket_id, email)";
    let then = "ON CONFLICT (ticket_id, email) DO NOTHING";
    insert_rows_then(conn, insert, 2, rows, then, |query, (id, email)| {
        query.bind(id).bind(email)
    })
    .await
}

/// Links two tickets and notes it in both histories.
pub async fn link(
    tx: &mut Tx,
    ticket_id: i64,
    related_id: i64,
    kind: LinkKind,
    actor: &str,
    now: Timestamp,
) -> Result<()> {
    super::drafts::flush(tx, ticket_id).await?;
    sqlx::query("INSERT INTO ticket_links (ticket_id, related_id, kind) VALUES ($1, $2, $3)")
        .bind(ticket_id)
        .bind(related_id)
        .bind(kind.as_str())
        .execute(&mut **tx)
        .await?;
    let this = ticket_number(tx, ticket_id).await?;
    let other = ticket_number(tx, related_id).await?;
    let field = format!("related.{}", kind.as_str());
    history(
        tx,
        ticket_id,
        actor,
        &field,
        None,
        other.as_deref(),
        None,
        now,
    )
    .await?;
    history(
        tx,
        related_id,
        actor,
        &field,
        None,
        this.as_deref(),
        None,
        now,
    )
    .await?;
    Ok(())
}

/// Changes a ticket's status and records it in the history.
pub async fn set_status(
    tx: &mut Tx,
    ticket_id: i64,
    old: Status,
    new: Status,
    actor: &str,
    rule: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    super::drafts::flush(tx, ticket_id).await?;
    let closed_at = (new == Status::Closed).then_some(now);
    let resolved = matches!(new, Status::Resolved | Status::Closed);
    // `resolved_at` keeps the first resolution through closing; reopening clears it.
    sqlx::query(
        "UPDATE tickets SET status = $1, closed_at = $2, updated_at = $3,
            resolved_at = CASE WHEN $4 THEN COALESCE(resolved_at, $3) ELSE NULL END
         WHERE id = $5",
    )
    .bind(new.as_str())
    .bind(closed_at)
    .bind(now)
    .bind(resolved)
    .bind(ticket_id)
    .execute(&mut **tx)
    .await?;
    super::state::known(tx, ticket_id, |s| {
        s.status = new;
        s.updated_at = now;
    });
    super::sla::status_changed(tx, ticket_id, old, new, now).await?;
    history(
        tx,
        ticket_id,
        actor,
        "status",
        Some(old.as_str()),
        Some(new.as_str()),
        rule,
        now,
    )
    .await
}

/// One journal row: what happened to one inbound message.
pub struct JournalEntry<'a> {
    pub source: &'a str,
    pub source_key: &'a str,
    pub message_id: Option<&'a str>,
    pub content_hash: &'a str,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub ticket_id: Option<i64>,
    pub comment_id: Option<i64>,
    pub now: Timestamp,
}

pub async fn journal(tx: &mut Tx, e: &JournalEntry<'_>) -> Result<()> {
    let row = JournalRow {
        source: e.source.to_string(),
        source_key: e.source_key.to_string(),
        message_id: e.message_id.map(String::from),
        content_hash: e.content_hash.to_string(),
        outcome: e.outcome.to_string(),
        reason: e.reason.map(String::from),
        ticket_id: e.ticket_id,
        comment_id: e.comment_id,
        at: e.now,
    };
    match tx.held() {
        Some(held) => held.journal.push(row),
        None => write_journal(tx, vec![row]).await?,
    }
    Ok(())
}

/// A journal row as written.
pub(crate) struct JournalRow {
    source: String,
    source_key: String,
    message_id: Option<String>,
    content_hash: String,
    outcome: String,
    reason: Option<String>,
    ticket_id: Option<i64>,
    comment_id: Option<i64>,
    at: Timestamp,
}

pub(crate) async fn write_journal(conn: &mut AnyConnection, rows: Vec<JournalRow>) -> Result<()> {
    let insert =
        "INSERT INTO ingest_journal (source, source_key, message_id, content_hash, outcome,
                      reason, ticket_id, comment_id, created_at)";
    insert_rows(conn, insert, 9, rows, |query, r| {
        query
            .bind(r.source)
            .bind(r.source_key)
            .bind(r.message_id)
            .bind(r.content_hash)
            .bind(r.outcome)
            .bind(r.reason)
            .bind(r.ticket_id)
            .bind(r.comment_id)
            .bind(r.at)
    })
    .await
}

fn no_ticket(number: &str) -> Error {
    Error::Permanent(format!("no ticket {number}"))
}

/// The id of a ticket that must exist.
async fn existing_ticket_id(tx: &mut Tx, number: &str) -> Result<i64> {
    ticket_id_by_number(tx, number)
        .await?
        .ok_or_else(|| no_ticket(number))
}

impl super::Store {
    /// Changes a ticket's status on behalf of `actor` (an agent, a rule, a command),
    /// at the caller's clock time.
    pub async fn change_status(
        &self,
        number: &str,
        new: Status,
        actor: &str,
        now: Timestamp,
        policies: &crate::sla::Policies,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let id = existing_ticket_id(&mut tx, number).await?;
        let facts = ticket_facts(&mut tx, id)
            .await?
            .ok_or_else(|| no_ticket(number))?;
        set_status(&mut tx, id, facts.status, new, actor, None, now).await?;
        super::sla::reschedule(&mut tx, id, policies).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remembers the Message-ID of a message we sent for a ticket, so replies
    /// and bounces thread onto it.
    pub async fn record_sent_message_id(
        &self,
        number: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let id = existing_ticket_id(&mut tx, number).await?;
        record_message_id(&mut tx, message_id, id, None, Direction::Out, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl super::Store {
    /// Deletes ingest journal rows older than `before` (retention); returns
    /// how many.
    pub async fn prune_journal(&self, before: Timestamp) -> Result<u64> {
        let _turn = self.write_turn().await?;
        Ok(
            sqlx::query("DELETE FROM ingest_journal WHERE created_at < $1")
                .bind(before)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }
}
