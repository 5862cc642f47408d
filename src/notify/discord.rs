//! Discord delivery: notifications queued for a channel (`discord` in the
//! outbox, the channel id as recipient), posted with the HTTP API's
//! "create message" (`POST /api/v10/channels/{id}/messages`). Texts over Discord's 2,000-character limit go as
//! several messages, split at line breaks. A 429's `retry_after` holds the
//! route (the channel, or every route when Discord says it is global) to the
//! millisecond ([`super::pace`]) and becomes the next attempt's time: no
//! retry goes before it, however often the dispatcher wakes.
//!
//! Why not serenity's `Http`: with its rate limiter off (as behind a proxy,
//! which its rate limiter bypasses) a 429 comes back without `retry_after`,
//! and the outbox must know when to try again.

use super::pace::{Pace, Slot};
use super::send::SendError;
use crate::config::Config;
use crate::store::Store;
use crate::store::outbox::Pending;
use crate::ticket::Channel;
use anyhow::{Context, Result};
use serde_json::json;
use std::time::{Duration, Instant};

/// Discord's limit on a message's content, in characters (counted here in
/// UTF-16 units, which is never fewer).
pub const MAX_TEXT: usize = 2000;
const TIMEOUT: Duration = Duration::from_secs(15);

pub struct Discord {
    client: reqwest::Client,
    /// `…/api/v10`
    api: String,
    authorization: String,
    opening: tokio::sync::Mutex<()>,
    /// Per route: a 429's hold (Discord paces by its own buckets; this
    /// keeps only what it told us).
    pace: std::sync::Mutex<Pace>,
}

impl Discord {
    /// The configured bot, if any (its token file must be readable).
    pub fn new(config: &Config) -> Result<Option<Discord>> {
        let Some(discord) = &config.discord else {
            return Ok(None);
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .context("discord: HTTP client")?;
        Ok(Some(Discord {
            client,
            api: format!("{}/api/v10", discord.api_url.trim_end_matches('/')),
            authorization: format!("Bot {}", discord.token()?),
            opening: tokio::sync::Mutex::new(()),
            pace: std::sync::Mutex::new(Pace::new(Duration::ZERO, Duration::ZERO)),
        }))
    }

    /// Posts one queued notification, in as many messages as its text
    /// needs: to a channel (its id), to a person (`@USER_ID`, through the
    /// DM channel Discord opens for the bot and them), or to the ticket's
    /// thread in the agents' channel (`thread:CHANNEL_ID`; the first message
    /// opens the thread, named like the notification, and `store` keeps it).
    pub async fn send(
        &self,
        n: &Pending,
        (store, now): (&Store, crate::clock::Timestamp),
    ) -> Result<(), SendError> {
        let not_an_id =
            || SendError::Permanent(format!("{:?} is not a Discord channel id", n.recipient));
        let channel: u64 = match n.recipient.strip_prefix('@') {
            None if n.recipient.starts_with("thread:") => {
                let parent: u64 = n.recipient["thread:".len()..]
                    .parse()
                    .map_err(|_| not_an_id())?;
                let ticket = n
                    .ticket_id
                    .ok_or_else(|| SendError::Permanent("a ticket thread needs a ticket".into()))?;
                self.thread((store, now), parent, (ticket, &n.subject))
                    .await?
            }
            Some(user) => {
                let user: u64 = user.parse().map_err(|_| not_an_id())?;
                let dm = self
                    .post(
                        "users/@me/channels",
                        json!({ "recipient_id": user.to_string() }),
                    )
                    .await?;
                dm["id"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(|| SendError::Temporary("discord: no DM channel id".into()))?
            }
            None => n.recipient.parse().map_err(|_| not_an_id())?,
        };
        for part in super::telegram::split(&n.body, MAX_TEXT) {
            // Mentions in a customer's text must not ping anyone.
            let body = json!({ "content": part, "allowed_mentions": { "parse": [] } });
            self.post(&format!("channels/{channel}/messages"), body)
                .await?;
        }
        Ok(())
    }

    /// The ticket's thread under `parent`, opened now if it has none.
    async fn thread(
        &self,
        (store, now): (&Store, crate::clock::Timestamp),
        parent: u64,
        (ticket, name): (i64, &str),
    ) -> Result<u64, SendError> {
        let unavailable = |e: crate::store::Error| SendError::Temporary(e.to_string());
        let platform = Channel::Discord.as_str();
        // One opening at a time, so two notices cannot open two threads.
        let _one = self.opening.lock().await;
        if let Some(thread) = store
            .chat_thread(platform, ticket)
            .await
            .map_err(unavailable)?
        {
            return Ok(thread as u64);
        }
        let name: String = name.chars().take(100).collect();
        let opened = self
            .post(
                &format!("channels/{parent}/threads"),
                json!({ "name": name, "type": 11, "auto_archive_duration": 10080 }),
            )
            .await?;
        let thread: i64 = opened["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| SendError::Temporary("discord: no thread id".into()))?;
        let kept = store
            .save_chat_thread(platform, (ticket, thread), now)
            .await
            .map_err(unavailable)?;
        Ok(kept as u64)
    }

    /// POSTs JSON to the API; the answer's JSON, or what the refusal means.
    /// A route still held by a 429 is not asked (`NotYet`).
    async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, SendError> {
        let slot = self.pace().reserve(path, Instant::now());
        match slot {
            Slot::At(at) => tokio::time::sleep_until(at.into()).await,
            Slot::Later(wait) => return Err(SendError::NotYet(wait)),
        }
        let response = self
            .client
            .post(format!("{}/{path}", self.api))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| SendError::Temporary(format!("discord: {e}")))?;
        let status = response.status().as_u16();
        let header = retry_after_header(&response);
        let text = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(serde_json::from_str(&text).unwrap_or_default());
        }
        let refused = refusal(status, header, &text);
        if let SendError::RetryAfter(wait) = &refused {
            let global = serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|j| j["global"].as_bool() == Some(true));
            self.pace().hold(path, *wait, global, Instant::now());
        }
        Err(refused)
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn retry_after_header(response: &reqwest::Response) -> Option<f64> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// What a refused request means for the outbox. Pure.
fn refusal(status: u16, retry_after_header: Option<f64>, body: &str) -> SendError {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let message = json["message"].as_str().unwrap_or(body).trim().to_string();
    match status {
        429 => {
            let seconds = json["retry_after"]
                .as_f64()
                .or(retry_after_header)
                .unwrap_or(5.0);
            SendError::RetryAfter(Duration::from_secs_f64(seconds.clamp(0.001, 86_400.0)))
        }
        500..=599 => SendError::Temporary(format!("discord: HTTP {status}: {message}")),
        _ => SendError::Permanent(format!("Discord refused it: HTTP {status}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_says_when_to_try_again_and_other_refusals_are_told_apart() {
        let limited =
            r#"{"message": "You are being rate limited.", "retry_after": 1.2, "global": false}"#;
        assert!(matches!(
            refusal(429, None, limited),
            SendError::RetryAfter(d) if d == Duration::from_millis(1200)
        ));
        assert!(matches!(
            refusal(429, Some(7.0), ""),
            SendError::RetryAfter(d) if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            refusal(502, None, "bad gateway"),
            SendError::Temporary(_)
        ));
        let missing = r#"{"message": "Unknown Channel", "code": 10003}"#;
        match refusal(404, None, missing) {
            SendError::Permanent(e) => assert!(e.contains("Unknown Channel"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
