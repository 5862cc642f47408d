//! Rules: events → conditions → actions. Pure: a [`RuleSet`] read from
//! `rules/*.toml` (see `load.rs`) decides, for one event and the [`Facts`] of
//! one ticket, which actions run; the pipeline applies them (`apply.rs`).
//!
//! Rules run in file-name order, then in file order. A matching rule's actions
//! are visible to the rules after it (a rule that sets the category lets a
//! later rule test `category`); `stop` ends the evaluation for that event.

pub mod action;
pub mod condition;
pub mod facts;
pub mod field;
pub mod load;
pub mod prefilter;
pub mod schedule;

pub use action::{Action, Change};
pub use facts::Facts;
pub use load::{Catalog, RuleError};

use crate::ticket::Priority;
use condition::Condition;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    TicketCreated,
    CommentAdded,
    TicketUpdated,
    TicketAssigned,
    StatusChanged,
    SlaWarning,
    SlaBreached,
    TicketIdle,
    /// A scheduled rule's cron slot: its conditions select among the open
    /// tickets; `digest` and `report` summarize.
    Schedule,
}

impl Event {
    pub const NAMES: &'static [&'static str] = &[
        "ticket.created",
        "comment.added",
        "ticket.updated",
        "ticket.assigned",
        "status.changed",
        "sla.warning",
        "sla.breached",
        "ticket.idle",
        "schedule",
    ];
    const ALL: [Event; 9] = [
        Event::TicketCreated,
        Event::CommentAdded,
        Event::TicketUpdated,
        Event::TicketAssigned,
        Event::StatusChanged,
        Event::SlaWarning,
        Event::SlaBreached,
        Event::TicketIdle,
        Event::Schedule,
    ];

    pub fn as_str(self) -> &'static str {
        let i = Event::ALL.iter().position(|e| *e == self).unwrap_or(0);
        Event::NAMES[i]
    }
}

impl FromStr for Event {
    type Err = String;
    fn from_str(s: &str) -> Result<Event, String> {
        match Event::NAMES.iter().position(|n| *n == s) {
            Some(i) => Ok(Event::ALL[i]),
            None => Err(format!(
                "unknown event {s:?} (expected one of: {})",
                Event::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub on: Vec<Event>,
    /// When a `schedule` rule runs.
    pub schedule: Option<schedule::Schedule>,
    pub when: Condition,
    pub then: Vec<Action>,
    pub stop: bool,
    pub tests: Vec<RuleTest>,
}

/// A test case carried by a rule file: a raw message, the event (default: the
/// rule's first), and the actions this rule must decide on (empty: no match).
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub line: usize,
    pub event: Option<Event>,
    pub message: String,
    pub expect: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// How many levels of follow-up events rules may raise (`[rules] max_depth`).
    pub max_depth: usize,
    /// The subject and body regexes' literals (built by [`RuleSet::index`]).
    pub prefilter: prefilter::Prefilter,
    /// SHA-256 of the rule files (names and contents), to tell instances'
    /// rule sets apart; empty without a rules folder.
    pub digest: String,
}

impl Default for RuleSet {
    fn default() -> RuleSet {
        RuleSet {
            rules: Vec::new(),
            max_depth: DEFAULT_MAX_DEPTH,
            prefilter: prefilter::Prefilter::default(),
            digest: String::new(),
        }
    }
}

pub use crate::config::DEFAULT_MAX_DEPTH;

/// The active rule set, swapped as a whole on reload.
pub type Live = crate::live::Live<RuleSet>;

/// What one rule did with one event.
#[derive(Debug, Clone)]
pub struct Trace {
    pub rule: String,
    pub matched: bool,
    /// The test that decided, e.g. `subject matches "(?i)faktur"`.
    pub decided_by: String,
    pub actions: Vec<Action>,
    pub stop: bool,
}

impl RuleSet {
    /// Every rule listening to `event`, in order, until one that matched
    /// stops the evaluation.
    pub fn evaluate(&self, event: Event, facts: &Facts) -> Vec<Trace> {
        self.run(event, facts, true)
    }

    /// Only the rules that matched, without saying which test decided
    /// (`decided_by` stays empty): the pipeline's fast path.
    pub fn decide(&self, event: Event, facts: &Facts) -> Vec<Trace> {
        self.run(event, facts, false)
    }

    /// Gives the regexes their prefilter slots; call once the rules are final.
    pub fn index(&mut self) {
        self.prefilter =
            prefilter::Prefilter::build(self.rules.iter_mut().flat_map(|r| r.when.patterns_mut()));
    }

    fn run(&self, event: Event, facts: &Facts, explain: bool) -> Vec<Trace> {
        // Copied only once an action changes what later rules see.
        let mut facts = std::borrow::Cow::Borrowed(facts);
        let scan = prefilter::Scan::new(&self.prefilter);
        let mut traces = Vec::new();
        for rule in self.rules.iter().filter(|r| r.on.contains(&event)) {
            let verdict = if explain {
                rule.when.eval(&facts, &scan)
            } else {
                condition::Verdict {
                    matched: rule.when.matches_in(&facts, &scan),
                    decided_by: String::new(),
                }
            };
            if !verdict.matched && !explain {
                continue;
            }
            let actions = if verdict.matched {
                rule.then.clone()
            } else {
                Vec::new()
            };
            for a in &actions {
                facts.to_mut().apply(a);
            }
            let stop = verdict.matched && rule.stop;
            traces.push(Trace {
                rule: rule.name.clone(),
                matched: verdict.matched,
                decided_by: verdict.decided_by,
                actions,
                stop,
            });
            if stop {
                break;
            }
        }
        traces
    }

    /// Runs the test cases in the rule files: `(rule, line, failure)` for each
    /// one that fails, and the number run.
    pub fn run_tests(&self, default_channel: &str) -> (usize, Vec<(String, usize, String)>) {
        let mut failures = Vec::new();
        let mut run = 0;
        for rule in &self.rules {
            for test in &rule.tests {
                run += 1;
                let Some(event) = test.event.or(rule.on.first().copied()) else {
                    continue;
                };
                let facts = match crate::parse::parse(test.message.as_bytes()) {
                    Ok(mail) => Facts::from_mail(&mail, default_channel),
                    Err(e) => {
                        failures.push((
                            rule.name.clone(),
                            test.line,
                            format!("the message is not mail: {e}"),
                        ));
                        continue;
                    }
                };
                let got: Vec<String> = self
                    .evaluate(event, &facts)
                    .into_iter()
                    .find(|t| t.rule == rule.name)
                    .map(|t| t.actions.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                if got != test.expect {
                    failures.push((
                        rule.name.clone(),
                        test.line,
                        format!("expected {:?}, got {:?}", test.expect, got),
                    ));
                }
            }
        }
        (run, failures)
    }
}

impl Facts {
    /// The facts of a new ticket opened by `mail`.
    pub fn from_mail(mail: &crate::parse::ParsedMail, channel: &str) -> Facts {
        Facts {
            subject: mail.subject.clone(),
            body: mail.body.clone(),
            from: mail
                .from
                .as_ref()
                .map(|m| m.email.clone())
                .unwrap_or_default(),
            to: mail.to.iter().map(|m| m.email.clone()).collect(),
            cc: mail.cc.iter().map(|m| m.email.clone()).collect(),
            headers: mail.headers.clone(),
            channel: channel.to_string(),
            language: mail.language.clone(),
            category: "other".into(),
            priority: "medium".into(),
            status: "new".into(),
            author: Some("requester".into()),
            auto_generated: mail.auto_generated.is_some(),
            attachment_names: mail.attachments.iter().map(|a| a.name.clone()).collect(),
            ..Facts::default()
        }
    }

    /// What an action changes in the facts later rules see.
    fn apply(&mut self, action: &Action) {
        // A priority these facts do not name escalates to critical.
        let priority = self.priority.parse().unwrap_or(Priority::Critical);
        for change in action.changes(priority) {
            match change {
                Change::Category(v) => self.category = v.to_string(),
                Change::Priority(p) => self.priority = p.to_string(),
                Change::Status(s) => self.status = s.to_string(),
                Change::Team(team) => self.team = Some(team.to_string()),
                Change::Assignee(email) => self.assignee = Some(email.to_string()),
                Change::Tag(tag, true) => {
                    if !self.tags.iter().any(|t| t == tag) {
                        self.tags.push(tag.to_string());
                    }
                }
                Change::Tag(tag, false) => self.tags.retain(|t| t != tag),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            templates: vec![
                "ticket_assigned".into(),
                "ticket_escalated".into(),
                "daily_digest".into(),
                "sla_report".into(),
            ],
            teams: vec!["billing".into(), "it".into()],
            agents: vec!["ola@example.com".into()],
            categories: vec!["billing".into(), "technical".into(), "other".into()],
            webhooks: vec![],
            calendar: false,
            telegram: true,
            discord: true,
        }
    }

    fn load(text: &str) -> Result<RuleSet, Vec<String>> {
        load::load_texts(&[("rules/10-test.toml".into(), text.into())], &catalog())
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    const RULES: &str = r#"
[[rule]]
name = "billing"
on = ["ticket.created"]
then = [{ set_category = "billing" }, { assign = { team = "billing", strategy = "least_open" } }]
[rule.when]
any = [{ subject.matches = "(?i)faktur|invoice" }, { body.contains = "refund" }]

[[rule]]
name = "vip"
on = "ticket.created"
stop = true
then = [{ set_priority = "high" }, { add_tag = "vip" }]
[rule.when]
from_domain.in = ["vip.pl"]
category = "billing"

[[rule]]
name = "never after vip"
on = ["ticket.created"]
then = [{ note = "seen" }]
"#;

    #[test]
    fn rules_see_earlier_actions_and_stop_ends_the_evaluation() {
        let set = load(RULES).unwrap();
        let facts = Facts {
            subject: "Faktura 12/2026".into(),
            from: "szef@vip.pl".into(),
            priority: "medium".into(),
            ..Facts::default()
        };
        let traces = set.evaluate(Event::TicketCreated, &facts);
        let shown: Vec<(String, bool, Vec<String>)> = traces
            .iter()
            .map(|t| {
                (
                    t.rule.clone(),
                    t.matched,
                    t.actions.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "billing".into(),
                    true,
                    vec![
                        "set_category billing".into(),
                        "assign team billing least_open".into()
                    ]
                ),
                (
                    "vip".into(),
                    true,
                    vec!["set_priority high".into(), "add_tag vip".into()]
                ),
            ]
        );
        assert_eq!(
            traces[0].decided_by,
            "subject matches \"(?i)faktur|invoice\""
        );
        assert!(set.evaluate(Event::CommentAdded, &facts).is_empty());
    }

    #[test]
    fn a_rule_that_does_not_match_says_which_test_failed() {
        let set = load(RULES).unwrap();
        let facts = Facts {
            subject: "Faktura".into(),
            from: "jan@firma.pl".into(),
            ..Facts::default()
        };
        let traces = set.evaluate(Event::TicketCreated, &facts);
        assert!(!traces[1].matched);
        assert_eq!(traces[1].decided_by, "from_domain in [\"vip.pl\"]");
        assert_eq!(traces[2].actions, vec![Action::Note("seen".into())]);
    }

    #[test]
    fn every_problem_is_reported_with_file_line_and_column() {
        let text = r#"[[rule]]
name = "broken"
on = ["ticket.created", "ticket.deleted"]
then = [{ set_team = "sales" }, { frobnicate = 1 }, { notify = { template = "nope", to = "boss" } }]
[rule.when]
subject.matches = "(unclosed"
attachments.gt = "many"
colour = "red"
priority.contains = "x"
"#;
        let errors = load(text).unwrap_err();
        let want = [
            "rules/10-test.toml:3:25: rule \"broken\": unknown event \"ticket.deleted\"",
            "rules/10-test.toml:4:22: rule \"broken\": unknown team \"sales\" (known: billing, it)",
            "rules/10-test.toml:4:35: rule \"broken\": unknown action `frobnicate`",
            "rules/10-test.toml:4:90: rule \"broken\": unknown recipient \"boss\"",
            "rules/10-test.toml:4:77: rule \"broken\": unknown template \"nope\"",
            "rules/10-test.toml:6:19: rule \"broken\": bad regex \"(unclosed\": unclosed group",
            "rules/10-test.toml:7:18: rule \"broken\": attachments gt: expected a number",
            "rules/10-test.toml:8:1: rule \"broken\": unknown field `colour`",
            "rules/10-test.toml:9:21: rule \"broken\": `contains` does not apply to priority",
        ];
        for w in want {
            assert!(
                errors.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), want.len(), "{errors:#?}");
    }

    #[test]
    fn structure_errors_are_reported_too() {
        let errors = load("[[rule]]\non = \"ticket.created\"\n").unwrap_err();
        assert_eq!(
            errors,
            ["rules/10-test.toml:1:1: a rule needs a `name` (a non-empty string)"]
        );
        let errors = load("[[rule]]\nname = \"x\"\non = []\nthen = []\n").unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].contains("`on` lists no event"), "{errors:#?}");
        let errors = load("[[rule]]\nname = \"x\"\nthen = [{ close = true }]\n").unwrap_err();
        assert_eq!(
            errors,
            ["rules/10-test.toml:1:1: rule \"x\": a rule needs `on`, the events it fires on"]
        );
        let errors = load("[[rule]\n").unwrap_err();
        assert!(
            errors[0].starts_with("rules/10-test.toml:1:"),
            "{errors:#?}"
        );
    }

    #[test]
    fn business_hours_need_a_calendar() {
        let errors =
            load("[[rule]]\nname = \"x\"\non = \"ticket.created\"\nthen = [{ close = true }]\nwhen = { business_hours = false }\n")
                .unwrap_err();
        assert_eq!(
            errors,
            [
                "rules/10-test.toml:5:10: rule \"x\": business_hours needs a [[calendar]] in the config (and [rules] calendar to pick one)"
            ]
        );
    }

    #[test]
    fn scheduled_rules_need_a_cron_and_only_they_summarize() {
        let set = load(
            "[[rule]]\nname = \"digest\"\non = \"schedule\"\nschedule = \"0 0 8 * * Mon-Fri\"\n\
             then = [{ digest = { to = \"team\" } }, { report = { to = \"managers\", by = \"agent\", period = \"1d\" } }]\n",
        )
        .unwrap();
        let rule = &set.rules[0];
        assert_eq!(rule.schedule.as_ref().unwrap().pattern, "0 0 8 * * Mon-Fri");
        let shown: Vec<String> = rule.then.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "digest daily_digest to team",
                "report sla_report to managers over 1 d 0 h by agent"
            ]
        );
        let errors = load(
            "[[rule]]\nname = \"a\"\non = \"schedule\"\nthen = [{ close = true }]\n\
             [[rule]]\nname = \"b\"\non = \"ticket.created\"\nschedule = \"0 0 8 * * *\"\nthen = [{ digest = { to = \"team\" } }]\n\
             [[rule]]\nname = \"c\"\non = [\"schedule\", \"ticket.idle\"]\nschedule = \"0 8 * * *\"\nthen = [{ report = { to = \"requester\" } }]\n\
             [[rule]]\nname = \"d\"\non = \"schedule\"\nschedule = \"0 0 8 * * *\"\nthen = [{ report = { to = \"team\" } }]\n",
        )
        .unwrap_err();
        let want = [
            "rules/10-test.toml:3:1: rule \"a\": a `schedule` rule needs `schedule = \"SEC MIN HOUR DAY MONTH WEEKDAY\"`",
            "rules/10-test.toml:8:1: rule \"b\": `schedule` needs `on = \"schedule\"`",
            "rules/10-test.toml:9:8: rule \"b\": `digest` summarizes many tickets: only a `schedule` rule can use it",
            "rules/10-test.toml:13:12: rule \"c\": schedule \"0 8 * * *\" has 5 fields",
            "rules/10-test.toml:14:27: rule \"c\": report: goes to agents, not to the requester",
            "rules/10-test.toml:12:1: rule \"c\": a `schedule` rule fires on `schedule` alone",
            "rules/10-test.toml:19:27: rule \"d\": report: goes to `managers` or an email address",
        ];
        for w in want {
            assert!(
                errors.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), want.len(), "{errors:#?}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let one = "[[rule]]\nname = \"x\"\non = \"ticket.created\"\nthen = [{ close = true }]\n";
        let errors = load(&format!("{one}{one}")).unwrap_err();
        assert_eq!(
            errors,
            [
                "rules/10-test.toml:5:1: rule \"x\": the name is already used at rules/10-test.toml:1; rule names must be unique"
            ]
        );
    }

    #[test]
    fn inline_tests_run_against_the_whole_set() {
        let text = format!(
            "{RULES}\n[[rule.test]]\nmessage = \"From: a@b.pl\\nSubject: hej\\n\\nhej\\n\"\nexpect = [\"note \\\"seen\\\"\"]\n\n\
             [[rule.test]]\nmessage = \"From: a@vip.pl\\nSubject: invoice\\n\\nx\\n\"\nexpect = [\"note \\\"seen\\\"\"]\n"
        );
        let set = load(&text).unwrap();
        let (run, failures) = set.run_tests("email");
        assert_eq!(run, 2);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].0, "never after vip");
        assert_eq!(failures[0].2, "expected [\"note \\\"seen\\\"\"], got []");
    }
}
