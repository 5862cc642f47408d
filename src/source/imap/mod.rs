//! IMAP source: one task per `[[mailbox]]`. IDLE when the server offers it
//! (re-issued every `idle_seconds`), polling otherwise. Each wake fetches by UID
//! from the stored checkpoint; the checkpoint advances in the same transaction
//! as the tickets it produced, and the message is flagged, moved or deleted on
//! the server only after that commit. On any error the session is dropped and
//! rebuilt after a jittered exponential backoff; the mailbox is never disabled.

mod connect;

pub use connect::{ConnectError, ImapSession, login};

use crate::config::{After, Backfill, Mailbox};
use crate::ingest::{Inbound, OutcomeKind, Pipeline};
use crate::net::timed;
use crate::source::too_large;
use crate::store::checkpoints::Checkpoint;
use anyhow::{Context, Result};
use futures::TryStreamExt;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Keyword on messages ticketd could not take (quarantined or over the size limit)
/// when they are not moved to the quarantine folder: never marked seen, never deleted.
pub const HELD_KEYWORD: &str = "$TicketdHeld";
/// Folder for held messages when `after = "move:…"`.
pub const QUARANTINE_FOLDER: &str = "Quarantine";

/// Works one mailbox until `shutdown` is cancelled.
pub async fn run(pipeline: &Pipeline, mb: &Mailbox, shutdown: CancellationToken) {
    let source = format!("imap:{}", mb.name);
    let max_backoff = Duration::from_secs(mb.max_backoff_seconds.max(1));
    let mut failures: u32 = 0;
    loop {
        let worker = Worker {
            pipeline,
            mb,
            source: &source,
            shutdown: &shutdown,
        };
        let (result, worked) = worker.session().await;
        if shutdown.is_cancelled() {
            return;
        }
        if worked {
            failures = 0;
        }
        failures += 1;
        let delay = match &result {
            Err(SessionError::Connect(ConnectError::Auth(text))) => {
                let delay = backoff(
                    Duration::from_secs(30),
                    failures + 1,
                    max_backoff.max(Duration::from_secs(30)),
                );
                tracing::error!(mailbox = %mb.name, retry_in = ?delay, "IMAP login refused: {text}");
                delay
            }
            Err(e) => {
                let delay = backoff(Duration::from_secs(1), failures, max_backoff);
                tracing::warn!(mailbox = %mb.name, retry_in = ?delay, "IMAP session ended: {e:#}");
                delay
            }
            Ok(()) => Duration::ZERO,
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// Exponential backoff with ±25 % jitter, capped.
fn backoff(base: Duration, failures: u32, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(cap);
    let jitter = random_unit() * 0.5 - 0.25;
    capped.mul_f64(1.0 + jitter)
}

/// A number in [0, 1) from the standard library's random hasher keys.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (n >> 11) as f64 / (1u64 << 53) as f64
}

struct Worker<'a> {
    pipeline: &'a Pipeline,
    mb: &'a Mailbox,
    source: &'a str,
    shutdown: &'a CancellationToken,
}

impl Worker<'_> {
    fn limit(&self) -> Duration {
        Duration::from_secs(self.mb.timeout_seconds.max(1))
    }

    /// One session from login to error or shutdown. Also says whether it got as
    /// far as selecting the folder (then the backoff starts over).
    async fn session(&self) -> (Result<(), SessionError>, bool) {
        let mut session = match login(self.mb).await {
            Ok(s) => s,
            Err(e) => return (Err(e.into()), false),
        };
        let limit = self.limit();
        let prepared = async {
            let caps = timed(limit, "CAPABILITY", session.capabilities()).await?;
            let idle = caps.has_str("IDLE");
            let moves = caps.has_str("MOVE");
            let folder = timed(limit, "SELECT", session.select(&self.mb.folder)).await?;
            let validity = i64::from(
                folder
                    .uid_validity
                    .context("the server sent no UIDVALIDITY")?,
            );
            let uid_next = i64::from(folder.uid_next.unwrap_or(1));
            anyhow::Ok((idle, moves, validity, uid_next))
        }
        .await;
        let (idle, moves, validity, uid_next) = match prepared {
            Ok(p) => p,
            Err(e) => return (Err(e.into()), false),
        };
        tracing::info!(mailbox = %self.mb.name, idle, "IMAP session ready");
        crate::metrics::imap_connected(&self.mb.name, true);
        let result = self.work(session, idle, moves, validity, uid_next).await;
        crate::metrics::imap_connected(&self.mb.name, false);
        (result.map_err(SessionError::Other), true)
    }

    async fn work(
        &self,
        mut session: ImapSession,
        idle: bool,
        moves: bool,
        validity: i64,
        uid_next: i64,
    ) -> Result<()> {
        let (mut last, resumed) = self
            .starting_point(&mut session, validity, uid_next)
            .await?;
        // Only a checkpoint ticketd saved itself covers messages it took; a
        // starting point just chosen (backfill) covers mail it never took.
        if resumed {
            self.acknowledge_leftovers(&mut session, moves, last)
                .await?;
        }
        loop {
            last = self.drain(&mut session, moves, validity, last).await?;
            if self.shutdown.is_cancelled() {
                break;
            }
            if idle {
                session = self.idle(session).await?;
                if self.shutdown.is_cancelled() {
                    break;
                }
            } else {
                tokio::select! {
                    _ = self.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(self.mb.poll_seconds.max(1))) => {}
                }
            }
        }
        let _ = tokio::time::timeout(self.limit(), session.logout()).await;
        Ok(())
    }

    /// The last UID already handled: from the checkpoint, or chosen on first
    /// start (`backfill`), or 0 after a UIDVALIDITY change (a rescan whose
    /// messages the dedupe check turns into duplicates). True when it is
    /// this folder's saved checkpoint.
    async fn starting_point(
        &self,
        session: &mut ImapSession,
        validity: i64,
        uid_next: i64,
    ) -> Result<(i64, bool)> {
        let store = &self.pipeline.store;
        let now = self.pipeline.clock.now();
        let position = match store.checkpoint(self.source).await? {
            Some(cp) if cp.validity == validity => return Ok((cp.position, true)),
            Some(cp) => {
                tracing::warn!(mailbox = %self.mb.name, old = cp.validity, new = validity, "UIDVALIDITY changed; rescanning the folder");
                0
            }
            None => match self.mb.backfill {
                Backfill::All => 0,
                Backfill::None => uid_next - 1,
                Backfill::Unseen => {
                    let unseen = timed(
                        self.limit(),
                        "UID SEARCH UNSEEN",
                        session.uid_search("UNSEEN"),
                    )
                    .await?;
                    unseen
                        .into_iter()
                        .min()
                        .map_or(uid_next - 1, |first| i64::from(first) - 1)
                }
            },
        };
        store
            .set_checkpoint(self.source, Checkpoint { validity, position }, now)
            .await?;
        Ok((position, false))
    }

    /// Messages at or below the checkpoint are committed; any still waiting for
    /// their flag, move or delete (the connection broke after the commit) get it now.
    async fn acknowledge_leftovers(
        &self,
        session: &mut ImapSession,
        moves: bool,
        last: i64,
    ) -> Result<()> {
        if last < 1 {
            return Ok(());
        }
        let unseen = if self.mb.after == After::Flag {
            " UNSEEN"
        } else {
            ""
        };
        let query = format!("UID 1:{last}{unseen} NOT KEYWORD {HELD_KEYWORD}");
        let uids: Vec<u32> = timed(self.limit(), "UID SEARCH", session.uid_search(&query))
            .await?
            .into_iter()
            .filter(|u| i64::from(*u) <= last)
            .collect();
        if !uids.is_empty() {
            tracing::info!(mailbox = %self.mb.name, count = uids.len(), "acknowledging messages committed before a broken connection");
            self.acknowledge(session, moves, &uids, false).await?;
        }
        Ok(())
    }

    /// Fetches, commits and acknowledges everything after `last`; returns the new last UID.
    async fn drain(
        &self,
        session: &mut ImapSession,
        moves: bool,
        validity: i64,
        mut last: i64,
    ) -> Result<i64> {
        let limit = self.limit();
        loop {
            let range = format!("{}:*", last + 1);
            // Only UIDs and sizes are kept: the responses (and the read buffers
            // they point into) are dropped before any body is fetched.
            // "N:*" also returns the highest message when its UID is below N.
            let mut sizes: BTreeMap<u32, u64> = timed(limit, "UID FETCH sizes", async {
                session
                    .uid_fetch(&range, "(UID RFC822.SIZE)")
                    .await?
                    .try_filter_map(|f| async move {
                        Ok(f.uid.map(|uid| (uid, u64::from(f.size.unwrap_or(0)))))
                    })
                    .try_collect::<BTreeMap<u32, u64>>()
                    .await
            })
            .await?;
            sizes.retain(|uid, _| i64::from(*uid) > last);
            if sizes.is_empty() {
                return Ok(last);
            }
            while !sizes.is_empty() {
                let batch = take_batch(&mut sizes, self.mb.batch_size, super::BATCH_BYTES);
                last = self.ingest_batch(session, moves, validity, &batch).await?;
                if self.shutdown.is_cancelled() {
                    return Ok(last);
                }
            }
        }
    }

    /// Downloads one batch (oversized messages: headers only), commits it with
    /// the checkpoint, then acknowledges it on the server.
    async fn ingest_batch(
        &self,
        session: &mut ImapSession,
        moves: bool,
        validity: i64,
        batch: &[(u32, u64)],
    ) -> Result<i64> {
        let highest = i64::from(batch.iter().map(|(u, _)| *u).max().unwrap_or(0));
        let inbound = self.download(session, validity, batch).await?;
        let outcomes = if inbound.is_empty() {
            Vec::new()
        } else {
            self.pipeline.ingest(&inbound).await?
        };
        let committed = inbound
            .last()
            .and_then(|m| m.checkpoint)
            .map_or(0, |cp| cp.position);
        if committed < highest {
            // Messages that vanished between listing and fetching (expunged
            // elsewhere) at the end of the batch: step past them too.
            let cp = Checkpoint {
                validity,
                position: highest,
            };
            self.pipeline
                .store
                .set_checkpoint(self.source, cp, self.pipeline.clock.now())
                .await?;
        }

        let mut done = Vec::new();
        let mut held = Vec::new();
        for (m, o) in inbound.iter().zip(&outcomes) {
            let uid = m.checkpoint.map_or(0, |cp| cp.position) as u32;
            if o.kind == OutcomeKind::Quarantined || m.note.is_some() {
                held.push(uid);
            } else {
                done.push(uid);
            }
        }
        self.acknowledge(session, moves, &done, false).await?;
        self.acknowledge(session, moves, &held, true).await?;
        tracing::debug!(mailbox = %self.mb.name, committed = inbound.len(), last = highest, "batch committed");
        Ok(highest)
    }

    /// Downloads `batch` (uid, size) in UID order, each with its checkpoint:
    /// whole, or only its header when over `max_message_bytes`.
    async fn download(
        &self,
        session: &mut ImapSession,
        validity: i64,
        batch: &[(u32, u64)],
    ) -> Result<Vec<Inbound>> {
        let limit = self.limit();
        let max = self.pipeline.max_message_bytes;
        let whole: Vec<u32> = batch
            .iter()
            .filter(|(_, size)| *size <= max)
            .map(|(u, _)| *u)
            .collect();
        let big: Vec<u32> = batch
            .iter()
            .filter(|(_, size)| *size > max)
            .map(|(u, _)| *u)
            .collect();
        let key = |uid: u32| format!("{validity}:{uid}");
        let mut messages: BTreeMap<u32, Inbound> =
            fetch_sections(session, limit, &whole, Section::Whole)
                .await?
                .into_iter()
                .map(|(uid, raw)| (uid, Inbound::new(self.source, key(uid), raw)))
                .collect();
        for (uid, header) in fetch_sections(session, limit, &big, Section::Header).await? {
            let size = batch.iter().find(|(u, _)| *u == uid).map_or(0, |(_, s)| *s);
            let note = format!(
                "message of {size} bytes is over mail.max_message_bytes ({max}); not downloaded, held in {}",
                self.mb.folder
            );
            messages.insert(uid, too_large(self.source, key(uid), &header, size, note));
        }
        Ok(messages
            .into_iter()
            .map(|(uid, mut m)| {
                m.team = self.mb.team.clone();
                m.checkpoint = Some(Checkpoint {
                    validity,
                    position: i64::from(uid),
                });
                m
            })
            .collect())
    }

    /// Flags, moves or deletes committed messages; held ones are moved to the
    /// quarantine folder (with `after = move`) or only get a keyword.
    async fn acknowledge(
        &self,
        session: &mut ImapSession,
        moves: bool,
        uids: &[u32],
        held: bool,
    ) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let limit = self.limit();
        let set = uid_set(uids);
        match (&self.mb.after, held) {
            (After::Move(folder), false) => self.move_to(session, moves, &set, folder).await,
            (After::Move(_), true) => self.move_to(session, moves, &set, QUARANTINE_FOLDER).await,
            (_, true) => {
                store_flags(session, limit, &set, &format!("+FLAGS ({HELD_KEYWORD})")).await
            }
            (After::Flag, false) => store_flags(session, limit, &set, "+FLAGS (\\Seen)").await,
            (After::Delete, false) => {
                store_flags(session, limit, &set, "+FLAGS (\\Seen \\Deleted)").await?;
                timed(limit, "UID EXPUNGE", async {
                    session
                        .uid_expunge(&set)
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await?;
                Ok(())
            }
        }
    }

    async fn move_to(
        &self,
        session: &mut ImapSession,
        moves: bool,
        set: &str,
        folder: &str,
    ) -> Result<()> {
        let limit = self.limit();
        // Creating an existing folder fails harmlessly.
        let _ = timed(limit, "CREATE", session.create(folder)).await;
        if moves {
            timed(limit, "UID MOVE", session.uid_mv(set, folder)).await?;
        } else {
            timed(limit, "UID COPY", session.uid_copy(set, folder)).await?;
            store_flags(session, limit, set, "+FLAGS (\\Deleted)").await?;
            timed(limit, "UID EXPUNGE", async {
                session
                    .uid_expunge(set)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        }
        Ok(())
    }

    /// Waits in IDLE until the server reports a change, the IDLE period ends,
    /// or shutdown.
    async fn idle(&self, session: ImapSession) -> Result<ImapSession> {
        let limit = self.limit();
        let mut handle = session.idle();
        timed(limit, "IDLE", handle.init()).await?;
        {
            let (wait, stop) =
                handle.wait_with_timeout(Duration::from_secs(self.mb.idle_seconds.max(1)));
            tokio::select! {
                result = wait => { result.context("IDLE")?; }
                _ = self.shutdown.cancelled() => drop(stop),
            }
        }
        timed(limit, "DONE", handle.done()).await
    }
}

#[derive(Clone, Copy)]
enum Section {
    Whole,
    Header,
}

/// Fetches one section of each message (without setting \\Seen): UID → bytes.
async fn fetch_sections(
    session: &mut ImapSession,
    limit: Duration,
    uids: &[u32],
    section: Section,
) -> Result<Vec<(u32, Vec<u8>)>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let (query, what) = match section {
        Section::Whole => ("(UID BODY.PEEK[])", "UID FETCH bodies"),
        Section::Header => ("(UID BODY.PEEK[HEADER])", "UID FETCH headers"),
    };
    let set = uid_set(uids);
    timed(limit, what, async {
        session
            .uid_fetch(&set, query)
            .await?
            .try_filter_map(|f| async move {
                let bytes = match section {
                    Section::Whole => f.body(),
                    Section::Header => f.header(),
                };
                Ok(f.uid.zip(bytes.map(<[u8]>::to_vec)))
            })
            .try_collect()
            .await
    })
    .await
}

async fn store_flags(
    session: &mut ImapSession,
    limit: Duration,
    set: &str,
    flags: &str,
) -> Result<()> {
    timed(limit, "UID STORE", async {
        session
            .uid_store(set, flags)
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    Ok(())
}

/// Takes UIDs in order until the count or byte budget is reached (at least one).
fn take_batch(sizes: &mut BTreeMap<u32, u64>, max_count: usize, max_bytes: u64) -> Vec<(u32, u64)> {
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    while let Some((&uid, &size)) = sizes.iter().next() {
        if !batch.is_empty() && (batch.len() >= max_count || bytes + size > max_bytes) {
            break;
        }
        sizes.remove(&uid);
        bytes += size;
        batch.push((uid, size));
    }
    batch
}

/// `1:3,7,9:10` for sorted or unsorted UIDs.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[7, 1, 2, 3, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
    }

    #[test]
    fn batches_respect_count_and_bytes_but_take_at_least_one() {
        let mut sizes: BTreeMap<u32, u64> = [(1, 10), (2, 10), (3, 100), (4, 10)].into();
        assert_eq!(take_batch(&mut sizes, 10, 25), vec![(1, 10), (2, 10)]);
        assert_eq!(take_batch(&mut sizes, 10, 25), vec![(3, 100)]);
        assert_eq!(take_batch(&mut sizes, 1, 25), vec![(4, 10)]);
        assert!(sizes.is_empty());
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let cap = Duration::from_secs(60);
        for failures in 1..30 {
            let d = backoff(Duration::from_secs(1), failures, cap);
            assert!(
                d <= cap.mul_f64(1.25) && d >= Duration::from_millis(750),
                "{d:?}"
            );
        }
        let first = backoff(Duration::from_secs(1), 1, cap);
        assert!(first < Duration::from_secs(2));
    }
}
