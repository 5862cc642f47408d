//! Detection of automatically generated mail (RFC 3834, RFC 3464 and common
//! practice), so that nothing ever auto-replies to it.

use mail_parser::{Message, MimeHeaders};

/// The header our own outgoing mail carries; seeing it on inbound mail means a loop.
pub const LOOP_HEADER: &str = "X-Ticketd-Loop";

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
}
