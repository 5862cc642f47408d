//! HTML-only mail turned into readable text: block elements become line
//! breaks and list items get a dash before mail-parser's converter runs.

use regex::Regex;
use std::sync::LazyLock;

static BLOCK_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)</(?:li|div|tr|h[1-6]|blockquote|table|ul|ol|pre|section|article)\s*>")
        .expect("static regex")
});
static LIST_ITEM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<li\b[^>]*>").expect("static regex"));
static CELL_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)</t[dh]\s*>").expect("static regex"));
static BLANK_RUNS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\n[ \t]*(?:\n[ \t]*){2,}").expect("static regex"));

pub fn to_text(html: &str) -> String {
    let html = BLOCK_END.replace_all(html, "$0<br>");
    let html = LIST_ITEM.replace_all(&html, "$0- ");
    let html = CELL_END.replace_all(&html, "$0 ");
    let text = mail_parser::decoders::html::html_to_text(&html);
    let text: Vec<&str> = text.lines().map(str::trim).collect();
    BLANK_RUNS
        .replace_all(&text.join("\n"), "\n\n")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_paragraphs_and_entities_read_as_text() {
        let html = "<html><head><style>p{}</style></head><body><p>Hi &amp; bye</p>\
                    <ul><li>one</li><li>two</li></ul><div>end</div></body></html>";
        assert_eq!(to_text(html), "Hi & bye\n- one\n- two\n\nend");
    }
}
