//! Every fixture parsed and rendered as text, compared with its golden file
//! `tests/fixtures/NAME.parsed`. Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test --test parse_golden`, then review the diff.

mod common;

use std::fmt::Write;
use ticketd::parse::{self, ParsedMail};

fn render(mail: &ParsedMail) -> String {
    let mut out = String::new();
    let from = mail
        .from
        .as_ref()
        .map(|m| format!("{} <{}>", m.name, m.email));
    let list = |v: &[parse::Mailbox]| {
        v.iter()
            .map(|m| m.email.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "message_id: {:?}", mail.message_id);
    let _ = writeln!(out, "from: {}", from.unwrap_or_default());
    let _ = writeln!(out, "to: {}", list(&mail.to));
    let _ = writeln!(out, "cc: {}", list(&mail.cc));
    let _ = writeln!(out, "subject: {}", mail.subject);
    let _ = writeln!(
        out,
        "normalized: {:?}",
        parse::subject::normalize(&mail.subject)
    );
    let _ = writeln!(out, "in_reply_to: {:?}", mail.in_reply_to);
    let _ = writeln!(out, "references: {:?}", mail.references);
    let _ = writeln!(out, "language: {:?}", mail.language);
    let _ = writeln!(out, "auto_generated: {:?}", mail.auto_generated);
    let _ = writeln!(out, "bounce_of: {:?}", mail.bounce_of);
    for a in &mail.attachments {
        let _ = writeln!(
            out,
            "attachment: {:?} {} {} bytes",
            a.name,
            a.content_type,
            a.data.len()
        );
    }
    let _ = writeln!(out, "warnings: {:?}", mail.warnings);
    let _ = writeln!(out, "--- body\n{}", mail.body);
    let _ = writeln!(out, "--- stripped\n{}", mail.stripped);
    out
}

#[test]
fn fixtures_parse_as_recorded() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = common::fixture_path("");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "fixture corpus is missing");
    let mut failures = Vec::new();
    for name in names {
        let raw = common::fixture(&name);
        let rendered = match parse::parse(&raw) {
            Ok(mail) => render(&mail),
            Err(e) => format!("not mail: {e}\n"),
        };
        let golden = dir.join(name.replace(".eml", ".parsed"));
        if update {
            std::fs::write(&golden, &rendered).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want != rendered {
            failures.push(format!("{name}:\n--- want\n{want}\n--- got\n{rendered}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
