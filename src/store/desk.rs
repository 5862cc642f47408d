//! What the chat desk reads inside its transaction: a customer's unresolved
//! tickets (`/status`), the lists agents ask for (`/tickets`) and a ticket's
//! latest comments (`/show`).

use super::{Result, Tx};
use crate::clock::Timestamp;
use crate::parse::command::Filter;
use sqlx::Row;

/// One line of a ticket list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub id: i64,
    pub number: String,
    pub subject: String,
    pub status: String,
    pub priority: String,
    pub channel: String,
    pub assignee: Option<String>,
}

/// The most lines a list shows.
pub const LIST_LIMIT: usize = 20;

macro_rules! lines_select {
    ($where:literal) => {
        concat!(
            "SELECT t.id, t.number, t.subject, t.status, t.priority, t.channel, a.email
             FROM tickets t LEFT JOIN agents a ON a.id = t.assignee_id
             WHERE t.status IN ('new', 'open', 'pending') AND ",
            $where,
            " ORDER BY t.id DESC LIMIT 21"
        )
    };
}

/// The unresolved tickets of the contact with this identity (`telegram`
/// and a user id), newest first.
pub async fn unresolved_of(tx: &mut Tx, (kind, address): (&str, &str)) -> Result<Vec<Line>> {
    let rows = sqlx::query(lines_select!(
        "t.requester_id = (SELECT contact_id FROM contact_identities
                           WHERE kind = $1 AND address = $2)"
    ))
    .bind(kind)
    .bind(address)
    .fetch_all(&mut **tx)
    .await?;
    lines(&rows)
}

/// Unresolved tickets, newest first, at most [`LIST_LIMIT`] + 1 (so the
/// caller can tell there are more); `me` is the asking agent's email.
pub async fn list(tx: &mut Tx, filter: Filter, me: &str, now: Timestamp) -> Result<Vec<Line>> {
    let query = match filter {
        Filter::All => sqlx::query(lines_select!("1 = 1")),
        Filter::Mine => sqlx::query(lines_select!("lower(a.email) = lower($1)")).bind(me),
        Filter::Unassigned => sqlx::query(lines_select!("t.assignee_id IS NULL")),
        Filter::Breached => sqlx::query(lines_select!(
            "(t.first_response_due < $1 OR t.resolution_due < $1)"
        ))
        .bind(now),
    };
    let rows = query.fetch_all(&mut **tx).await?;
    lines(&rows)
}

fn lines(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Line>> {
    rows.iter()
        .map(|r| {
            Ok(Line {
                id: r.try_get(0)?,
                number: r.try_get(1)?,
                subject: r.try_get(2)?,
                status: r.try_get(3)?,
                priority: r.try_get(4)?,
                channel: r.try_get(5)?,
                assignee: r.try_get(6)?,
            })
        })
        .collect()
}

/// A ticket's latest comments, oldest first: (author, internal, body).
pub async fn latest_comments(
    tx: &mut Tx,
    ticket_id: i64,
    count: i64,
) -> Result<Vec<(String, bool, String)>> {
    let rows = sqlx::query(
        "SELECT id, author, internal, body FROM comments WHERE ticket_id = $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(ticket_id)
    .bind(count)
    .fetch_all(&mut **tx)
    .await?;
    let mut comments = rows
        .iter()
        .map(|r| {
            let comment = (r.try_get(1)?, super::flag(r, "internal")?, r.try_get(3)?);
            Ok((r.try_get::<i64, _>(0)?, comment))
        })
        .collect::<Result<Vec<_>>>()?;
    // Those held until commit (an ingest batch's) are the latest.
    if let Some(held) = tx.held() {
        comments.extend(
            held.comments
                .iter()
                .filter(|c| c.ticket_id == ticket_id)
                .map(|c| (c.id, (c.author.clone(), c.internal, c.body.clone()))),
        );
    }
    comments.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    comments.truncate(usize::try_from(count).unwrap_or(0));
    comments.reverse();
    Ok(comments.into_iter().map(|(_, c)| c).collect())
}

/// The number of the ticket whose thread this is (`platform`: `discord`).
pub async fn ticket_of_thread(tx: &mut Tx, platform: &str, thread: i64) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT t.number FROM chat_threads c JOIN tickets t ON t.id = c.ticket_id
         WHERE c.platform = $1 AND c.thread_id = $2",
    )
    .bind(platform)
    .bind(thread)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

impl super::Store {
    /// Whether `thread` is a ticket's thread (`platform`: `discord`).
    pub async fn chat_thread_exists(&self, platform: &str, thread: i64) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM chat_threads WHERE platform = $1 AND thread_id = $2")
            .bind(platform)
            .bind(thread)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// The ticket's thread in the agents' channel, if it has one.
    pub async fn chat_thread(&self, platform: &str, ticket_id: i64) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT thread_id FROM chat_threads WHERE platform = $1 AND ticket_id = $2",
        )
        .bind(platform)
        .bind(ticket_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Records a ticket's new thread; when another was recorded first, that
    /// one stays and is returned.
    pub async fn save_chat_thread(
        &self,
        platform: &str,
        (ticket_id, thread): (i64, i64),
        now: Timestamp,
    ) -> Result<i64> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "INSERT INTO chat_threads (platform, thread_id, ticket_id, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (platform, ticket_id) DO NOTHING",
        )
        .bind(platform)
        .bind(thread)
        .bind(ticket_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(self
            .chat_thread(platform, ticket_id)
            .await?
            .unwrap_or(thread))
    }
}
