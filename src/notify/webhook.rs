//! Webhooks: JSON POSTs queued in the outbox by the `webhook` rule action and
//! delivered by the dispatcher, signed with HMAC-SHA256 of the body
//! (`X-Ticketd-Signature: sha256=HEX`). `X-Ticketd-Delivery` carries the
//! outbox id, the same on every retry, so a receiver can drop duplicates.

use super::send::SendError;
use crate::config::Config;
use crate::store::outbox::Pending;
use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "X-Ticketd-Signature";

struct Hook {
    url: String,
    secret: Vec<u8>,
    timeout: Duration,
}

pub struct Webhooks {
    client: reqwest::Client,
    hooks: HashMap<String, Hook>,
}

impl Webhooks {
    pub fn new(config: &Config) -> Result<Webhooks> {
        let mut hooks = HashMap::new();
        for w in &config.webhook {
            hooks.insert(
                w.name.clone(),
                Hook {
                    url: w.url.clone(),
                    secret: w.secret()?,
                    timeout: Duration::from_secs(w.timeout_seconds.max(1)),
                },
            );
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ticketd/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the webhook HTTP client")?;
        Ok(Webhooks { client, hooks })
    }

    /// POSTs one queued webhook. 2xx is done; network trouble, 408, 429 and
    /// 5xx are retried; other answers (4xx, redirects) fail for good.
    pub async fn send(&self, n: &Pending) -> Result<(), SendError> {
        let Some(hook) = self.hooks.get(&n.recipient) else {
            return Err(SendError::Permanent(format!(
                "webhook {:?} is no longer configured",
                n.recipient
            )));
        };
        let response = self
            .client
            .post(&hook.url)
            .timeout(hook.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Ticketd-Event", &n.event)
            .header("X-Ticketd-Delivery", n.id.to_string())
            .header(
                SIGNATURE_HEADER,
                format!("sha256={}", sign(&hook.secret, n.body.as_bytes())),
            )
            .body(n.body.clone())
            .send()
            .await
            .map_err(|e| SendError::Temporary(format!("webhook {}: {e}", n.recipient)))?;
        let status = response.status();
        let text = format!("webhook {}: HTTP {status}", n.recipient);
        match status.as_u16() {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(SendError::Temporary(text)),
            _ => Err(SendError::Permanent(text)),
        }
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_match_the_rfc_4231_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
