//! Pacing for the chat platforms: when the next message to a route (a
//! Telegram chat, a Discord channel) may go. A route that must wait makes its
//! notification come back later (`SendError::NotYet`); the sender never
//! sleeps on one route while others have work. A 429's `retry_after` is kept
//! here to the millisecond, so no retry goes early, however often the
//! dispatcher wakes. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Waits shorter than this are slept out inside the send (the platform-wide
/// spacing); longer ones give the slot to other routes.
pub const SLEEP_AT_MOST: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct Pace {
    /// Between two messages to the same route.
    per_route: Duration,
    /// Between two messages to any route.
    overall: Duration,
    last: Option<Instant>,
    /// The earliest time of the next message, per route.
    next: HashMap<String, Instant>,
    /// A platform-wide block (a global 429).
    blocked: Option<Instant>,
}

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Send at this time (now, or within [`SLEEP_AT_MOST`]).
    At(Instant),
    /// Not before this long from now: try again later.
    Later(Duration),
}

impl Pace {
    pub fn new(per_route: Duration, overall: Duration) -> Pace {
        Pace {
            per_route,
            overall,
            last: None,
            next: HashMap::new(),
            blocked: None,
        }
    }

    /// Takes the next slot for `route` at or after `now`, when it is near;
    /// else says how long the route must wait (taking nothing).
    pub fn reserve(&mut self, route: &str, now: Instant) -> Slot {
        let route_ready = self.next.get(route).copied().unwrap_or(now);
        let blocked = self.blocked.unwrap_or(now);
        let ready = route_ready.max(blocked);
        if ready > now + SLEEP_AT_MOST {
            return Slot::Later(ready - now);
        }
        let mut slot = ready.max(now);
        if let Some(last) = self.last {
            slot = slot.max(last + self.overall);
        }
        self.last = Some(slot);
        self.next.insert(route.to_string(), slot + self.per_route);
        // Forget routes that have been quiet for a while.
        self.next.retain(|_, at| *at > now);
        Slot::At(slot)
    }

    /// The platform said to wait `wait` (a 429) for `route`, or for every
    /// route when `global`.
    pub fn hold(&mut self, route: &str, wait: Duration, global: bool, now: Instant) {
        let until = now + wait;
        match global {
            true => self.blocked = Some(self.blocked.map_or(until, |b| b.max(until))),
            false => {
                let at = self.next.entry(route.to_string()).or_insert(until);
                *at = (*at).max(until);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn one_route_waiting_never_holds_up_another() {
        let mut pace = Pace::new(SECOND, Duration::from_millis(34));
        let t = Instant::now();
        assert_eq!(pace.reserve("agents", t), Slot::At(t));
        // The agents' chat must wait a second; a customer's chat need not.
        assert!(
            matches!(pace.reserve("agents", t), Slot::Later(w) if w > Duration::from_millis(900))
        );
        assert_eq!(
            pace.reserve("customer-1", t),
            Slot::At(t + Duration::from_millis(34))
        );
        assert_eq!(pace.reserve("agents", t + SECOND), Slot::At(t + SECOND));
    }

    #[test]
    fn a_429_holds_the_route_to_the_millisecond() {
        let mut pace = Pace::new(SECOND, Duration::ZERO);
        let t = Instant::now();
        pace.hold("7", Duration::from_millis(1900), false, t);
        let early = t + Duration::from_millis(1600);
        assert_eq!(
            pace.reserve("7", early),
            Slot::Later(Duration::from_millis(300))
        );
        assert_eq!(pace.reserve("8", early), Slot::At(early));
        let after = t + Duration::from_millis(1900);
        assert_eq!(pace.reserve("7", after), Slot::At(after));
        pace.hold("7", Duration::from_secs(2), true, after);
        assert!(matches!(pace.reserve("9", after), Slot::Later(_)));
    }
}
