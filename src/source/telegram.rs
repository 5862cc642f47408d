//! The Telegram source: long polling with `getUpdates`. Each update is taken
//! in its own transaction, which also saves the next offset; the next
//! `getUpdates` with that offset acknowledges it to Telegram. After a
//! restart polling resumes from the saved offset, so an update is taken
//! exactly once.

use crate::config::Config;
use crate::ingest::Pipeline;
use crate::parse::chat;
use anyhow::{Context, Result};
use std::time::Duration;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::{Bot, Requester};
use tokio_util::sync::CancellationToken;

/// The source name in the journal and the checkpoints.
pub const SOURCE: &str = "telegram";
/// Seconds a poll waits for updates (below the HTTP client's timeout).
const POLL_SECONDS: u32 = 10;
/// Pause after a failed poll or ingest.
const BACKOFF: Duration = Duration::from_secs(5);

pub struct TelegramSource {
    bot: Bot,
    /// The agents' group.
    agent_chat: Option<i64>,
}

impl TelegramSource {
    pub fn new(config: &Config) -> Result<Option<TelegramSource>> {
        let Some(telegram) = &config.telegram else {
            return Ok(None);
        };
        Ok(Some(TelegramSource {
            bot: crate::notify::telegram::bot(telegram)?,
            agent_chat: telegram.agent_chat,
        }))
    }

    /// One poll: takes every update it returns, in order; returns how many.
    pub async fn poll_once(&self, pipeline: &Pipeline, wait_seconds: u32) -> Result<usize> {
        let offset = pipeline
            .store
            .checkpoint(SOURCE)
            .await?
            .map_or(0, |c| c.position);
        let updates = self
            .bot
            .get_updates()
            .offset(i32::try_from(offset).unwrap_or(i32::MAX))
            .timeout(wait_seconds)
            .await
            .context("telegram getUpdates")?;
        let mut taken = 0;
        for update in &updates {
            let id = i64::from(update.id.0);
            // A server that sends what was acknowledged already: skip it.
            if id < offset {
                continue;
            }
            let outcome = pipeline
                .ingest_chat(SOURCE, id, &chat::telegram(update, self.agent_chat))
                .await?;
            tracing::info!(update = id, "telegram: {outcome}");
            taken += 1;
        }
        Ok(taken)
    }

    /// Polls until `shutdown`; a failure is logged and retried after a pause
    /// (nothing is acknowledged that was not stored).
    pub async fn run(&self, pipeline: &Pipeline, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                polled = self.poll_once(pipeline, POLL_SECONDS) => {
                    if let Err(e) = polled {
                        tracing::warn!("telegram: {e:#}");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(BACKOFF) => {}
                        }
                    }
                }
            }
        }
    }
}
