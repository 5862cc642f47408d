//! Ticket numbers taken at commit. A transaction that holds its appends back
//! gives each new ticket a placeholder number (`TKT-2026-` and a token unique
//! to the transaction) and takes the real numbers only when it commits, so
//! the per-year sequence row is locked for the last few statements instead of
//! the whole batch. Numbers stay gap-free: they are taken and used in the same
//! transaction.

use super::Result;
use super::rows::{placeholders, rows_per_insert};
use crate::ticket::format_number;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};

/// Hex digits of a placeholder's index after the transaction's nonce.
const INDEX_DIGITS: usize = 6;

/// The placeholders a transaction handed out, in order of creation.
pub(crate) struct Numbering {
    /// 16 random hex digits, unique to the transaction.
    nonce: String,
    wanted: Vec<(String, i32)>,
}

impl Default for Numbering {
    fn default() -> Numbering {
        Numbering::new()
    }
}

impl Numbering {
    pub fn new() -> Numbering {
        Numbering {
            nonce: format!("{:016x}", RandomState::new().hash_one(std::process::id())),
            wanted: Vec::new(),
        }
    }

    /// A placeholder for the next ticket number of `year`. Only its token
    /// (letters and digits, so no escaping changes it) is replaced later.
    pub fn placeholder(&mut self, prefix: &str, year: i32) -> String {
        self.wanted.push((prefix.to_string(), year));
        self.placeholder_at(self.wanted.len() - 1)
    }

    /// The placeholder handed out `index`-th.
    fn placeholder_at(&self, index: usize) -> String {
        let (prefix, year) = &self.wanted[index];
        format!("{prefix}-{year}-{}{index:0INDEX_DIGITS$x}", self.nonce)
    }

    fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }
}

/// The real sequence numbers of a transaction's placeholders.
#[derive(Default)]
pub struct Numbers {
    nonce: String,
    sequences: Vec<i64>,
}

impl Numbers {
    /// Replaces every placeholder token in `text` with its real number.
    pub fn replace_in(&self, text: &mut String) {
        if self.nonce.is_empty() || !text.contains(&self.nonce) {
            return;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(&self.nonce) {
            out.push_str(&rest[..at]);
            let after = &rest[at + self.nonce.len()..];
            let sequence = after
                .get(..INDEX_DIGITS)
                .and_then(|digits| usize::from_str_radix(digits, 16).ok())
                .and_then(|index| self.sequences.get(index));
            match sequence {
                Some(sequence) => {
                    out.push_str(&format!("{sequence:04}"));
                    rest = &after[INDEX_DIGITS..];
                }
                None => {
                    out.push_str(&self.nonce);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        *text = out;
    }

    pub fn replace_in_option(&self, text: &mut Option<String>) {
        if let Some(text) = text {
            self.replace_in(text);
        }
    }
}

/// Takes the numbers for `numbering` from the per-year sequences and gives
/// the tickets carrying its placeholders their real numbers. Locks each
/// year's sequence row until the transaction ends.
pub(crate) async fn take(conn: &mut AnyConnection, numbering: Numbering) -> Result<Numbers> {
    if numbering.is_empty() {
        return Ok(Numbers::default());
    }
    let mut per_year: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, year) in &numbering.wanted {
        *per_year.entry(*year).or_default() += 1;
    }
    // The first number of each year's run.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (year, count) in per_year {
        let last: i64 = sqlx::query(
            "INSERT INTO ticket_sequences (year, last) VALUES ($1, $2)
             ON CONFLICT (year) DO UPDATE SET last = ticket_sequences.last + excluded.last
             RETURNING last",
        )
        .bind(i64::from(year))
        .bind(count)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        next.insert(year, last - count + 1);
    }
    let mut sequences = Vec::with_capacity(numbering.wanted.len());
    let mut renames = Vec::with_capacity(numbering.wanted.len());
    for (index, (prefix, year)) in numbering.wanted.iter().enumerate() {
        let sequence = next.get_mut(year).map_or(0, |n| {
            *n += 1;
            *n - 1
        });
        sequences.push(sequence);
        renames.push((
            numbering.placeholder_at(index),
            format_number(prefix, *year, sequence),
        ));
    }
    let mut renames = renames.into_iter().peekable();
    while renames.peek().is_some() {
        let chunk: Vec<_> = renames.by_ref().take(rows_per_insert(2)).collect();
        let sql = format!(
            "UPDATE tickets SET number = v.column2 FROM (VALUES {}) AS v
             WHERE tickets.number = v.column1",
            placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (placeholder, number) in chunk {
            query = query.bind(placeholder).bind(number);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(Numbers {
        nonce: numbering.nonce,
        sequences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(numbering: &Numbering, sequences: Vec<i64>) -> Numbers {
        Numbers {
            nonce: numbering.nonce.clone(),
            sequences,
        }
    }

    #[test]
    fn placeholders_become_their_numbers_wherever_they_are() {
        let mut numbering = Numbering::new();
        let first = numbering.placeholder("TKT", 2026);
        let second = numbering.placeholder("TKT", 2026);
        let numbers = numbers(&numbering, vec![41, 42]);
        let mut text = format!("[{first}] Printer; see {second}\\-x and <ticketd.{first}.1@h>");
        numbers.replace_in(&mut text);
        assert_eq!(
            text,
            "[TKT-2026-0041] Printer; see TKT-2026-0042\\-x and <ticketd.TKT-2026-0041.1@h>"
        );
    }

    #[test]
    fn text_without_placeholders_and_unknown_indexes_stay_as_they_are() {
        let mut numbering = Numbering::new();
        let first = numbering.placeholder("TKT", 2026);
        let numbers = numbers(&numbering, vec![7]);
        let mut plain = "TKT-2026-0001 stays".to_string();
        numbers.replace_in(&mut plain);
        assert_eq!(plain, "TKT-2026-0001 stays");
        // A token cut short or with an index nobody was given is left alone.
        let stem = &first[..first.len() - INDEX_DIGITS];
        let cut = format!("{} and {stem}0000ff", &first[..first.len() - 2]);
        let mut text = cut.clone();
        numbers.replace_in(&mut text);
        assert_eq!(text, cut);
    }

    #[test]
    fn two_transactions_get_different_nonces() {
        assert_ne!(Numbering::new().nonce, Numbering::new().nonce);
    }
}
