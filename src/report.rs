//! Reports: tickets created and resolved, average first-response and
//! resolution time and SLA compliance in a time window, grouped by agent,
//! team, category or organization. Pure: the store reads the [`Row`]s, this
//! module counts and formats them (`ticketd report`, the `report` action).

use crate::clock::{Timestamp, span};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Agent,
    Team,
    Category,
    Organization,
}

impl GroupBy {
    pub const NAMES: &'static [&'static str] = &["agent", "team", "category", "organization"];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Agent => "agent",
            GroupBy::Team => "team",
            GroupBy::Category => "category",
            GroupBy::Organization => "organization",
        }
    }
}

impl FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<GroupBy, String> {
        Ok(match s {
            "agent" => GroupBy::Agent,
            "team" => GroupBy::Team,
            "category" => GroupBy::Category,
            "organization" => GroupBy::Organization,
            other => {
                return Err(format!(
                    "unknown grouping {other:?} (expected one of: {})",
                    GroupBy::NAMES.join(", ")
                ));
            }
        })
    }
}

/// One ticket that was created, first answered or resolved in the window.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub category: String,
    pub organization: Option<String>,
    pub created_at: Timestamp,
    pub first_response_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// Whether a breach of either SLA target fired for the ticket.
    pub breached: bool,
}

/// The figures of one group (or of all tickets).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Line {
    pub group: String,
    pub created: u64,
    pub resolved: u64,
    /// Mean seconds from creation to the first public agent comment, over
    /// the first responses made in the window.
    pub avg_first_response_seconds: Option<i64>,
    /// Mean seconds from creation to resolution, over the tickets resolved
    /// in the window.
    pub avg_resolution_seconds: Option<i64>,
    /// Share of the tickets resolved in the window that breached no SLA
    /// target, in percent.
    pub sla_compliance_percent: Option<f64>,
    pub breached: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub by: &'static str,
    pub lines: Vec<Line>,
    pub total: Line,
}

#[derive(Default)]
struct Sums {
    created: u64,
    resolved: u64,
    breached: u64,
    first_response: (i64, i64),
    resolution: (i64, i64),
}

impl Sums {
    fn add(&mut self, r: &Row, from: Timestamp, to: Timestamp) {
        let inside = |t: Timestamp| t >= from && t < to;
        if inside(r.created_at) {
            self.created += 1;
        }
        if let Some(at) = r.first_response_at.filter(|t| inside(*t)) {
            self.first_response.0 += (at - r.created_at).max(0);
            self.first_response.1 += 1;
        }
        if let Some(at) = r.resolved_at.filter(|t| inside(*t)) {
            self.resolved += 1;
            self.resolution.0 += (at - r.created_at).max(0);
            self.resolution.1 += 1;
            if r.breached {
                self.breached += 1;
            }
        }
    }

    fn line(&self, group: String) -> Line {
        let mean = |(sum, n): (i64, i64)| (n > 0).then(|| sum / n);
        Line {
            group,
            created: self.created,
            resolved: self.resolved,
            avg_first_response_seconds: mean(self.first_response),
            avg_resolution_seconds: mean(self.resolution),
            sla_compliance_percent: (self.resolved > 0).then(|| {
                let met = self.resolved - self.breached;
                (met as f64 * 1000.0 / self.resolved as f64).round() / 10.0
            }),
            breached: self.breached,
        }
    }
}

impl Report {
    pub fn build(rows: &[Row], from: Timestamp, to: Timestamp, by: GroupBy) -> Report {
        let mut groups: BTreeMap<String, Sums> = BTreeMap::new();
        let mut total = Sums::default();
        for r in rows {
            let key = match by {
                GroupBy::Agent => r.assignee.clone(),
                GroupBy::Team => r.team.clone(),
                GroupBy::Category => Some(r.category.clone()),
                GroupBy::Organization => r.organization.clone(),
            }
            .unwrap_or_else(|| "(none)".into());
            groups.entry(key).or_default().add(r, from, to);
            total.add(r, from, to);
        }
        Report {
            from: crate::clock::rfc3339(from),
            to: crate::clock::rfc3339(to),
            by: by.as_str(),
            lines: groups.into_iter().map(|(k, s)| s.line(k)).collect(),
            total: total.line("total".into()),
        }
    }

    const HEADER: [&'static str; 6] = [
        "created",
        "resolved",
        "avg first response",
        "avg resolution",
        "SLA compliance",
        "breached",
    ];

    fn cells(line: &Line) -> [String; 6] {
        let time = |s: Option<i64>| s.map_or("-".into(), span);
        [
            line.created.to_string(),
            line.resolved.to_string(),
            time(line.avg_first_response_seconds),
            time(line.avg_resolution_seconds),
            line.sla_compliance_percent
                .map_or("-".into(), |p| format!("{p:.1} %")),
            line.breached.to_string(),
        ]
    }

    /// An aligned text table with a total line.
    pub fn table(&self) -> String {
        let mut rows: Vec<Vec<String>> = vec![
            std::iter::once(self.by.to_string())
                .chain(Report::HEADER.iter().map(|h| h.to_string()))
                .collect(),
        ];
        for line in self.lines.iter().chain(std::iter::once(&self.total)) {
            rows.push(
                std::iter::once(line.group.clone())
                    .chain(Report::cells(line))
                    .collect(),
            );
        }
        let widths: Vec<usize> = (0..7)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!("Tickets from {} to {}\n", self.from, self.to);
        for row in &rows {
            let mut text = String::new();
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                if c == 0 {
                    let _ = write!(text, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(text, "  {}{cell}", " ".repeat(pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// CSV with seconds and plain numbers (for spreadsheets).
    pub fn csv(&self) -> String {
        let mut out = format!(
            "{},created,resolved,avg_first_response_seconds,avg_resolution_seconds,sla_compliance_percent,breached\n",
            self.by
        );
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        for line in self.lines.iter().chain(std::iter::once(&self.total)) {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{}",
                csv_field(&line.group),
                line.created,
                line.resolved,
                opt(line.avg_first_response_seconds),
                opt(line.avg_resolution_seconds),
                line.sla_compliance_percent
                    .map(|p| format!("{p:.1}"))
                    .unwrap_or_default(),
                line.breached
            );
        }
        out
    }
}

/// A `--from` / `--to` bound: a date (`2026-11-01`, midnight in `tz`), an
/// RFC 3339 time, or a span before `now` (`7d`, `24h`).
pub fn parse_bound(text: &str, tz: chrono_tz::Tz, now: Timestamp) -> Result<Timestamp, String> {
    use chrono::TimeZone;
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        return tz
            .from_local_datetime(&midnight)
            .earliest()
            .map(|d| d.timestamp())
            .ok_or_else(|| format!("{text}: no midnight in {tz}"));
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp());
    }
    match crate::clock::parse_duration(text) {
        Some(ago) => Ok(now - ago),
        None => Err(format!(
            "{text:?} is not a date (2026-11-01), a time (2026-11-01T08:00:00Z) or a span ago (7d)"
        )),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    fn row(team: Option<&str>, created: i64, first: Option<i64>, resolved: Option<i64>) -> Row {
        Row {
            team: team.map(String::from),
            category: "billing".into(),
            created_at: created,
            first_response_at: first,
            resolved_at: resolved,
            ..Row::default()
        }
    }

    #[test]
    fn counts_only_what_happened_inside_the_window() {
        let from = 100 * H;
        let to = 200 * H;
        let rows = [
            // Created before, resolved inside: counts as resolved, not created.
            row(Some("billing"), 90 * H, Some(91 * H), Some(110 * H)),
            // Created inside, answered after 2 h, resolved after 10 h.
            row(Some("billing"), 120 * H, Some(122 * H), Some(130 * H)),
            // Created inside, still open.
            row(Some("it"), 150 * H, None, None),
            // Resolved after the window.
            Row {
                breached: true,
                ..row(None, 199 * H, Some(199 * H + 600), Some(201 * H))
            },
        ];
        let r = Report::build(&rows, from, to, GroupBy::Team);
        let groups: Vec<&str> = r.lines.iter().map(|l| l.group.as_str()).collect();
        assert_eq!(groups, ["(none)", "billing", "it"]);
        let billing = &r.lines[1];
        assert_eq!((billing.created, billing.resolved), (1, 2));
        assert_eq!(billing.avg_first_response_seconds, Some(2 * H));
        assert_eq!(billing.avg_resolution_seconds, Some((20 * H + 10 * H) / 2));
        assert_eq!(billing.sla_compliance_percent, Some(100.0));
        assert_eq!(r.total.created, 3);
        assert_eq!(r.total.resolved, 2);
        assert_eq!(r.total.breached, 0, "the breached ticket resolved later");
        assert_eq!(r.lines[0].avg_first_response_seconds, Some(600));
        assert_eq!(r.lines[2].sla_compliance_percent, None);
    }

    #[test]
    fn compliance_is_the_share_resolved_without_a_breach() {
        let mut rows: Vec<Row> = (0..3)
            .map(|i| row(Some("a"), i, None, Some(10 + i)))
            .collect();
        rows[0].breached = true;
        let r = Report::build(&rows, 0, 100, GroupBy::Category);
        assert_eq!(r.total.sla_compliance_percent, Some(66.7));
        assert_eq!(r.total.breached, 1);
        assert_eq!(r.lines[0].group, "billing");
    }

    #[test]
    fn bounds_are_dates_times_or_spans_ago() {
        let waw = chrono_tz::Europe::Warsaw;
        // Midnight in Warsaw is 23:00 UTC the day before (CET).
        assert_eq!(
            parse_bound("2026-11-02", waw, 0),
            Ok(chrono::DateTime::parse_from_rfc3339("2026-11-01T23:00:00Z")
                .unwrap()
                .timestamp())
        );
        assert_eq!(parse_bound("1970-01-01T01:00:00Z", waw, 0), Ok(3600));
        assert_eq!(parse_bound("7d", waw, 10 * 86_400), Ok(3 * 86_400));
        assert!(
            parse_bound("last week", waw, 0)
                .unwrap_err()
                .contains("not a date")
        );
    }

    #[test]
    fn formats_table_and_csv() {
        let mut rows = vec![row(Some("billing, east"), 0, Some(90 * 60), Some(5 * H))];
        rows[0].breached = true;
        let r = Report::build(&rows, 0, 10 * H, GroupBy::Team);
        assert_eq!(
            r.csv(),
            "team,created,resolved,avg_first_response_seconds,avg_resolution_seconds,sla_compliance_percent,breached\n\
             \"billing, east\",1,1,5400,18000,0.0,1\n\
             total,1,1,5400,18000,0.0,1\n"
        );
        let table = r.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "Tickets from 1970-01-01T00:00:00Z to 1970-01-01T10:00:00Z"
        );
        assert!(
            lines[1].starts_with("team           created  resolved"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("billing, east        1         1"),
            "{table}"
        );
        assert!(
            lines[2].contains("1 h 30 min") && lines[2].contains("0.0 %"),
            "{table}"
        );
        assert!(lines[3].starts_with("total"), "{table}");
        assert!("nobody".parse::<GroupBy>().is_err());
    }
}
