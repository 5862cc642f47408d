//! Conditions: `all` / `any` / `not` over tests of one field with one
//! operator. Pure: evaluated against [`Facts`], with an explanation of which
//! test decided.

use super::facts::{Facts, Lowered, Value};
use super::field::Field;
use super::prefilter::{Pattern, Prefilter, Scan};
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Test(Test),
}

/// One field compared with one operator, e.g. `subject matches "(?i)faktur"`.
#[derive(Debug, Clone)]
pub struct Test {
    pub field: Field,
    pub op: Op,
}

#[derive(Debug, Clone)]
pub enum Op {
    Equals(Operand),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Matches(Pattern),
    In(Vec<String>),
    Gt(Operand),
    Lt(Operand),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Text(String),
    Number(i64),
    Bool(bool),
}

pub const OPERATORS: &[&str] = &[
    "equals",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "in",
    "gt",
    "lt",
    "exists",
];

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Text(s) => write!(f, "{s:?}"),
            Operand::Number(n) => write!(f, "{n}"),
            Operand::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match &self.op {
            Op::Equals(v) => write!(f, "{field} equals {v}"),
            Op::Contains(s) => write!(f, "{field} contains {s:?}"),
            Op::StartsWith(s) => write!(f, "{field} starts_with {s:?}"),
            Op::EndsWith(s) => write!(f, "{field} ends_with {s:?}"),
            Op::Matches(p) => write!(f, "{field} matches {:?}", p.regex.as_str()),
            Op::In(list) => write!(f, "{field} in {list:?}"),
            Op::Gt(v) => write!(f, "{field} gt {v}"),
            Op::Lt(v) => write!(f, "{field} lt {v}"),
            Op::Exists(b) => write!(f, "{field} exists {b}"),
        }
    }
}

/// The outcome of a condition and the test that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub matched: bool,
    /// e.g. `subject matches "(?i)faktur"`, or `not (…)`; `no conditions`
    /// for an empty `all` (always true).
    pub decided_by: String,
}

impl Condition {
    /// Whether the condition holds and which test decided.
    pub fn eval(&self, facts: &Facts, scan: &Scan) -> Verdict {
        match self {
            Condition::Test(t) => Verdict {
                matched: t.holds(facts, scan),
                decided_by: t.to_string(),
            },
            Condition::All(list) => {
                let mut last = Verdict {
                    matched: true,
                    decided_by: "no conditions".into(),
                };
                for c in list {
                    last = c.eval(facts, scan);
                    if !last.matched {
                        return last;
                    }
                }
                last
            }
            Condition::Any(list) => {
                let mut last = Verdict {
                    matched: false,
                    decided_by: "no alternative of `any`".into(),
                };
                for c in list {
                    let v = c.eval(facts, scan);
                    if v.matched {
                        return v;
                    }
                    last.decided_by = format!("none of `any`, last: {}", v.decided_by);
                }
                last
            }
            Condition::Not(inner) => {
                let v = inner.eval(facts, scan);
                Verdict {
                    matched: !v.matched,
                    decided_by: format!("not ({})", v.decided_by),
                }
            }
        }
    }
}

impl Condition {
    /// Whether the condition holds, without saying why (the fast path the
    /// pipeline takes; `eval` explains).
    pub fn matches_in(&self, facts: &Facts, scan: &Scan) -> bool {
        match self {
            Condition::Test(t) => t.holds(facts, scan),
            Condition::All(list) => list.iter().all(|c| c.matches_in(facts, scan)),
            Condition::Any(list) => list.iter().any(|c| c.matches_in(facts, scan)),
            Condition::Not(inner) => !inner.matches_in(facts, scan),
        }
    }

    /// The same for one condition on its own (every regex runs).
    pub fn matches(&self, facts: &Facts) -> bool {
        self.matches_in(facts, &Scan::new(&Prefilter::default()))
    }

    /// Calls `f` on every test, depth first.
    /// Each `matches` regex of the condition, with its field.
    pub fn patterns_mut(&mut self) -> Vec<(&Field, &mut Pattern)> {
        let mut found = Vec::new();
        self.visit_tests(&mut |test| {
            if let Op::Matches(pattern) = &mut test.op {
                found.push((&test.field, pattern));
            }
        });
        found
    }

    pub fn visit_tests<'a>(&'a mut self, f: &mut impl FnMut(&'a mut Test)) {
        match self {
            Condition::Test(t) => f(t),
            Condition::All(list) | Condition::Any(list) => {
                list.iter_mut().for_each(|c| c.visit_tests(f))
            }
            Condition::Not(inner) => inner.visit_tests(f),
        }
    }
}

impl Test {
    fn holds(&self, facts: &Facts, scan: &Scan) -> bool {
        let value = facts.get(&self.field);
        match (&self.op, &value) {
            (Op::Exists(want), v) => v.exists() == *want,
            (
                Op::Matches(Pattern {
                    slot: Some(slot), ..
                }),
                Value::Text(item, _),
            ) if !scan.may_match(&self.field, *slot, item) => false,
            (op, Value::Text(item, lowered)) => text_op(op, item, *lowered, &self.field),
            (op, Value::Texts(items)) => items
                .iter()
                .any(|item| text_op(op, item, None, &self.field)),
            (Op::Equals(Operand::Number(n)), Value::Number(v)) => v == n,
            (Op::Gt(Operand::Number(n)), Value::Number(v)) => v > n,
            (Op::Lt(Operand::Number(n)), Value::Number(v)) => v < n,
            (Op::Equals(Operand::Bool(b)), Value::Bool(v)) => v == b,
            _ => false,
        }
    }
}

/// `text` in lower case, copied only when it has upper-case letters.
fn lower(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_uppercase) {
        Cow::Owned(text.to_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// One text test; case-insensitive except `matches`. `lowered` is `item` in
/// lower case when the facts keep one (subject, body).
fn text_op(op: &Op, item: &str, lowered: Option<&Lowered>, field: &Field) -> bool {
    if lowered.is_none()
        && item.is_ascii()
        && let Some(holds) = ascii_op(op, item.as_bytes())
    {
        return holds;
    }
    let haystack = || match lowered {
        Some(cell) => Cow::Borrowed(cell.get_or_init(|| item.to_lowercase()).as_str()),
        None => lower(item),
    };
    match op {
        Op::Equals(Operand::Text(s)) => haystack() == lower(s),
        Op::Contains(s) => haystack().contains(lower(s).as_ref()),
        Op::StartsWith(s) => haystack().starts_with(lower(s).as_ref()),
        Op::EndsWith(s) => haystack().ends_with(lower(s).as_ref()),
        Op::Matches(p) => p.regex.is_match(item),
        Op::In(list) => list.iter().any(|s| s.eq_ignore_ascii_case(item)),
        Op::Gt(Operand::Text(s)) if *field == Field::Priority => rank(item) > rank(s),
        Op::Lt(Operand::Text(s)) if *field == Field::Priority => rank(item) < rank(s),
        _ => false,
    }
}

/// A substring test of an ASCII `item` against a lower-case needle, without
/// copying `item` (a needle with other characters cannot occur in it).
fn ascii_op(op: &Op, item: &[u8]) -> Option<bool> {
    let same = |part: &[u8], needle: &str| part.eq_ignore_ascii_case(needle.as_bytes());
    Some(match op {
        Op::Contains(s) => s.is_empty() || item.windows(s.len()).any(|w| same(w, s)),
        Op::StartsWith(s) => item.len() >= s.len() && same(&item[..s.len()], s),
        Op::EndsWith(s) => item.len() >= s.len() && same(&item[item.len() - s.len()..], s),
        _ => return None,
    })
}

fn rank(priority: &str) -> usize {
    crate::ticket::Priority::NAMES
        .iter()
        .position(|p| p.eq_ignore_ascii_case(priority))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn test(field: Field, op: Op) -> Condition {
        Condition::Test(Test { field, op })
    }

    fn verdict(c: &Condition, f: &Facts) -> Verdict {
        c.eval(f, &Scan::new(&Prefilter::default()))
    }

    fn facts() -> Facts {
        Facts {
            subject: "Faktura VAT za listopad".into(),
            body: "Proszę o korektę.".into(),
            from: "Jan@Firma.pl".into(),
            to: vec!["support@example.com".into()],
            tags: vec!["vip".into()],
            priority: "high".into(),
            attachment_names: vec!["faktura.pdf".into()],
            age_seconds: 7200,
            ..Facts::default()
        }
    }

    #[test]
    fn text_tests_ignore_case_and_regexes_do_not() {
        let f = facts();
        let contains = test(Field::Subject, Op::Contains("FAKTURA".into()));
        assert!(verdict(&contains, &f).matched);
        let regex = test(
            Field::Subject,
            Op::Matches(Pattern::new(Regex::new("faktura").unwrap())),
        );
        assert!(!verdict(&regex, &f).matched);
        let from = test(
            Field::FromDomain,
            Op::Equals(Operand::Text("firma.pl".into())),
        );
        assert!(verdict(&from, &f).matched);
        let pdf = test(Field::AttachmentNames, Op::EndsWith(".PDF".into()));
        assert!(verdict(&pdf, &f).matched);
    }

    #[test]
    fn any_reports_the_test_that_matched_and_all_the_one_that_failed() {
        let f = facts();
        let any = Condition::Any(vec![
            test(Field::Body, Op::Contains("refund".into())),
            test(Field::Tags, Op::In(vec!["VIP".into(), "gold".into()])),
        ]);
        assert_eq!(
            verdict(&any, &f),
            Verdict {
                matched: true,
                decided_by: "tags in [\"VIP\", \"gold\"]".into()
            }
        );
        let all = Condition::All(vec![
            test(Field::Priority, Op::Gt(Operand::Text("medium".into()))),
            test(Field::Age, Op::Gt(Operand::Number(3 * 3600))),
        ]);
        assert_eq!(
            verdict(&all, &f),
            Verdict {
                matched: false,
                decided_by: "age gt 10800".into()
            }
        );
        let not = Condition::Not(Box::new(test(Field::Assignee, Op::Exists(true))));
        assert!(verdict(&not, &f).matched);
    }

    #[test]
    fn ascii_texts_compare_without_copies_as_other_texts_do() {
        let ops = || {
            [
                Op::Contains("outlook 16".into()),
                Op::Contains("łódź".into()),
                Op::StartsWith("microsoft".into()),
                Op::EndsWith(".0".into()),
                Op::Contains(String::new()),
            ]
        };
        for item in [
            "Microsoft Outlook 16.0",
            "MICROSOFT OUTLOOK 16.0",
            "Łódź 16.0",
            "",
        ] {
            for op in ops() {
                let copied = text_op(
                    &op,
                    item,
                    Some(&Lowered::from(item.to_lowercase())),
                    &Field::From,
                );
                assert_eq!(
                    text_op(&op, item, None, &Field::From),
                    copied,
                    "{op:?} on {item:?}"
                );
            }
        }
    }
}
