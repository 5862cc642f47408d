//! A pool of SMTP connections driven by lettre's connection type over our own
//! sockets: `TCP_NODELAY` (lettre's own transport waits for a delayed ACK on
//! every message, which capped delivery at about 430 msg/s) and a NOOP probe
//! only for connections that sat idle, not before every message.

use super::send::SendError;
use crate::config::{Smtp, TlsMode};
use crate::net::{NetStream, Tls, connect_tcp, timed};
use anyhow::{Context, Result, bail};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

/// Idle connections older than this are probed with NOOP before reuse.
const PROBE_AFTER: Duration = Duration::from_secs(5);

pub struct SmtpPool {
    host: String,
    port: u16,
    implicit_tls: Option<Tls>,
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    /// The user and password sent, to mask them in the server's replies.
    sent: Option<(String, String)>,
    hello: ClientId,
    limit: Duration,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    permits: Semaphore,
}

impl SmtpPool {
    pub fn new(smtp: &Smtp) -> Result<SmtpPool> {
        let (implicit_tls, starttls) = match smtp.tls {
            TlsMode::Implicit => (
                Some(Tls::new(&smtp.host, smtp.ca_file.as_deref(), "smtp")?),
                None,
            ),
            TlsMode::Starttls => (None, Some(starttls_parameters(smtp)?)),
            TlsMode::None => (None, None),
        };
        let sent = match (&smtp.username, smtp.password()?) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            _ => None,
        };
        let credentials = sent
            .clone()
            .map(|(user, password)| Credentials::new(user, password));
        let size = smtp.pool_size.max(1) as usize;
        Ok(SmtpPool {
            host: smtp.host.clone(),
            port: smtp.port(),
            implicit_tls,
            starttls,
            credentials,
            sent,
            hello: ClientId::default(),
            limit: Duration::from_secs(smtp.timeout_seconds.max(1)),
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
        })
    }

    /// Sends one message on a pooled connection (at most `pool_size` at once).
    /// A 5xx reply is permanent; network trouble, a 4xx reply or a failed
    /// login is temporary.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| SendError::Temporary(format!("the SMTP pool is closed: {e}")))?;
        let mut conn = match self.reuse().await {
            Some(conn) => conn,
            None => self
                .connect()
                .await
                .map_err(|e| SendError::Temporary(self.masked(&format!("{e:#}"))))?,
        };
        match timed(self.limit * 2, "SMTP transaction", conn.send(envelope, raw)).await {
            Ok(_) => {
                self.idle.lock().await.push((conn, Instant::now()));
                Ok(())
            }
            Err(e) => {
                // lettre aborts the connection on a failed command; it is not reused.
                let permanent = e
                    .downcast_ref::<lettre::transport::smtp::Error>()
                    .is_some_and(|e| e.is_permanent());
                let text = self.masked(&format!("{e:#}"));
                Err(if permanent {
                    SendError::Permanent(text)
                } else {
                    SendError::Temporary(text)
                })
            }
        }
    }

    /// A server's reply with the credentials we sent masked: a server may echo them.
    fn masked(&self, text: &str) -> String {
        match &self.sent {
            Some((user, password)) => crate::redact::credentials(text, user, password),
            None => text.to_string(),
        }
    }

    /// An idle connection that still answers, if there is one.
    async fn reuse(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut conn, since) = self.idle.lock().await.pop()?;
            if since.elapsed() < PROBE_AFTER
                || tokio::time::timeout(self.limit, conn.test_connected())
                    .await
                    .unwrap_or(false)
            {
                return Some(conn);
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection> {
        let limit = self.limit;
        let tcp = connect_tcp(&self.host, self.port, limit).await?;
        let stream = match &self.implicit_tls {
            Some(tls) => tls.wrap(tcp, limit).await?,
            None => NetStream::Plain(tcp),
        };
        let mut conn = timed(
            limit,
            "SMTP greeting",
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
        )
        .await?;
        if let Some(parameters) = &self.starttls {
            if !conn.can_starttls() {
                bail!("smtp: {} does not offer STARTTLS", self.host);
            }
            timed(
                limit,
                "STARTTLS",
                conn.starttls(parameters.clone(), &self.hello),
            )
            .await?;
        }
        if let Some(credentials) = &self.credentials {
            timed(
                limit,
                "SMTP AUTH",
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials),
            )
            .await?;
        }
        Ok(conn)
    }
}

fn starttls_parameters(smtp: &Smtp) -> Result<TlsParameters> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(file) = &smtp.ca_file {
        let pem = std::fs::read(file)
            .with_context(|| format!("smtp: cannot read ca_file {}", file.display()))?;
        builder =
            builder.add_root_certificate(Certificate::from_pem(&pem).context("smtp: ca_file")?);
    }
    builder.build_rustls().context("smtp: TLS set-up")
}
