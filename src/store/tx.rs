//! A write transaction on the store. Four tables are only appended to:
//! the ticket history, the outbox, the Message-IDs and the ingest journal. A
//! transaction that writes many of those rows (the scheduler's and the ingest
//! batches) can hold them back
//! with [`Tx::defer_appends`] and write them with multi-row inserts at
//! commit. The reads that must see them in the same transaction (the thread's
//! Message-IDs, the automatic-mail rate limit) merge the held rows in.
//! Comments (with ids taken ahead), attachments, ticket participants and
//! new tickets' breach timers are held the same way.
//! Such a transaction also takes its new tickets' numbers at commit
//! ([`super::numbers`]) and puts them into the held rows before writing them.

use super::changes::Rotation;
use super::comments::{self, AttachmentRow, CommentRow};
use super::directory::Contact;
use super::drafts::{Directory, Draft};
use super::history::{self, HistoryRow};
use super::ids::{IdsAhead, Table};
use super::numbers::{self, Numbering, Numbers};
use super::outbox::{self, NewNotification};
use super::state::TicketState;
use super::tickets::{self, JournalRow, KnownMessage, MessageIdRow};
use super::{Backend, Result, Store};
use crate::clock::Timestamp;
use crate::sla::Timer;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use tokio::sync::OwnedMutexGuard;

pub struct Tx {
    inner: Transaction<'static, Any>,
    backend: Backend,
    held: Option<Held>,
    /// Tickets as this transaction has read and changed them: read once,
    /// then kept up to date by every change (`changes`, status, comments,
    /// due times), so rules and notifications never read a ticket twice.
    pub(crate) tickets: HashMap<i64, TicketState>,
    /// The store's side pool (PostgreSQL), for rows other writers must see
    /// before this transaction ends.
    side: Option<AnyPool>,
    /// SQLite: this process's turn to write, until the transaction ends.
    _turn: Option<OwnedMutexGuard<()>>,
}

/// Rows held back until commit, and what was read of their tables.
#[derive(Default)]
pub(crate) struct Held {
    pub history: Vec<HistoryRow>,
    pub outbox: Vec<(NewNotification, Timestamp)>,
    pub message_ids: Vec<MessageIdRow>,
    pub journal: Vec<JournalRow>,
    /// Tickets created in this transaction, with their creation time.
    pub created: HashMap<i64, Timestamp>,
    /// The stored Message-IDs of a ticket's thread, newest first, by
    /// (ticket, limit): read once per transaction.
    pub threads: HashMap<(i64, i64), Vec<(Timestamp, String)>>,
    /// Placeholder numbers of the tickets created so far.
    pub numbering: Numbering,
    /// Message-IDs read ahead for the batch: the stored row, or `None` when
    /// none was stored then.
    pub known_messages: HashMap<String, Option<KnownMessage>>,
    /// Stored automatic-mail counts read ahead by recipient: the windows
    /// they were counted for, and the counts (see `outbox::automatic_counts_since`).
    pub automatic_counts: HashMap<String, outbox::Counted>,
    /// Breach timers of tickets created in this transaction.
    pub sla_timers: Vec<(i64, Timer)>,
    /// Participants added in this transaction: (ticket, email), each once.
    pub participants: Vec<(i64, String)>,
    /// Comments added in this transaction, with the ids they were given,
    /// their attachments, and the ids taken ahead for the next ones.
    pub comments: Vec<CommentRow>,
    pub attachments: Vec<AttachmentRow>,
    comment_ids: IdsAhead,
    ticket_ids: IdsAhead,
    /// New tickets not written yet, by id (see `drafts`).
    pub drafts: std::collections::BTreeMap<i64, Draft>,
    /// Tags of new tickets written already, written at commit.
    pub tags: Vec<(i64, String)>,
    /// Teams and agents, read once when a draft needs them.
    pub directory: Option<std::sync::Arc<Directory>>,
    /// Contacts read ahead for the batch by (kind, address), and those it
    /// created: `None` when none existed then.
    pub contacts: HashMap<(&'static str, String), Option<Contact>>,
    /// Round-robin rotations read in this transaction: the team's members
    /// and the last pick, written back at commit.
    pub rotations: HashMap<String, Rotation>,
}

impl Held {
    pub(crate) fn ids(&mut self, table: Table) -> &mut IdsAhead {
        match table {
            Table::Tickets => &mut self.ticket_ids,
            Table::Comments => &mut self.comment_ids,
        }
    }

    /// Puts the real ticket numbers into the held rows.
    fn renumber(&mut self, numbers: &Numbers) {
        for row in &mut self.history {
            row.renumber(numbers);
        }
        for (n, _) in &mut self.outbox {
            n.renumber(numbers);
        }
        for row in &mut self.message_ids {
            numbers.replace_in(&mut row.message_id);
        }
        for row in &mut self.comments {
            row.renumber(numbers);
        }
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

impl Tx {
    pub(super) fn new(
        inner: Transaction<'static, Any>,
        backend: Backend,
        side: Option<AnyPool>,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Tx {
        Tx {
            inner,
            backend,
            held: None,
            tickets: HashMap::new(),
            side,
            _turn: turn,
        }
    }

    pub(super) fn backend(&self) -> Backend {
        self.backend
    }

    pub(super) fn side(&self) -> Option<&AnyPool> {
        self.side.as_ref()
    }

    /// From now on, history, outbox, Message-ID and journal rows are written at
    /// commit, and new tickets get their numbers then.
    pub fn defer_appends(&mut self) {
        self.held.get_or_insert_with(Held::default);
    }

    pub(crate) fn held(&mut self) -> Option<&mut Held> {
        self.held.as_mut()
    }

    /// Commits; returns the numbers given to tickets created with
    /// placeholders (none unless appends were deferred).
    pub async fn commit(mut self) -> Result<Numbers> {
        let mut numbers = Numbers::default();
        if let Some(mut held) = self.held.take() {
            // New tickets not written yet, then comments: the attachment, journal and Message-ID rows
            // point at them. These rows and the journal and timer rows name
            // no ticket number: written before the sequence rows are locked.
            let drafts = std::mem::take(&mut held.drafts).into_values().collect();
            let tags = super::drafts::write_tickets(&mut self.inner, drafts).await?;
            held.tags.extend(tags);
            super::drafts::write_tags(&mut self.inner, std::mem::take(&mut held.tags)).await?;
            let rows = std::mem::take(&mut held.comments);
            comments::write_comments(&mut self.inner, rows).await?;
            let rows = std::mem::take(&mut held.attachments);
            comments::write_attachments(&mut self.inner, rows).await?;
            tickets::write_journal(&mut self.inner, std::mem::take(&mut held.journal)).await?;
            let timers = std::mem::take(&mut held.sla_timers);
            super::sla::write_created_timers(&mut self.inner, timers).await?;
            let participants = std::mem::take(&mut held.participants);
            tickets::write_participants(&mut self.inner, participants).await?;
            let rotations = std::mem::take(&mut held.rotations);
            super::changes::write_rotations(&mut self.inner, rotations).await?;
            numbers = numbers::take(&mut self.inner, std::mem::take(&mut held.numbering)).await?;
            held.renumber(&numbers);
            outbox::write(&mut self.inner, held.outbox).await?;
            tickets::write_message_ids(&mut self.inner, held.message_ids).await?;
            history::write_history(&mut self.inner, held.history).await?;
        }
        self.inner.commit().await?;
        Ok(numbers)
    }

    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }
}

impl Store {
    /// Begins a write transaction. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so concurrent writers wait instead of failing.
    pub async fn begin(&self) -> Result<Tx> {
        let turn = self.write_turn().await?;
        let inner = match self.backend {
            super::Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            super::Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx::new(inner, self.backend, self.side.clone(), turn))
    }
}
