//! A value swapped as a whole on reload: readers take the current `Arc` and
//! keep it for as long as they work with it, so a reload never changes
//! anything under a running transaction.

use crate::calendar::BusinessHours;
use crate::config::{Agent, Config};
use crate::sla::Policies;
use std::sync::{Arc, RwLock};

/// The parts of the config a SIGHUP swaps in a running daemon (besides the
/// rules and templates): who the agents and teams are, the SLA policies and
/// the rules' business-hours calendar. Shared by the pipeline and the
/// scheduler.
#[derive(Debug)]
pub struct Settings {
    pub agents: Vec<Agent>,
    pub teams: Vec<String>,
    pub policies: Policies,
    /// The calendar of the rules' `business_hours` condition.
    pub calendar: Option<BusinessHours>,
}

impl Settings {
    pub fn of(config: &Config) -> Settings {
        Settings {
            agents: config.agent.clone(),
            teams: config.team.iter().map(|t| t.name.clone()).collect(),
            policies: Policies::of(config),
            calendar: config.rules_calendar(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: T) -> Live<T> {
        Live(RwLock::new(Arc::new(value)))
    }

    pub fn current(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_its_value_across_a_replace() {
        let live = Live::new(1);
        let held = live.current();
        live.replace(2);
        assert_eq!((*held, *live.current()), (1, 2));
    }
}
