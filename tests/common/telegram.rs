//! A local Telegram Bot API server for tests: it speaks the wire protocol
//! teloxide uses (`POST /bot<TOKEN>/<Method>` with a JSON body, method names
//! in PascalCase, `{"ok":true,"result":…}` envelopes, 429 with
//! `parameters.retry_after`) and records every call.
#![allow(dead_code)]

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub const TOKEN: &str = "123456:TEST-token";

/// How the server answers the next `SendMessage`.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Ok,
    /// 429 Too Many Requests, retry after this many seconds.
    TooMany(u32),
    /// 500 with Telegram's JSON error envelope.
    ServerError,
    /// 502 from a proxy in front: an HTML page, not JSON.
    BadGateway,
    /// The connection dropped before any answer.
    Drop,
    /// 403: the user blocked the bot.
    Blocked,
    /// 400: the chat does not exist.
    ChatNotFound,
}

#[derive(Clone, Default)]
struct State {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    /// When each call came.
    times: Arc<Mutex<Vec<std::time::Instant>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
    /// Scripted answers for one chat's `SendMessage`s, before `answers`.
    for_chat: Arc<Mutex<std::collections::HashMap<i64, VecDeque<Answer>>>>,
    /// Updates `GetUpdates` hands out (those at or after its `offset`).
    updates: Arc<Mutex<Vec<Value>>>,
    /// Hand out every update, ignoring `offset` (a misbehaving server).
    replay: Arc<Mutex<bool>>,
    /// Rung when updates are queued: a waiting long poll answers at once.
    pushed: Arc<tokio::sync::Notify>,
    /// Files `GetFile` knows, by file id, and serves under `/file/`.
    files: Arc<Mutex<std::collections::HashMap<String, Vec<u8>>>>,
}

pub struct FakeTelegram {
    pub url: String,
    state: State,
}

/// A private message from customer 42 (Jan Kowalski, Polish).
pub fn private_message(update_id: i64, message_id: i64, content: Value) -> Value {
    let mut message = json!({
        "message_id": message_id,
        "date": 1_795_168_800,
        "chat": {"id": 42, "type": "private", "first_name": "Jan"},
        "from": {"id": 42, "is_bot": false, "first_name": "Jan", "last_name": "Kowalski",
                 "language_code": "pl"},
    });
    for (k, v) in content.as_object().unwrap() {
        message[k] = v.clone();
    }
    json!({"update_id": update_id, "message": message})
}

/// A new customer's first private message: user `user`, in their own chat.
pub fn first_message(update_id: i64, user: i64) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_795_168_800,
        "chat": {"id": user, "type": "private", "first_name": format!("K{user}")},
        "from": {"id": user, "is_bot": false, "first_name": format!("K{user}"),
                 "language_code": "pl"},
        "text": format!("Dzień dobry, nie mogę się zalogować (klient {user})."),
    }})
}

/// The agents' group in the tests.
pub const AGENT_CHAT: i64 = -100_500;

/// A message from user `from` in the agents' group, replying to the bot's
/// message `replied` when given.
pub fn agent_message(
    update_id: i64,
    message_id: i64,
    from: i64,
    text: &str,
    replied: Option<&str>,
) -> Value {
    let chat = json!({"id": AGENT_CHAT, "type": "supergroup", "title": "Agents"});
    let mut message = json!({
        "message_id": message_id,
        "date": 1_795_168_800,
        "chat": chat,
        "from": {"id": from, "is_bot": false, "first_name": format!("user {from}")},
        "text": text,
    });
    if let Some(replied) = replied {
        message["reply_to_message"] = json!({
            "message_id": message_id - 1000,
            "date": 1_795_168_000,
            "chat": chat,
            "from": {"id": 1, "is_bot": true, "first_name": "ticketd"},
            "text": replied,
        });
    }
    json!({"update_id": update_id, "message": message})
}

impl FakeTelegram {
    /// Starts on a free loopback port; `answers` script the first
    /// `SendMessage` replies (then every one succeeds).
    pub async fn start(answers: Vec<Answer>) -> FakeTelegram {
        let state = State {
            answers: Arc::new(Mutex::new(answers.into())),
            ..State::default()
        };
        let shared = state.clone();
        let url = super::http::serve(move |req| {
            let state = shared.clone();
            async move { answer(&state, req).await }
        })
        .await;
        FakeTelegram { url, state }
    }

    /// Queues updates for `GetUpdates`.
    pub fn push_updates(&self, updates: Vec<Value>) {
        self.state.updates.lock().unwrap().extend(updates);
        self.state.pushed.notify_waiters();
    }

    /// A file customers can send (`GetFile` and the download find it); other
    /// file ids get Telegram's "file is too big".
    pub fn add_file(&self, file_id: &str, content: &[u8]) {
        let mut files = self.state.files.lock().unwrap();
        files.insert(file_id.to_string(), content.to_vec());
    }

    /// From now on `GetUpdates` ignores its offset and sends everything.
    pub fn replay_everything(&self) {
        *self.state.replay.lock().unwrap() = true;
    }

    /// Scripts the next answers to `SendMessage`s for `chat`.
    pub fn answer_chat(&self, chat: i64, answers: Vec<Answer>) {
        let mut all = self.state.for_chat.lock().unwrap();
        all.entry(chat).or_default().extend(answers);
    }

    /// The `SendMessage` calls so far: (chat, text, when), in order.
    pub fn sends(&self) -> Vec<(i64, String, std::time::Instant)> {
        let calls = self.state.calls.lock().unwrap();
        let times = self.state.times.lock().unwrap();
        calls
            .iter()
            .zip(times.iter())
            .filter(|((m, _), _)| m == "SendMessage")
            .map(|((_, p), t)| {
                (
                    p["chat_id"].as_i64().unwrap_or(0),
                    p["text"].as_str().unwrap_or("").to_string(),
                    *t,
                )
            })
            .collect()
    }

    /// The calls so far: (method, JSON parameters).
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.state.calls.lock().unwrap().clone()
    }

    /// `[telegram]` config pointing at this server, with the token in a file
    /// under `dir`.
    pub fn toml(&self, dir: &std::path::Path) -> String {
        super::http::bot_section("telegram", dir, TOKEN, &self.url)
    }
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    // Downloads: teloxide sends the file path as one segment ("/" as %2F).
    let file = path
        .trim_start_matches('/')
        .strip_prefix(&format!("file/bot{TOKEN}/"))
        .map(|p| p.replace("%2F", "/"));
    if let Some(file) = file {
        let id = file.strip_prefix("documents/").unwrap_or("");
        let content = state.files.lock().unwrap().get(id).cloned();
        return match content {
            Some(bytes) => Response::new(Full::new(Bytes::from(bytes))),
            None => Response::builder()
                .status(404)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        };
    }
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let params: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let Some(method) = path
        .strip_prefix(&format!("/bot{TOKEN}/"))
        .map(str::to_string)
    else {
        return reply(json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    };
    {
        // One lock for both, so the two lists stay in step.
        let mut calls = state.calls.lock().unwrap();
        calls.push((method.clone(), params.clone()));
        state.times.lock().unwrap().push(std::time::Instant::now());
    }
    match method.as_str() {
        "SendMessage" => {
            let chat = params["chat_id"].as_i64().unwrap_or(0);
            let scripted = state
                .for_chat
                .lock()
                .unwrap()
                .get_mut(&chat)
                .and_then(VecDeque::pop_front);
            let next = scripted.or_else(|| state.answers.lock().unwrap().pop_front());
            match next.unwrap_or(Answer::Ok) {
                Answer::TooMany(seconds) => super::http::json(
                    429,
                    json!({
                        "ok": false,
                        "error_code": 429,
                        "description": format!("Too Many Requests: retry after {seconds}"),
                        "parameters": {"retry_after": seconds},
                    }),
                ),
                Answer::ServerError => super::http::json(
                    500,
                    json!({
                        "ok": false, "error_code": 500, "description": "Internal Server Error",
                    }),
                ),
                Answer::BadGateway => Response::builder()
                    .status(502)
                    .header("content-type", "text/html")
                    .body(Full::new(Bytes::from_static(
                        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                    )))
                    .unwrap(),
                Answer::Drop => Response::builder()
                    .status(super::http::DROP)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
                Answer::Blocked => super::http::json(
                    403,
                    json!({
                        "ok": false, "error_code": 403,
                        "description": "Forbidden: bot was blocked by the user",
                    }),
                ),
                Answer::ChatNotFound => super::http::json(
                    400,
                    json!({
                        "ok": false, "error_code": 400, "description": "Bad Request: chat not found",
                    }),
                ),
                Answer::Ok => {
                    let count = state.calls.lock().unwrap().len();
                    reply(json!({"ok": true, "result": {
                        "message_id": count,
                        "date": 1_795_168_800,
                        "chat": {"id": params["chat_id"], "type": "group", "title": "Agents"},
                        "from": {"id": 1, "is_bot": true, "first_name": "ticketd"},
                        "text": params["text"],
                    }}))
                }
            }
        }
        "GetFile" => {
            let id = params["file_id"].as_str().unwrap_or("").to_string();
            let size = state.files.lock().unwrap().get(&id).map(Vec::len);
            match size {
                Some(size) => reply(json!({"ok": true, "result": {
                    "file_id": id, "file_unique_id": format!("u-{id}"), "file_size": size,
                    "file_path": format!("documents/{id}"),
                }})),
                None => reply(json!({"ok": false, "error_code": 400,
                                     "description": "Bad Request: file is too big"})),
            }
        }
        "GetUpdates" => {
            // A long poll: with nothing new, wait up to `timeout` seconds
            // for updates, as Telegram does.
            let deadline = tokio::time::Instant::now()
                + std::time::Duration::from_secs(params["timeout"].as_u64().unwrap_or(0));
            loop {
                let pushed = state.pushed.notified();
                let updates = pending_updates(state, &params);
                if !updates.is_empty() || tokio::time::Instant::now() >= deadline {
                    return reply(json!({"ok": true, "result": updates}));
                }
                let _ = tokio::time::timeout_at(deadline, pushed).await;
            }
        }
        _ => reply(
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
        ),
    }
}

/// The updates `GetUpdates` with these parameters hands out now.
fn pending_updates(state: &State, params: &Value) -> Vec<Value> {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let replay = *state.replay.lock().unwrap();
    state
        .updates
        .lock()
        .unwrap()
        .iter()
        .filter(|u| replay || u["update_id"].as_i64().unwrap_or(0) >= offset)
        .take(params["limit"].as_u64().unwrap_or(100) as usize)
        .cloned()
        .collect()
}

fn reply(body: Value) -> Response<Full<Bytes>> {
    super::http::json(200, body)
}
