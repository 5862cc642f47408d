//! Detection of automatically generated mail (RFC 3834, RFC 3464 and common
//! practice), so that nothing ever auto-replies to it.

use mail_parser::{Message, MimeHeaders};
use regex::Regex;
use std::sync::LazyLock;

/// The header our own outgoing mail carries; seeing it on inbound mail means a loop.
pub const LOOP_HEADER: &str = "X-Ticketd-Loop";

/// How the subjects of automatic answers open, in the languages we serve and
/// their neighbours'. Many servers send out-of-office replies without any
/// RFC 3834 header, so the subject is all there is. Each entry must be followed
/// by a colon, a dash or the end of the subject, so a customer's "Out of office
/// printers are down" is still a person's mail.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    // English (Outlook, Gmail, Exchange, Zimbra, cPanel).
    "out of (?:the )?office(?: auto ?reply)?",
    "automatic reply",
    "auto[- ]?reply",
    "auto[- ]?response",
    "automatic response",
    "away from (?:the )?office",
    "on vacation",
    "vacation reply",
    // German.
    "abwesenheitsnotiz",
    "automatische antwort",
    "abwesend",
    "urlaubsabwesenheit",
    // Polish.
    "nieobecność(?: w biurze)?",
    "odpowiedź automatyczna",
    "automatyczna odpowiedź",
    "autoodpowiedź",
    "poza biurem",
    // French, Italian, Spanish, Dutch.
    "réponse automatique",
    "absence du bureau",
    "risposta automatica",
    "fuori sede",
    "respuesta automática",
    "fuera de la oficina",
    "automatisch antwoord",
    "afwezig",
];

static AUTO_REPLY_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    let any = AUTO_REPLY_SUBJECTS.join("|");
    Regex::new(&format!(r"(?i)^\s*(?:(?:{any})\s*)+(?:[:\-–]|$)"))
        .expect("the auto-reply subject patterns are valid")
});

/// Whether a subject is that of an out-of-office or other automatic answer.
pub fn is_auto_reply_subject(subject: &str) -> bool {
    AUTO_REPLY_SUBJECT.is_match(subject)
}

/// Whether a message is an automatic answer to someone's mail (an
/// out-of-office reply): RFC 3834 `auto-replied`, an auto-reply header, or a
/// subject that says so; not a delivery report (a bounce is kept, PRODUCT.md
/// §5). Such a message that threads onto no ticket is journaled, not made a
/// ticket.
pub fn is_auto_reply(msg: &Message<'_>) -> bool {
    let report = msg.content_type().is_some_and(|ct| {
        ct.subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if report {
        return false;
    }
    let auto_submitted =
        text(msg, "Auto-Submitted").is_some_and(|v| v.eq_ignore_ascii_case("auto-replied"));
    let precedence = text(msg, "Precedence").is_some_and(|v| v.eq_ignore_ascii_case("auto_reply"));
    let header = ["X-Autoreply", "X-Autorespond"]
        .iter()
        .any(|h| msg.header_raw(*h).is_some());
    auto_submitted || precedence || header || msg.subject().is_some_and(is_auto_reply_subject)
}

/// Why a message counts as auto-generated, or `None` for mail a person wrote.
pub fn detect(msg: &Message<'_>, sender: Option<&str>) -> Option<String> {
    if msg.header_raw(LOOP_HEADER).is_some() {
        return Some(format!("loop marker {LOOP_HEADER}"));
    }
    if let Some(v) = text(msg, "Auto-Submitted")
        && !v.eq_ignore_ascii_case("no")
    {
        return Some(format!("Auto-Submitted: {v}"));
    }
    if let Some(v) = text(msg, "Precedence") {
        let v = v.to_ascii_lowercase();
        if ["bulk", "junk", "list", "auto_reply"].contains(&v.as_str()) {
            return Some(format!("Precedence: {v}"));
        }
    }
    for name in [
        "X-Autoreply",
        "X-Autorespond",
        "X-Auto-Response-Suppress",
        "List-Id",
        "List-Unsubscribe",
    ] {
        if msg.header_raw(name).is_some() {
            return Some(format!("{name} present"));
        }
    }
    if let Some(addr) = sender
        && is_robot_address(addr)
    {
        return Some(format!("robot sender {addr}"));
    }
    if msg
        .header_raw("Return-Path")
        .is_some_and(|v| v.trim() == "<>")
    {
        return Some("empty Return-Path".into());
    }
    if let Some(subject) = msg.subject()
        && is_auto_reply_subject(subject)
    {
        return Some(format!("auto-reply subject {:?}", subject.trim()));
    }
    if let Some(ct) = msg.content_type()
        && ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        let kind = ct.attribute("report-type").unwrap_or("unknown");
        return Some(format!("multipart/report ({kind})"));
    }
    None
}

/// The original Message-ID a delivery status notification reports on.
pub fn bounce_of(msg: &Message<'_>) -> Option<String> {
    let ct = msg.content_type()?;
    if !ct
        .subtype()
        .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return None;
    }
    msg.attachments().find_map(|part| {
        if let Some(inner) = part.message() {
            return inner.message_id().map(str::to_string);
        }
        let ct = part.content_type()?;
        let sub = ct.subtype()?.to_ascii_lowercase();
        if sub == "rfc822-headers" || sub == "rfc822" {
            let headers = mail_parser::MessageParser::default().parse(part.contents())?;
            return headers.message_id().map(str::to_string);
        }
        None
    })
}

fn text<'a>(msg: &'a Message<'a>, name: &'a str) -> Option<&'a str> {
    msg.header_raw(name)
        .map(str::trim)
        .map(|v| v.split(';').next().unwrap_or(v).trim())
}

pub fn is_robot_address(addr: &str) -> bool {
    let local = addr.split('@').next().unwrap_or("").to_ascii_lowercase();
    let base = local
        .split(['+', '-', '.', '_'])
        .collect::<Vec<_>>()
        .join("");
    [
        "mailerdaemon",
        "postmaster",
        "noreply",
        "donotreply",
        "nonreply",
        "bounce",
        "bounces",
    ]
    .iter()
    .any(|robot| base == *robot || (base.starts_with(robot) && local.starts_with(robot)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_raw(raw: &str) -> Option<String> {
        let msg = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        let from = msg.from().and_then(|a| a.first()).and_then(|a| a.address());
        detect(&msg, from)
    }

    #[test]
    fn person_is_not_auto_generated() {
        assert_eq!(detect_raw("From: a@b.pl\nSubject: x\n\nhi"), None);
        assert_eq!(detect_raw("From: a@b.pl\nAuto-Submitted: no\n\nhi"), None);
    }

    #[test]
    fn headers_and_senders_mark_auto_generated() {
        for raw in [
            "From: a@b.pl\nAuto-Submitted: auto-replied\n\nx",
            "From: a@b.pl\nPrecedence: bulk\n\nx",
            "From: a@b.pl\nX-Autoreply: yes\n\nx",
            "From: a@b.pl\nList-Id: <x.lists.b.pl>\n\nx",
            "From: MAILER-DAEMON@b.pl\n\nx",
            "From: no-reply@b.pl\n\nx",
            "From: a@b.pl\nReturn-Path: <>\n\nx",
            "From: a@b.pl\nX-Ticketd-Loop: 1\n\nx",
        ] {
            assert!(detect_raw(raw).is_some(), "{raw}");
        }
        assert_eq!(detect_raw("From: noreen@b.pl\n\nx"), None);
    }

    #[test]
    fn auto_reply_subjects_without_headers_are_auto_generated() {
        for subject in [
            "Out of Office: Printer broken",
            "Out of the office",
            "Out of Office AutoReply: Re: [TKT-2026-0001] x",
            "Automatic reply: Invoice",
            "AutoReply: x",
            "Auto-Reply - x",
            "Abwesenheitsnotiz: Drucker",
            "Automatische Antwort: Rechnung",
            "Nieobecność: Faktura",
            "Nieobecność w biurze",
            "Odpowiedź automatyczna: Drukarka",
            "Automatyczna odpowiedź: Drukarka",
            "Réponse automatique : facture",
        ] {
            let raw = format!("From: a@b.pl\nSubject: {subject}\n\nx");
            let reason = detect_raw(&raw);
            assert!(reason.is_some(), "{subject}");
            let msg = mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .unwrap();
            assert!(is_auto_reply(&msg), "{subject}");
        }
    }

    #[test]
    fn a_person_writing_about_absence_is_not_auto_generated() {
        for subject in [
            "Out of office printers are down",
            "Question about the out of office setting",
            "Re: automatic reply does not work",
            "Autoreply configuration help",
            "Drukarka poza biurem nie działa",
            "Abwesenheitsnotiz einrichten?",
        ] {
            let raw = format!(
                "From: a@b.pl\nSubject: {subject}\n\nI am out of office tomorrow, automatic reply: on."
            );
            assert_eq!(detect_raw(&raw), None, "{subject}");
        }
    }
}
