//! Subject lines: reply/forward prefixes in many languages, and ticket numbers.

use regex::Regex;
use std::sync::LazyLock;

/// One reply or forward prefix, with an optional counter: `Re:`, `RE[2]:`,
/// `AW:`, `Odp:`, `Réf. :`, `Fwd:` …
static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:re|aw|wg|sv|vs|odp|pd|tr|antw|antwort|réf|ref|rif|enc|rv|fwd?|fw|vl|ynt|ilt|r)\s*(?:\[\d+\]|\(\d+\))?\s*\.?\s*[:：]\s*",
    )
    .expect("static regex")
});

/// A bracketed tag such as `[TKT-2026-0042]` or `[EXTERNAL]` in front of the subject.
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*\[[^\]]{1,40}\]\s*").expect("static regex"));

/// The subject with every leading reply/forward prefix and bracketed tag removed,
/// and how many reply/forward prefixes there were.
pub fn normalize(subject: &str) -> (String, usize) {
    let mut rest = subject.trim();
    let mut count = 0;
    loop {
        if let Some(m) = PREFIX.find(rest) {
            rest = &rest[m.end()..];
            count += 1;
        } else if let Some(m) = TAG.find(rest) {
            rest = &rest[m.end()..];
        } else {
            break;
        }
    }
    (rest.trim().to_string(), count)
}

/// Finds ticket numbers with one prefix (`TKT-2026-0042`) in subjects.
/// Compile it once; matching is cheap.
#[derive(Debug, Clone)]
pub struct NumberPattern {
    prefix: String,
    re: Regex,
}

impl NumberPattern {
    pub fn new(prefix: &str) -> NumberPattern {
        let pattern = format!(r"(?i)\b{}-(\d{{4}})-(\d{{4,9}})\b", regex::escape(prefix));
        NumberPattern {
            prefix: prefix.to_string(),
            re: Regex::new(&pattern).expect("escaped prefix makes a valid regex"),
        }
    }

    /// The first ticket number in the subject, with the prefix as configured.
    pub fn find(&self, subject: &str) -> Option<String> {
        let caps = self.re.captures(subject)?;
        Some(format!(
            "{}-{}-{}",
            self.prefix,
            caps.get(1)?.as_str(),
            caps.get(2)?.as_str()
        ))
    }

    /// A number in this pattern, for usage texts.
    pub fn example(&self) -> String {
        format!("{}-2026-0001", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_prefixes_in_many_languages_and_counts_them() {
        let cases = [
            ("Re: Invoice", "Invoice", 1),
            ("RE[2]: Invoice", "Invoice", 1),
            ("AW: WG: Rechnung", "Rechnung", 2),
            ("Odp: Odp: Faktura", "Faktura", 2),
            ("Fwd: Re: Fw: x", "x", 3),
            ("SV: VS: Lasku", "Lasku", 2),
            ("Réf. : Facture", "Facture", 1),
            ("RIF: R: fattura", "fattura", 2),
            ("PD: TR: Enc: RV: a", "a", 4),
            ("Antw: [TKT-2026-0042] Re: Drukarka", "Drukarka", 2),
            ("Result: ok", "Result: ok", 0),
            ("Reference guide", "Reference guide", 0),
        ];
        for (input, want, count) in cases {
            assert_eq!(normalize(input), (want.to_string(), count), "{input}");
        }
    }

    #[test]
    fn finds_ticket_number_with_configured_prefix() {
        assert_eq!(
            NumberPattern::new("TKT")
                .find("Re: [TKT-2026-0042] Drukarka")
                .as_deref(),
            Some("TKT-2026-0042")
        );
        assert_eq!(
            NumberPattern::new("TKT")
                .find("about tkt-2026-0042")
                .as_deref(),
            Some("TKT-2026-0042")
        );
        assert_eq!(NumberPattern::new("TKT").find("TKT-26-1"), None);
        assert_eq!(
            NumberPattern::new("HD").find("[HD-2027-12345]").as_deref(),
            Some("HD-2027-12345")
        );
    }
}
