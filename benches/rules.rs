//! Rules benchmark: N generated rules with mixed keyword and regex conditions
//! (any / all / not over subject, body, from_domain, headers, priority) in 10
//! files, loaded and validated from text, then evaluated against one message.
//!
//!     cargo bench --bench rules -- [--rules 1000] [--runs 2000]
//!
//! Prints the load-and-validate time (median of 20) and the median and p99
//! time of one evaluation.

use std::time::{Duration, Instant};
use ticketd::rules::load::{Catalog, load_texts};
use ticketd::rules::{Event, Facts};

#[path = "support/args.rs"]
mod support;
use support::{arg, percentile_ms};

const WORDS: &[&str] = &[
    "faktura", "invoice", "refund", "drukarka", "printer", "vpn", "hasło", "password", "konto",
    "account", "umowa", "contract", "licencja", "license", "serwer", "server",
];

fn rule(i: usize) -> String {
    let word = WORDS[i % WORDS.len()];
    let (field, category) = match i % 3 {
        0 => ("billing", "billing"),
        1 => ("technical", "technical"),
        _ => ("account", "account"),
    };
    let condition = match i % 4 {
        0 => format!("subject.contains = \"{word}{i}\""),
        1 => format!("body.matches = \"(?i)\\\\b{word}[- ]?{i}\\\\b\""),
        2 => format!(
            "any = [{{ subject.matches = \"(?i)^(re|odp|aw): .*{word}{i}\" }}, \
             {{ from_domain.in = [\"firma{i}.pl\", \"example{i}.com\"] }}]"
        ),
        _ => format!(
            "all = [{{ header.X-Mailer.contains = \"Outlook {i}\" }}, \
             {{ not = {{ priority = \"low\" }} }}, {{ body.contains = \"{word}\" }}]"
        ),
    };
    format!(
        "[[rule]]\nname = \"rule {i}\"\non = \"ticket.created\"\n\
         then = [{{ set_category = \"{category}\" }}, {{ add_tag = \"{field}-{i}\" }}]\n\
         when = {{ {condition} }}\n\n"
    )
}

fn main() {
    let rules = arg("--rules", 1000);
    let runs = arg("--runs", 2000);
    let files: Vec<(String, String)> = (0..10)
        .map(|f| {
            let text: String = (0..rules).filter(|i| i % 10 == f).map(rule).collect();
            (format!("rules/{f:02}-generated.toml"), text)
        })
        .collect();
    let catalog = Catalog {
        categories: vec![
            "billing".into(),
            "technical".into(),
            "account".into(),
            "other".into(),
        ],
        ..Catalog::default()
    };

    let mut loads: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let set = load_texts(&files, &catalog).expect("generated rules are valid");
            assert_eq!(set.rules.len(), rules);
            t.elapsed()
        })
        .collect();
    loads.sort();
    let set = load_texts(&files, &catalog).expect("generated rules are valid");

    let body = "Dzień dobry,\n\nfaktura nr 2026/11/42 ma złą kwotę; proszę o korektę. \
                Drukarka w biurze też nie działa, a VPN rozłącza się co godzinę.\n\n\
                Dotyczy też invoice 1.\nPozdrawiam\nJan Kowalski\n"
        .repeat(4);
    let facts = Facts {
        subject: "Odp: Faktura0 11/2026 – błędna kwota".into(),
        body,
        from: "jan.kowalski@firma.pl".into(),
        headers: vec![("X-Mailer".into(), "Microsoft Outlook 16.0".into())],
        channel: "email".into(),
        category: "other".into(),
        priority: "medium".into(),
        status: "new".into(),
        ..Facts::default()
    };
    let mut matched = 0;
    let mut measure = |explain: bool| {
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                // Fresh facts each run: nothing cached from the run before.
                let facts = facts.clone();
                let t = Instant::now();
                let traces = if explain {
                    set.evaluate(Event::TicketCreated, &facts)
                } else {
                    set.decide(Event::TicketCreated, &facts)
                };
                let took = t.elapsed();
                matched = traces.iter().filter(|t| t.matched).count();
                took
            })
            .collect();
        times.sort();
        times
    };
    let times = measure(false);
    let explained = measure(true);
    println!(
        "load and validate {rules} rules: median {:.1} ms (max {:.1} ms)",
        percentile_ms(&loads, 0.5),
        percentile_ms(&loads, 1.0)
    );
    println!(
        "evaluate {rules} rules against one message ({matched} matched): median {:.1} µs, p99 {:.1} µs",
        percentile_ms(&times, 0.5) * 1000.0,
        percentile_ms(&times, 0.99) * 1000.0
    );
    println!(
        "the same, explaining which test decided (rules test, replay): median {:.1} µs",
        percentile_ms(&explained, 0.5) * 1000.0
    );
}
