//! Business-hours calendars: a time zone, weekly opening hours and holidays.
//! Pure: built from `[[calendar]]` config, asked whether an instant is inside
//! business hours. (The SLA clocks will count business time with it.)

use crate::clock::Timestamp;
use chrono::{Datelike, NaiveDate, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use std::collections::{BTreeMap, BTreeSet};

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone)]
pub struct BusinessHours {
    pub name: String,
    tz: Tz,
    /// Per weekday (Monday first): open intervals in minutes after midnight.
    week: [Vec<(u32, u32)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

impl BusinessHours {
    /// Builds a calendar; the error names the calendar and the bad value.
    pub fn new(
        name: &str,
        time_zone: &str,
        hours: &BTreeMap<String, String>,
        holidays: &[String],
    ) -> Result<BusinessHours, String> {
        let fail = |m: String| format!("calendar {name}: {m}");
        let tz: Tz = time_zone.parse().map_err(|_| {
            fail(format!(
                "unknown time zone {time_zone:?} (e.g. \"Europe/Warsaw\")"
            ))
        })?;
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        for (day, spec) in hours {
            let Some(i) = DAYS.iter().position(|d| d == day) else {
                return Err(fail(format!(
                    "unknown day {day:?} (expected {})",
                    DAYS.join(", ")
                )));
            };
            week[i] = parse_intervals(spec).map_err(|m| fail(format!("hours.{day}: {m}")))?;
        }
        let mut days = BTreeSet::new();
        for h in holidays {
            let date = NaiveDate::parse_from_str(h, "%Y-%m-%d")
                .map_err(|_| fail(format!("holiday {h:?} is not a date like 2026-12-24")))?;
            days.insert(date);
        }
        Ok(BusinessHours {
            name: name.to_string(),
            tz,
            week,
            holidays: days,
        })
    }

    /// Whether `at` falls inside opening hours in the calendar's time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    pub fn is_open(&self, at: Timestamp) -> bool {
        let Some(utc) = chrono::DateTime::from_timestamp(at, 0) else {
            return false;
        };
        let local = self.tz.from_utc_datetime(&utc.naive_utc());
        if self.holidays.contains(&local.date_naive()) {
            return false;
        }
        let minute = local.hour() * 60 + local.minute();
        let day = weekday_index(local.weekday());
        self.week[day]
            .iter()
            .any(|(from, to)| minute >= *from && minute < *to)
    }
}

impl BusinessHours {
    /// The instant `seconds` of business time after `from` (SLA due times).
    /// A calendar without any opening hours (validation refuses those for
    /// SLA use) falls back to wall time.
    pub fn add(&self, from: Timestamp, seconds: i64) -> Timestamp {
        let mut left = seconds.max(0);
        for (start, end) in self.open_spans(from) {
            let start = start.max(from);
            if end - start >= left {
                return start + left;
            }
            left -= end - start;
        }
        from + seconds
    }

    /// Business seconds from `a` to `b` (0 when `b` is not after `a`).
    pub fn between(&self, a: Timestamp, b: Timestamp) -> i64 {
        let mut total = 0;
        for (start, end) in self.open_spans(a) {
            if start >= b {
                break;
            }
            total += end.min(b) - start.max(a);
        }
        total
    }

    /// Whether the week has any opening hours at all.
    pub fn has_hours(&self) -> bool {
        self.week.iter().any(|d| !d.is_empty())
    }

    /// Open spans (UTC instants) that end after `from`, in order, for up to
    /// ten years ahead.
    fn open_spans(&self, from: Timestamp) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
        let first = chrono::DateTime::from_timestamp(from, 0)
            .map(|utc| self.tz.from_utc_datetime(&utc.naive_utc()).date_naive())
            .unwrap_or_default();
        let days = if self.has_hours() { 3660 } else { 0 };
        first
            .iter_days()
            .take(days)
            .filter(|day| !self.holidays.contains(day))
            .flat_map(move |day| {
                self.week[weekday_index(day.weekday())].iter().filter_map(
                    move |(from_min, to_min)| {
                        Some((self.instant(day, *from_min)?, self.instant(day, *to_min)?))
                    },
                )
            })
            .filter(move |(_, end)| *end > from)
    }

    /// The UTC instant of `minute` after local midnight of `day`; in a DST
    /// gap, the first instant after it.
    fn instant(&self, day: NaiveDate, minute: u32) -> Option<Timestamp> {
        let local = day.and_hms_opt(0, 0, 0)? + chrono::Duration::minutes(i64::from(minute));
        let mapped = self.tz.from_local_datetime(&local);
        match mapped.earliest() {
            Some(t) => Some(t.timestamp()),
            None => self
                .tz
                .from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
                .map(|t| t.timestamp()),
        }
    }
}

fn weekday_index(d: Weekday) -> usize {
    d.num_days_from_monday() as usize
}

/// `"08:00-12:00, 13:00-16:30"` → sorted, non-overlapping minute intervals;
/// an empty string is a closed day.
fn parse_intervals(spec: &str) -> Result<Vec<(u32, u32)>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (from, to) = part
            .split_once('-')
            .ok_or_else(|| format!("{part:?} is not a range like \"08:00-16:00\""))?;
        let (from, to) = (minutes(from.trim())?, minutes(to.trim())?);
        if from >= to {
            return Err(format!("{part:?} ends before it starts"));
        }
        out.push((from, to));
    }
    out.sort_unstable();
    for pair in out.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(format!("ranges in {spec:?} overlap"));
        }
    }
    Ok(out)
}

fn minutes(hhmm: &str) -> Result<u32, String> {
    let bad = || format!("{hhmm:?} is not a time like 08:00");
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warsaw() -> BusinessHours {
        let hours: BTreeMap<String, String> = DAYS[..5]
            .iter()
            .map(|d| (d.to_string(), "08:00-16:00".to_string()))
            .collect();
        BusinessHours::new("pl", "Europe/Warsaw", &hours, &["2026-11-11".into()]).unwrap()
    }

    fn at(rfc3339: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp()
    }

    #[test]
    fn opening_hours_follow_the_local_clock_across_dst() {
        let c = warsaw();
        // Winter: UTC+1. 07:30 UTC is 08:30 in Warsaw.
        assert!(c.is_open(at("2026-11-20T07:30:00Z")));
        assert!(!c.is_open(at("2026-11-20T06:59:00Z")));
        assert!(!c.is_open(at("2026-11-20T15:00:00Z")));
        // Summer: UTC+2. 06:30 UTC is 08:30 in Warsaw; 14:00 UTC is 16:00, closed.
        assert!(c.is_open(at("2026-07-15T06:30:00Z")));
        assert!(!c.is_open(at("2026-07-15T14:00:00Z")));
    }

    #[test]
    fn weekends_and_holidays_are_closed() {
        let c = warsaw();
        assert!(!c.is_open(at("2026-11-21T10:00:00Z")), "Saturday");
        assert!(!c.is_open(at("2026-11-11T10:00:00Z")), "Independence Day");
        assert!(c.is_open(at("2026-11-12T10:00:00Z")));
    }

    #[test]
    fn business_time_skips_nights_weekends_holidays_and_follows_dst() {
        let c = warsaw();
        // Friday 2026-11-20 15:00 Warsaw (14:00 UTC) + 4 business hours:
        // 1 h on Friday, Monday 08:00 + 3 h = Monday 11:00 Warsaw = 10:00 UTC.
        assert_eq!(
            c.add(at("2026-11-20T14:00:00Z"), 4 * 3600),
            at("2026-11-23T10:00:00Z")
        );
        // Tuesday 2026-11-10 15:00 + 2 h: Wednesday 11 November is a holiday.
        assert_eq!(
            c.add(at("2026-11-10T14:00:00Z"), 2 * 3600),
            at("2026-11-12T08:00:00Z")
        );
        // Saturday night starts counting on Monday 08:00.
        assert_eq!(
            c.add(at("2026-11-21T22:00:00Z"), 60),
            at("2026-11-23T07:01:00Z")
        );
        // Across the October change (UTC+2 → UTC+1 on Sunday 2026-10-25):
        // Friday 15:00 CEST (13:00 UTC) + 2 h → Monday 09:00 CET = 08:00 UTC.
        assert_eq!(
            c.add(at("2026-10-23T13:00:00Z"), 2 * 3600),
            at("2026-10-26T08:00:00Z")
        );
        // And back: the business time between them is the 2 h.
        assert_eq!(
            c.between(at("2026-10-23T13:00:00Z"), at("2026-10-26T08:00:00Z")),
            2 * 3600
        );
        assert_eq!(
            c.between(at("2026-11-20T14:00:00Z"), at("2026-11-20T14:00:00Z")),
            0
        );
        // A whole working week is 40 business hours.
        assert_eq!(
            c.between(at("2026-11-23T00:00:00Z"), at("2026-11-30T00:00:00Z")),
            40 * 3600
        );
    }

    #[test]
    fn a_calendar_without_hours_counts_wall_time() {
        let c = BusinessHours::new("none", "UTC", &BTreeMap::new(), &[]).unwrap();
        assert!(!c.has_hours());
        assert_eq!(c.add(1000, 60), 1060);
    }

    #[test]
    fn bad_calendars_are_refused_with_the_reason() {
        let one = |day: &str, spec: &str| {
            let hours = BTreeMap::from([(day.to_string(), spec.to_string())]);
            BusinessHours::new("x", "Europe/Warsaw", &hours, &[]).unwrap_err()
        };
        assert_eq!(
            one("mon", "16:00-08:00"),
            "calendar x: hours.mon: \"16:00-08:00\" ends before it starts"
        );
        assert_eq!(
            one("mon", "08:00-12:00,11:00-13:00"),
            "calendar x: hours.mon: ranges in \"08:00-12:00,11:00-13:00\" overlap"
        );
        assert_eq!(
            one("mon", "8-16"),
            "calendar x: hours.mon: \"8\" is not a time like 08:00"
        );
        assert!(one("monday", "08:00-16:00").starts_with("calendar x: unknown day \"monday\""));
        let tz = BusinessHours::new("x", "Europe/Warsow", &BTreeMap::new(), &[]).unwrap_err();
        assert_eq!(
            tz,
            "calendar x: unknown time zone \"Europe/Warsow\" (e.g. \"Europe/Warsaw\")"
        );
        let day =
            BusinessHours::new("x", "UTC", &BTreeMap::new(), &["2026-02-30".into()]).unwrap_err();
        assert_eq!(
            day,
            "calendar x: holiday \"2026-02-30\" is not a date like 2026-12-24"
        );
    }
}
