//! Connecting to an IMAP server: TCP, then implicit TLS, STARTTLS or (loopback
//! only) plain text, then LOGIN. Every step has a timeout.

use crate::config::{Mailbox, TlsMode};
use crate::net::{NetStream, Tls, connect_tcp, timed};
use anyhow::{Context, Result, anyhow};
use async_imap::{Client, Session};
use std::time::Duration;

pub type ImapSession = Session<NetStream>;

/// Why a connection attempt failed: bad credentials back off harder.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("login refused: {0}")]
    Auth(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Connects and logs in.
pub async fn login(mb: &Mailbox) -> std::result::Result<ImapSession, ConnectError> {
    let limit = Duration::from_secs(mb.timeout_seconds.max(1));
    let tcp = connect_tcp(&mb.host, mb.port(), limit).await?;
    let tls = || {
        Tls::new(
            &mb.host,
            mb.ca_file.as_deref(),
            &format!("mailbox {}", mb.name),
        )
    };
    let stream = match mb.tls {
        TlsMode::Implicit => tls()?.wrap(tcp, limit).await?,
        TlsMode::Starttls => {
            let mut client = Client::new(NetStream::Plain(tcp));
            read_greeting(&mut client, limit).await?;
            timed(
                limit,
                "STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            let NetStream::Plain(tcp) = client.into_inner() else {
                unreachable!("the stream was plain before STARTTLS")
            };
            let stream = tls()?.wrap(tcp, limit).await?;
            // No greeting follows STARTTLS.
            return authenticate(Client::new(stream), mb, limit).await;
        }
        TlsMode::None => NetStream::Plain(tcp),
    };
    let mut client = Client::new(stream);
    read_greeting(&mut client, limit).await?;
    authenticate(client, mb, limit).await
}

async fn read_greeting(client: &mut Client<NetStream>, limit: Duration) -> Result<()> {
    let greeting = timed(limit, "server greeting", client.read_response()).await?;
    greeting.context("the server closed the connection before its greeting")?;
    Ok(())
}

async fn authenticate(
    client: Client<NetStream>,
    mb: &Mailbox,
    limit: Duration,
) -> std::result::Result<ImapSession, ConnectError> {
    let password = mb.password()?;
    // A server may echo what it was sent: its answers are logged masked.
    let masked = |text: &str| crate::redact::credentials(text, &mb.username, &password);
    match tokio::time::timeout(limit, client.login(&mb.username, &password)).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((async_imap::error::Error::No(text), _))) => Err(ConnectError::Auth(masked(&text))),
        Ok(Err((e, _))) => Err(ConnectError::Other(
            anyhow!(masked(&e.to_string())).context("LOGIN"),
        )),
        Err(_) => Err(ConnectError::Other(anyhow!(
            "LOGIN: no answer within {} s",
            limit.as_secs()
        ))),
    }
}
