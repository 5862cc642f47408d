//! The reloadable settings besides rules and templates.

use crate::calendar::BusinessHours;
use crate::config::{Agent, Config};
use crate::sla::Policies;

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
