//! People and groups: agents, teams and organizations declared in config, and
//! contacts created as mail arrives.

use super::rows::{parameter_list, rows_per_insert};
use super::{Error, Result, Store, Tx};
use crate::clock::Timestamp;
use crate::config::Config;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

impl Store {
    /// Makes the agents, teams and organizations in the database match the config.
    /// Agents no longer in the config are deactivated, never deleted (history
    /// keeps pointing at them).
    pub async fn sync_directory(&self, config: &Config) -> Result<()> {
        let mut tx = self.begin().await?;
        for team in &config.team {
            sqlx::query("INSERT INTO teams (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                .bind(&team.name)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE agents SET active = 0")
            .execute(&mut *tx)
            .await?;
        for agent in &config.agent {
            let id: i64 = sqlx::query(
                "INSERT INTO agents (email, name, role, active) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (email) DO UPDATE SET name = $2, role = $3, active = 1
                 RETURNING id",
            )
            .bind(agent.email.to_lowercase())
            .bind(&agent.name)
            .bind(agent.role.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            sqlx::query("DELETE FROM agent_teams WHERE agent_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for team in &agent.teams {
                sqlx::query(
                    "INSERT INTO agent_teams (agent_id, team_id)
                     SELECT $1, id FROM teams WHERE name = $2",
                )
                .bind(id)
                .bind(team)
                .execute(&mut *tx)
                .await?;
            }
        }
        for org in &config.organization {
            let id: i64 = sqlx::query(
                "INSERT INTO organizations (name) VALUES ($1)
                 ON CONFLICT (name) DO UPDATE SET name = $1 RETURNING id",
            )
            .bind(&org.name)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            for domain in &org.domains {
                sqlx::query(
                    "INSERT INTO organization_domains (domain, organization_id) VALUES ($1, $2)
                     ON CONFLICT (domain) DO UPDATE SET organization_id = $2",
                )
                .bind(domain.to_lowercase())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The active agents by email address, read once for a whole ingest batch.
pub struct Agents(HashMap<String, i64>);

impl Agents {
    /// The active agent with this email address.
    pub fn id_of(&self, email: &str) -> Option<i64> {
        self.0.get(email).copied()
    }
}

/// All active agents (a short list: the agents in the config).
pub async fn active_agents(tx: &mut Tx) -> Result<Agents> {
    let rows = sqlx::query("SELECT email, id FROM agents WHERE active = 1")
        .fetch_all(&mut **tx)
        .await?;
    let agents = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    Ok(Agents(agents))
}

/// A contact as the ticket needs it.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: i64,
    pub organization_id: Option<i64>,
    pub name: String,
    /// The organization's name.
    pub organization: Option<String>,
}

/// The columns [`Contact::from_row`] reads, for a query that names the
/// contact `c` and LEFT JOINs its organization as `o`.
macro_rules! contact_columns {
    () => {
        "c.id, c.organization_id, c.name, o.name"
    };
}

impl Contact {
    /// From a row of (id, organization_id, name, organization) at `first`.
    fn from_row(row: &sqlx::any::AnyRow, first: usize) -> Result<Contact> {
        Ok(Contact {
            id: row.try_get(first)?,
            organization_id: row.try_get(first + 1)?,
            name: row.try_get(first + 2)?,
            organization: row.try_get(first + 3)?,
        })
    }
}

/// Finds the contact with this identity (`email` and an address,
/// `telegram` and a user id), or creates one; a new email contact joins the
/// organization of its address's domain. On PostgreSQL a new contact is
/// committed at once in a side transaction: concurrent batches that meet the
/// same new customer then never wait on each other's uncommitted rows (or
/// deadlock on them); the caller's transaction sees it as soon as it is
/// committed (read committed).
pub async fn contact_for(
    tx: &mut Tx,
    identity: (&'static str, &str),
    name: &str,
    language: Option<&str>,
    now: Timestamp,
) -> Result<Contact> {
    let key = (identity.0, identity.1.to_string());
    match tx.held().and_then(|held| held.contacts.get(&key)) {
        Some(Some(known)) => return Ok(known.clone()),
        // Read ahead: there was none.
        Some(None) => {}
        None => {
            if let Some(found) = find_contact(tx, identity).await? {
                return Ok(found);
            }
        }
    }
    let contact = create_contact(tx, identity, name, language, now).await?;
    if let Some(held) = tx.held() {
        held.contacts.insert(key, Some(contact.clone()));
    }
    Ok(contact)
}

async fn create_contact(
    tx: &mut Tx,
    identity: (&'static str, &str),
    name: &str,
    language: Option<&str>,
    now: Timestamp,
) -> Result<Contact> {
    if let Some(side) = tx.side().cloned() {
        // One statement, committed at once, that creates the contact only
        // if it gets the identity. No wait for the disk (the side pool's
        // setting): the caller's commit flushes the log up to its own commit
        // record, past this one, so a ticket is never durable without its
        // contact (and a contact lost in a crash is created again when the
        // batch is retried).
        let created = sqlx::query(concat!(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('contacts', 'id')) AS id),
             i AS (INSERT INTO contact_identities (kind, address, contact_id)
                   SELECT $1, $2, id FROM n
                   ON CONFLICT (kind, address) DO NOTHING RETURNING contact_id),
             c AS (INSERT INTO contacts (id, name, organization_id, language, created_at)
                   SELECT contact_id, $3,
                          (SELECT organization_id FROM organization_domains WHERE domain = $4),
                          $5, $6
                   FROM i RETURNING id, organization_id, name)
             SELECT ",
            contact_columns!(),
            " FROM c LEFT JOIN organizations o ON o.id = c.organization_id"
        ))
        .bind(identity.0)
        .bind(identity.1)
        .bind(name)
        .bind(email_domain(identity))
        .bind(language)
        .bind(now)
        .fetch_optional(&side)
        .await?;
        if let Some(row) = created {
            return Contact::from_row(&row, 0);
        }
        // Another writer committed this identity first: theirs is the one.
        if let Some(found) = find_contact(tx, identity).await? {
            return Ok(found);
        }
    }
    insert_contact(tx, identity, name, language, now)
        .await?
        .ok_or_else(|| Error::Conflict(format!("contact {} created concurrently", identity.1)))
}

/// Reads the contacts with these identities of one kind in one query, for a
/// batch that will ask [`contact_for`] about each (it then answers from
/// memory). Only in a transaction that holds its appends back.
pub async fn read_ahead_contacts(
    tx: &mut Tx,
    kind: &'static str,
    addresses: &[&str],
) -> Result<()> {
    if tx.held().is_none() {
        return Ok(());
    }
    let mut found: HashMap<String, Contact> = HashMap::new();
    // One binding for the kind, the rest for addresses.
    for chunk in addresses.chunks(rows_per_insert(1) - 1) {
        let sql = format!(
            "SELECT i.address, {} FROM contact_identities i
             JOIN contacts c ON c.id = i.contact_id
             LEFT JOIN organizations o ON o.id = c.organization_id
             WHERE i.kind = $1 AND i.address IN ({})",
            contact_columns!(),
            parameter_list(2, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(kind);
        for address in chunk {
            query = query.bind(*address);
        }
        for row in query.fetch_all(&mut **tx).await? {
            found.insert(row.try_get(0)?, Contact::from_row(&row, 1)?);
        }
    }
    if let Some(held) = tx.held() {
        for address in addresses {
            let key = (kind, address.to_string());
            held.contacts.insert(key, found.get(*address).cloned());
        }
    }
    Ok(())
}

/// The domain of an email identity, whose organization a new contact joins.
fn email_domain<'a>((kind, address): (&str, &'a str)) -> Option<&'a str> {
    match kind {
        "email" => address.rsplit_once('@').map(|(_, domain)| domain),
        _ => None,
    }
}

async fn find_contact(
    conn: &mut AnyConnection,
    (kind, address): (&'static str, &str),
) -> Result<Option<Contact>> {
    let found = sqlx::query(concat!(
        "SELECT ",
        contact_columns!(),
        " FROM contact_identities i
         JOIN contacts c ON c.id = i.contact_id
         LEFT JOIN organizations o ON o.id = c.organization_id
         WHERE i.kind = $1 AND i.address = $2"
    ))
    .bind(kind)
    .bind(address)
    .fetch_optional(&mut *conn)
    .await?;
    found.map(|row| Contact::from_row(&row, 0)).transpose()
}

/// Inserts a contact with this identity; `None` if the identity was taken
/// meanwhile (the contact row then goes with the caller's rollback).
async fn insert_contact(
    conn: &mut AnyConnection,
    (kind, address): (&'static str, &str),
    name: &str,
    language: Option<&str>,
    now: Timestamp,
) -> Result<Option<Contact>> {
    let row = sqlx::query(
        "INSERT INTO contacts (name, organization_id, language, created_at)
         VALUES ($1, (SELECT organization_id FROM organization_domains WHERE domain = $2), $3, $4)
         RETURNING id, organization_id,
                   (SELECT name FROM organizations o WHERE o.id = contacts.organization_id)",
    )
    .bind(name)
    .bind(email_domain((kind, address)))
    .bind(language)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let (id, organization_id): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    let organization: Option<String> = row.try_get(2)?;
    let inserted = sqlx::query(
        "INSERT INTO contact_identities (kind, address, contact_id) VALUES ($1, $2, $3)
         ON CONFLICT (kind, address) DO NOTHING",
    )
    .bind(kind)
    .bind(address)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((inserted == 1).then_some(Contact {
        id,
        organization_id,
        name: name.to_string(),
        organization,
    }))
}
