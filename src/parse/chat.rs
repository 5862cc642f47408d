//! Chat updates as the pipeline takes them: what a customer wrote to the bot
//! in a private chat, what someone wrote in the agents' chat, or why it is
//! not taken and whether the sender is told. Pure: a teloxide `Update` in,
//! an [`Intake`] out.

use crate::ticket::Channel;
use teloxide::types::{FileMeta, Message, Update, UpdateKind, User};

/// A customer's message to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Telegram or Discord.
    pub platform: Channel,
    /// The chat to answer in (a private chat, a DM or support channel).
    pub chat: i64,
    /// The author's Telegram user id (the contact's identity).
    pub user: i64,
    pub name: String,
    pub language: Option<String>,
    pub text: String,
    /// Unique per message: `telegram:CHAT:MESSAGE_ID` (the dedupe key).
    pub key: String,
    /// Photos and files sent with it, to fetch and store as attachments.
    pub files: Vec<ChatFile>,
}

/// A photo or file in a chat message: what the source fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFile {
    /// Telegram's `file_id` (for `getFile`).
    pub file_id: String,
    /// A safe file name.
    pub name: String,
    pub content_type: String,
    /// The size Telegram announces (0 when unknown).
    pub size: u64,
}

/// Why a message is not taken; the sender is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `/start`: the bot says what to do.
    Greeting,
    /// Nothing but stickers, emoji, media without a caption, or an empty text.
    NoWords,
    /// A command a customer cannot use.
    UnknownCommand,
}

/// A message in the agents' chat (the sender is not known to be an agent
/// yet: the pipeline checks the id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMessage {
    /// Telegram or Discord.
    pub platform: Channel,
    /// The chat to answer in (the agents' group, a ticket's thread).
    pub chat: i64,
    /// The author's Telegram user id.
    pub user: i64,
    pub text: String,
    /// The text of the bot's message this replies to (a ticket's
    /// notification names the ticket).
    pub replied: Option<String>,
    /// `telegram:CHAT:MESSAGE_ID`, as for customers.
    pub key: String,
}

/// What a customer asks about their tickets by command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `/status`: their unresolved tickets.
    Status,
    /// `/close`: close the open ticket of this chat.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// A new ticket or a comment on the customer's open one.
    Message(ChatMessage),
    /// A customer's `/status` or `/close`.
    Asked {
        platform: Channel,
        chat: i64,
        user: i64,
        language: Option<String>,
        ask: Ask,
    },
    /// A message in the agents' chat: a reply to a ticket or a command.
    Agent(AgentMessage),
    /// Not taken; the sender in `chat` gets an answer (in their language).
    Refused {
        platform: Channel,
        chat: i64,
        refusal: Refusal,
        language: Option<String>,
    },
    /// Not taken, nobody to tell (edits, groups, bots, other updates).
    Ignored(String),
}

/// The longest text taken (Telegram's own limit is 4,096 characters; a
/// caption 1,024).
const MAX_TEXT: usize = 16 * 1024;

/// `agent_chat`: the configured agents' group, whose messages are agents'.
pub fn telegram(update: &Update, agent_chat: Option<i64>) -> Intake {
    let message = match &update.kind {
        UpdateKind::Message(m) => m,
        UpdateKind::EditedMessage(m) => {
            return Intake::Ignored(format!(
                "edit of message {} in chat {}: the first version was taken",
                m.id.0, m.chat.id.0
            ));
        }
        _ => return Intake::Ignored("not a message".into()),
    };
    let chat = message.chat.id.0;
    if Some(chat) == agent_chat {
        return agent_message(message);
    }
    if !message.chat.is_private() {
        return Intake::Ignored(format!(
            "message in chat {chat}, which is not a private chat"
        ));
    }
    let Some(user) = message.from.as_ref().filter(|u| !u.is_bot) else {
        return Intake::Ignored(format!("message in chat {chat} not from a person"));
    };
    let text = message.text().or_else(|| message.caption()).unwrap_or("");
    let sender = Sender {
        user: user_id(user),
        name: user.full_name(),
        language: user.language_code.clone(),
    };
    let key = format!("telegram:{chat}:{}", message.id.0);
    customer(
        (Channel::Telegram, chat),
        sender,
        text,
        files_of(message),
        key,
    )
}

/// Who wrote a customer's message.
pub struct Sender {
    pub user: i64,
    pub name: String,
    pub language: Option<String>,
}

/// A customer's message on any platform: `/status` and `/close`, another
/// command, no words (and no file), or a message to take.
pub fn customer(
    (platform, chat): (Channel, i64),
    sender: Sender,
    text: &str,
    files: Vec<ChatFile>,
    key: String,
) -> Intake {
    let text = text.trim();
    let language = sender.language.clone();
    if let Some(command) = text.strip_prefix('/') {
        let name = command.split_whitespace().next().unwrap_or("");
        let refusal = match name.split('@').next().unwrap_or("") {
            "start" | "help" => Refusal::Greeting,
            "status" | "close" => {
                let ask = if name.starts_with("status") {
                    Ask::Status
                } else {
                    Ask::Close
                };
                return Intake::Asked {
                    platform,
                    chat,
                    user: sender.user,
                    language,
                    ask,
                };
            }
            _ => Refusal::UnknownCommand,
        };
        return Intake::Refused {
            platform,
            chat,
            refusal,
            language,
        };
    }
    let has_words = text.chars().any(char::is_alphanumeric);
    if !has_words && files.is_empty() {
        return Intake::Refused {
            platform,
            chat,
            refusal: Refusal::NoWords,
            language,
        };
    }
    // A file without a caption still makes a ticket: its names are the text.
    let text = match has_words {
        true => bounded(text),
        false => files
            .iter()
            .map(|f| format!("[{}]", f.name))
            .collect::<Vec<_>>()
            .join(" "),
    };
    Intake::Message(ChatMessage {
        platform,
        chat,
        user: sender.user,
        name: sender.name,
        language,
        text,
        key,
        files,
    })
}

/// The photo (its largest size), document, video, audio or voice note of
/// a message.
fn files_of(message: &Message) -> Vec<ChatFile> {
    let id = message.id.0;
    let file = |meta: &FileMeta, name: String, content_type: &str| ChatFile {
        file_id: meta.id.to_string(),
        name: crate::parse::sanitize_file_name(&name),
        content_type: content_type.to_string(),
        size: u64::from(meta.size),
    };
    let named = |name: &Option<String>, fallback: String| name.clone().unwrap_or(fallback);
    let mut files = Vec::new();
    if let Some(photo) = message.photo().and_then(|sizes| sizes.last()) {
        files.push(file(&photo.file, format!("photo-{id}.jpg"), "image/jpeg"));
    }
    if let Some(d) = message.document() {
        let name = named(&d.file_name, format!("file-{id}"));
        files.push(file(
            &d.file,
            name,
            &mime(d.mime_type.as_ref(), "application/octet-stream"),
        ));
    }
    if let Some(v) = message.video() {
        let name = named(&v.file_name, format!("video-{id}.mp4"));
        files.push(file(
            &v.file,
            name,
            &mime(v.mime_type.as_ref(), "video/mp4"),
        ));
    }
    if let Some(a) = message.audio() {
        let name = named(&a.file_name, format!("audio-{id}"));
        files.push(file(
            &a.file,
            name,
            &mime(a.mime_type.as_ref(), "audio/mpeg"),
        ));
    }
    if let Some(v) = message.voice() {
        let content_type = mime(v.mime_type.as_ref(), "audio/ogg");
        files.push(file(&v.file, format!("voice-{id}.ogg"), &content_type));
    }
    files
}

/// A MIME type's text, or the fallback.
fn mime(m: Option<&impl ToString>, fallback: &str) -> String {
    m.map_or(fallback.to_string(), ToString::to_string)
}

/// A message in the agents' chat; people only, text or caption.
fn agent_message(message: &Message) -> Intake {
    let chat = message.chat.id.0;
    let Some(user) = message.from.as_ref().filter(|u| !u.is_bot) else {
        return Intake::Ignored(format!(
            "message in the agents' chat {chat} not from a person"
        ));
    };
    let text = message.text().or_else(|| message.caption()).unwrap_or("");
    // Only a reply to the bot's own message names a ticket.
    let replied = message
        .reply_to_message()
        .filter(|r| r.from.as_ref().is_some_and(|u| u.is_bot))
        .and_then(|r| r.text().or_else(|| r.caption()))
        .map(str::to_string);
    Intake::Agent(AgentMessage {
        platform: Channel::Telegram,
        chat,
        user: user_id(user),
        text: bounded(text.trim()),
        replied,
        key: format!("telegram:{chat}:{}", message.id.0),
    })
}

fn user_id(user: &User) -> i64 {
    i64::try_from(user.id.0).unwrap_or(i64::MAX)
}

/// The text without control characters (but line breaks and tabs), cut at
/// [`MAX_TEXT`] bytes (at a character boundary).
pub(crate) fn bounded(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end]
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// A ticket subject from a chat message: its first line, at most 80
/// characters (cut at a word).
pub fn subject_of(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.chars().count() <= 80 {
        return line.to_string();
    }
    let cut: String = line.chars().take(80).collect();
    match cut.rfind(' ') {
        Some(space) if space > 40 => format!("{}…", &cut[..space]),
        _ => format!("{cut}…"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An update from its JSON text, as it comes off the wire (teloxide's
    /// `Update` does not read from a `serde_json::Value`).
    fn parse(update: serde_json::Value) -> Update {
        serde_json::from_str(&update.to_string()).unwrap()
    }

    const AGENTS: i64 = -100;

    fn telegram_(update: &Update) -> Intake {
        telegram(update, Some(AGENTS))
    }

    fn update(message: serde_json::Value) -> Update {
        parse(json!({"update_id": 7, "message": message}))
    }

    fn private(extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({
            "message_id": 10,
            "date": 1_795_168_800,
            "chat": {"id": 42, "type": "private", "first_name": "Jan"},
            "from": {"id": 42, "is_bot": false, "first_name": "Jan", "last_name": "Kowalski",
                     "language_code": "pl"},
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    }

    #[test]
    fn a_private_text_is_a_customer_message() {
        let got = telegram_(&update(private(
            json!({"text": "  Drukarka nie działa\nod rana "}),
        )));
        assert_eq!(
            got,
            Intake::Message(ChatMessage {
                platform: Channel::Telegram,
                chat: 42,
                user: 42,
                name: "Jan Kowalski".into(),
                language: Some("pl".into()),
                text: "Drukarka nie działa\nod rana".into(),
                key: "telegram:42:10".into(),
                files: Vec::new(),
            })
        );
    }

    #[test]
    fn stickers_emoji_and_commands_get_an_answer_and_groups_and_edits_none() {
        let refused = |m| match telegram_(&update(m)) {
            Intake::Refused {
                chat: 42,
                refusal,
                language,
                ..
            } if language.as_deref() == Some("pl") => Some(refusal),
            _ => None,
        };
        assert_eq!(
            refused(private(json!({"text": "👍👍"}))),
            Some(Refusal::NoWords)
        );
        assert_eq!(
            refused(private(
                json!({"location": {"latitude": 52.2, "longitude": 21.0}})
            )),
            Some(Refusal::NoWords)
        );
        assert_eq!(
            refused(private(json!({"text": "/start"}))),
            Some(Refusal::Greeting)
        );
        assert_eq!(
            refused(private(json!({"text": "/priority high"}))),
            Some(Refusal::UnknownCommand)
        );
        let mut group = private(json!({"text": "hello"}));
        group["chat"] = json!({"id": -200, "type": "group", "title": "Elsewhere"});
        assert!(matches!(telegram_(&update(group)), Intake::Ignored(_)));
        let edit = parse(
            json!({"update_id": 8, "edited_message": private(json!({"text": "x", "edit_date": 1}))}),
        );
        assert!(matches!(telegram_(&edit), Intake::Ignored(_)));
        let mut bot = private(json!({"text": "hi"}));
        bot["from"]["is_bot"] = json!(true);
        assert!(matches!(telegram_(&update(bot)), Intake::Ignored(_)));
    }

    #[test]
    fn photos_and_files_come_with_their_names_and_sizes() {
        let photo = json!({"photo": [
            {"file_id": "small", "file_unique_id": "s", "file_size": 100, "width": 90, "height": 90},
            {"file_id": "big", "file_unique_id": "b", "file_size": 9000, "width": 800, "height": 800},
        ]});
        let Intake::Message(m) = telegram_(&update(private(photo))) else {
            panic!("a photo without a caption is a message");
        };
        assert_eq!(m.text, "[photo-10.jpg]");
        assert_eq!(
            m.files,
            [ChatFile {
                file_id: "big".into(),
                name: "photo-10.jpg".into(),
                content_type: "image/jpeg".into(),
                size: 9000,
            }]
        );
        let document = json!({"caption": "Faktura w załączniku", "document": {
            "file_id": "doc", "file_unique_id": "d", "file_size": 1234,
            "file_name": "../faktura 11.pdf", "mime_type": "application/pdf"}});
        let Intake::Message(m) = telegram_(&update(private(document))) else {
            panic!("a document is a message");
        };
        assert_eq!(m.text, "Faktura w załączniku");
        assert_eq!(
            (m.files[0].name.as_str(), m.files[0].content_type.as_str()),
            ("faktura 11.pdf", "application/pdf")
        );
    }

    #[test]
    fn customers_ask_for_status_and_close() {
        for (text, ask) in [("/status", Ask::Status), ("/close@ticketd_bot", Ask::Close)] {
            assert_eq!(
                telegram_(&update(private(json!({ "text": text })))),
                Intake::Asked {
                    platform: Channel::Telegram,
                    chat: 42,
                    user: 42,
                    language: Some("pl".into()),
                    ask
                }
            );
        }
    }

    #[test]
    fn the_agents_chat_gives_agent_messages_with_the_bot_message_they_answer() {
        let mut m = private(json!({"text": " /priority high ", "message_id": 11}));
        m["chat"] = json!({"id": AGENTS, "type": "supergroup", "title": "Agents"});
        m["from"]["id"] = json!(7);
        m["reply_to_message"] = json!({
            "message_id": 5, "date": 1_795_168_000,
            "chat": {"id": AGENTS, "type": "supergroup", "title": "Agents"},
            "from": {"id": 1, "is_bot": true, "first_name": "ticketd"},
            "text": "TKT-2026-0001 · Jan: Drukarka",
        });
        assert_eq!(
            telegram_(&update(m.clone())),
            Intake::Agent(AgentMessage {
                platform: Channel::Telegram,
                chat: AGENTS,
                user: 7,
                text: "/priority high".into(),
                replied: Some("TKT-2026-0001 · Jan: Drukarka".into()),
                key: format!("telegram:{AGENTS}:11"),
            })
        );
        // A reply to a person's message names no ticket.
        m["reply_to_message"]["from"] = json!({"id": 8, "is_bot": false, "first_name": "Ola"});
        assert!(matches!(
            telegram_(&update(m.clone())),
            Intake::Agent(AgentMessage { replied: None, .. })
        ));
        // Another bot in the agents' chat is not an agent.
        m["from"]["is_bot"] = json!(true);
        assert!(matches!(telegram_(&update(m)), Intake::Ignored(_)));
    }

    #[test]
    fn huge_texts_are_cut_at_a_character_boundary() {
        let text = "ż".repeat(MAX_TEXT);
        let Intake::Message(m) = telegram_(&update(private(json!({ "text": text })))) else {
            panic!("not a message");
        };
        assert!(m.text.len() <= MAX_TEXT && m.text.len() > MAX_TEXT - 2);
        // NUL and other control characters go (PostgreSQL refuses NUL in text).
        let Intake::Message(m) = telegram_(&update(private(json!({ "text": "a\u{0}b\u{7}\nc" }))))
        else {
            panic!("not a message");
        };
        assert_eq!(m.text, "ab\nc");
    }

    #[test]
    fn subjects_are_the_first_line_cut_at_a_word() {
        assert_eq!(subject_of("\n Faktura \nreszta"), "Faktura");
        let long = "słowo ".repeat(30);
        let s = subject_of(&long);
        assert!(s.ends_with('…') && s.chars().count() <= 81, "{s}");
        assert!(!s.contains("  "));
    }
}
