//! Email delivery with lettre: SMTP (implicit TLS, STARTTLS, or plain only to
//! loopback; authentication; a pooled connection) or, without an SMTP server,
//! `.eml` files in `mail.outbox_dir`.

use super::smtp::SmtpPool;
use crate::config::Config;
use crate::parse::autogen::LOOP_HEADER;
use crate::store::outbox::Pending;
use anyhow::{Context, Result};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

use super::send::SendError;

pub enum Transport {
    Smtp(Box<SmtpPool>),
    File(AsyncFileTransport<Tokio1Executor>),
}

pub struct Mailer {
    transport: Transport,
    /// Bound on one whole send (connect, greeting, every command).
    send_timeout: Duration,
    from: Mailbox,
    loop_marker: String,
}

impl Mailer {
    pub fn new(config: &Config) -> Result<Mailer> {
        let transport = match &config.smtp {
            Some(smtp) => Transport::Smtp(Box::new(SmtpPool::new(smtp)?)),
            None => {
                std::fs::create_dir_all(&config.mail.outbox_dir).with_context(|| {
                    format!("cannot create {}", config.mail.outbox_dir.display())
                })?;
                Transport::File(AsyncFileTransport::new(&config.mail.outbox_dir))
            }
        };
        let seconds = config
            .smtp
            .as_ref()
            .map_or(60, |s| s.timeout_seconds.max(1));
        Ok(Mailer {
            transport,
            send_timeout: Duration::from_secs(seconds * 3),
            from: config.notify.from.parse().context("notify.from")?,
            loop_marker: config.notify.loop_marker.clone(),
        })
    }

    pub async fn send(&self, n: &Pending) -> Result<(), SendError> {
        let message = self.build(n)?;
        tokio::time::timeout(self.send_timeout, self.deliver(message))
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Temporary(format!(
                    "no answer within {} s",
                    self.send_timeout.as_secs()
                )))
            })
    }

    async fn deliver(&self, message: Message) -> Result<(), SendError> {
        match &self.transport {
            Transport::Smtp(pool) => pool.send(message.envelope(), &message.formatted()).await,
            Transport::File(t) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Temporary(e.to_string())),
        }
    }

    /// The message as it goes out: our Message-ID, the thread's In-Reply-To and
    /// References, Reply-To with the signed token, Auto-Submitted and
    /// X-Auto-Response-Suppress on automatic mail, and the loop marker.
    pub fn build(&self, n: &Pending) -> Result<Message, SendError> {
        let to: Mailbox = n.recipient.parse().map_err(|e| {
            SendError::Permanent(format!("invalid recipient {:?}: {e}", n.recipient))
        })?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(crate::parse::clean_line(&n.subject, 250))
            .message_id(n.message_id.as_ref().map(|id| format!("<{id}>")))
            .raw_header(HeaderValue::new(
                header(LOOP_HEADER),
                self.loop_marker.clone(),
            ));
        if let Some(id) = &n.in_reply_to {
            b = b.in_reply_to(format!("<{id}>"));
        }
        if !n.references.is_empty() {
            let refs: Vec<String> = n.references.iter().map(|r| format!("<{r}>")).collect();
            b = b.references(refs.join(" "));
        }
        if let Some(reply_to) = &n.reply_to
            && let Ok(mailbox) = reply_to.parse::<Mailbox>()
        {
            b = b.reply_to(mailbox);
        }
        if n.automatic {
            b = b
                .raw_header(HeaderValue::new(
                    header("Auto-Submitted"),
                    "auto-replied".into(),
                ))
                .raw_header(HeaderValue::new(
                    header("X-Auto-Response-Suppress"),
                    "All".into(),
                ));
        }
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(n.body.clone());
        let built = match &n.html {
            Some(html) => b.multipart(
                MultiPart::alternative().singlepart(text).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => b.singlepart(text),
        };
        built.map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
    }
}

fn header(name: &'static str) -> HeaderName {
    HeaderName::new_from_ascii_str(name)
}
