//! Connecting to an IMAP server: TCP, then implicit TLS, STARTTLS or (loopback
//! only) plain text, then LOGIN. Every step has a timeout.

use crate::config::{ImapTls, Mailbox};
use anyhow::{Context, Result, anyhow};
use async_imap::{Client, Session};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The connection under an IMAP session.
#[derive(Debug)]
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub type ImapSession = Session<ImapStream>;

/// Why a connection attempt failed: bad credentials back off harder.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("login refused: {0}")]
    Auth(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Runs one step with the mailbox's command timeout.
pub async fn timed<T, E: Into<anyhow::Error>>(
    limit: Duration,
    what: &str,
    step: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    match tokio::time::timeout(limit, step).await {
        Ok(result) => result.map_err(Into::into).with_context(|| what.to_string()),
        Err(_) => Err(anyhow!("{what}: no answer within {} s", limit.as_secs())),
    }
}

/// Connects and logs in.
pub async fn login(mb: &Mailbox) -> std::result::Result<ImapSession, ConnectError> {
    let limit = Duration::from_secs(mb.timeout_seconds.max(1));
    let address = (mb.host.as_str(), mb.port());
    let tcp = timed(limit, "connect", TcpStream::connect(address)).await?;
    tcp.set_nodelay(true).ok();
    let stream = match mb.tls {
        ImapTls::Implicit => {
            let tls = timed(
                limit,
                "TLS handshake",
                tls_connector(mb)?.connect(server_name(mb)?, tcp),
            )
            .await?;
            ImapStream::Tls(Box::new(tls))
        }
        ImapTls::Starttls => {
            let mut client = Client::new(ImapStream::Plain(tcp));
            read_greeting(&mut client, limit).await?;
            timed(
                limit,
                "STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            let ImapStream::Plain(tcp) = client.into_inner() else {
                unreachable!("the stream was plain before STARTTLS")
            };
            let tls = timed(
                limit,
                "TLS handshake",
                tls_connector(mb)?.connect(server_name(mb)?, tcp),
            )
            .await?;
            // No greeting follows STARTTLS.
            return authenticate(Client::new(ImapStream::Tls(Box::new(tls))), mb, limit).await;
        }
        ImapTls::None => ImapStream::Plain(tcp),
    };
    let mut client = Client::new(stream);
    read_greeting(&mut client, limit).await?;
    authenticate(client, mb, limit).await
}

async fn read_greeting(client: &mut Client<ImapStream>, limit: Duration) -> Result<()> {
    let greeting = timed(limit, "server greeting", client.read_response()).await?;
    greeting.context("the server closed the connection before its greeting")?;
    Ok(())
}

async fn authenticate(
    client: Client<ImapStream>,
    mb: &Mailbox,
    limit: Duration,
) -> std::result::Result<ImapSession, ConnectError> {
    let password = mb.password()?;
    match tokio::time::timeout(limit, client.login(&mb.username, &password)).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((async_imap::error::Error::No(text), _))) => Err(ConnectError::Auth(text)),
        Ok(Err((e, _))) => Err(ConnectError::Other(anyhow!(e).context("LOGIN"))),
        Err(_) => Err(ConnectError::Other(anyhow!(
            "LOGIN: no answer within {} s",
            limit.as_secs()
        ))),
    }
}

fn server_name(mb: &Mailbox) -> Result<ServerName<'static>> {
    ServerName::try_from(mb.host.clone())
        .with_context(|| format!("invalid host name {:?}", mb.host))
}

fn tls_connector(mb: &Mailbox) -> Result<tokio_rustls::TlsConnector> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = &mb.ca_file {
        for cert in CertificateDer::pem_file_iter(file).with_context(|| {
            format!(
                "mailbox {}: cannot read ca_file {}",
                mb.name,
                file.display()
            )
        })? {
            let cert = cert.with_context(|| {
                format!("mailbox {}: bad certificate in {}", mb.name, file.display())
            })?;
            roots.add(cert).with_context(|| {
                format!(
                    "mailbox {}: unusable certificate in {}",
                    mb.name,
                    file.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
