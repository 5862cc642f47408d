//! Telegram delivery: notifications queued for a chat (`telegram` in the
//! outbox, the chat id as recipient), sent with teloxide's Bot API client.
//! Texts over Telegram's 4,096-character limit go as several messages, split
//! at line breaks. Telegram's limits are kept here (one message per second
//! per chat, 30 per second in all, [`super::pace`]): a chat that must wait
//! gives its turn to the others. A 429's `retry_after` holds the chat to the
//! millisecond and becomes the next attempt's time. A 5xx, a network error or
//! an answer that is not Telegram's is temporary; only an answer that says the
//! chat cannot be reached (the bot blocked or kicked, the chat not found, the
//! user deactivated) is permanent.

use super::pace::{Pace, Slot};
use super::send::SendError;
use crate::config::Config;
use crate::store::outbox::Pending;
use anyhow::{Context, Result};
use std::time::{Duration, Instant};
use teloxide::prelude::{Bot, ChatId, Requester};
use teloxide::{ApiError, RequestError};

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
            pace: std::sync::Mutex::new(Pace::new(PER_CHAT, OVERALL)),
        }))
    }

    /// Sends one queued notification, in as many messages as its text needs.
    pub async fn send(&self, n: &Pending) -> Result<(), SendError> {
        let chat: i64 = n.recipient.parse().map_err(|_| {
            SendError::Permanent(format!("{:?} is not a Telegram chat id", n.recipient))
        })?;
        let route = chat.to_string();
        for (i, part) in split(&n.body, MAX_TEXT).into_iter().enumerate() {
            let slot = self.pace().reserve(&route, Instant::now());
            let at = match slot {
                Slot::At(at) => at,
                // The first part waits its turn in the outbox; later parts
                // of a long text follow their first within the second.
                Slot::Later(wait) if i == 0 => return Err(SendError::NotYet(wait)),
                Slot::Later(wait) => {
                    tokio::time::sleep(wait).await;
                    Instant::now()
                }
            };
            tokio::time::sleep_until(at.into()).await;
            if let Err(e) = self.bot.send_message(ChatId(chat), part).await {
                if let RequestError::RetryAfter(wait) = &e {
                    self.pace()
                        .hold(&route, wait.duration(), false, Instant::now());
                }
                return Err(send_error(e));
            }
        }
        Ok(())
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The configured bot: its token from the token file, its Bot API server.
pub fn bot(telegram: &crate::config::Telegram) -> Result<Bot> {
    let url = reqwest::Url::parse(&telegram.api_url)
        .with_context(|| format!("telegram.api_url {:?}", telegram.api_url))?;
    Ok(Bot::new(telegram.token()?).set_api_url(url))
}

/// What a failed request means for the outbox. Pure.
fn send_error(e: RequestError) -> SendError {
    match e {
        RequestError::RetryAfter(wait) => SendError::RetryAfter(wait.duration()),
        RequestError::MigrateToChatId(to) => {
            SendError::Permanent(format!("the group moved to chat {to}; update the rules"))
        }
        RequestError::Api(api) if unreachable(&api) => {
            SendError::Permanent(format!("Telegram cannot reach the chat: {api}"))
        }
        // 5xx answers, network trouble, answers that are not Telegram's, and
        // refusals that may pass (Telegram's own trouble): try again later.
        e => SendError::Temporary(format!("telegram: {e}")),
    }
}

/// Whether Telegram's answer means the chat cannot be reached at all.
fn unreachable(api: &ApiError) -> bool {
    use ApiError as A;
    match api {
        A::BotBlocked
        | A::ChatNotFound
        | A::UserNotFound
        | A::BotKicked
        | A::BotKickedFromSupergroup
        | A::BotKickedFromChannel
        | A::UserDeactivated
        | A::CantInitiateConversation
        | A::CantTalkWithBots
        | A::GroupDeactivated => true,
        A::Unknown(text) => {
            let text = text.to_ascii_lowercase();
            text.starts_with("forbidden:") || text.contains("chat not found")
        }
        _ => false,
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
    fn only_an_unreachable_chat_is_permanent() {
        let temporary = [
            RequestError::Api(ApiError::Unknown("Internal Server Error".into())),
            RequestError::Api(ApiError::Unknown("Bad Gateway".into())),
            RequestError::InvalidJson {
                source: serde_json::from_str::<u8>("<html>").unwrap_err().into(),
                raw: "<html>502</html>".into(),
            },
        ];
        for e in temporary {
            let shown = e.to_string();
            assert!(matches!(send_error(e), SendError::Temporary(_)), "{shown}");
        }
        assert!(matches!(
            send_error(RequestError::RetryAfter(teloxide::types::Seconds::from_seconds(3))),
            SendError::RetryAfter(d) if d == Duration::from_secs(3)
        ));
        for api in [
            ApiError::BotBlocked,
            ApiError::ChatNotFound,
            ApiError::UserDeactivated,
            ApiError::Unknown("Forbidden: bot is not a member of the channel chat".into()),
        ] {
            assert!(matches!(
                send_error(RequestError::Api(api)),
                SendError::Permanent(_)
            ));
        }
    }
}
