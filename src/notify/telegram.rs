//! Telegram delivery: notifications queued for a chat (`telegram` in the
//! outbox, the chat id as recipient), sent with teloxide's Bot API client.
//! Texts over Telegram's 4,096-character limit go as several messages, split
//! at line breaks. Telegram's limits are kept here (one message per second
//! per chat, 30 per second in all), and a 429's `retry_after` becomes the
//! next attempt's time.

use super::email::SendError;
use crate::config::Config;
use crate::store::outbox::Pending;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use teloxide::RequestError;
use teloxide::prelude::{Bot, ChatId, Requester};

/// Telegram's limit on a message's text, in UTF-16 code units.
pub const MAX_TEXT: usize = 4096;
const PER_CHAT: Duration = Duration::from_secs(1);
const OVERALL: Duration = Duration::from_millis(34);

pub struct Telegram {
    bot: Bot,
    pace: std::sync::Mutex<Pace>,
}

impl Telegram {
    /// The configured bot, if any (its token file must be readable).
    pub fn new(config: &Config) -> Result<Option<Telegram>> {
        let Some(telegram) = &config.telegram else {
            return Ok(None);
        };
        Ok(Some(Telegram {
            bot: bot(telegram)?,
            pace: std::sync::Mutex::default(),
        }))
    }

    /// Sends one queued notification, in as many messages as its text needs.
    pub async fn send(&self, n: &Pending) -> Result<(), SendError> {
        let chat: i64 = n.recipient.parse().map_err(|_| {
            SendError::Permanent(format!("{:?} is not a Telegram chat id", n.recipient))
        })?;
        for part in split(&n.body, MAX_TEXT) {
            let slot = self
                .pace
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reserve(chat, Instant::now());
            tokio::time::sleep_until(slot.into()).await;
            self.bot
                .send_message(ChatId(chat), part)
                .await
                .map_err(send_error)?;
        }
        Ok(())
    }
}

/// The configured bot: its token from the token file, its Bot API server.
pub fn bot(telegram: &crate::config::Telegram) -> Result<Bot> {
    let url = reqwest::Url::parse(&telegram.api_url)
        .with_context(|| format!("telegram.api_url {:?}", telegram.api_url))?;
    Ok(Bot::new(telegram.token()?).set_api_url(url))
}

fn send_error(e: RequestError) -> SendError {
    match e {
        RequestError::RetryAfter(wait) => SendError::RetryAfter(i64::from(wait.seconds())),
        RequestError::Network(_) | RequestError::Io(_) | RequestError::InvalidJson { .. } => {
            SendError::Temporary(e.to_string())
        }
        RequestError::MigrateToChatId(to) => {
            SendError::Permanent(format!("the group moved to chat {to}; update the rules"))
        }
        RequestError::Api(api) => SendError::Permanent(format!("Telegram refused it: {api}")),
    }
}

/// When the next message may go: a second after the last one to the same
/// chat, and 1/30 s after the last one to any chat.
#[derive(Debug, Default)]
pub struct Pace {
    last: Option<Instant>,
    per_chat: HashMap<i64, Instant>,
}

impl Pace {
    /// Takes the earliest slot for a message to `chat` at or after `now`.
    pub fn reserve(&mut self, chat: i64, now: Instant) -> Instant {
        let mut slot = now;
        if let Some(last) = self.last {
            slot = slot.max(last + OVERALL);
        }
        if let Some(last) = self.per_chat.get(&chat) {
            slot = slot.max(*last + PER_CHAT);
        }
        self.last = Some(slot);
        self.per_chat.insert(chat, slot);
        // Forget chats that have been quiet for a while.
        self.per_chat.retain(|_, at| *at + PER_CHAT > now);
        slot
    }
}

/// `text` in parts of at most `limit` UTF-16 code units, cut after the last
/// line break (else space) that fits; a part never ends inside a character.
pub fn split(text: &str, limit: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut units = 0;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            units += c.len_utf16();
            if units > limit {
                end = i;
                break;
            }
        }
        if end < rest.len() {
            let head = &rest[..end];
            if let Some(cut) = head
                .rfind('\n')
                .or_else(|| head.rfind(' '))
                .filter(|c| *c > 0)
            {
                end = cut + 1;
            }
        }
        let (part, tail) = rest.split_at(end.max(rest.chars().next().map_or(1, char::len_utf8)));
        let part = part.trim_end();
        if !part.is_empty() {
            parts.push(part);
        }
        rest = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_split_at_line_breaks_within_the_limit() {
        let text = "Zgłoszenie TKT-2026-0001\nfaktura błędna\nproszę o korektę";
        assert_eq!(split(text, 4096), [text]);
        assert_eq!(
            split(text, 30),
            [
                "Zgłoszenie TKT-2026-0001",
                "faktura błędna",
                "proszę o korektę"
            ]
        );
        // No line break or space: cut at the limit, never inside a character.
        assert_eq!(split("żółćżółć", 3), ["żół", "ćżó", "łć"]);
        // An emoji counts two UTF-16 units.
        assert_eq!(split("😀😀😀", 4), ["😀😀", "😀"]);
        let long = "słowo ".repeat(2000);
        let parts = split(&long, MAX_TEXT);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= MAX_TEXT));
        assert_eq!(parts.concat().replace(' ', ""), long.replace(' ', ""));
        assert!(split("", 10).is_empty());
    }

    #[test]
    fn messages_keep_a_second_per_chat_and_a_thirtieth_overall() {
        let mut pace = Pace::default();
        let t0 = Instant::now();
        assert_eq!(pace.reserve(1, t0), t0);
        assert_eq!(pace.reserve(2, t0), t0 + OVERALL);
        assert_eq!(pace.reserve(1, t0), t0 + PER_CHAT);
        // Much later, nothing waits.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(pace.reserve(1, later), later);
    }
}
