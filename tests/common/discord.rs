//! A local Discord for tests. The HTTP API: `GET /api/v10/gateway` (a local
//! `ws://` URL), `POST /api/v10/channels/{id}/messages` and
//! `POST /api/v10/users/@me/channels` (a DM channel) with
//! `Authorization: Bot TOKEN`, 429s with a JSON `retry_after` when scripted;
//! every call recorded. The gateway: HELLO, IDENTIFY → READY, RESUME →
//! RESUMED, heartbeats acknowledged, queued MESSAGE_CREATE events, and a
//! dropped connection on demand.
#![allow(dead_code)]

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub const TOKEN: &str = "discord-test-token";

#[derive(Clone, Default)]
struct State {
    /// (path, authorization, JSON body) of every call.
    calls: Arc<Mutex<Vec<(String, String, Value)>>>,
    /// How the next create-message calls are answered.
    answers: Arc<Mutex<VecDeque<Answer>>>,
    /// The gateway's `ws://` URL.
    gateway: Arc<Mutex<String>>,
    /// MESSAGE_CREATE payloads not yet sent.
    events: Arc<Mutex<VecDeque<Value>>>,
    /// Rung when events are queued.
    wake: Arc<tokio::sync::Notify>,
    /// Rung to drop the gateway connection.
    kill: Arc<tokio::sync::Notify>,
    /// The gateway opcodes received, in order (2 IDENTIFY, 6 RESUME …).
    received: Arc<Mutex<Vec<u64>>>,
    /// Every message channels have (sent over the gateway or missed), for
    /// `GET /channels/{id}/messages`.
    history: Arc<Mutex<Vec<Value>>>,
    /// When each create-message call came.
    created: Arc<Mutex<Vec<std::time::Instant>>>,
}

pub struct FakeDiscord {
    pub url: String,
    state: State,
}

/// How the fake answers a create-message call.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// 429 with this `retry_after` (seconds).
    TooMany(f64),
    /// 502 from Discord's edge: an HTML page, not JSON.
    BadGateway,
    /// 500 with Discord's JSON error body.
    ServerError,
    /// The connection dropped before any answer.
    Drop,
}

impl FakeDiscord {
    /// Starts on a free loopback port; the first create-message calls get a
    /// 429 with these `retry_after` values, then every one succeeds.
    pub async fn start(limits: Vec<f64>) -> FakeDiscord {
        FakeDiscord::answering(limits.into_iter().map(Answer::TooMany).collect()).await
    }

    /// Starts with these answers to the first create-message calls.
    pub async fn answering(answers: Vec<Answer>) -> FakeDiscord {
        let state = State {
            answers: Arc::new(Mutex::new(answers.into())),
            ..State::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *state.gateway.lock().unwrap() = format!("ws://{}", listener.local_addr().unwrap());
        let gateway = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(connection(gateway.clone(), socket));
            }
        });
        let shared = state.clone();
        let url = super::http::serve(move |req| {
            let state = shared.clone();
            async move { answer(&state, req).await }
        })
        .await;
        FakeDiscord { url, state }
    }

    /// Sends a MESSAGE_CREATE with this message object (now, or once the
    /// client has identified or resumed).
    pub fn push(&self, message: Value) {
        self.state.history.lock().unwrap().push(message.clone());
        self.state.events.lock().unwrap().push_back(message);
        self.state.wake.notify_one();
    }

    /// A message written while the client was away: only in the channel's
    /// history, never sent over the gateway.
    pub fn push_missed(&self, message: Value) {
        self.state.history.lock().unwrap().push(message);
    }

    /// Drops the gateway connection without a close frame.
    pub fn drop_connection(&self) {
        self.state.kill.notify_one();
    }

    /// The gateway opcodes the client sent, heartbeats left out.
    pub fn received(&self) -> Vec<u64> {
        self.state.received.lock().unwrap().clone()
    }

    /// When each create-message call came (the first 429'd ones included),
    /// in order.
    pub fn created_messages(&self) -> Vec<std::time::Instant> {
        self.state.created.lock().unwrap().clone()
    }

    /// (path, Authorization header, body) of the calls so far.
    pub fn calls(&self) -> Vec<(String, String, Value)> {
        self.state.calls.lock().unwrap().clone()
    }

    /// `[discord]` config pointing at this server, with the token in a file
    /// under `dir`.
    pub fn toml(&self, dir: &std::path::Path) -> String {
        super::http::bot_section("discord", dir, TOKEN, &self.url)
    }
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let params: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    state
        .calls
        .lock()
        .unwrap()
        .push((path.clone(), authorization.clone(), params.clone()));
    // Attachments: the CDN (no token needed) serves a file's name repeated 100 times.
    if let Some(name) = path.strip_prefix("/cdn/") {
        return Response::new(Full::new(Bytes::from(name.repeat(100))));
    }
    if authorization != format!("Bot {TOKEN}") {
        return super::http::json(401, json!({"message": "401: Unauthorized", "code": 0}));
    }
    if path.starts_with("/api/v10/gateway") {
        let url = state.gateway.lock().unwrap().clone();
        return super::http::json(
            200,
            json!({"url": url, "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0,
                                    "max_concurrency": 1}}),
        );
    }
    if path == "/api/v10/users/@me/channels" {
        let user = params["recipient_id"].as_str().unwrap_or("0");
        return super::http::json(
            200,
            json!({"id": dm_channel(user), "type": 1,
            "recipients": [{"id": user, "username": "customer"}]}),
        );
    }
    if let Some(parent) = path
        .strip_prefix("/api/v10/channels/")
        .and_then(|rest| rest.strip_suffix("/threads"))
    {
        let id = thread_id(state.calls.lock().unwrap().len());
        return super::http::json(
            201,
            json!({"id": id.to_string(), "type": 11,
            "parent_id": parent, "name": params["name"]}),
        );
    }
    let channel = path
        .strip_prefix("/api/v10/channels/")
        .and_then(|rest| rest.strip_suffix("/messages"));
    let Some(channel) = channel else {
        return super::http::json(404, json!({"message": "404: Not Found", "code": 0}));
    };
    if method == hyper::Method::GET {
        let after: u64 = query
            .split('&')
            .find_map(|p| p.strip_prefix("after="))
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        let id = |m: &Value| {
            m["id"]
                .as_str()
                .and_then(|i| i.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut found: Vec<Value> = state
            .history
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["channel_id"] == channel && id(m) > after)
            .cloned()
            .map(|mut m| {
                // Discord adds guild_id and member only to gateway events;
                // REST message objects have neither.
                if let Some(m) = m.as_object_mut() {
                    m.remove("guild_id");
                    m.remove("member");
                }
                m
            })
            .collect();
        // Discord lists the newest first.
        found.sort_by_key(|m| std::cmp::Reverse(id(m)));
        return super::http::json(200, Value::Array(found));
    }
    state
        .created
        .lock()
        .unwrap()
        .push(std::time::Instant::now());
    let next = state.answers.lock().unwrap().pop_front();
    match next {
        Some(Answer::TooMany(seconds)) => {
            return super::http::json(
                429,
                json!({"message": "You are being rate limited.", "retry_after": seconds, "global": false}),
            );
        }
        Some(Answer::ServerError) => {
            return super::http::json(
                500,
                json!({"message": "500: Internal Server Error", "code": 0}),
            );
        }
        Some(Answer::BadGateway) => {
            return Response::builder()
                .status(502)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from_static(
                    b"<html><h1>502 Bad Gateway</h1></html>",
                )))
                .unwrap();
        }
        Some(Answer::Drop) => {
            return Response::builder()
                .status(super::http::DROP)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        None => {}
    }
    let id = state.calls.lock().unwrap().len();
    super::http::json(
        200,
        json!({
            "id": id.to_string(), "channel_id": channel, "content": params["content"],
            "author": {"id": "1", "username": "ticketd", "bot": true},
            "timestamp": "2026-11-22T10:00:00.000000+00:00", "edited_timestamp": null,
            "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": false, "type": 0,
        }),
    )
}

/// The DM channel the fake opens for a user: `7` followed by the user id.
pub fn dm_channel(user: &str) -> String {
    format!("7{user}")
}

/// A direct message from user 42 (Jan Kowalski) in DM channel 77.
pub fn direct_message(id: u64, content: &str) -> Value {
    json!({
        "id": id.to_string(), "channel_id": "77", "content": content,
        "author": {"id": "42", "username": "jan", "global_name": "Jan Kowalski"},
        "timestamp": "2026-11-22T10:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 0,
    })
}

/// One gateway connection: HELLO, then the client's opcodes and our events.
async fn connection(state: State, socket: tokio::net::TcpStream) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
        return;
    };
    let send = |value: Value| Message::Text(value.to_string());
    let hello = json!({"op": 10, "d": {"heartbeat_interval": 45000}});
    if ws.send(send(hello)).await.is_err() {
        return;
    }
    let mut seq = 0u64;
    let mut ready = false;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(Message::Text(text))) = frame else { return };
                let payload: Value = serde_json::from_str(&text).unwrap_or_default();
                let op = payload["op"].as_u64().unwrap_or(99);
                if op != 1 {
                    state.received.lock().unwrap().push(op);
                }
                let url = state.gateway.lock().unwrap().clone();
                let answer = match op {
                    1 => json!({"op": 11}),
                    2 => {
                        seq += 1;
                        json!({"op": 0, "t": "READY", "s": seq, "d": {
                            "v": 10, "session_id": "session-1", "resume_gateway_url": url,
                            "user": {"id": "1", "username": "ticketd", "bot": true},
                            "guilds": [], "application": {"id": "1", "flags": 0},
                        }})
                    }
                    6 => {
                        seq += 1;
                        json!({"op": 0, "t": "RESUMED", "s": seq, "d": {}})
                    }
                    _ => continue,
                };
                if ws.send(send(answer)).await.is_err() {
                    return;
                }
                ready |= matches!(op, 2 | 6);
                if ready {
                    state.wake.notify_one();
                }
            }
            _ = state.wake.notified(), if ready => {
                let events: Vec<Value> = state.events.lock().unwrap().drain(..).collect();
                for message in events {
                    seq += 1;
                    let event = json!({"op": 0, "t": "MESSAGE_CREATE", "s": seq, "d": message});
                    if ws.send(send(event)).await.is_err() {
                        return;
                    }
                }
            }
            _ = state.kill.notified() => return,
        }
    }
}

/// The id the fake gives the thread opened by call number `call`.
pub fn thread_id(call: usize) -> u64 {
    900_000 + call as u64
}

/// A message from `user` in guild channel (or thread) `channel`.
pub fn guild_message(id: u64, channel: u64, user: u64, content: &str) -> Value {
    let mut message = direct_message(id, content);
    message["channel_id"] = json!(channel.to_string());
    message["guild_id"] = json!("1");
    message["member"] = json!({"roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00",
                               "deaf": false, "mute": false});
    message["author"] = json!({"id": user.to_string(), "username": format!("user{user}")});
    message
}
