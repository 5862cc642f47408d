//! The Telegram source: long polling with `getUpdates`. The updates of one
//! poll are taken in one transaction, which also saves the next offset; the next
//! `getUpdates` with that offset acknowledges it to Telegram. After a
//! restart polling resumes from the saved offset, so an update is taken
//! exactly once.

use crate::config::Config;
use crate::ingest::{ChatUpdate, Pipeline};
use crate::parse::chat::{self, ChatFile};
use crate::store::tickets::StoredAttachment;
use anyhow::{Context, Result};
use futures::StreamExt;
use std::time::Duration;
use teloxide::RequestError;
use teloxide::net::Download;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::{Bot, Requester};
use teloxide::types::FileId;
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
        let mut batch = Vec::with_capacity(updates.len());
        for update in &updates {
            let id = i64::from(update.id.0);
            // A server that sends what was acknowledged already: skip it.
            if id < offset {
                continue;
            }
            let intake = chat::telegram(update, self.agent_chat);
            let attachments = match &intake {
                chat::Intake::Message(m) => self.fetch(pipeline, &m.files).await?,
                _ => Vec::new(),
            };
            batch.push(ChatUpdate {
                id,
                intake,
                attachments,
                checkpoint: None,
            });
        }
        let outcomes = pipeline.ingest_chat(SOURCE, &batch).await?;
        for (update, outcome) in batch.iter().zip(&outcomes) {
            tracing::info!(update = update.id, "telegram: {outcome}");
        }
        Ok(outcomes.len())
    }

    /// Fetches a message's photos and files and stores them (before the
    /// transaction, like a mail's attachments). A file over the size limit,
    /// or one Telegram refuses to hand out (over its own 20 MB), is recorded
    /// but not stored; a network failure fails the poll, to be retried.
    async fn fetch(
        &self,
        pipeline: &Pipeline,
        files: &[ChatFile],
    ) -> Result<Vec<StoredAttachment>> {
        let mut attachments = Vec::with_capacity(files.len());
        for f in files {
            let content = self.download(f, pipeline.max_attachment_bytes()).await?;
            attachments.push(pipeline.keep_chat_file(f, content)?);
        }
        Ok(attachments)
    }

    /// A file's bytes, or `Err(size)` when it is over `limit` or Telegram
    /// will not hand it out; a network failure is an error.
    async fn download(
        &self,
        f: &ChatFile,
        limit: u64,
    ) -> Result<std::result::Result<Vec<u8>, u64>> {
        if f.size > limit {
            return Ok(Err(f.size));
        }
        let file = match self.bot.get_file(FileId(f.file_id.clone())).await {
            Ok(file) => file,
            Err(RequestError::Api(e)) => {
                tracing::warn!(file = %f.name, "telegram refused the file: {e}");
                return Ok(Err(f.size));
            }
            Err(e) => return Err(e).context("telegram getFile"),
        };
        let mut data = Vec::new();
        let mut stream = self.bot.download_file_stream(&file.path);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("telegram file download")?;
            if (data.len() + chunk.len()) as u64 > limit {
                return Ok(Err(u64::from(file.meta.size).max(limit + 1)));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(Ok(data))
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
