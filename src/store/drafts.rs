//! New tickets as drafts: in a transaction that holds its appends back, a
//! new ticket is kept in memory while the rules work on it (category,
//! priority, team, assignee and tags change the draft, not a row) and is
//! inserted once, with its final fields, when the message that opened it is
//! done ([`flush`]) or at commit. A change the draft cannot take (a status
//! change, a link, the SLA clocks read back) flushes it first.

use super::rows::{AnyQuery, insert_rows, insert_rows_then};
use super::{Result, Tx};
use crate::clock::Timestamp;
use crate::sla::Due;
use crate::ticket::{Channel, Priority};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use std::sync::Arc;

/// A new ticket's row and tags, not written yet.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub id: i64,
    pub number: String,
    pub subject: String,
    pub priority: Priority,
    pub category: String,
    pub requester_id: i64,
    pub organization_id: Option<i64>,
    pub channel: Channel,
    pub language: Option<String>,
    pub auto_generated: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub team_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub due: Due,
    pub tags: Vec<String>,
}

/// Teams by name and agents by lower-cased email (id, email, name): what
/// a draft's team and assignee are checked against.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    pub teams: HashMap<String, i64>,
    pub agents: HashMap<String, (i64, String, String)>,
}

/// The teams and agents, read once per transaction.
pub(crate) async fn directory(tx: &mut Tx) -> Result<Arc<Directory>> {
    if let Some(known) = tx.held().and_then(|held| held.directory.clone()) {
        return Ok(known);
    }
    let mut directory = Directory::default();
    for r in sqlx::query("SELECT id, name FROM teams")
        .fetch_all(&mut **tx)
        .await?
    {
        directory.teams.insert(r.try_get(1)?, r.try_get(0)?);
    }
    for r in sqlx::query("SELECT id, email, name FROM agents")
        .fetch_all(&mut **tx)
        .await?
    {
        let email: String = r.try_get(1)?;
        let agent = (r.try_get(0)?, email.clone(), r.try_get(2)?);
        directory.agents.insert(email.to_lowercase(), agent);
    }
    let directory = Arc::new(directory);
    if let Some(held) = tx.held() {
        held.directory = Some(directory.clone());
    }
    Ok(directory)
}

/// The draft of ticket `id`, if it is one.
pub(crate) fn draft(tx: &mut Tx, id: i64) -> Option<&mut Draft> {
    tx.held().and_then(|held| held.drafts.get_mut(&id))
}

/// Keeps a new ticket as a draft.
pub(crate) fn hold(tx: &mut Tx, draft: Draft) {
    if let Some(held) = tx.held() {
        held.drafts.insert(draft.id, draft);
    }
}

/// Writes ticket `id` now if it is a draft: before anything that needs its
/// row, and when the message that opened it is done. Its tags are written
/// at commit with the others'.
pub async fn flush(tx: &mut Tx, id: i64) -> Result<()> {
    let Some(draft) = tx.held().and_then(|held| held.drafts.remove(&id)) else {
        return Ok(());
    };
    let tags = write_tickets(tx, vec![draft]).await?;
    if let Some(held) = tx.held() {
        held.tags.extend(tags);
    }
    Ok(())
}

/// The columns of a ticket's row, in the order [`bind`] binds them.
const INSERT: &str = "INSERT INTO tickets (id, number, subject, status, priority, category,
     requester_id, organization_id, channel, language, auto_generated, created_at, updated_at,
     team_id, assignee_id, first_response_due, resolution_due)";

/// Inserts drafts; returns their tags, to be written after them.
pub(crate) async fn write_tickets(
    conn: &mut AnyConnection,
    drafts: Vec<Draft>,
) -> Result<Vec<(i64, String)>> {
    let tags: Vec<(i64, String)> = drafts
        .iter()
        .flat_map(|d| d.tags.iter().map(|t| (d.id, t.clone())))
        .collect();
    insert_rows(conn, INSERT, 17, drafts, bind).await?;
    Ok(tags)
}

/// Inserts tags of new tickets.
pub(crate) async fn write_tags(conn: &mut AnyConnection, tags: Vec<(i64, String)>) -> Result<()> {
    let insert = "INSERT INTO ticket_tags (ticket_id, tag)";
    let then = "ON CONFLICT (ticket_id, tag) DO NOTHING";
    insert_rows_then(conn, insert, 2, tags, then, |query, (id, tag)| {
        query.bind(id).bind(tag)
    })
    .await
}

fn bind(query: AnyQuery<'_>, d: Draft) -> AnyQuery<'_> {
    query
        .bind(d.id)
        .bind(d.number)
        .bind(d.subject)
        .bind("new")
        .bind(d.priority.as_str())
        .bind(d.category)
        .bind(d.requester_id)
        .bind(d.organization_id)
        .bind(d.channel.as_str())
        .bind(d.language)
        .bind(i64::from(d.auto_generated))
        .bind(d.created_at)
        .bind(d.updated_at)
        .bind(d.team_id)
        .bind(d.assignee_id)
        .bind(d.due.first_response)
        .bind(d.due.resolution)
}
