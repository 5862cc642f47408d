//! Cron schedules of `schedule` rules: six fields, seconds first (`0 0 8 * *
//! Mon-Fri`), read in the rules' time zone, as tokio-cron-scheduler reads
//! them (both use croner). Pure: which slot is due is decided from the clock
//! and the last slot the store says ran.

use crate::clock::Timestamp;
use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

#[derive(Debug, Clone)]
pub struct Schedule {
    pub pattern: String,
    cron: Cron,
}

impl Schedule {
    pub fn parse(pattern: &str) -> Result<Schedule, String> {
        let fields = pattern.split_whitespace().count();
        if fields != 6 {
            return Err(format!(
                "schedule {pattern:?} has {fields} fields; write six, seconds first \
                 (\"SEC MIN HOUR DAY MONTH WEEKDAY\", e.g. \"0 0 8 * * Mon-Fri\")"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| format!("schedule {pattern:?}: {e}"))?;
        let schedule = Schedule {
            pattern: pattern.to_string(),
            cron,
        };
        // A pattern that never matches (31 February) is an error, not silence.
        match schedule.next_after(0, Tz::UTC) {
            Some(_) => Ok(schedule),
            None => Err(format!("schedule {pattern:?} never fires")),
        }
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: Timestamp, tz: Tz) -> Option<Timestamp> {
        let at = at(t, tz)?;
        self.cron
            .find_next_occurrence(&at, false)
            .ok()
            .map(|d| d.timestamp())
    }

    /// The latest slot at or before `t`.
    pub fn latest_until(&self, t: Timestamp, tz: Tz) -> Option<Timestamp> {
        let at = at(t, tz)?;
        self.cron
            .find_previous_occurrence(&at, true)
            .ok()
            .map(|d| d.timestamp())
    }

    /// The slot to run now, if one is due: the latest slot at or before `now`
    /// that is later than `after` (the last slot run, or when the rule was
    /// first seen). Missed slots collapse into the latest one: a daemon that
    /// was down over three digests sends one.
    pub fn due(&self, after: Timestamp, now: Timestamp, tz: Tz) -> Option<Timestamp> {
        self.latest_until(now, tz).filter(|slot| *slot > after)
    }
}

fn at(t: Timestamp, tz: Tz) -> Option<DateTime<Tz>> {
    tz.timestamp_opt(t, 0).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str, tz: Tz) -> Timestamp {
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
        tz.from_local_datetime(&naive).single().unwrap().timestamp()
    }

    const WAW: Tz = chrono_tz::Europe::Warsaw;

    #[test]
    fn weekday_mornings_in_the_rules_time_zone() {
        let s = Schedule::parse("0 0 8 * * Mon-Fri").unwrap();
        // Friday 2026-11-20 09:00 Warsaw → Monday 2026-11-23 08:00 Warsaw.
        let next = s.next_after(ts("2026-11-20 09:00:00", WAW), WAW).unwrap();
        assert_eq!(next, ts("2026-11-23 08:00:00", WAW));
        // The same pattern in UTC is an hour later in absolute time.
        let utc = s
            .next_after(ts("2026-11-20 09:00:00", WAW), Tz::UTC)
            .unwrap();
        assert_eq!(utc - next, 3600);
    }

    #[test]
    fn keeps_local_time_across_dst() {
        let s = Schedule::parse("0 30 7 * * *").unwrap();
        let before = s.next_after(ts("2026-03-27 12:00:00", WAW), WAW).unwrap();
        let after = s.next_after(before, WAW).unwrap();
        // 29 March 2026: clocks go forward, the day has 23 hours.
        assert_eq!(after - before, 23 * 3600);
        assert_eq!(after, ts("2026-03-29 07:30:00", WAW));
    }

    #[test]
    fn due_runs_the_latest_missed_slot_once() {
        let s = Schedule::parse("0 0 * * * *").unwrap();
        let t0 = ts("2026-11-23 10:00:00", Tz::UTC);
        // Never run, first seen at 10:20: nothing due until 11:00.
        assert_eq!(s.due(t0 + 1200, t0 + 1800, Tz::UTC), None);
        assert_eq!(s.due(t0 + 1200, t0 + 3600, Tz::UTC), Some(t0 + 3600));
        // Ran 11:00, down until 14:30: one run, for 14:00.
        assert_eq!(
            s.due(t0 + 3600, t0 + 4 * 3600 + 1800, Tz::UTC),
            Some(t0 + 4 * 3600)
        );
        // Ran 14:00 already: nothing.
        assert_eq!(s.due(t0 + 4 * 3600, t0 + 4 * 3600 + 1800, Tz::UTC), None);
    }

    #[test]
    fn bad_patterns_are_explained() {
        let five = Schedule::parse("0 8 * * *").unwrap_err();
        assert!(
            five.contains("has 5 fields; write six, seconds first"),
            "{five}"
        );
        let bad = Schedule::parse("0 0 25 * * *").unwrap_err();
        assert!(bad.starts_with("schedule \"0 0 25 * * *\": "), "{bad}");
        let never = Schedule::parse("0 0 0 31 2 *").unwrap_err();
        assert!(never.contains("never fires"), "{never}");
    }
}
