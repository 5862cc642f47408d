//! Comments and their attachments. A transaction that defers its appends
//! (an ingest batch, the scheduler) gives each new comment an id at once,
//! from ids it takes ahead (a PostgreSQL sequence, or after SQLite's highest
//! under its write lock), and writes the comments and attachments at commit
//! with multi-row inserts, before the rows that point at them.

use super::numbers::Numbers;
use super::rows::{AnyQuery, insert_rows, placeholders};
use super::{Result, Tx};
use crate::clock::Timestamp;
use crate::ticket::{AuthorKind, Channel};
use sqlx::{AnyConnection, Row};

pub struct NewComment<'a> {
    pub ticket_id: i64,
    pub author: &'a str,
    pub author_kind: AuthorKind,
    pub body: &'a str,
    pub stripped: &'a str,
    pub internal: bool,
    pub channel: Channel,
    pub auto_generated: bool,
    pub message_id: Option<&'a str>,
    pub now: Timestamp,
}

/// A comment held until commit, with the id it was given.
pub(crate) struct CommentRow {
    pub id: i64,
    pub ticket_id: i64,
    pub author: String,
    pub internal: bool,
    pub body: String,
    author_kind: AuthorKind,
    stripped: String,
    channel: Channel,
    auto_generated: bool,
    message_id: Option<String>,
    at: Timestamp,
}

/// The columns of a comment but its id, in the order [`bind_comment`] binds.
const COLUMNS: &str = "ticket_id, author, author_kind, body, stripped, internal, channel,
     auto_generated, message_id, created_at";

impl CommentRow {
    fn of(id: i64, c: &NewComment<'_>) -> CommentRow {
        CommentRow {
            id,
            ticket_id: c.ticket_id,
            author: c.author.to_string(),
            author_kind: c.author_kind,
            body: c.body.to_string(),
            stripped: c.stripped.to_string(),
            internal: c.internal,
            channel: c.channel,
            auto_generated: c.auto_generated,
            message_id: c.message_id.map(String::from),
            at: c.now,
        }
    }

    pub(crate) fn renumber(&mut self, numbers: &Numbers) {
        numbers.replace_in_option(&mut self.message_id);
    }
}

pub async fn add_comment(tx: &mut Tx, c: &NewComment<'_>) -> Result<i64> {
    let id = if tx.held().is_some() {
        hold_comment(tx, c).await?
    } else {
        let values = placeholders(1, 10);
        let insert = format!("INSERT INTO comments ({COLUMNS}) VALUES {values} RETURNING id");
        bind_comment(
            sqlx::query(sqlx::AssertSqlSafe(insert)),
            CommentRow::of(0, c),
        )
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?
    };
    // A ticket created at this time in this transaction is up to date.
    let fresh = tx
        .held()
        .is_some_and(|held| held.created.get(&c.ticket_id) == Some(&c.now));
    if fresh {
        return Ok(id);
    }
    sqlx::query("UPDATE tickets SET updated_at = $1 WHERE id = $2")
        .bind(c.now)
        .bind(c.ticket_id)
        .execute(&mut **tx)
        .await?;
    super::state::known(tx, c.ticket_id, |s| s.updated_at = c.now);
    Ok(id)
}

async fn hold_comment(tx: &mut Tx, c: &NewComment<'_>) -> Result<i64> {
    let id = super::ids::next(tx, super::ids::Table::Comments).await?;
    let row = CommentRow::of(id, c);
    if let Some(held) = tx.held() {
        held.comments.push(row);
    }
    Ok(id)
}

pub(crate) async fn write_comments(conn: &mut AnyConnection, rows: Vec<CommentRow>) -> Result<()> {
    let insert = format!("INSERT INTO comments (id, {COLUMNS})");
    insert_rows(conn, &insert, 11, rows, |query, r| {
        bind_comment(query.bind(r.id), r)
    })
    .await
}

/// Binds a comment's [`COLUMNS`].
fn bind_comment(query: AnyQuery<'_>, r: CommentRow) -> AnyQuery<'_> {
    query
        .bind(r.ticket_id)
        .bind(r.author)
        .bind(r.author_kind.as_str())
        .bind(r.body)
        .bind(r.stripped)
        .bind(i64::from(r.internal))
        .bind(r.channel.as_str())
        .bind(i64::from(r.auto_generated))
        .bind(r.message_id)
        .bind(r.at)
}

/// An attachment whose content is already on disk (or was over the limit).
pub struct StoredAttachment {
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub stored: bool,
}

/// An attachment row held until commit.
pub(crate) struct AttachmentRow {
    ticket_id: i64,
    comment_id: i64,
    name: String,
    content_type: String,
    size: i64,
    sha256: String,
    stored: bool,
    at: Timestamp,
}

pub async fn add_attachment(
    tx: &mut Tx,
    ticket_id: i64,
    comment_id: i64,
    a: &StoredAttachment,
    now: Timestamp,
) -> Result<()> {
    let row = AttachmentRow {
        ticket_id,
        comment_id,
        name: a.name.clone(),
        content_type: a.content_type.clone(),
        size: a.size,
        sha256: a.sha256.clone(),
        stored: a.stored,
        at: now,
    };
    match tx.held() {
        Some(held) => held.attachments.push(row),
        None => write_attachments(tx, vec![row]).await?,
    }
    Ok(())
}

pub(crate) async fn write_attachments(
    conn: &mut AnyConnection,
    rows: Vec<AttachmentRow>,
) -> Result<()> {
    let insert = "INSERT INTO attachments (ticket_id, comment_id, name, content_type, size,
                      sha256, stored, created_at)";
    insert_rows(conn, insert, 8, rows, |query, r| {
        query
            .bind(r.ticket_id)
            .bind(r.comment_id)
            .bind(r.name)
            .bind(r.content_type)
            .bind(r.size)
            .bind(r.sha256)
            .bind(i64::from(r.stored))
            .bind(r.at)
    })
    .await
}
