//! Quote and signature stripping for replies from Gmail, Outlook, Thunderbird and
//! Apple Mail in English, Polish and German. Small pure functions; each returns
//! what it cut, and the result is never an empty body.

use regex::Regex;
use std::sync::LazyLock;

/// A reply body split into what the author wrote and what was cut.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stripped {
    pub kept: String,
    pub cut: String,
}

/// Lines that introduce a quoted message ("attribution lines").
static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*>?\s*(?:
            on\s.{4,200}\swrote:                     # Gmail, Thunderbird, Apple Mail (en)
          | w\sdniu\s.{4,200}\s(?:pisze|napisał\(a\)|napisał|napisała):   # Thunderbird, Gmail (pl)
          | .{4,200}\snapisał\(a\):                  # Gmail (pl)
          | dnia\s.{4,200}\snapisał[a]?:             # older Polish clients
          | am\s.{4,200}\sschrieb\s.{1,200}:         # Thunderbird, Gmail, Apple Mail (de)
          | .{1,200}\sschrieb\sam\s.{4,200}:         # Outlook (de)
          | .{1,200}\sschrieb:                       # short German form
          | -{2,}\s*(?:original\smessage|wiadomość\soryginalna|oryginalna\swiadomość|ursprüngliche\snachricht|originalnachricht)\s*-{2,}
        )\s*$",
    )
    .expect("static regex")
});

/// First line of an Outlook header block ("From: … Sent: … To: … Subject: …").
static OUTLOOK_FROM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*\*?(?:from|od|von|de)\s*:\*?\s+\S").expect("static regex")
});
static OUTLOOK_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*\*?(?:sent|date|wysłano|data|gesendet|datum|subject|temat|betreff|to|do|an)\s*:",
    )
    .expect("static regex")
});

/// Closing lines mobile clients add: "Sent from my iPhone", "Wysłane z iPhone'a" …
static MOBILE_FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:sent\sfrom\smy\s|wysłane\sz\s|wysłano\sz\s|von\smeinem\s.{1,40}\sgesendet|gesendet\svon\smeinem\s|get\soutlook\sfor\s|pobierz\soutlook\s)",
    )
    .expect("static regex")
});

/// Splits a reply into the new text and the quoted history, then cuts the signature.
pub fn strip(body: &str) -> Stripped {
    let lines: Vec<&str> = body.lines().collect();
    let mut cut_at = top_quote(&lines).unwrap_or(lines.len());
    cut_at = trailing_quote_block(&lines[..cut_at]).unwrap_or(cut_at);
    let signature_at = signature(&lines[..cut_at]).unwrap_or(cut_at);

    let kept = lines[..signature_at].join("\n").trim_end().to_string();
    if kept.trim().is_empty() {
        // Never empty a body: a reply that is only a quote keeps everything.
        return Stripped {
            kept: body.trim_end().to_string(),
            cut: String::new(),
        };
    }
    Stripped {
        kept,
        cut: lines[signature_at..].join("\n").trim().to_string(),
    }
}

/// The line where quoted history begins below the author's text (top-posting).
fn top_quote(lines: &[&str]) -> Option<usize> {
    for i in 0..lines.len() {
        if is_attribution(lines, i) || is_outlook_block(lines, i) {
            // An underscore or dash rule right above belongs to the quote.
            let above = i.checked_sub(1).filter(|&j| is_rule(lines[j]));
            return Some(above.unwrap_or(i));
        }
    }
    None
}

fn is_attribution(lines: &[&str], i: usize) -> bool {
    let line = lines[i];
    if line.chars().count() > 400 {
        return false;
    }
    if ATTRIBUTION.is_match(line) {
        return true;
    }
    // Gmail wraps long attribution lines: "On Mon, … <a@b.c>" / "wrote:".
    match lines.get(i + 1) {
        Some(next) if next.trim_end().ends_with(':') && next.len() < 120 => {
            ATTRIBUTION.is_match(&format!("{} {}", line.trim_end(), next.trim()))
        }
        _ => false,
    }
}

fn is_outlook_block(lines: &[&str], i: usize) -> bool {
    if !OUTLOOK_FROM.is_match(lines[i]) {
        return false;
    }
    let fields = lines[i + 1..]
        .iter()
        .take(5)
        .filter(|l| OUTLOOK_FIELD.is_match(l))
        .count();
    fields >= 2
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 10 && t.chars().all(|c| c == '_' || c == '-')
}

/// A block of `>` lines (with blank lines) that runs to the end of the text.
fn trailing_quote_block(lines: &[&str]) -> Option<usize> {
    let mut start = None;
    for (i, line) in lines.iter().enumerate().rev() {
        let t = line.trim_start();
        if t.starts_with('>') {
            start = Some(i);
        } else if !t.is_empty() {
            break;
        }
    }
    start
}

/// The line where the signature begins: the `-- ` delimiter, or a mobile footer
/// near the end.
fn signature(lines: &[&str]) -> Option<usize> {
    let delimiter = lines
        .iter()
        .rposition(|l| *l == "-- " || *l == "--" || *l == "—");
    let footer = lines
        .iter()
        .enumerate()
        .rev()
        .take_while(|(_, l)| l.trim().is_empty() || MOBILE_FOOTER.is_match(l))
        .filter(|(_, l)| MOBILE_FOOTER.is_match(l))
        .map(|(i, _)| i)
        .last();
    match (delimiter, footer) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(body: &str) -> String {
        strip(body).kept
    }

    #[test]
    fn gmail_english_wrapped_attribution() {
        let body = "Still broken.\n\nOn Mon, 16 Nov 2026 at 10:00, Support <support@example.com>\nwrote:\n> Please restart.\n";
        let s = strip(body);
        assert_eq!(s.kept, "Still broken.");
        assert!(s.cut.contains("> Please restart."));
    }

    #[test]
    fn polish_gmail_and_thunderbird() {
        assert_eq!(
            kept(
                "Dziękuję!\n\npt., 20 lis 2026 o 10:00 Jan Kowalski <jan@firma.pl> napisał(a):\n> Cześć"
            ),
            "Dziękuję!"
        );
        assert_eq!(
            kept("Działa.\nW dniu 20.11.2026 o 10:00, Anna Nowak pisze:\n> Proszę"),
            "Działa."
        );
    }

    #[test]
    fn german_thunderbird_and_outlook() {
        assert_eq!(
            kept("Danke.\n\nAm 20.11.2026 um 10:00 schrieb Max Muster:\n> Hallo"),
            "Danke."
        );
        assert_eq!(
            kept(
                "Danke.\n-----Ursprüngliche Nachricht-----\nVon: Max\nGesendet: Freitag\nBetreff: x\n\ntext"
            ),
            "Danke."
        );
    }

    #[test]
    fn outlook_polish_header_block_with_rule() {
        let body = "Nadal nie działa.\n\n________________________________\nOd: Pomoc <support@example.com>\nWysłano: piątek, 20 listopada 2026 10:00\nDo: Jan\nTemat: RE: Drukarka\n\nProszę zrestartować.";
        let s = strip(body);
        assert_eq!(s.kept, "Nadal nie działa.");
        assert!(s.cut.starts_with("____"));
        assert!(s.cut.ends_with("Proszę zrestartować."));
    }

    #[test]
    fn signature_and_mobile_footer() {
        assert_eq!(kept("Hi\n-- \nJohn Doe\nACME"), "Hi");
        assert_eq!(kept("Hi there\n\nSent from my iPhone"), "Hi there");
        assert_eq!(kept("Cześć\n\nWysłane z iPhone'a"), "Cześć");
    }

    #[test]
    fn bottom_posted_quote_keeps_the_answer() {
        let body = "On Mon, John wrote:\n> question?\n\nanswer";
        // The attribution is the first line: cutting there would empty the body.
        assert_eq!(kept(body), body);
    }

    #[test]
    fn quote_only_message_is_never_emptied() {
        let body = "> only a quote\n> more";
        let s = strip(body);
        assert_eq!(s.kept, body);
        assert_eq!(s.cut, "");
    }

    #[test]
    fn plain_text_is_untouched() {
        let body = "Line one\n\nLine two: from the printer";
        assert_eq!(
            strip(body),
            Stripped {
                kept: body.into(),
                cut: String::new()
            }
        );
    }
}
