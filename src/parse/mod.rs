//! Parsing: raw RFC 5322 bytes → [`ParsedMail`]. Pure: no IO, and it never fails
//! on input; mail that cannot be a message at all comes back as [`NotMail`].

pub mod autogen;
pub mod chat;
pub mod command;
pub mod discord;
pub mod html;
pub mod quotes;
pub mod subject;

use mail_parser::{Address, Message, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

/// An address with an optional display name; the address is lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Sanitized file name: no directories, no control characters.
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Everything the later stages need from one inbound mail.
#[derive(Debug, Clone, Default)]
pub struct ParsedMail {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// sha256 of the raw bytes, hex.
    pub content_hash: String,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// Envelope recipients: Delivered-To, X-Original-To, Envelope-To.
    pub delivered_to: Vec<String>,
    pub subject: String,
    /// What the author wrote, after quote and signature stripping.
    pub body: String,
    /// What stripping cut (quoted history, signature).
    pub stripped: String,
    pub attachments: Vec<Attachment>,
    /// Primary language tag from Content-Language, e.g. "pl".
    pub language: Option<String>,
    /// Why the mail counts as auto-generated (RFC 3834), if it does.
    pub auto_generated: Option<String>,
    /// An out-of-office or other automatic answer (`autogen::is_auto_reply`):
    /// one that threads onto no ticket is journaled, not made a ticket.
    pub auto_reply: bool,
    /// For a delivery status notification: the Message-ID it reports on.
    pub bounce_of: Option<String>,
    /// Things that were odd but did not stop parsing.
    pub warnings: Vec<String>,
    /// Top-level headers (name, value) in message order, for rule conditions.
    pub headers: Vec<(String, String)>,
}

impl ParsedMail {
    /// The key that makes ingest exactly-once: the Message-ID, or the content hash.
    pub fn dedupe_key(&self) -> String {
        match &self.message_id {
            Some(id) => id.clone(),
            None => format!("sha256:{}", self.content_hash),
        }
    }

    /// Every address on To and Cc.
    pub fn recipients(&self) -> impl Iterator<Item = &Mailbox> {
        self.to.iter().chain(self.cc.iter())
    }
}

/// Why raw bytes were not accepted as a mail message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotMail(pub String);

const MAX_REFERENCES: usize = 100;
const MAX_SUBJECT_CHARS: usize = 500;
/// A text body longer than this (a pasted log, a huge HTML page) is cut
/// there in the comment, and the whole text is kept as an attachment: later
/// stages (quote stripping, rules, templates, the store) never hold more.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Parses one message. Returns `NotMail` only when the bytes cannot be a message
/// or name no sender; everything else is stored as well as it can be parsed.
pub fn parse(raw: &[u8]) -> Result<ParsedMail, NotMail> {
    // mail-parser is not expected to panic, but input from strangers must never
    // take the daemon down: a panic becomes a quarantine reason.
    std::panic::catch_unwind(|| parse_unguarded(raw))
        .unwrap_or_else(|_| Err(NotMail("the MIME parser failed on this message".into())))
}

fn parse_unguarded(raw: &[u8]) -> Result<ParsedMail, NotMail> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(NotMail("empty input".into()));
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| NotMail("not an RFC 5322 message".into()))?;
    if !looks_like_mail(&msg) {
        return Err(NotMail("no mail headers found".into()));
    }
    let from = first_mailbox(msg.from())
        .or_else(|| first_mailbox(msg.sender()))
        .or_else(|| first_mailbox(msg.reply_to()))
        .ok_or_else(|| NotMail("no sender address (From, Sender, Reply-To)".into()))?;

    let mut warnings = Vec::new();
    let (raw_body, whole_body) = body_text(&msg, &mut warnings);
    let stripped = quotes::strip(&raw_body);
    let subject = clean_line(msg.subject().unwrap_or(""), MAX_SUBJECT_CHARS);

    Ok(ParsedMail {
        message_id: msg.message_id().and_then(clean_id),
        content_hash: hex::encode(Sha256::digest(raw)),
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        auto_generated: autogen::detect(&msg, Some(&from.email)),
        auto_reply: autogen::is_auto_reply(&msg),
        bounce_of: autogen::bounce_of(&msg).as_deref().and_then(clean_id),
        to: mailboxes(msg.to()),
        cc: mailboxes(msg.cc()),
        delivered_to: delivered_to(&msg),
        from: Some(from),
        subject: if subject.is_empty() {
            "(no subject)".into()
        } else {
            subject
        },
        body: stripped.kept,
        stripped: stripped.cut,
        attachments: whole_body.into_iter().chain(attachments(&msg)).collect(),
        language: language(&msg),
        headers: headers(&msg, raw),
        warnings,
    })
}

/// The top-level headers as rules see them: name and decoded, cleaned text
/// (structured headers keep their raw text), at most 200.
fn headers(msg: &mail_parser::Message<'_>, raw: &[u8]) -> Vec<(String, String)> {
    msg.headers()
        .iter()
        .take(200)
        .map(|h| {
            let value = match h.value().as_text() {
                Some(text) => clean_line(text, 1000),
                None => {
                    let span = raw.get(h.offset_start as usize..h.offset_end as usize);
                    clean_line(&String::from_utf8_lossy(span.unwrap_or_default()), 1000)
                }
            };
            (clean_line(h.name(), 100), value)
        })
        .collect()
}

/// A message needs at least one of the headers every real mail has.
fn looks_like_mail(msg: &Message<'_>) -> bool {
    [
        "From",
        "Sender",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Received",
    ]
    .iter()
    .any(|h| msg.header_raw(*h).is_some())
}

fn first_mailbox(addr: Option<&Address<'_>>) -> Option<Mailbox> {
    mailboxes(addr).into_iter().next()
}

fn mailboxes(addr: Option<&Address<'_>>) -> Vec<Mailbox> {
    let Some(addr) = addr else { return Vec::new() };
    addr.iter()
        .filter_map(|a| {
            let email = clean_line(a.address()?, 320).to_lowercase();
            let valid = email.contains('@') && !email.contains(char::is_whitespace);
            valid.then(|| Mailbox {
                email,
                name: clean_line(a.name().unwrap_or(""), 200),
            })
        })
        .take(200)
        .collect()
}

fn delivered_to(msg: &Message<'_>) -> Vec<String> {
    ["Delivered-To", "X-Original-To", "Envelope-To"]
        .iter()
        .flat_map(|h| msg.header_values(*h))
        .filter_map(|v| v.as_text())
        .map(|v| clean_line(v.trim_matches(['<', '>', ' ']), 320).to_lowercase())
        .filter(|v| v.contains('@'))
        .collect()
}

fn ids(value: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    let list: Vec<&str> = match value {
        mail_parser::HeaderValue::Text(t) => vec![t.as_ref()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|s| s.as_ref()).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = list.into_iter().filter_map(clean_id).collect();
    // Keep the most recent references: they are the ones that thread.
    if out.len() > MAX_REFERENCES {
        out.drain(..out.len() - MAX_REFERENCES);
    }
    out
}

fn clean_id(id: &str) -> Option<String> {
    let id = clean_line(id.trim().trim_matches(['<', '>']), 400);
    (!id.is_empty() && !id.contains(char::is_whitespace)).then_some(id)
}

/// Text body: text/plain preferred, HTML-only mail turned into text.
/// The body as text, and for a body over [`MAX_BODY_BYTES`] the whole of it
/// as an attachment (the text then ends with a line saying so).
fn body_text(msg: &Message<'_>, warnings: &mut Vec<String>) -> (String, Option<Attachment>) {
    let Some(part) = msg.text_part(0) else {
        warnings.push("message has no text body".into());
        return (String::new(), None);
    };
    if let Some(charset) = part.content_type().and_then(|ct| ct.attribute("charset"))
        && !is_known_charset(charset)
    {
        warnings.push(format!(
            "unknown charset {:?}; text decoded lossily",
            clean_line(charset, 40)
        ));
    }
    let (text, whole) = if part.is_text_html() {
        let html = msg.body_html(0).unwrap_or_default();
        let (head, whole) = cut(&html, 4 * MAX_BODY_BYTES, ("message.html", "text/html"));
        (html::to_text(head), whole)
    } else {
        let text = msg.body_text(0).unwrap_or_default();
        let (head, whole) = cut(&text, MAX_BODY_BYTES, ("message.txt", "text/plain"));
        (head.to_string(), whole)
    };
    let mut text = clean_text(&text);
    if let Some(w) = &whole {
        text.truncate(floor_char_boundary(&text, MAX_BODY_BYTES));
        text.push_str(&format!(
            "\n\n[… cut at {} KB; the whole text ({} bytes) is attached as {}]",
            MAX_BODY_BYTES / 1024,
            w.data.len(),
            w.name
        ));
    }
    (text, whole)
}

/// `text` up to `limit` bytes, and when it is longer, the whole of it as an
/// attachment named `name`.
fn cut<'a>(
    text: &'a str,
    limit: usize,
    (name, ctype): (&str, &str),
) -> (&'a str, Option<Attachment>) {
    if text.len() <= limit {
        return (text, None);
    }
    let whole = Attachment {
        name: name.into(),
        content_type: ctype.into(),
        data: text.as_bytes().to_vec(),
    };
    (&text[..floor_char_boundary(text, limit)], Some(whole))
}

/// The largest index at most `at` that is a character boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

fn is_known_charset(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    ["utf-8", "utf8", "us-ascii", "ascii"].contains(&lower.as_str())
        || mail_parser::decoders::charsets::map::charset_decoder(lower.as_bytes()).is_some()
}

/// Removes control characters (keeps newlines and tabs) and normalizes line ends.
pub fn clean_text(text: &str) -> String {
    // Control characters are below 0x20, 0x7F, or U+0080..U+009F (0xC2
    // 0x80..0x9F): each starts at a character boundary. CR LF becomes LF
    // because every CR goes.
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut kept_from, mut i) = (0, 0);
    while i < bytes.len() {
        let control = match bytes[i] {
            b'\n' | b'\t' => 0,
            b if b < 0x20 || b == 0x7f => 1,
            0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => 2,
            _ => 0,
        };
        if control == 0 {
            i += 1;
            continue;
        }
        out.push_str(&text[kept_from..i]);
        i += control;
        kept_from = i;
    }
    out.push_str(&text[kept_from..]);
    out.trim_matches('\n').to_string()
}

/// One line of header text: no control characters, folded whitespace, bounded length.
pub fn clean_line(text: &str, max_chars: usize) -> String {
    let folded: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    folded.chars().take(max_chars).collect()
}

fn attachments(msg: &Message<'_>) -> Vec<Attachment> {
    msg.attachments()
        .enumerate()
        .map(|(i, part)| {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase();
            let fallback = if part.is_message() {
                format!("message-{}.eml", i + 1)
            } else {
                format!("attachment-{}", i + 1)
            };
            let name = part
                .attachment_name()
                .map(sanitize_file_name)
                .filter(|n| !n.is_empty())
                .unwrap_or(fallback);
            Attachment {
                name,
                content_type: clean_line(&content_type, 100),
                data: part.contents().to_vec(),
            }
        })
        .collect()
}

/// A file name safe to show and to offer for download: the last path component,
/// no control or invisible characters (bidi overrides, zero-width characters,
/// line separators: they make `invoice\u{202e}fdp.exe` look like a PDF), no
/// leading dots, no trailing dots or spaces, no Windows device name
/// (`CON`, `NUL.txt`, `COM1.exe` get a leading `_`), at most 200 characters.
pub fn sanitize_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .filter(|c| !matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        .collect();
    let trimmed: String = cleaned
        .trim()
        .trim_start_matches('.')
        .chars()
        .take(200)
        .collect();
    let trimmed = trimmed.trim_end_matches(['.', ' ']);
    match is_windows_device(trimmed) {
        true => format!("_{trimmed}"),
        false => trimmed.to_string(),
    }
}

/// Characters that change how a name is shown without being seen: Unicode
/// format characters (bidi controls and isolates, zero-width characters, the
/// BOM, interlinear annotation) and the line and paragraph separators.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// `CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`, with or without an
/// extension: names Windows opens as devices.
fn is_windows_device(name: &str) -> bool {
    let stem = name
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end()
        .to_ascii_uppercase();
    match stem.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let (head, digit) = (stem.get(..3), stem.get(3..));
            matches!(head, Some("COM" | "LPT"))
                && matches!(
                    digit,
                    Some(
                        "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
                    )
                )
        }
    }
}

/// The writer's language: Content-Language, else the first Accept-Language.
fn language(msg: &Message<'_>) -> Option<String> {
    let raw = msg
        .header_raw("Content-Language")
        .or_else(|| msg.header_raw("Accept-Language"))?;
    let first = raw.split(',').next()?.trim();
    let primary = first.split(['-', '_']).next()?.trim().to_ascii_lowercase();
    (primary.len() >= 2 && primary.len() <= 8 && primary.chars().all(|c| c.is_ascii_alphabetic()))
        .then_some(primary)
}

#[cfg(test)]
mod tests {

    #[test]
    fn clean_text_drops_control_characters_and_carriage_returns_and_trims_newlines() {
        // The plain definition the fast path must agree with.
        let reference = |text: &str| {
            text.replace("\r\n", "\n")
                .chars()
                .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
                .collect::<String>()
                .trim_matches('\n')
                .to_string()
        };
        for text in [
            "\n\nplain text\n",
            "a\r\nb\rc\n\r\n",
            "tab\there \u{7}bell \u{7f}del",
            "za\u{17c}\u{f3}\u{142}\u{107} g\u{119}\u{15b}l\u{105} ja\u{17a}\u{144}",
            "next line\u{85}and \u{80}\u{9f} \u{a0}nbsp \u{c2}",
            "",
            "\n\r\n",
        ] {
            assert_eq!(clean_text(text), reference(text), "{text:?}");
        }
    }

    use super::*;

    #[test]
    fn rejects_what_is_not_mail() {
        assert_eq!(parse(b"").unwrap_err().0, "empty input");
        assert!(parse(b"\x00\x01\x02\xff\xfe garbage \x00").is_err());
        assert!(
            parse(b"Subject: hi\n\nno sender")
                .unwrap_err()
                .0
                .contains("no sender")
        );
    }

    #[test]
    fn file_names_cannot_traverse() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize_file_name(".htaccess"), "htaccess");
        assert_eq!(sanitize_file_name("a\x00b\nc.pdf"), "abc.pdf");
        assert_eq!(sanitize_file_name(".."), "");
    }

    #[test]
    fn a_huge_body_is_cut_and_kept_whole_as_an_attachment() {
        let line = "Błąd połączenia z bazą, próba 1\r\n";
        let body = line.repeat(MAX_BODY_BYTES / line.len() + 10);
        let raw = format!(
            "From: a@b.pl\r\nSubject: log\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        );
        let mail = parse(raw.as_bytes()).unwrap();
        assert!(
            mail.body.len() < MAX_BODY_BYTES + 200,
            "{}",
            mail.body.len()
        );
        assert!(mail.body.starts_with("Błąd połączenia"));
        assert!(
            mail.body.ends_with("is attached as message.txt]"),
            "{}",
            &mail.body[mail.body.len() - 80..]
        );
        assert_eq!(mail.attachments.len(), 1);
        assert_eq!(mail.attachments[0].name, "message.txt");
        let whole = &mail.attachments[0].data;
        let same =
            whole.as_slice() == body.as_bytes() || whole.as_slice() == body.trim_end().as_bytes();
        assert!(
            same,
            "the attachment is not the whole text ({} bytes)",
            whole.len()
        );
        assert!(mail.warnings.is_empty(), "{:?}", mail.warnings);
        // A body under the limit stays whole, with no attachment.
        let small = parse(b"From: a@b.pl\r\nSubject: x\r\n\r\nkr\xc3\xb3tko").unwrap();
        assert_eq!(
            (small.body.as_str(), small.attachments.len()),
            ("krótko", 0)
        );
    }

    #[test]
    fn file_names_cannot_spoof() {
        assert_eq!(
            sanitize_file_name("invoice\u{202e}fdp.exe"),
            "invoicefdp.exe"
        );
        assert_eq!(
            sanitize_file_name("a\u{200b}b\u{200d}c\u{feff}.pdf"),
            "abc.pdf"
        );
        assert_eq!(
            sanitize_file_name("x\u{2066}y\u{2069}\u{2028}z.txt"),
            "xyz.txt"
        );
        assert_eq!(sanitize_file_name("CON"), "_CON");
        assert_eq!(sanitize_file_name("nul.txt"), "_nul.txt");
        assert_eq!(sanitize_file_name("COM1.exe"), "_COM1.exe");
        assert_eq!(sanitize_file_name("lpt9"), "_lpt9");
        assert_eq!(sanitize_file_name("report.pdf. . "), "report.pdf");
        assert_eq!(sanitize_file_name("console.log"), "console.log");
        assert_eq!(sanitize_file_name("COM10.txt"), "COM10.txt");
        assert_eq!(sanitize_file_name("Faktura łódź.pdf"), "Faktura łódź.pdf");
        assert_eq!(sanitize_file_name("\u{202e}\u{200b}"), "");
        assert_eq!(sanitize_file_name("ąą.txt"), "ąą.txt");
    }

    #[test]
    fn header_lines_lose_control_characters() {
        assert_eq!(clean_line("a\r\nb\tc\x07d", 100), "a b c d");
        assert_eq!(clean_line("żółw", 2), "żó");
    }

    #[test]
    fn language_from_content_language_then_accept_language() {
        let lang = |raw: &str| parse(raw.as_bytes()).unwrap().language;
        assert_eq!(
            lang("From: a@b.pl\nContent-Language: pl-PL\n\nx").as_deref(),
            Some("pl")
        );
        assert_eq!(
            lang("From: a@b.pl\nAccept-Language: de-DE, en-US\n\nx").as_deref(),
            Some("de")
        );
        assert_eq!(lang("From: a@b.pl\nAccept-Language: ;;;\n\nx"), None);
    }

    #[test]
    fn missing_message_id_uses_content_hash() {
        let m = parse(b"From: a@b.pl\nSubject: x\n\nbody").unwrap();
        assert_eq!(m.message_id, None);
        assert!(m.dedupe_key().starts_with("sha256:"));
        assert_eq!(m.dedupe_key().len(), 7 + 64);
    }
}
