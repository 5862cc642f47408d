//! A local Discord HTTP API for tests: `POST /api/v10/channels/{id}/messages`
//! with `Authorization: Bot TOKEN`, Discord's message objects back, and 429s
//! with a JSON `retry_after` (seconds, fractional) when scripted. Records
//! every call.
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
    /// `retry_after` seconds for the next create-message calls.
    limits: Arc<Mutex<VecDeque<f64>>>,
}

pub struct FakeDiscord {
    pub url: String,
    state: State,
}

impl FakeDiscord {
    /// Starts on a free loopback port; the first create-message calls get a
    /// 429 with these `retry_after` values, then every one succeeds.
    pub async fn start(limits: Vec<f64>) -> FakeDiscord {
        let state = State {
            limits: Arc::new(Mutex::new(limits.into())),
            ..State::default()
        };
        let shared = state.clone();
        let url = super::http::serve(move |req| {
            let state = shared.clone();
            async move { answer(&state, req).await }
        })
        .await;
        FakeDiscord { url, state }
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
    if authorization != format!("Bot {TOKEN}") {
        return super::http::json(401, json!({"message": "401: Unauthorized", "code": 0}));
    }
    let channel = path
        .strip_prefix("/api/v10/channels/")
        .and_then(|rest| rest.strip_suffix("/messages"));
    let Some(channel) = channel else {
        return super::http::json(404, json!({"message": "404: Not Found", "code": 0}));
    };
    if let Some(seconds) = state.limits.lock().unwrap().pop_front() {
        return super::http::json(
            429,
            json!({"message": "You are being rate limited.", "retry_after": seconds, "global": false}),
        );
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
