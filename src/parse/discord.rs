//! Discord messages as the pipeline takes them: a customer's direct message
//! to the bot, or a message in the configured support channel, becomes a
//! customer's message (with its attachments to fetch); with an agents'
//! channel configured, other guild messages are agents' (the pipeline checks
//! the channel is that one or a ticket's thread in it, and the author);
//! anything else is ignored with a reason. Pure: a serenity `Message` in, an [`Intake`] out.

use super::chat::{AgentMessage, ChatFile, Intake, Sender, bounded, customer};
use crate::ticket::Channel;
use serenity::model::channel::{Message, MessageType};

/// The configured channels: the support channel (customers') and the agents'.
#[derive(Debug, Clone, Copy, Default)]
pub struct Channels {
    pub support: Option<u64>,
    pub agents: Option<u64>,
}

/// Where a message was written, told by its channel's id alone: Discord puts
/// `guild_id` only on gateway events, never on the REST history the source
/// catches up from, so a place must not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The configured support channel: customers.
    Support,
    /// The agents' channel or a ticket's thread in it (`chat_threads`).
    Agents,
    /// A direct message channel: a customer.
    Direct,
    /// Another guild channel: nobody ticketd serves. Never checkpointed, so
    /// the source never catches up on it.
    Foreign,
}

impl Place {
    /// The place of `channel`. Known ids decide; an unknown channel is a
    /// customer's DM channel, unless a gateway event names its guild. The
    /// history fetched on catch-up comes only from channels with a checkpoint,
    /// and only known places are checkpointed, so there an unknown channel is a
    /// DM channel too.
    pub fn of(channel: u64, channels: Channels, is_thread: bool, in_guild: bool) -> Place {
        if Some(channel) == channels.support {
            Place::Support
        } else if Some(channel) == channels.agents || is_thread {
            Place::Agents
        } else if in_guild {
            Place::Foreign
        } else {
            Place::Direct
        }
    }
}

pub fn discord(message: &Message, place: Place, channels: Channels) -> Intake {
    let chat = id(message.channel_id.get());
    if message.author.bot || message.author.system {
        return Intake::Ignored(format!("message in channel {chat} not from a person"));
    }
    if !matches!(
        message.kind,
        MessageType::Regular | MessageType::InlineReply
    ) {
        return Intake::Ignored(format!("a {:?} message in channel {chat}", message.kind));
    }
    let key = format!("discord:{chat}:{}", message.id.get());
    if matches!(place, Place::Agents | Place::Foreign) {
        if channels.agents.is_some() {
            return Intake::Agent(AgentMessage {
                platform: Channel::Discord,
                chat,
                user: id(message.author.id.get()),
                text: bounded(message.content.trim()),
                replied: None,
                key,
            });
        }
        return Intake::Ignored(format!(
            "message in channel {chat}, which is neither a DM nor the support channel"
        ));
    }
    let files = message
        .attachments
        .iter()
        .map(|a| ChatFile {
            file_id: a.url.clone(),
            name: crate::parse::sanitize_file_name(&a.filename),
            content_type: a
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: u64::from(a.size),
        })
        .collect();
    let author = &message.author;
    let sender = Sender {
        user: id(author.id.get()),
        name: author
            .global_name
            .clone()
            .unwrap_or_else(|| author.name.clone()),
        language: None,
    };
    customer(
        (Channel::Discord, chat),
        sender,
        &message.content,
        files,
        key,
    )
}

/// A snowflake as the store keeps ids (they stay below 2^63).
fn id(snowflake: u64) -> i64 {
    i64::try_from(snowflake).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::chat::{Ask, ChatMessage};
    use serde_json::{Value, json};

    const CHANNELS: Channels = Channels {
        support: Some(500),
        agents: None,
    };

    /// As the source parses: the place from the channel's id, threads known.
    fn take(message: &Message, channels: Channels) -> Intake {
        let channel = message.channel_id.get();
        let place = Place::of(
            channel,
            channels,
            channel == 700,
            message.guild_id.is_some(),
        );
        discord(message, place, channels)
    }

    fn message(extra: Value) -> Message {
        let mut m = json!({
            "id": "9001", "channel_id": "77", "content": "Nie działa logowanie",
            "author": {"id": "42", "username": "jan", "global_name": "Jan Kowalski"},
            "timestamp": "2026-11-22T10:00:00.000000+00:00", "edited_timestamp": null,
            "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": false, "type": 0,
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        serde_json::from_value(m).unwrap()
    }

    #[test]
    fn a_direct_message_is_a_customer_message() {
        assert_eq!(
            take(&message(json!({})), CHANNELS),
            Intake::Message(ChatMessage {
                platform: Channel::Discord,
                chat: 77,
                user: 42,
                name: "Jan Kowalski".into(),
                language: None,
                text: "Nie działa logowanie".into(),
                key: "discord:77:9001".into(),
                files: Vec::new(),
            })
        );
    }

    #[test]
    fn the_support_channel_counts_and_other_channels_and_bots_do_not() {
        let in_guild = |channel: &str| json!({"guild_id": "1", "channel_id": channel});
        assert!(matches!(
            take(&message(in_guild("500")), CHANNELS),
            Intake::Message(_)
        ));
        assert!(matches!(
            take(&message(in_guild("501")), CHANNELS),
            Intake::Ignored(_)
        ));
        let bot = json!({"author": {"id": "1", "username": "ticketd", "bot": true}});
        assert!(matches!(
            take(&message(bot), Channels::default()),
            Intake::Ignored(_)
        ));
        let pinned = json!({"type": 6});
        assert!(matches!(
            take(&message(pinned), Channels::default()),
            Intake::Ignored(_)
        ));
        assert!(matches!(
            take(&message(json!({"content": "/status"})), Channels::default()),
            Intake::Asked {
                ask: Ask::Status,
                ..
            }
        ));
    }

    #[test]
    fn with_an_agents_channel_other_guild_messages_are_agents() {
        let channels = Channels {
            support: Some(500),
            agents: Some(600),
        };
        let thread = json!({"guild_id": "1", "channel_id": "601", "content": " /take "});
        assert_eq!(
            take(&message(thread), channels),
            Intake::Agent(AgentMessage {
                platform: Channel::Discord,
                chat: 601,
                user: 42,
                text: "/take".into(),
                replied: None,
                key: "discord:601:9001".into(),
            })
        );
    }

    #[test]
    fn history_without_guild_id_keeps_its_place() {
        // REST history carries no guild_id and no member: a ticket's thread
        // (700 here) and the agents' channel stay the agents', the support
        // channel the customers'.
        let channels = Channels {
            support: Some(500),
            agents: Some(600),
        };
        for (channel, agent) in [("700", true), ("600", true), ("500", false), ("77", false)] {
            let m = message(json!({"channel_id": channel}));
            assert!(m.guild_id.is_none());
            let intake = take(&m, channels);
            assert_eq!(
                matches!(intake, Intake::Agent(_)),
                agent,
                "{channel}: {intake:?}"
            );
            assert_eq!(
                matches!(intake, Intake::Message(_)),
                !agent,
                "{channel}: {intake:?}"
            );
        }
    }

    #[test]
    fn attachments_come_with_their_urls_and_sizes() {
        let with_file = json!({"content": "", "attachments": [{
            "id": "5", "filename": "../skan.pdf", "size": 1234, "content_type": "application/pdf",
            "url": "https://cdn.example/skan.pdf", "proxy_url": "https://media.example/skan.pdf",
        }]});
        let Intake::Message(m) = take(&message(with_file), Channels::default()) else {
            panic!("an attachment is a message");
        };
        assert_eq!(m.text, "[skan.pdf]");
        assert_eq!(m.files[0].file_id, "https://cdn.example/skan.pdf");
        assert_eq!(m.files[0].size, 1234);
    }
}
