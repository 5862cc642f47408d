//! The application context: what the pipeline, the scheduler and reload
//! share. `app::context` builds it once from the config (reading the rules
//! folder, the templates and the reply-token key); nothing after it reads
//! those files except reload.

use crate::clock::Clock;
use crate::live::Live;
use crate::notify::Notifier;
use crate::settings::Settings;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct Context {
    pub store: Store,
    pub clock: Clock,
    /// The active rules; reload swaps them.
    pub rules: Arc<crate::rules::Live>,
    /// Agents, teams, SLA policies and the rules' calendar; reload swaps them.
    pub settings: Arc<Live<Settings>>,
    /// Its templates and the agents' addresses; reload swaps them.
    pub notifier: Notifier,
    /// The reply-token key (`[threading] reply_token_key_file`).
    pub token_key: Option<Vec<u8>>,
    /// Rung after a commit that may have moved an SLA timer.
    pub sla_wake: Arc<Notify>,
    /// Rung after a commit that queued notifications.
    pub outbox_wake: Arc<Notify>,
}
