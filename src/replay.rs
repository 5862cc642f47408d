//! `ticketd rules replay`: the current rules against the tickets of a window,
//! next to what the rules of the day actually did.

use crate::calendar::BusinessHours;
use crate::clock::{Timestamp, rfc3339};
use crate::rules::{Event, Facts, RuleSet};
use crate::store::Store;
use crate::store::queries::ReplayTicket;
use std::fmt::Write;

pub async fn replay(
    store: &Store,
    rules: &RuleSet,
    calendar: Option<&BusinessHours>,
    from: Timestamp,
    to: Timestamp,
) -> crate::store::Result<String> {
    let tickets = store.replay_tickets(from, to).await?;
    Ok(report(rules, calendar, &tickets))
}

/// One block per ticket: `now:` what the current rules decide on
/// ticket.created (inside business hours or not as at its creation), `then:`
/// the changes recorded with a rule's name.
pub fn report(
    rules: &RuleSet,
    calendar: Option<&BusinessHours>,
    tickets: &[ReplayTicket],
) -> String {
    let mut out = String::new();
    let mut differ = 0;
    for t in tickets {
        let now = now_lines(rules, calendar, t);
        let then: Vec<String> = t
            .rule_changes
            .iter()
            .map(|(rule, field, old, new)| {
                format!(
                    "{rule}: {field} {} -> {}",
                    old.as_deref().unwrap_or("-"),
                    new.as_deref().unwrap_or("-")
                )
            })
            .collect();
        let mut now_rules: Vec<&str> = now.iter().filter_map(|l| l.split(": ").next()).collect();
        let mut then_rules: Vec<&str> = t.rule_changes.iter().map(|c| c.0.as_str()).collect();
        now_rules.sort_unstable();
        now_rules.dedup();
        then_rules.sort_unstable();
        then_rules.dedup();
        let same = now_rules == then_rules;
        if !same {
            differ += 1;
        }
        let _ = writeln!(
            out,
            "{} {:?} ({}){}",
            t.number,
            t.subject,
            rfc3339(t.created_at),
            if same { "" } else { "  DIFFERS" }
        );
        let _ = writeln!(
            out,
            "  now:  {}",
            if now.is_empty() {
                "-".into()
            } else {
                now.join("; ")
            }
        );
        let _ = writeln!(
            out,
            "  then: {}",
            if then.is_empty() {
                "-".into()
            } else {
                then.join("; ")
            }
        );
    }
    let _ = writeln!(
        out,
        "{} ticket(s), {differ} treated differently by the current rules",
        tickets.len()
    );
    out
}

/// What the current rules decide on ticket.created, one line per matching
/// rule: `rule: action, action`.
fn now_lines(rules: &RuleSet, calendar: Option<&BusinessHours>, t: &ReplayTicket) -> Vec<String> {
    let facts = Facts {
        subject: t.subject.clone(),
        body: t.body.clone(),
        from: t.requester.clone(),
        channel: t.channel.clone(),
        category: "other".into(),
        priority: "medium".into(),
        status: "new".into(),
        author: Some("requester".into()),
        business_hours: calendar.is_some_and(|c| c.is_open(t.created_at)),
        ..Facts::default()
    };
    rules
        .evaluate(Event::TicketCreated, &facts)
        .into_iter()
        .filter(|tr| tr.matched)
        .map(|tr| {
            let actions: Vec<String> = tr.actions.iter().map(ToString::to_string).collect();
            format!("{}: {}", tr.rule, actions.join(", "))
        })
        .collect()
}
