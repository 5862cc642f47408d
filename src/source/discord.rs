//! The Discord source: serenity's gateway client (HELLO → IDENTIFY → READY,
//! heartbeats, reconnect and resume are serenity's). Each message it
//! receives is handed over a bounded channel to the task that owns the
//! pipeline. serenity runs each event's handler as its own task, so messages
//! can arrive out of order: the source waits until the gateway has been
//! quiet for [`SETTLE`], puts what it has in the order of the message ids
//! (snowflakes grow with time) and takes them in one transaction; a store
//! that is unavailable is retried until it takes them, so nothing received
//! is dropped. Each message moves its channel's checkpoint in the same
//! transaction; on every READY the source fetches what those channels got
//! while it was away, and skips what it has taken already. The
//! dedupe key (`discord:CHANNEL:MESSAGE`) makes a message the gateway sends
//! again (after a resume) a journaled duplicate.

use crate::config::Config;
use crate::ingest::{ChatUpdate, Pipeline};
use crate::parse::chat::{ChatFile, Intake};
use crate::parse::discord::Place;
use crate::store::tickets::StoredAttachment;
use anyhow::{Context as _, Result};
use serenity::all::{Client, Context, EventHandler, GatewayIntents, HttpBuilder, Message, Ready};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The source name in the journal.
pub const SOURCE: &str = "discord";
/// Pause before taking a message again after the store failed.
const BACKOFF: Duration = Duration::from_secs(5);
/// How long the gateway must be quiet before a batch is taken.
const SETTLE: Duration = Duration::from_millis(100);
/// The most messages taken in one transaction.
const BATCH: usize = 100;

pub struct DiscordSource {
    token: String,
    api_url: String,
    channels: crate::parse::discord::Channels,
    http: reqwest::Client,
}

/// What the gateway tells the source's task.
enum Event {
    Message(Box<Message>),
    /// Identified anew: catch up on what was missed meanwhile.
    Ready,
}

/// Forwards the gateway's events to the source's task.
struct Forward(mpsc::Sender<Event>);

#[serenity::async_trait]
impl EventHandler for Forward {
    async fn message(&self, _: Context, message: Message) {
        // Waits when the pipeline is behind (the channel is bounded).
        let _ = self.0.send(Event::Message(Box::new(message))).await;
    }

    async fn ready(&self, _: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, "discord: connected to the gateway");
        let _ = self.0.send(Event::Ready).await;
    }
}

impl DiscordSource {
    pub fn new(config: &Config) -> Result<Option<DiscordSource>> {
        let Some(discord) = &config.discord else {
            return Ok(None);
        };
        Ok(Some(DiscordSource {
            token: discord.token()?,
            api_url: discord.api_url.clone(),
            channels: crate::parse::discord::Channels {
                support: discord.support_channel,
                agents: discord.agent_channel,
            },
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .context("discord: HTTP client")?,
        }))
    }

    /// The gateway client; behind another API base (a proxy, a test's
    /// server) serenity's own rate limiter, which would bypass it, is off.
    async fn client(&self, forward: mpsc::Sender<Event>) -> Result<Client> {
        let mut http = HttpBuilder::new(&self.token);
        if self.api_url.trim_end_matches('/') != "https://discord.com" {
            http = http
                .proxy(self.api_url.trim_end_matches('/'))
                .ratelimiter_disabled(true);
        }
        let intents = GatewayIntents::DIRECT_MESSAGES
            | GatewayIntents::GUILD_MESSAGES
            | GatewayIntents::MESSAGE_CONTENT;
        serenity::client::ClientBuilder::new_with_http(http.build(), intents)
            .event_handler(Forward(forward))
            .await
            .context("discord: gateway client")
    }

    /// Receives and takes messages until `shutdown`.
    pub async fn run(&self, pipeline: &Pipeline, shutdown: CancellationToken) {
        let (forward, mut received) = mpsc::channel(256);
        let mut client = match self.client(forward).await {
            Ok(client) => client,
            Err(e) => {
                tracing::error!("{e:#}");
                return;
            }
        };
        let shards = client.shard_manager.clone();
        let gateway = tokio::spawn(async move {
            if let Err(e) = client.start().await {
                tracing::error!("discord: gateway: {e}");
            }
        });
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                event = received.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
            };
            let mut batch = match event {
                Event::Ready => self.missed(pipeline).await,
                Event::Message(first) => {
                    let mut batch = vec![*first];
                    while batch.len() < BATCH {
                        match tokio::time::timeout(SETTLE, received.recv()).await {
                            Ok(Some(Event::Message(next))) => batch.push(*next),
                            Ok(Some(Event::Ready)) => batch.extend(self.missed(pipeline).await),
                            _ => break,
                        }
                    }
                    batch
                }
            };
            batch.sort_by_key(|m| m.id);
            let batch = self.unseen(pipeline, batch).await;
            if !batch.is_empty() && !self.take(pipeline, &batch, &shutdown).await {
                break;
            }
        }
        shards.shutdown_all().await;
        let _ = gateway.await;
    }

    /// The messages not taken yet: each channel's checkpoint is past the
    /// last message taken from it (a resumed gateway sends some again).
    async fn unseen(&self, pipeline: &Pipeline, mut messages: Vec<Message>) -> Vec<Message> {
        let Ok(taken) = pipeline.store.checkpoints_under("discord:").await else {
            return messages;
        };
        messages.retain(|m| {
            let name = format!("discord:{}", m.channel_id);
            !taken.iter().any(|(n, cp)| {
                *n == name && i64::try_from(m.id.get()).unwrap_or(i64::MAX) < cp.position
            })
        });
        messages
    }

    /// What was written, while ticketd was away, in the channels it has
    /// taken messages from (their checkpoints): `GET
    /// /channels/{id}/messages?after=`, 100 at a time. A channel that cannot
    /// be read is logged and left for the next connection.
    async fn missed(&self, pipeline: &Pipeline) -> Vec<Message> {
        let taken = match pipeline.store.checkpoints_under("discord:").await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!("discord: cannot read checkpoints: {e}");
                return Vec::new();
            }
        };
        let mut missed = Vec::new();
        for (name, cp) in taken {
            let channel = &name["discord:".len()..];
            let mut after = cp.position - 1;
            loop {
                let page = match self.history(channel, after).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(channel, "discord: catching up: {e:#}");
                        break;
                    }
                };
                let full = page.len() == 100;
                after = page
                    .iter()
                    .map(|m| i64::try_from(m.id.get()).unwrap_or(i64::MAX))
                    .max()
                    .unwrap_or(after);
                missed.extend(page);
                if !full {
                    break;
                }
            }
        }
        if !missed.is_empty() {
            tracing::info!(
                count = missed.len(),
                "discord: caught up on missed messages"
            );
        }
        missed
    }

    /// Up to 100 messages of `channel` after message `after`.
    async fn history(&self, channel: &str, after: i64) -> Result<Vec<Message>> {
        let url = format!(
            "{}/api/v10/channels/{channel}/messages?after={after}&limit=100",
            self.api_url.trim_end_matches('/')
        );
        let body = self
            .http
            .get(url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bot {}", self.token),
            )
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)?
            .bytes()
            .await?;
        serde_json::from_slice(&body).context("discord: messages")
    }

    /// Takes messages, retrying until the store has them; false when shut
    /// down first.
    async fn take(
        &self,
        pipeline: &Pipeline,
        messages: &[Message],
        shutdown: &CancellationToken,
    ) -> bool {
        loop {
            match self.take_once(pipeline, messages).await {
                Ok(outcomes) => {
                    for (message, outcome) in messages.iter().zip(outcomes) {
                        tracing::info!(message = %message.id, "discord: {outcome}");
                    }
                    return true;
                }
                Err(e) => tracing::warn!("discord: {e:#}"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(BACKOFF) => {}
            }
        }
    }

    async fn take_once(
        &self,
        pipeline: &Pipeline,
        messages: &[Message],
    ) -> Result<Vec<crate::ingest::Outcome>> {
        let threads = self.threads(pipeline, messages).await?;
        let mut updates = Vec::with_capacity(messages.len());
        for message in messages {
            let channel = message.channel_id.get();
            let place = Place::of(
                channel,
                self.channels,
                threads.contains(&channel),
                message.guild_id.is_some(),
            );
            let intake = crate::parse::discord::discord(message, place, self.channels);
            let attachments = match &intake {
                Intake::Message(m) => self.fetch(pipeline, &m.files).await?,
                _ => Vec::new(),
            };
            updates.push(ChatUpdate {
                id: i64::try_from(message.id.get()).unwrap_or(i64::MAX),
                intake,
                attachments,
                checkpoint: (place != Place::Foreign)
                    .then(|| format!("discord:{}", message.channel_id)),
            });
        }
        Ok(pipeline.ingest_chat(SOURCE, &updates).await?)
    }

    /// Which of the messages' channels are tickets' threads.
    async fn threads(
        &self,
        pipeline: &Pipeline,
        messages: &[Message],
    ) -> Result<std::collections::HashSet<u64>> {
        let mut channels: Vec<u64> = messages.iter().map(|m| m.channel_id.get()).collect();
        channels.sort_unstable();
        channels.dedup();
        let mut threads = std::collections::HashSet::new();
        for channel in channels {
            let id = i64::try_from(channel).unwrap_or(i64::MAX);
            if pipeline.store.chat_thread_exists("discord", id).await? {
                threads.insert(channel);
            }
        }
        Ok(threads)
    }

    /// Downloads a message's attachments (Discord gives their URLs) and
    /// stores them; one over the size limit is recorded but not fetched.
    async fn fetch(
        &self,
        pipeline: &Pipeline,
        files: &[ChatFile],
    ) -> Result<Vec<StoredAttachment>> {
        let limit = pipeline.max_attachment_bytes();
        let mut attachments = Vec::with_capacity(files.len());
        for f in files {
            let content = match f.size > limit {
                true => Err(f.size),
                false => {
                    let response = self
                        .http
                        .get(&f.file_id)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .with_context(|| format!("discord: fetching {}", f.name))?;
                    let bytes = response.bytes().await.context("discord: attachment")?;
                    match bytes.len() as u64 <= limit {
                        true => Ok(bytes.to_vec()),
                        false => Err(f.size),
                    }
                }
            };
            attachments.push(pipeline.keep_chat_file(f, content)?);
        }
        Ok(attachments)
    }
}
