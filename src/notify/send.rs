//! What a send attempt says, for every sender (SMTP, Telegram, Discord,
//! webhooks) and the dispatcher that plans the next step from it.

use std::time::Duration;

/// Whether a failed send may succeed later.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Network trouble or a 4xx reply: retry with backoff.
    #[error("temporary: {0}")]
    Temporary(String),
    /// A 5xx reply or a message that cannot be built: give up.
    #[error("permanent: {0}")]
    Permanent(String),
    /// The receiver asked us to wait this long (a 429's `retry_after`).
    #[error("rate limited: retry after {} s", .0.as_secs_f64())]
    RetryAfter(Duration),
    /// Not sent, not tried: the route's pace (or a 429 still running) lets
    /// the next message go only after this long. Not an attempt.
    #[error("paced: due in {} s", .0.as_secs_f64())]
    NotYet(Duration),
}
