//! ticketd: turns support email and chat into tickets.
//!
//! The pipeline, in module order: `source` → `parse` → `thread` → `rules`
//! (`apply`) → `store`. `ingest` wires one message through all of them;
//! `notify` delivers from the outbox, `scheduler` fires SLA and life-cycle
//! timers. See ARCHITECTURE.md.

pub mod app;
pub mod apply;
pub mod calendar;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod context;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod parse;
pub mod redact;
pub mod reload;
pub mod replay;
pub mod report;
pub mod retention;
pub mod rules;
pub mod scheduler;
pub mod service;
pub mod settings;
pub mod sla;
pub mod source;
pub mod store;
pub mod thread;
pub mod ticket;
pub mod view;
pub mod watch;
