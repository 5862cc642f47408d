//! Client connections shared by the IMAP source and the SMTP sender: TCP with
//! `TCP_NODELAY`, rustls with the web PKI roots plus an optional CA file, and
//! a timeout on every step.

use anyhow::{Context, Result, anyhow};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A client connection, plain or TLS.
#[derive(Debug)]
pub enum NetStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl NetStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            NetStream::Plain(s) => s,
            NetStream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for NetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_flush(cx),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// lettre drives SMTP over any stream that can name its peer.
impl lettre::transport::smtp::client::AsyncTokioStream for NetStream {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }
}

/// Runs one step with a timeout; `what` names the step in the error.
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

/// Opens a TCP connection with `TCP_NODELAY`: protocols that write a command
/// in pieces (lettre sends a message body and its final dot separately) would
/// otherwise wait for the peer's delayed ACK on every exchange.
pub async fn connect_tcp(host: &str, port: u16, limit: Duration) -> Result<TcpStream> {
    let tcp = timed(limit, "connect", TcpStream::connect((host, port))).await?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    Ok(tcp)
}

/// A TLS client for `host` that trusts the web PKI roots and, when given,
/// the certificates in `ca_file`. `owner` names the config section in errors.
#[derive(Clone)]
pub struct Tls {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl Tls {
    pub fn new(host: &str, ca_file: Option<&Path>, owner: &str) -> Result<Tls> {
        let server_name = ServerName::try_from(host.to_string())
            .with_context(|| format!("{owner}: invalid host name {host:?}"))?;
        let mut roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(file) = ca_file {
            let shown = file.display();
            for cert in CertificateDer::pem_file_iter(file)
                .with_context(|| format!("{owner}: cannot read ca_file {shown}"))?
            {
                let cert = cert.with_context(|| format!("{owner}: bad certificate in {shown}"))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{owner}: unusable certificate in {shown}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS set-up")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The TLS handshake over an open TCP connection.
    pub async fn wrap(&self, tcp: TcpStream, limit: Duration) -> Result<NetStream> {
        let tls = timed(
            limit,
            "TLS handshake",
            self.connector.connect(self.server_name.clone(), tcp),
        )
        .await?;
        Ok(NetStream::Tls(Box::new(tls)))
    }
}
