//! SLA clocks and ticket timers. Pure: which targets apply to a ticket (per
//! priority, overridden per team, then per organization) and when each
//! threshold is due, counting business time in the SLA calendar (or wall time
//! without one) and leaving out the time the ticket spent pending; and the
//! wall-time timers of the ticket's life: idle, pending reminder, pending
//! resolve, auto-close.

use crate::calendar::BusinessHours;
use crate::clock::Timestamp;
use crate::clock::parse_duration;
use crate::config::Config;
use crate::ticket::{Priority, Status};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    FirstResponseWarning,
    FirstResponseBreach,
    ResolutionWarning,
    ResolutionBreach,
    /// New or open without a change for `idle_after`: `ticket.idle`.
    Idle,
    /// Pending for `pending_reminder_days`: the requester is reminded.
    PendingReminder,
    /// Still pending `pending_resolve_days` after the reminder: resolved.
    PendingResolve,
    /// Resolved for `auto_close_days`: closed, with a notice.
    AutoClose,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::FirstResponseWarning,
        Kind::FirstResponseBreach,
        Kind::ResolutionWarning,
        Kind::ResolutionBreach,
        Kind::Idle,
        Kind::PendingReminder,
        Kind::PendingResolve,
        Kind::AutoClose,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FirstResponseWarning => "first_response.warning",
            Kind::FirstResponseBreach => "first_response.breach",
            Kind::ResolutionWarning => "resolution.warning",
            Kind::ResolutionBreach => "resolution.breach",
            Kind::Idle => "idle",
            Kind::PendingReminder => "pending.reminder",
            Kind::PendingResolve => "pending.resolve",
            Kind::AutoClose => "auto_close",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// A first-response or resolution threshold (the rest are life-cycle timers).
    pub fn is_sla(self) -> bool {
        matches!(
            self,
            Kind::FirstResponseWarning
                | Kind::FirstResponseBreach
                | Kind::ResolutionWarning
                | Kind::ResolutionBreach
        )
    }

    pub fn is_breach(self) -> bool {
        matches!(self, Kind::FirstResponseBreach | Kind::ResolutionBreach)
    }

    /// The target it belongs to: `first_response` or `resolution`.
    pub fn target(self) -> &'static str {
        match self {
            Kind::FirstResponseWarning | Kind::FirstResponseBreach => "first_response",
            _ => "resolution",
        }
    }
}

/// What the clocks need to know about one ticket.
#[derive(Debug, Clone)]
pub struct Clocked<'a> {
    pub created_at: Timestamp,
    /// The last change (a status change sets it too).
    pub updated_at: Timestamp,
    pub priority: Priority,
    pub status: Status,
    pub team: Option<&'a str>,
    pub organization: Option<&'a str>,
    pub first_response_at: Option<Timestamp>,
    /// Finished pending intervals (from, to), and the open one's start.
    pub pauses: &'a [(Timestamp, Timestamp)],
    pub paused_since: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub kind: Kind,
    pub due: Timestamp,
}

/// A ticket's due times as its row keeps them, from its breach timers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Due {
    pub first_response: Option<Timestamp>,
    pub resolution: Option<Timestamp>,
}

impl Due {
    pub fn of(timers: &[Timer]) -> Due {
        let due = |kind: Kind| timers.iter().find(|t| t.kind == kind).map(|t| t.due);
        Due {
            first_response: due(Kind::FirstResponseBreach),
            resolution: due(Kind::ResolutionBreach),
        }
    }
}

/// A timer row as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub kind: Kind,
    pub due: Timestamp,
    pub fired_at: Option<Timestamp>,
}

/// What a reschedule must write, given the timers wanted now and the rows
/// stored: `None` when the rows already say it (the common case just before
/// a timer fires), else the fired life-cycle kinds to arm again. Life-cycle
/// timers fire once per period: activity after `idle`, a new pending period,
/// a new resolution arm them again.
pub fn plan(
    wanted: &[Timer],
    stored: &[Stored],
    updated_at: Timestamp,
    paused_since: Option<Timestamp>,
    resolved_at: Option<Timestamp>,
) -> Option<Vec<Kind>> {
    let rearm: Vec<Kind> = stored
        .iter()
        .filter_map(|s| {
            let fired = s.fired_at?;
            let earlier = |period: Option<Timestamp>| period.is_some_and(|p| fired < p);
            let again = match s.kind {
                Kind::Idle => fired < updated_at,
                Kind::PendingReminder | Kind::PendingResolve => earlier(paused_since),
                Kind::AutoClose => earlier(resolved_at),
                _ => false,
            };
            again.then_some(s.kind)
        })
        .collect();
    let fired = |kind: Kind| {
        stored
            .iter()
            .any(|s| s.kind == kind && s.fired_at.is_some() && !rearm.contains(&kind))
    };
    let mut want: Vec<(Kind, Timestamp)> = wanted
        .iter()
        .filter(|t| !fired(t.kind))
        .map(|t| (t.kind, t.due))
        .collect();
    let mut have: Vec<(Kind, Timestamp)> = stored
        .iter()
        .filter(|s| s.fired_at.is_none())
        .map(|s| (s.kind, s.due))
        .collect();
    want.sort();
    have.sort();
    (want != have || !rearm.is_empty()).then_some(rearm)
}

type PerPriority = BTreeMap<Priority, i64>;

/// Days as seconds; 0 turns the timer off.
fn days(n: u32) -> Option<i64> {
    (n > 0).then(|| i64::from(n) * 86_400)
}

#[derive(Debug, Clone)]
pub struct Policies {
    first_response: PerPriority,
    resolution: PerPriority,
    /// (team, organization) → overridden targets.
    overrides: Vec<(Option<String>, Option<String>, PerPriority, PerPriority)>,
    calendar: Option<BusinessHours>,
    warning_percent: i64,
    idle_after: Option<i64>,
    pending_reminder: Option<i64>,
    pending_resolve: Option<i64>,
    auto_close: Option<i64>,
}

impl Policies {
    /// Whether a ticket's timers move with any activity on it (`idle_after`
    /// is set): then every change reschedules, or a fired idle timer would
    /// stay fired until something else recomputed the clocks.
    pub fn follows_activity(&self) -> bool {
        self.idle_after.is_some()
    }

    /// From a validated config.
    pub fn of(config: &Config) -> Policies {
        let sla = &config.sla;
        let per = |t: &crate::config::Targets| -> PerPriority {
            Priority::ALL
                .iter()
                .map(|p| (*p, t.seconds(*p).unwrap_or(3600)))
                .collect()
        };
        let map = |m: &BTreeMap<String, String>| -> PerPriority {
            m.iter()
                .filter_map(|(p, d)| Some((p.parse().ok()?, parse_duration(d)?)))
                .collect()
        };
        Policies {
            first_response: per(&sla.first_response),
            resolution: per(&sla.resolution),
            overrides: sla
                .overrides
                .iter()
                .map(|o| {
                    (
                        o.team.clone(),
                        o.organization.clone(),
                        map(&o.first_response),
                        map(&o.resolution),
                    )
                })
                .collect(),
            calendar: sla.calendar.as_ref().and_then(|name| {
                config
                    .calendar
                    .iter()
                    .find(|c| &c.name == name)
                    .and_then(|c| c.compile().ok())
            }),
            warning_percent: i64::from(sla.warning_percent),
            idle_after: sla.idle_after.as_deref().and_then(parse_duration),
            pending_reminder: days(sla.pending_reminder_days),
            pending_resolve: days(sla.pending_resolve_days),
            auto_close: days(sla.auto_close_days),
        }
    }

    /// Whether any target depends on the organization.
    pub fn by_organization(&self) -> bool {
        self.overrides.iter().any(|o| o.1.is_some())
    }

    /// (first response, resolution) targets in seconds: a team override wins
    /// over an organization override, which wins over the default.
    pub fn targets(&self, t: &Clocked<'_>) -> (i64, i64) {
        let pick = |default: &PerPriority, which: usize| -> i64 {
            let from = |team: bool| {
                self.overrides.iter().find_map(|(ot, oo, fr, res)| {
                    let hit = if team {
                        ot.is_some() && ot.as_deref() == t.team
                    } else {
                        oo.is_some() && oo.as_deref() == t.organization
                    };
                    let m = if which == 0 { fr } else { res };
                    hit.then(|| m.get(&t.priority).copied()).flatten()
                })
            };
            from(true)
                .or_else(|| from(false))
                .or_else(|| default.get(&t.priority).copied())
                .unwrap_or(3600)
        };
        (pick(&self.first_response, 0), pick(&self.resolution, 1))
    }

    /// The timers still ahead of the ticket: SLA thresholds and idle while
    /// new or open (none for the first response once it happened), the
    /// pending reminder and resolve while pending, auto-close once resolved.
    pub fn timers(&self, t: &Clocked<'_>) -> Vec<Timer> {
        let at = |kind, after: Option<i64>, from: Timestamp| {
            after.map(|a| Timer {
                kind,
                due: from + a,
            })
        };
        match t.status {
            Status::Closed => return Vec::new(),
            Status::Resolved => {
                return at(Kind::AutoClose, self.auto_close, t.updated_at)
                    .into_iter()
                    .collect();
            }
            Status::Pending => {
                let since = t.paused_since.unwrap_or(t.updated_at);
                let reminder = at(Kind::PendingReminder, self.pending_reminder, since);
                let resolve = self
                    .pending_resolve
                    .map(|r| r + self.pending_reminder.unwrap_or(0));
                return reminder
                    .into_iter()
                    .chain(at(Kind::PendingResolve, resolve, since))
                    .collect();
            }
            Status::New | Status::Open => {}
        }
        let paused: i64 = t.pauses.iter().map(|(a, b)| self.elapsed(*a, *b)).sum();
        let (first, resolution) = self.targets(t);
        let mut timers = Vec::new();
        let mut add = |warning: Kind, breach: Kind, target: i64| {
            let warn_after = target * self.warning_percent / 100;
            timers.push(Timer {
                kind: warning,
                due: self.due(t.created_at, warn_after + paused),
            });
            timers.push(Timer {
                kind: breach,
                due: self.due(t.created_at, target + paused),
            });
        };
        if t.first_response_at.is_none() {
            add(Kind::FirstResponseWarning, Kind::FirstResponseBreach, first);
        }
        add(Kind::ResolutionWarning, Kind::ResolutionBreach, resolution);
        timers.extend(at(Kind::Idle, self.idle_after, t.updated_at));
        timers
    }

    /// The due instant of a target (business or wall time).
    pub fn due(&self, from: Timestamp, seconds: i64) -> Timestamp {
        match &self.calendar {
            Some(c) => c.add(from, seconds),
            None => from + seconds,
        }
    }

    /// Seconds that count between two instants (business or wall time).
    pub fn elapsed(&self, from: Timestamp, to: Timestamp) -> i64 {
        match &self.calendar {
            Some(c) => c.between(from, to),
            None => (to - from).max(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_writes_only_what_changed_and_arms_a_new_period() {
        let t = |kind, due| Timer { kind, due };
        let s = |kind, due, fired_at| Stored {
            kind,
            due,
            fired_at,
        };
        let wanted = [t(Kind::ResolutionBreach, 500), t(Kind::Idle, 300)];
        // Stored as wanted: nothing to write.
        let same = [
            s(Kind::ResolutionBreach, 500, None),
            s(Kind::Idle, 300, None),
        ];
        assert_eq!(plan(&wanted, &same, 100, None, None), None);
        // A due time moved: rewrite.
        let moved = [
            s(Kind::ResolutionBreach, 600, None),
            s(Kind::Idle, 300, None),
        ];
        assert_eq!(plan(&wanted, &moved, 100, None, None), Some(vec![]));
        // Idle fired at 250, nothing happened since: stays fired, nothing to write.
        let idle_fired = [
            s(Kind::ResolutionBreach, 500, None),
            s(Kind::Idle, 250, Some(250)),
        ];
        assert_eq!(plan(&wanted, &idle_fired, 250, None, None), None);
        // Activity after it fired: idle is armed again.
        assert_eq!(
            plan(&wanted, &idle_fired, 260, None, None),
            Some(vec![Kind::Idle])
        );
        // A fired breach is never armed again.
        let breached = [
            s(Kind::ResolutionBreach, 500, Some(500)),
            s(Kind::Idle, 300, None),
        ];
        assert_eq!(plan(&wanted, &breached, 900, Some(900), Some(900)), None);
        // The reminder of an earlier pending period.
        let reminded = [s(Kind::PendingReminder, 50, Some(50))];
        let wanted = [t(Kind::PendingReminder, 400)];
        assert_eq!(plan(&wanted, &reminded, 60, Some(40), None), None);
        assert_eq!(
            plan(&wanted, &reminded, 60, Some(100), None),
            Some(vec![Kind::PendingReminder])
        );
    }

    fn policies(extra: &str) -> Policies {
        let config = Config::parse(&format!(
            "[[team]]\nname = \"billing\"\n[[organization]]\nname = \"Firma\"\ndomains = [\"firma.pl\"]\n{extra}"
        ))
        .unwrap();
        Policies::of(&config)
    }

    fn ticket(priority: Priority) -> Clocked<'static> {
        Clocked {
            created_at: 1_000_000,
            updated_at: 1_000_000,
            priority,
            status: Status::New,
            team: None,
            organization: None,
            first_response_at: None,
            pauses: &[],
            paused_since: None,
        }
    }

    #[test]
    fn default_targets_follow_the_product_facts() {
        let p = policies("");
        let r = |pr| p.targets(&ticket(pr)).1 / 3600;
        assert_eq!(
            [
                r(Priority::Critical),
                r(Priority::High),
                r(Priority::Medium),
                r(Priority::Low)
            ],
            [4, 24, 72, 168]
        );
        let timers = p.timers(&ticket(Priority::Critical));
        let due: Vec<(&str, i64)> = timers
            .iter()
            .filter(|t| t.kind.is_sla())
            .map(|t| (t.kind.as_str(), t.due - 1_000_000))
            .collect();
        assert_eq!(
            due,
            [
                ("first_response.warning", 2880),
                ("first_response.breach", 3600),
                ("resolution.warning", 11_520),
                ("resolution.breach", 14_400),
            ]
        );
    }

    #[test]
    fn team_overrides_win_over_organization_overrides() {
        let p = policies(
            "[[sla.override]]\norganization = \"Firma\"\nresolution = { high = \"8h\" }\n\
             [[sla.override]]\nteam = \"billing\"\nresolution = { high = \"2h\" }\n",
        );
        let mut t = ticket(Priority::High);
        t.organization = Some("Firma");
        assert_eq!(p.targets(&t).1, 8 * 3600);
        t.team = Some("billing");
        assert_eq!(p.targets(&t).1, 2 * 3600);
        t.priority = Priority::Low;
        assert_eq!(
            p.targets(&t).1,
            168 * 3600,
            "other priorities keep the default"
        );
    }

    #[test]
    fn pending_time_is_left_out_and_a_first_response_stops_its_clock() {
        let p = policies("");
        let mut t = ticket(Priority::Critical);
        let pauses = [(1_000_100, 1_001_100)];
        t.pauses = &pauses;
        t.first_response_at = Some(1_000_050);
        let timers = p.timers(&t);
        assert_eq!(timers.len(), 2);
        assert_eq!(
            timers[1],
            Timer {
                kind: Kind::ResolutionBreach,
                due: 1_000_000 + 14_400 + 1000
            }
        );
        t.status = Status::Pending;
        assert!(p.timers(&t).is_empty(), "no reminders unless configured");
    }

    #[test]
    fn life_cycle_timers_follow_the_status() {
        let p = policies(
            "[sla]\nidle_after = \"2d\"\npending_reminder_days = 3\npending_resolve_days = 4\nauto_close_days = 30\n",
        );
        let mut t = ticket(Priority::Low);
        t.updated_at = 1_100_000;
        let kinds = |t: &Clocked<'_>| -> Vec<(&'static str, i64)> {
            p.timers(t)
                .iter()
                .map(|x| (x.kind.as_str(), x.due))
                .collect()
        };
        assert_eq!(kinds(&t).last(), Some(&("idle", 1_100_000 + 2 * 86_400)));
        t.status = Status::Pending;
        t.paused_since = Some(1_200_000);
        assert_eq!(
            kinds(&t),
            [
                ("pending.reminder", 1_200_000 + 3 * 86_400),
                ("pending.resolve", 1_200_000 + 7 * 86_400)
            ]
        );
        t.status = Status::Resolved;
        assert_eq!(kinds(&t), [("auto_close", 1_100_000 + 30 * 86_400)]);
        t.status = Status::Closed;
        assert!(kinds(&t).is_empty());
    }

    #[test]
    fn bad_policies_are_config_errors() {
        let bad = |text: &str| Config::parse(text).unwrap_err().to_string();
        assert!(
            bad(
                "[sla.resolution]\ncritical = \"0h\"\nhigh = \"1h\"\nmedium = \"1h\"\nlow = \"1h\""
            )
            .contains("sla.resolution.critical: \"0h\" is not a positive duration")
        );
        assert!(bad("[sla]\nwarning_percent = 100").contains("between 1 and 99"));
        assert!(bad("[sla]\ncalendar = \"x\"").contains("unknown calendar"));
        assert!(bad("[[sla.override]]\nteam = \"nope\"").contains("unknown team"));
    }
}
