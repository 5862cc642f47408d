//! A tiny HTTP/1 server for the fake platform APIs: every request goes to
//! `handle`, on a free loopback port.
#![allow(dead_code)]

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::future::Future;
use std::sync::Arc;

/// A response with this status is not sent: the connection is dropped
/// instead, as a crashing server or a broken network does.
pub const DROP: u16 = 599;

/// Serves until the test ends; returns `http://127.0.0.1:PORT/`.
pub async fn serve<F, Fut>(handle: F) -> String
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let answer = handle(req);
                    async move {
                        let answer = answer.await;
                        match answer.status().as_u16() {
                            DROP => Err(std::io::Error::other("connection dropped")),
                            _ => Ok(answer),
                        }
                    }
                });
                let io = hyper_util::rt::TokioIo::new(socket);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    url
}

/// A JSON response with this status.
pub fn json(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// A `[telegram]`/`[discord]` config section for a fake server at `url`,
/// with `token` in a file under `dir`.
pub fn bot_section(section: &str, dir: &std::path::Path, token: &str, url: &str) -> String {
    let file = dir.join(format!("{section}-token"));
    std::fs::write(&file, format!("{token}\n")).unwrap();
    format!(
        "\n[{section}]\ntoken_file = \"{}\"\napi_url = \"{url}\"\n",
        file.display()
    )
}
