//! Plain-text rendering of tickets for the terminal.

use crate::store::queries::{TicketDetail, TicketSummary};
use std::fmt::Write;

pub fn ticket_table(tickets: &[TicketSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<15} {:<9} {:<9} {:<22} {:<30} SUBJECT",
        "NUMBER", "STATUS", "PRIORITY", "SLA", "REQUESTER"
    );
    for t in tickets {
        let subject: String = t.subject.chars().take(60).collect();
        let _ = writeln!(
            out,
            "{:<15} {:<9} {:<9} {:<22} {:<30} {}",
            t.number,
            t.status,
            t.priority,
            sla_cell(t),
            t.requester,
            subject
        );
    }
    out
}

/// `breached`, `due in 3 h 20 min`, `overdue 15 min`, or `-`.
fn sla_cell(t: &TicketSummary) -> String {
    use crate::clock::span;
    match (t.sla_breached, t.sla_remaining) {
        (true, _) => "breached".into(),
        (false, Some(r)) if r < 0 => format!("overdue {}", span(-r)),
        (false, Some(r)) => format!("due in {}", span(r)),
        (false, None) => "-".into(),
    }
}

pub fn ticket_detail(t: &TicketDetail) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", t.number, t.subject);
    let _ = writeln!(
        out,
        "status {}  priority {}  category {}",
        t.status, t.priority, t.category
    );
    let _ = writeln!(
        out,
        "requester {} <{}>",
        t.requester.name, t.requester.email
    );
    for (label, value) in [
        ("organization", &t.organization),
        ("assignee", &t.assignee),
        ("team", &t.team),
    ] {
        if let Some(v) = value {
            let _ = writeln!(out, "{label} {v}");
        }
    }
    if !t.tags.is_empty() {
        let _ = writeln!(out, "tags {}", t.tags.join(", "));
    }
    if !t.related.is_empty() {
        let _ = writeln!(out, "related {}", t.related.join(", "));
    }
    let _ = writeln!(out, "created {}  updated {}", t.created_at, t.updated_at);
    let sla: Vec<String> = [
        ("first response due", &t.first_response_due),
        ("first response", &t.first_response_at),
        ("resolution due", &t.resolution_due),
    ]
    .iter()
    .filter_map(|(what, at)| at.as_ref().map(|at| format!("{what} {at}")))
    .collect();
    if !sla.is_empty() {
        let _ = writeln!(out, "sla {}", sla.join("  "));
    }
    for c in &t.comments {
        let visibility = if c.internal { "internal" } else { "public" };
        let _ = writeln!(
            out,
            "\n--- {} ({}, {visibility}, {}) {}",
            c.author, c.author_kind, c.channel, c.created_at
        );
        let _ = writeln!(out, "{}", c.body);
    }
    write_records(&mut out, t);
    out
}

/// A ticket's attachments, notifications and history, as `ticket_detail`
/// ends.
fn write_records(out: &mut String, t: &TicketDetail) {
    if !t.attachments.is_empty() {
        let _ = writeln!(out, "\nattachments:");
        for a in &t.attachments {
            let note = if a.stored {
                ""
            } else {
                "  (over the size limit, not stored)"
            };
            let _ = writeln!(out, "  {}  {} bytes  {}{note}", a.name, a.size, a.sha256);
        }
    }
    if !t.notifications.is_empty() {
        let _ = writeln!(out, "\nnotifications:");
        for n in &t.notifications {
            let _ = writeln!(
                out,
                "  {} {} {} to {}: {}{}",
                n.created_at,
                n.event,
                n.channel,
                n.recipient,
                n.status,
                n.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    let _ = writeln!(out, "\nhistory:");
    for h in &t.history {
        let _ = writeln!(
            out,
            "  {} {} {}: {} -> {}{}",
            h.at,
            h.actor,
            h.field,
            h.old.as_deref().unwrap_or("-"),
            h.new.as_deref().unwrap_or("-"),
            h.rule
                .as_deref()
                .map(|r| format!(" (rule {r})"))
                .unwrap_or_default()
        );
    }
}

/// `ticketd rules test MESSAGE`: each rule that listens to the event.
pub fn rule_traces(event: crate::rules::Event, traces: &[crate::rules::Trace]) -> String {
    let mut out = String::new();
    if traces.is_empty() {
        let _ = writeln!(out, "no rule listens to {event}");
    }
    for t in traces {
        let verdict = if t.matched { "matched" } else { "no match" };
        let _ = writeln!(out, "rule {:?}: {verdict} ({})", t.rule, t.decided_by);
        for a in &t.actions {
            let _ = writeln!(out, "    {a}");
        }
        if t.stop {
            let _ = writeln!(out, "    (stop: no later rule runs for {event})");
        }
    }
    out
}
