//! Chat updates as the pipeline takes them: what a customer wrote to the bot
//! in a private chat, or why it is not taken and whether the sender is told.
//! Pure: a teloxide `Update` in, an [`Intake`] out.

use teloxide::types::{Update, UpdateKind};

/// A customer's message to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// The private chat to answer in.
    pub chat: i64,
    /// The author's Telegram user id (the contact's identity).
    pub user: i64,
    pub name: String,
    pub language: Option<String>,
    pub text: String,
    /// Unique per message: `telegram:CHAT:MESSAGE_ID` (the dedupe key).
    pub key: String,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// A new ticket or a comment on the customer's open one.
    Message(ChatMessage),
    /// Not taken; the sender in `chat` gets an answer (in their language).
    Refused {
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

pub fn telegram(update: &Update) -> Intake {
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
    if !message.chat.is_private() {
        return Intake::Ignored(format!(
            "message in chat {chat}, which is not a private chat"
        ));
    }
    let Some(user) = message.from.as_ref().filter(|u| !u.is_bot) else {
        return Intake::Ignored(format!("message in chat {chat} not from a person"));
    };
    let text = message
        .text()
        .or_else(|| message.caption())
        .unwrap_or("")
        .trim();
    if let Some(command) = text.strip_prefix('/') {
        let name = command.split_whitespace().next().unwrap_or("");
        let refusal = match name.split('@').next().unwrap_or("") {
            "start" | "help" => Refusal::Greeting,
            _ => Refusal::UnknownCommand,
        };
        return Intake::Refused {
            chat,
            refusal,
            language: user.language_code.clone(),
        };
    }
    if !text.chars().any(char::is_alphanumeric) {
        return Intake::Refused {
            chat,
            refusal: Refusal::NoWords,
            language: user.language_code.clone(),
        };
    }
    let mut text = text.to_string();
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Intake::Message(ChatMessage {
        chat,
        user: i64::try_from(user.id.0).unwrap_or(i64::MAX),
        name: user.full_name(),
        language: user.language_code.clone(),
        text,
        key: format!("telegram:{chat}:{}", message.id.0),
    })
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
        let got = telegram(&update(private(
            json!({"text": "  Drukarka nie działa\nod rana "}),
        )));
        assert_eq!(
            got,
            Intake::Message(ChatMessage {
                chat: 42,
                user: 42,
                name: "Jan Kowalski".into(),
                language: Some("pl".into()),
                text: "Drukarka nie działa\nod rana".into(),
                key: "telegram:42:10".into(),
            })
        );
    }

    #[test]
    fn stickers_emoji_and_commands_get_an_answer_and_groups_and_edits_none() {
        let refused = |m| match telegram(&update(m)) {
            Intake::Refused {
                chat: 42,
                refusal,
                language,
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
        group["chat"] = json!({"id": -100, "type": "group", "title": "Agents"});
        assert!(matches!(telegram(&update(group)), Intake::Ignored(_)));
        let edit = parse(
            json!({"update_id": 8, "edited_message": private(json!({"text": "x", "edit_date": 1}))}),
        );
        assert!(matches!(telegram(&edit), Intake::Ignored(_)));
        let mut bot = private(json!({"text": "hi"}));
        bot["from"]["is_bot"] = json!(true);
        assert!(matches!(telegram(&update(bot)), Intake::Ignored(_)));
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
