//! Read side for the CLI and later the chat commands: ticket lists and details.

use super::{Result, Store};
use crate::clock::rfc3339;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, Serialize)]
pub struct TicketSummary {
    pub number: String,
    pub subject: String,
    pub status: String,
    pub priority: String,
    pub requester: String,
    pub assignee: Option<String>,
    pub updated_at: String,
    /// The next SLA breach time (first response or resolution), if any.
    pub sla_due: Option<String>,
    /// Seconds until `sla_due` at the time of the query (negative: overdue).
    pub sla_remaining: Option<i64>,
    /// An SLA target of this ticket was missed.
    pub sla_breached: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommentView {
    pub author: String,
    pub author_kind: String,
    pub body: String,
    pub stripped: String,
    pub internal: bool,
    pub auto_generated: bool,
    pub channel: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentView {
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub stored: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    pub actor: String,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub rule: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    pub event: String,
    pub channel: String,
    pub recipient: String,
    /// pending, sent, failed or suppressed.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TicketDetail {
    pub number: String,
    pub subject: String,
    pub status: String,
    pub priority: String,
    pub category: String,
    pub requester: Person,
    pub organization: Option<String>,
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub tags: Vec<String>,
    pub auto_generated: bool,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    /// SLA: when the first response came, and the breach times still ahead.
    pub first_response_at: Option<String>,
    pub first_response_due: Option<String>,
    pub resolution_due: Option<String>,
    pub comments: Vec<CommentView>,
    pub attachments: Vec<AttachmentView>,
    pub related: Vec<String>,
    pub history: Vec<HistoryView>,
    pub notifications: Vec<NotificationView>,
}

fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

// What `ticket_detail` reads about one ticket (`$1`: its id).
const TAGS_SQL: &str = "SELECT tag FROM ticket_tags WHERE ticket_id = $1 ORDER BY tag";
const COMMENTS_SQL: &str =
    "SELECT author, author_kind, body, stripped, internal, auto_generated, channel, created_at
     FROM comments WHERE ticket_id = $1 ORDER BY id";
const ATTACHMENTS_SQL: &str = "SELECT name, content_type, size, sha256, stored FROM attachments
     WHERE ticket_id = $1 ORDER BY id";
const RELATED_SQL: &str = "SELECT t.number FROM ticket_links l JOIN tickets t ON t.id = l.related_id WHERE l.ticket_id = $1
     UNION
     SELECT t.number FROM ticket_links l JOIN tickets t ON t.id = l.ticket_id WHERE l.related_id = $1
     ORDER BY 1";
const NOTIFICATIONS_SQL: &str =
    "SELECT event, channel, recipient, status, attempts, last_error, created_at
     FROM outbox WHERE ticket_id = $1 ORDER BY id";
const HISTORY_SQL: &str =
    "SELECT actor, field, old_value, new_value, rule, created_at FROM ticket_history
     WHERE ticket_id = $1 ORDER BY id";

impl CommentView {
    fn from_row(r: &AnyRow) -> Result<CommentView> {
        Ok(CommentView {
            author: r.try_get("author")?,
            author_kind: r.try_get("author_kind")?,
            body: r.try_get("body")?,
            stripped: r.try_get("stripped")?,
            internal: flag(r, "internal")?,
            auto_generated: flag(r, "auto_generated")?,
            channel: r.try_get("channel")?,
            created_at: rfc3339(r.try_get("created_at")?),
        })
    }
}

impl AttachmentView {
    fn from_row(r: &AnyRow) -> Result<AttachmentView> {
        Ok(AttachmentView {
            name: r.try_get("name")?,
            content_type: r.try_get("content_type")?,
            size: r.try_get("size")?,
            sha256: r.try_get("sha256")?,
            stored: flag(r, "stored")?,
        })
    }
}

impl NotificationView {
    fn from_row(r: &AnyRow) -> Result<NotificationView> {
        Ok(NotificationView {
            event: r.try_get("event")?,
            channel: r.try_get("channel")?,
            recipient: r.try_get("recipient")?,
            status: r.try_get("status")?,
            attempts: r.try_get("attempts")?,
            last_error: r.try_get("last_error")?,
            created_at: rfc3339(r.try_get("created_at")?),
        })
    }
}

impl HistoryView {
    fn from_row(r: &AnyRow) -> Result<HistoryView> {
        Ok(HistoryView {
            actor: r.try_get("actor")?,
            field: r.try_get("field")?,
            old: r.try_get("old_value")?,
            new: r.try_get("new_value")?,
            rule: r.try_get("rule")?,
            at: rfc3339(r.try_get("created_at")?),
        })
    }
}

impl Store {
    /// Tickets, newest activity first, optionally with one status.
    pub async fn list_tickets(
        &self,
        status: Option<&str>,
        limit: i64,
        now: i64,
    ) -> Result<Vec<TicketSummary>> {
        let rows = sqlx::query(
            "SELECT t.number, t.subject, t.status, t.priority, i.address AS requester,
                    a.email AS assignee, t.updated_at, t.first_response_due, t.resolution_due,
                    EXISTS (SELECT 1 FROM sla_timers s WHERE s.ticket_id = t.id
                            AND s.kind LIKE '%.breach' AND s.fired_at IS NOT NULL) AS breached
             FROM tickets t
             LEFT JOIN contact_identities i ON i.contact_id = t.requester_id AND i.kind = 'email'
             LEFT JOIN agents a ON a.id = t.assignee_id
             WHERE ($1 = '' OR t.status = $1)
             ORDER BY t.updated_at DESC, t.id DESC
             LIMIT $2",
        )
        .bind(status.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let first: Option<i64> = r.try_get("first_response_due")?;
                let resolution: Option<i64> = r.try_get("resolution_due")?;
                let next = first.into_iter().chain(resolution).min();
                let breached = super::flag(r, "breached")?;
                Ok(TicketSummary {
                    number: r.try_get("number")?,
                    subject: r.try_get("subject")?,
                    status: r.try_get("status")?,
                    priority: r.try_get("priority")?,
                    requester: r
                        .try_get::<Option<String>, _>("requester")?
                        .unwrap_or_default(),
                    assignee: r.try_get("assignee")?,
                    updated_at: rfc3339(r.try_get("updated_at")?),
                    sla_due: next.map(rfc3339),
                    sla_remaining: next.map(|d| d - now),
                    sla_breached: breached,
                })
            })
            .collect()
    }

    /// One ticket with its comments, attachments, links and history.
    pub async fn ticket_detail(&self, number: &str) -> Result<Option<TicketDetail>> {
        let Some(t) = sqlx::query(
            "SELECT t.id, t.number, t.subject, t.status, t.priority, t.category,
                    i.address AS email, c.name AS name, o.name AS organization,
                    a.email AS assignee, tm.name AS team, t.auto_generated,
                    t.created_at, t.updated_at, t.closed_at, t.first_response_at,
                    t.first_response_due, t.resolution_due
             FROM tickets t
             JOIN contacts c ON c.id = t.requester_id
             LEFT JOIN contact_identities i ON i.contact_id = c.id AND i.kind = 'email'
             LEFT JOIN organizations o ON o.id = t.organization_id
             LEFT JOIN agents a ON a.id = t.assignee_id
             LEFT JOIN teams tm ON tm.id = t.team_id
             WHERE t.number = $1",
        )
        .bind(number)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let id: i64 = t.try_get("id")?;

        let tags = self.rows_of(TAGS_SQL, id, |r| Ok(r.try_get(0)?)).await?;
        let comments = self
            .rows_of(COMMENTS_SQL, id, CommentView::from_row)
            .await?;
        let attachments = self
            .rows_of(ATTACHMENTS_SQL, id, AttachmentView::from_row)
            .await?;
        let related = self.rows_of(RELATED_SQL, id, |r| Ok(r.try_get(0)?)).await?;
        let notifications = self
            .rows_of(NOTIFICATIONS_SQL, id, NotificationView::from_row)
            .await?;
        let history = self.rows_of(HISTORY_SQL, id, HistoryView::from_row).await?;

        Ok(Some(TicketDetail {
            number: t.try_get("number")?,
            subject: t.try_get("subject")?,
            status: t.try_get("status")?,
            priority: t.try_get("priority")?,
            category: t.try_get("category")?,
            requester: Person {
                email: t.try_get::<Option<String>, _>("email")?.unwrap_or_default(),
                name: t.try_get("name")?,
            },
            organization: t.try_get("organization")?,
            assignee: t.try_get("assignee")?,
            team: t.try_get("team")?,
            tags,
            auto_generated: flag(&t, "auto_generated")?,
            created_at: rfc3339(t.try_get("created_at")?),
            updated_at: rfc3339(t.try_get("updated_at")?),
            closed_at: t.try_get::<Option<i64>, _>("closed_at")?.map(rfc3339),
            first_response_at: t
                .try_get::<Option<i64>, _>("first_response_at")?
                .map(rfc3339),
            first_response_due: t
                .try_get::<Option<i64>, _>("first_response_due")?
                .map(rfc3339),
            resolution_due: t.try_get::<Option<i64>, _>("resolution_due")?.map(rfc3339),
            comments,
            attachments,
            related,
            history,
            notifications,
        }))
    }

    /// The rows of `sql` about ticket `id` (its only parameter), mapped.
    async fn rows_of<T>(
        &self,
        sql: &'static str,
        id: i64,
        map: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = sqlx::query(sql).bind(id).fetch_all(&self.pool).await?;
        rows.iter().map(map).collect()
    }

    /// The journal rows for one source key, oldest first: (outcome, reason).
    pub async fn journal_for(
        &self,
        source: &str,
        source_key: &str,
    ) -> Result<Vec<(String, Option<String>)>> {
        sqlx::query("SELECT outcome, reason FROM ingest_journal WHERE source = $1 AND source_key = $2 ORDER BY id")
            .bind(source)
            .bind(source_key)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// A ticket as `rules replay` sees it: what it looked like when it was
/// created, and the changes rules made to it.
#[derive(Debug, Clone)]
pub struct ReplayTicket {
    pub number: String,
    pub subject: String,
    pub channel: String,
    pub requester: String,
    pub body: String,
    pub created_at: i64,
    /// (rule, field, old, new) from the history, in order.
    pub rule_changes: Vec<(String, String, Option<String>, Option<String>)>,
}

impl Store {
    /// Tickets created in `[from, to]`, oldest first.
    pub async fn replay_tickets(&self, from: i64, to: i64) -> Result<Vec<ReplayTicket>> {
        let rows = sqlx::query(
            "SELECT t.id, t.number, t.subject, t.channel, t.created_at,
                    COALESCE(i.address, '') AS requester,
                    COALESCE((SELECT c.body FROM comments c WHERE c.ticket_id = t.id
                              ORDER BY c.id LIMIT 1), '') AS body
             FROM tickets t
             LEFT JOIN contact_identities i ON i.contact_id = t.requester_id AND i.kind = 'email'
             WHERE t.created_at >= $1 AND t.created_at <= $2
             ORDER BY t.created_at, t.id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let rule_changes = sqlx::query(
                "SELECT rule, field, old_value, new_value FROM ticket_history
                 WHERE ticket_id = $1 AND rule IS NOT NULL ORDER BY id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|h| Ok((h.try_get(0)?, h.try_get(1)?, h.try_get(2)?, h.try_get(3)?)))
            .collect::<Result<Vec<_>>>()?;
            out.push(ReplayTicket {
                number: r.try_get("number")?,
                subject: r.try_get("subject")?,
                channel: r.try_get("channel")?,
                requester: r.try_get("requester")?,
                body: r.try_get("body")?,
                created_at: r.try_get("created_at")?,
                rule_changes,
            });
        }
        Ok(out)
    }
}
