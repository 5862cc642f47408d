//! Notifications: templates, the transactional outbox and its senders.

pub mod templates;
