//! The outbox table: notifications waiting for delivery, and their fate.

use super::numbers::Numbers;
use super::rows::{insert_rows, parameter_list, rows_per_insert};
use super::{Result, Store, Tx};
use crate::clock::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// A notification ready to be written in the caller's transaction.
#[derive(Debug, Clone, Default)]
pub struct NewNotification {
    pub ticket_id: Option<i64>,
    pub event: String,
    pub channel: String,
    pub recipient: String,
    pub automatic: bool,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    /// Message-IDs of the thread, oldest first.
    pub references: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    /// `Some(reason)` records the notification as suppressed, never sent.
    pub suppressed: Option<String>,
}

impl NewNotification {
    /// Puts real ticket numbers in place of placeholders (see
    /// [`super::numbers`]) in everything that may mention one.
    pub(crate) fn renumber(&mut self, numbers: &Numbers) {
        for text in [&mut self.recipient, &mut self.subject, &mut self.body] {
            numbers.replace_in(text);
        }
        for text in [
            &mut self.message_id,
            &mut self.in_reply_to,
            &mut self.reply_to,
            &mut self.html,
        ] {
            numbers.replace_in_option(text);
        }
        for text in &mut self.references {
            numbers.replace_in(text);
        }
    }
}

/// A notification the dispatcher should send now.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub event: String,
    /// `email`, or `webhook` (the recipient is then the webhook's name).
    pub channel: String,
    pub recipient: String,
    pub automatic: bool,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub attempts: i64,
    pub created_at: Timestamp,
}

pub async fn enqueue(tx: &mut Tx, n: &NewNotification, now: Timestamp) -> Result<()> {
    match tx.held() {
        Some(held) => held.outbox.push((n.clone(), now)),
        None => write(tx, vec![(n.clone(), now)]).await?,
    }
    Ok(())
}

/// Writes notifications queued at the given times.
pub(crate) async fn write(
    conn: &mut AnyConnection,
    rows: Vec<(NewNotification, Timestamp)>,
) -> Result<()> {
    let insert = "INSERT INTO outbox (ticket_id, event, channel, recipient, automatic, message_id,
                      in_reply_to, refs, reply_to, subject, body, html, status, attempts,
                      next_attempt_at, last_error, created_at)";
    insert_rows(conn, insert, 17, rows, |query, (n, now)| {
        let (status, error) = match n.suppressed {
            Some(reason) => ("suppressed", Some(reason)),
            None => ("pending", None),
        };
        query
            .bind(n.ticket_id)
            .bind(n.event)
            .bind(n.channel)
            .bind(n.recipient)
            .bind(i64::from(n.automatic))
            .bind(n.message_id)
            .bind(n.in_reply_to)
            .bind(n.references.join(" "))
            .bind(n.reply_to)
            .bind(n.subject)
            .bind(n.body)
            .bind(n.html)
            .bind(status)
            .bind(0_i64)
            .bind(now)
            .bind(error)
            .bind(now)
    })
    .await
}

/// How many automatic messages went (or are going) to `recipient` since
/// each of two times (`recent` not before `since`): one query for both.
pub async fn automatic_counts_since(
    tx: &mut Tx,
    recipient: &str,
    (recent, since): (Timestamp, Timestamp),
) -> Result<(i64, i64)> {
    let read_ahead = tx
        .held()
        .and_then(|held| match held.automatic_counts.get(recipient) {
            Some(&(windows, counts)) if windows == (recent, since) => Some(counts),
            _ => None,
        });
    let (mut recent_count, mut count) = match read_ahead {
        Some(counts) => counts,
        None => {
            let stored = stored_automatic_counts(tx, &[recipient], (recent, since)).await?;
            stored.get(recipient).copied().unwrap_or((0, 0))
        }
    };
    if let Some(held) = tx.held() {
        for (n, at) in &held.outbox {
            if n.recipient == recipient && n.automatic && n.suppressed.is_none() && *at >= since {
                count += 1;
                recent_count += i64::from(*at >= recent);
            }
        }
    }
    Ok((recent_count, count))
}

/// Stored automatic-mail counts of one recipient: the two windows' starts,
/// and the counts in them.
pub(crate) type Counted = ((Timestamp, Timestamp), (i64, i64));

/// Reads the stored counts of [`automatic_counts_since`] for many recipients
/// in one query, for a batch that will ask about each of them (it then
/// answers from memory, adding the batch's own held rows as before). Only in
/// a transaction that holds its appends back.
pub async fn read_ahead_automatic_counts(
    tx: &mut Tx,
    recipients: &[&str],
    (recent, since): (Timestamp, Timestamp),
) -> Result<()> {
    if tx.held().is_none() {
        return Ok(());
    }
    let found = stored_automatic_counts(tx, recipients, (recent, since)).await?;
    if let Some(held) = tx.held() {
        for recipient in recipients {
            let counts = found.get(*recipient).copied().unwrap_or((0, 0));
            let entry = ((recent, since), counts);
            held.automatic_counts.insert(recipient.to_string(), entry);
        }
    }
    Ok(())
}

/// The stored counts of automatic messages to each of `recipients` since
/// each of two times; a recipient without any is left out.
async fn stored_automatic_counts(
    tx: &mut Tx,
    recipients: &[&str],
    (recent, since): (Timestamp, Timestamp),
) -> Result<HashMap<String, (i64, i64)>> {
    let mut found = HashMap::new();
    // Two bindings for the windows, the rest for recipients.
    for chunk in recipients.chunks(rows_per_insert(1) - 2) {
        let sql = format!(
            "SELECT recipient, COALESCE(SUM(CASE WHEN created_at >= $1 THEN 1 ELSE 0 END), 0),
                    COUNT(*)
             FROM outbox WHERE automatic = 1 AND status IN ('pending', 'sent')
             AND created_at >= $2 AND recipient IN ({})
             GROUP BY recipient",
            parameter_list(3, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(recent)
            .bind(since);
        for recipient in chunk {
            query = query.bind(*recipient);
        }
        for row in query.fetch_all(&mut **tx).await? {
            found.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
        }
    }
    Ok(found)
}

/// The Message-IDs of a ticket's thread, oldest first (at most `limit`, the newest kept).
pub async fn thread_message_ids(tx: &mut Tx, ticket_id: i64, limit: i64) -> Result<Vec<String>> {
    let cached = tx
        .held()
        .and_then(|held| held.threads.get(&(ticket_id, limit)).cloned());
    let mut ids = match cached {
        Some(ids) => ids,
        None => {
            // A ticket created in this transaction has no stored Message-IDs yet.
            let created_here = tx
                .held()
                .is_some_and(|held| held.created.contains_key(&ticket_id));
            let ids = match created_here {
                true => Vec::new(),
                false => stored_thread(tx, ticket_id, limit).await?,
            };
            if let Some(held) = tx.held() {
                held.threads.insert((ticket_id, limit), ids.clone());
            }
            ids
        }
    };
    if let Some(held) = tx.held() {
        ids.extend(
            held.message_ids
                .iter()
                .filter(|m| m.ticket_id == ticket_id && !m.message_id.starts_with("sha256:"))
                .map(|m| (m.at, m.message_id.clone())),
        );
        // Newest first, as the query orders them.
        ids.sort_by(|a, b| b.cmp(a));
        ids.truncate(usize::try_from(limit).unwrap_or(0));
    }
    Ok(ids.into_iter().rev().map(|(_, id)| id).collect())
}

/// The stored part: (time, Message-ID), newest first.
async fn stored_thread(
    tx: &mut Tx,
    ticket_id: i64,
    limit: i64,
) -> Result<Vec<(Timestamp, String)>> {
    sqlx::query(
        "SELECT created_at, message_id FROM message_ids
         WHERE ticket_id = $1 AND message_id NOT LIKE 'sha256:%'
         ORDER BY created_at DESC, message_id DESC LIMIT $2",
    )
    .bind(ticket_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

/// The pending notifications due by `$1`, oldest first, at most `$2`.
macro_rules! due {
    () => {
        "FROM outbox WHERE status = 'pending' AND channel IN ('email', 'webhook', 'telegram', 'discord') \
         AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
    };
}

/// The columns [`pending`] reads.
macro_rules! pending_columns {
    () => {
        "id, ticket_id, event, channel, recipient, automatic, message_id, in_reply_to, refs, \
         reply_to, subject, body, html, attempts, created_at"
    };
}

fn pending(r: &AnyRow) -> Result<Pending> {
    let refs: String = r.try_get("refs")?;
    Ok(Pending {
        id: r.try_get("id")?,
        ticket_id: r.try_get("ticket_id")?,
        event: r.try_get("event")?,
        channel: r.try_get("channel")?,
        recipient: r.try_get("recipient")?,
        automatic: r.try_get::<i64, _>("automatic")? != 0,
        message_id: r.try_get("message_id")?,
        in_reply_to: r.try_get("in_reply_to")?,
        references: refs.split_whitespace().map(String::from).collect(),
        reply_to: r.try_get("reply_to")?,
        subject: r.try_get("subject")?,
        body: r.try_get("body")?,
        html: r.try_get("html")?,
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Notifications due now, oldest first.
    pub async fn due_notifications(&self, now: Timestamp, limit: i64) -> Result<Vec<Pending>> {
        sqlx::query(concat!("SELECT ", pending_columns!(), " ", due!()))
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(pending)
            .collect()
    }

    /// Claims up to `limit` notifications due now for instance `by`, oldest
    /// first: their next attempt moves `claim_seconds` ahead, so no other
    /// instance takes them meanwhile (on PostgreSQL rows another instance is
    /// claiming are skipped, not waited for). Delivery sets the next attempt
    /// anew; a claim left by a dead instance is released when the others see
    /// it gone ([`Store::release_claims_of_gone`]), or lapses at that time.
    pub async fn claim_notifications(
        &self,
        now: Timestamp,
        limit: i64,
        claim_seconds: i64,
        by: &str,
    ) -> Result<Vec<Pending>> {
        let _turn = self.write_turn().await?;
        let lock = match self.backend {
            super::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET next_attempt_at = $3, claimed_by = $4
             WHERE id IN (SELECT id {} {lock}) RETURNING {}",
            due!(),
            pending_columns!()
        );
        let mut claimed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .bind(now + claim_seconds)
            .bind(by)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(pending)
            .collect::<Result<Vec<Pending>>>()?;
        claimed.sort_by_key(|n| n.id);
        Ok(claimed)
    }

    /// The instance holding the claim on pending notification `id`, if any.
    pub async fn claim_holder(&self, id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT claimed_by FROM outbox WHERE id = $1 AND status = 'pending'")
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .map(|row| row.try_get(0))
                .transpose()?
                .flatten(),
        )
    }

    /// Makes the notifications claimed by instances that have not been seen
    /// for `within` seconds due again at `now` (the database's clock judges
    /// who is gone); returns how many. An instance that stopped cleanly
    /// recorded its deliveries before it left, so it holds no claims.
    pub async fn release_claims_of_gone(&self, now: Timestamp, within: i64) -> Result<u64> {
        let _turn = self.write_turn().await?;
        let sql = format!(
            "UPDATE outbox SET next_attempt_at = $1, claimed_by = NULL
             WHERE status = 'pending' AND claimed_by IN
                 (SELECT id FROM instances WHERE seen_at < {} - $2)",
            self.database_clock()
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(within)
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// The instances holding claims on pending notifications.
    pub async fn claim_holders(&self) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT DISTINCT claimed_by FROM outbox
             WHERE status = 'pending' AND claimed_by IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }

    /// Makes the notifications claimed by `holder` due again at `now` (an
    /// instance known dead: its process on this host is gone); returns how many.
    pub async fn release_claims_of(&self, holder: &str, now: Timestamp) -> Result<u64> {
        let _turn = self.write_turn().await?;
        Ok(sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1, claimed_by = NULL
             WHERE status = 'pending' AND claimed_by = $2",
        )
        .bind(now)
        .bind(holder)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// When the next pending notification is due, if any.
    pub async fn next_notification_due(&self) -> Result<Option<Timestamp>> {
        Ok(sqlx::query("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending' AND channel IN ('email', 'webhook', 'telegram', 'discord')")
            .fetch_one(self.pool())
            .await?
            .try_get(0)?)
    }

    /// Records a group of deliveries in one transaction: `sent` were accepted
    /// by the server; `retry` failed temporarily (id, error, next attempt);
    /// `later` were not tried, their route's pace said to wait (id, when).
    pub async fn mark_delivered(
        &self,
        sent: &[i64],
        retry: &[(i64, String, Timestamp)],
        later: &[(i64, Timestamp)],
        now: Timestamp,
    ) -> Result<()> {
        if sent.is_empty() && retry.is_empty() && later.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for ids in sent.chunks(rows_per_insert(1) - 1) {
            let sql = format!(
                "UPDATE outbox SET status = 'sent', sent_at = $1, attempts = attempts + 1,
                     last_error = NULL, claimed_by = NULL
                 WHERE id IN ({})",
                parameter_list(2, ids.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        for (id, error, next_attempt_at) in retry {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2,
                     claimed_by = NULL
                 WHERE id = $3",
            )
            .bind(error)
            .bind(next_attempt_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        for (id, next_attempt_at) in later {
            sqlx::query("UPDATE outbox SET next_attempt_at = $1, claimed_by = NULL WHERE id = $2")
                .bind(next_attempt_at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A permanent failure, also written to the ticket's history.
    pub async fn mark_failed(&self, n: &Pending, error: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = $1,
                 claimed_by = NULL WHERE id = $2",
        )
        .bind(error)
        .bind(n.id)
        .execute(&mut *tx)
        .await?;
        if let Some(ticket_id) = n.ticket_id {
            let what = format!("{} to {}", n.event, n.recipient);
            super::tickets::history(
                &mut tx,
                ticket_id,
                "outbox",
                "notification.failed",
                Some(&what),
                Some(error),
                None,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// (status, count) of email notifications, for tests and reports.
    /// Notifications waiting to go out (the store answering it is the
    /// health check the watchdog pings on).
    pub async fn outbox_depth(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
                .fetch_one(self.pool())
                .await?
                .try_get(0)?,
        )
    }

    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
