//! Which `matches` tests on the subject and the body can hold, found in one
//! pass over each text for the whole rule set, instead of one regex search
//! over a long body per test. Pure.
//!
//! At load time every such regex gives up the literals each of its matches
//! must begin with and those it must end with (regex-syntax's extractor;
//! `(?i)` becomes the case variants). One Aho-Corasick automaton per field
//! holds them all. At evaluation one overlapping scan marks, per regex, which
//! ends were seen; only a regex with both runs. A regex whose literals cannot
//! be listed (`.*x`, big classes, a possible empty match) always runs. The
//! filter only skips searches that cannot match, so verdicts are unchanged.

use super::field::Field;
use aho_corasick::{AhoCorasick, AhoCorasickKind};
use regex::Regex;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use std::cell::OnceCell;
use std::collections::HashMap;

/// A `matches` regex and its slot in the rule set's prefilter (none:
/// it always runs).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub regex: Regex,
    pub slot: Option<usize>,
}

impl Pattern {
    pub fn new(regex: Regex) -> Pattern {
        Pattern { regex, slot: None }
    }
}

/// The fields worth a shared scan: the long texts.
const FIELDS: [Field; 2] = [Field::Subject, Field::Body];
/// Literals one regex may give (the case variants of a long word exceed
/// this; the extractor then shortens them, which keeps them correct).
const LIMIT_TOTAL: usize = 1_000;
const PREFIX: u8 = 1;
const SUFFIX: u8 = 2;

/// The regex literals of one field.
#[derive(Debug, Clone, Default)]
struct Literals {
    automaton: Option<AhoCorasick>,
    /// For each automaton pattern: the regexes (slots) it is a prefix or a
    /// suffix of.
    owners: Vec<Vec<(usize, u8)>>,
    /// For each slot: the ends that must be seen before the regex runs.
    needs: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Prefilter {
    fields: [Literals; 2],
}

fn field_index(field: &Field) -> Option<usize> {
    FIELDS.iter().position(|f| f == field)
}

impl Prefilter {
    /// Gives each filterable `matches` regex on the subject or the body its
    /// slot and builds the automata.
    pub fn build<'a>(patterns: impl Iterator<Item = (&'a Field, &'a mut Pattern)>) -> Prefilter {
        let mut literals: [Vec<Vec<u8>>; 2] = Default::default();
        let mut index: [HashMap<Vec<u8>, usize>; 2] = Default::default();
        let mut filter = Prefilter::default();
        for (field, pattern) in patterns {
            let Some(f) = field_index(field) else {
                continue;
            };
            let Ok(hir) = regex_syntax::parse(pattern.regex.as_str()) else {
                continue;
            };
            let ends = [ExtractKind::Prefix, ExtractKind::Suffix].map(|kind| {
                let seq = Extractor::new()
                    .kind(kind)
                    .limit_total(LIMIT_TOTAL)
                    .extract(&hir);
                let mut list: Vec<Vec<u8>> = seq
                    .literals()?
                    .iter()
                    .map(|l| l.as_bytes().to_ascii_lowercase())
                    .collect();
                list.sort();
                list.dedup();
                (!list.iter().any(Vec::is_empty)).then_some(list)
            });
            if ends.iter().all(Option::is_none) {
                continue;
            }
            let own = &mut filter.fields[f];
            let slot = own.needs.len();
            let mut need = 0;
            for (list, bit) in ends.into_iter().zip([PREFIX, SUFFIX]) {
                for literal in list.into_iter().flatten() {
                    need |= bit;
                    match index[f].get(&literal) {
                        Some(&i) => own.owners[i].push((slot, bit)),
                        None => {
                            index[f].insert(literal.clone(), literals[f].len());
                            literals[f].push(literal);
                            own.owners.push(vec![(slot, bit)]);
                        }
                    }
                }
            }
            own.needs.push(need);
            pattern.slot = Some(slot);
        }
        for (own, literals) in filter.fields.iter_mut().zip(literals) {
            if literals.is_empty() {
                continue;
            }
            // ASCII letters were folded to lower case above; other bytes
            // (and their case variants) stay literal. The contiguous NFA
            // builds in a fraction of a DFA's time and scans nearly as fast.
            match AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .ascii_case_insensitive(true)
                .build(&literals)
            {
                Ok(automaton) => own.automaton = Some(automaton),
                // Too big to build: no filtering (every regex runs).
                Err(_) => own.needs.iter_mut().for_each(|n| *n = 0),
            }
        }
        filter
    }
}

/// One evaluation's view of the prefilter: each field scanned on first use.
pub struct Scan<'a> {
    filter: &'a Prefilter,
    seen: [OnceCell<Vec<u8>>; 2],
}

impl<'a> Scan<'a> {
    pub fn new(filter: &'a Prefilter) -> Scan<'a> {
        Scan {
            filter,
            seen: Default::default(),
        }
    }

    /// Whether the regex in `slot` of `field` can match `text` (the field's
    /// value; the same text on every call of one evaluation).
    pub fn may_match(&self, field: &Field, slot: usize, text: &str) -> bool {
        let Some(f) = field_index(field) else {
            return true;
        };
        let own = &self.filter.fields[f];
        let Some(&need) = own.needs.get(slot) else {
            return true;
        };
        let Some(automaton) = &own.automaton else {
            return true;
        };
        let seen = self.seen[f].get_or_init(|| {
            let mut seen = vec![0u8; own.needs.len()];
            for m in automaton.find_overlapping_iter(text) {
                for &(slot, bit) in &own.owners[m.pattern().as_usize()] {
                    seen[slot] |= bit;
                }
            }
            seen
        });
        seen[slot] & need == need
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::condition::{Condition, Op, Test};
    use crate::rules::facts::Facts;

    fn rule(field: Field, pattern: &str) -> Condition {
        Condition::Test(Test {
            field,
            op: Op::Matches(Pattern::new(regex::Regex::new(pattern).unwrap())),
        })
    }

    /// The verdict of every regex with and without the filter, on each text.
    fn agree(patterns: &[&str], texts: &[&str]) {
        let mut conditions: Vec<Condition> =
            patterns.iter().map(|p| rule(Field::Body, p)).collect();
        let filter = Prefilter::build(conditions.iter_mut().flat_map(Condition::patterns_mut));
        for text in texts {
            let facts = Facts {
                body: text.to_string(),
                ..Facts::default()
            };
            let scan = Scan::new(&filter);
            for (c, p) in conditions.iter().zip(patterns) {
                let plain = regex::Regex::new(p).unwrap().is_match(text);
                assert_eq!(c.matches_in(&facts, &scan), plain, "{p:?} on {text:?}");
            }
        }
    }

    #[test]
    fn filtered_regexes_decide_as_the_regexes_do() {
        agree(
            &[
                r"(?i)\bfaktur[ay]\b",
                r"(?i)hasło",
                r"(?i)^(re|odp|aw): .*vpn",
                r"\d{2}/\d{4}",
                r"(?i)kelvin",
                r"(?i)class",
                r"x*",
                r".*",
                r"(?i)(zwrot|refund)[- ]?\d+",
            ],
            &[
                "Faktura VAT",
                "FAKTURY",
                "HASŁO do VPN",
                "Odp: problem z VPN",
                "termin 11/2026",
                "\u{212A}elvin",
                "cla\u{17F}\u{17F}",
                "",
                "Refund-42 please",
                "zwrot nr 7",
                "nic tu nie ma",
            ],
        );
    }

    #[test]
    fn only_regexes_on_the_subject_and_the_body_get_a_slot() {
        let mut conditions = [
            rule(Field::Body, "(?i)faktura"),
            rule(Field::From, "(?i)faktura"),
            rule(Field::Subject, ".*"),
        ];
        let filter = Prefilter::build(conditions.iter_mut().flat_map(Condition::patterns_mut));
        let slots: Vec<Option<usize>> = conditions
            .iter()
            .map(|c| match c {
                Condition::Test(Test {
                    op: Op::Matches(p), ..
                }) => p.slot,
                _ => None,
            })
            .collect();
        assert_eq!(slots, [Some(0), None, None]);
        let scan = Scan::new(&filter);
        assert!(!scan.may_match(&Field::Body, 0, "nothing here"));
        let scan = Scan::new(&filter);
        assert!(scan.may_match(&Field::Body, 0, "Twoja FAKTURA"));
    }
}
