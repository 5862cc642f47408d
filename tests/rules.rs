//! Rule files applied by the pipeline, on SQLite and PostgreSQL: fields,
//! assignment strategies, notifications, spam, follow-up events, hot reload.

mod common;

use common::Env;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ticketd::store::Backend;
use ticketd::ticket::Status;

const TEAM: &str = r#"
[[team]]
name = "billing"

[[agent]]
email = "anna@example.com"
name = "Anna Nowak"
role = "manager"
teams = ["billing"]

[[agent]]
email = "ewa@example.com"
teams = ["billing"]

[[agent]]
email = "piotr@example.com"
teams = ["billing"]
"#;

/// An environment whose rules folder holds `rules` as `10-test.toml`.
async fn env_with_rules(backend: Backend, rules: &str) -> (Env, tempfile::TempDir) {
    env_with_rules_and(backend, rules, "").await
}

/// The same with more config (after the billing team and its agents).
async fn env_with_rules_and(
    backend: Backend,
    rules: &str,
    extra: &str,
) -> (Env, tempfile::TempDir) {
    Env::with_rules(backend, &format!("{TEAM}{extra}"), rules).await
}

fn mail(from: &str, id: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Fri, 20 Nov 2026 10:00:00 +0100\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn reply(from: &str, id: &str, to_id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: Re: x\r\nMessage-ID: <{id}>\r\n\
         In-Reply-To: <{to_id}>\r\nDate: Fri, 20 Nov 2026 11:00:00 +0100\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn notified(t: &ticketd::store::queries::TicketDetail) -> Vec<(String, String)> {
    t.notifications
        .iter()
        .map(|n| (n.event.clone(), n.recipient.clone()))
        .collect()
}

const BILLING_ROUND_ROBIN: &str = r#"
[[rule]]
name = "billing"
on = ["ticket.created"]
then = [{ set_category = "billing" }, { assign = { team = "billing", strategy = "round_robin" } }]
[rule.when]
subject.matches = "(?i)faktur|invoice"
"#;

async fn round_robin_assigns_in_turn_and_history_names_the_rule(backend: Backend) {
    let (env, _rules) = env_with_rules(backend, BILLING_ROUND_ROBIN).await;
    let mut assignees = Vec::new();
    for i in 0..4 {
        let out = env
            .ingest(&mail(
                &format!("c{i}@firma.pl"),
                &format!("rr{i}@x"),
                "Faktura",
                "?",
            ))
            .await;
        let t = env.show(out.ticket.as_deref().unwrap()).await;
        assert_eq!(
            (t.category.as_str(), t.team.as_deref()),
            ("billing", Some("billing"))
        );
        assignees.push(t.assignee.clone().unwrap());
        assert_eq!(
            notified(&t),
            [
                ("ticket_assigned".to_string(), t.assignee.clone().unwrap()),
                ("ticket_created".to_string(), format!("c{i}@firma.pl")),
            ]
        );
    }
    assert_eq!(
        assignees,
        [
            "anna@example.com",
            "ewa@example.com",
            "piotr@example.com",
            "anna@example.com"
        ]
    );
    let t = env.show("TKT-2026-0001").await;
    let by_rule: Vec<(&str, Option<&str>, Option<&str>)> = t
        .history
        .iter()
        .filter(|h| h.rule.as_deref() == Some("billing"))
        .map(|h| (h.field.as_str(), h.old.as_deref(), h.new.as_deref()))
        .collect();
    assert_eq!(
        by_rule,
        [
            ("category", Some("other"), Some("billing")),
            ("team", None, Some("billing")),
            ("assignee", None, Some("anna@example.com")),
        ]
    );
    // A mail that matches nothing is left alone.
    let out = env
        .ingest(&mail("d@firma.pl", "other@x", "Drukarka", "?"))
        .await;
    let t = env.show(out.ticket.as_deref().unwrap()).await;
    assert_eq!((t.category.as_str(), t.assignee), ("other", None));
    env.finish().await;
}
for_each_backend!(round_robin_assigns_in_turn_and_history_names_the_rule);

async fn least_open_picks_the_member_with_the_fewest_open_tickets(backend: Backend) {
    let rules = BILLING_ROUND_ROBIN.replace("round_robin", "least_open");
    let (env, _rules) = env_with_rules(backend, &rules).await;
    let mut numbers = Vec::new();
    for i in 0..3 {
        let out = env
            .ingest(&mail("c@firma.pl", &format!("lo{i}@x"), "Invoice", "?"))
            .await;
        numbers.push(out.ticket.unwrap());
    }
    let ewas = &numbers[1];
    assert_eq!(
        env.show(ewas).await.assignee.as_deref(),
        Some("ewa@example.com")
    );
    env.store
        .change_status(
            ewas,
            Status::Closed,
            "ewa@example.com",
            common::START,
            &env.pipeline.settings.current().policies,
        )
        .await
        .unwrap();
    let out = env
        .ingest(&mail("c@firma.pl", "lo3@x", "Invoice", "?"))
        .await;
    let t = env.show(out.ticket.as_deref().unwrap()).await;
    assert_eq!(t.assignee.as_deref(), Some("ewa@example.com"));
    env.finish().await;
}
for_each_backend!(least_open_picks_the_member_with_the_fewest_open_tickets);

async fn spam_is_closed_tagged_journaled_and_never_acknowledged(backend: Backend) {
    let rules = r#"
[[rule]]
name = "pills"
on = "ticket.created"
then = [{ spam = true }]
stop = true
[rule.when]
any = [{ subject.contains = "viagra" }, { body.matches = "(?i)cheap pills" }]
"#;
    let (env, _rules) = env_with_rules(backend, rules).await;
    let out = env
        .ingest_as(
            "test",
            "spam-1",
            &mail("x@spam.example", "spam@x", "Hi", "CHEAP PILLS"),
        )
        .await;
    let number = out.ticket.clone().unwrap();
    let t = env.show(&number).await;
    assert_eq!(t.status, "closed");
    assert_eq!(t.tags, ["spam"]);
    assert!(t.notifications.is_empty(), "{:?}", t.notifications);
    let journal = env.store.journal_for("test", "spam-1").await.unwrap();
    assert_eq!(
        journal[0].1.as_deref(),
        Some("dropped as spam by rule \"pills\"")
    );
    env.finish().await;
}
for_each_backend!(spam_is_closed_tagged_journaled_and_never_acknowledged);

async fn a_requester_comment_reaches_the_assignee_and_a_rule_resolves_the_ticket(backend: Backend) {
    let rules = r#"
[[rule]]
name = "to anna"
on = "ticket.created"
then = [{ assign = "anna@example.com" }]

[[rule]]
name = "customer says solved"
on = "comment.added"
then = [{ set_status = "resolved" }, { note = "closed by the customer's word" }]
[rule.when]
author = "requester"
body.matches = "(?i)\\b(solved|rozwiązane)\\b"
"#;
    let (env, _rules) = env_with_rules(backend, rules).await;
    let out = env
        .ingest(&mail(
            "jan@firma.pl",
            "q1@firma.pl",
            "Drukarka",
            "Nie drukuje.",
        ))
        .await;
    let number = out.ticket.unwrap();
    env.ingest(&reply(
        "jan@firma.pl",
        "q2@firma.pl",
        "q1@firma.pl",
        "Still broken.",
    ))
    .await;
    assert_eq!(env.show(&number).await.status, "new");
    env.ingest(&reply(
        "jan@firma.pl",
        "q3@firma.pl",
        "q1@firma.pl",
        "Solved, thanks!",
    ))
    .await;
    let t = env.show(&number).await;
    assert_eq!(t.status, "resolved");
    assert_eq!(
        notified(&t),
        [
            ("ticket_assigned".into(), "anna@example.com".into()),
            ("ticket_created".into(), "jan@firma.pl".into()),
            ("requester_comment".into(), "anna@example.com".into()),
            ("ticket_resolved".into(), "jan@firma.pl".into()),
            ("requester_comment".into(), "anna@example.com".into()),
        ]
    );
    let note = t.comments.last().unwrap();
    assert_eq!(
        (note.body.as_str(), note.internal),
        ("closed by the customer's word", true)
    );
    env.finish().await;
}
for_each_backend!(a_requester_comment_reaches_the_assignee_and_a_rule_resolves_the_ticket);

async fn escalation_raises_priority_and_tells_the_managers_once(backend: Backend) {
    let rules = r#"
[[rule]]
name = "urgent header"
on = "ticket.created"
then = [{ escalate = true }]
[rule.when]
header.X-Priority.starts_with = "1"

[[rule]]
name = "high to billing"
on = "ticket.updated"
then = [{ set_team = "billing" }]
[rule.when]
priority = "high"
"#;
    let (env, _rules) = env_with_rules(backend, rules).await;
    let raw = String::from_utf8(mail("jan@firma.pl", "u1@x", "Awaria", "!"))
        .unwrap()
        .replacen("Subject:", "X-Priority: 1 (Highest)\r\nSubject:", 1);
    let out = env.ingest(raw.as_bytes()).await;
    let t = env.show(out.ticket.as_deref().unwrap()).await;
    assert_eq!(t.priority, "high");
    // The follow-up event ran the second rule.
    assert_eq!(t.team.as_deref(), Some("billing"));
    assert_eq!(
        notified(&t),
        [
            ("ticket_escalated".into(), "anna@example.com".into()),
            ("ticket_created".into(), "jan@firma.pl".into()),
        ]
    );
    let plain = env
        .ingest(&mail("jan@firma.pl", "u2@x", "Awaria", "!"))
        .await;
    assert_eq!(
        env.show(plain.ticket.as_deref().unwrap()).await.priority,
        "medium"
    );
    env.finish().await;
}
for_each_backend!(escalation_raises_priority_and_tells_the_managers_once);

/// Two rules that undo each other: follow-up events stop `max_depth` levels
/// deep, and the history says which chain of rules was cut.
async fn a_rule_loop_stops_at_max_depth_and_is_recorded(backend: Backend) {
    let rules = r#"
[[rule]]
name = "tag"
on = "ticket.created"
then = [{ add_tag = "seen" }]

[[rule]]
name = "up"
on = "ticket.updated"
then = [{ set_priority = "high" }]
when = { priority = "medium" }

[[rule]]
name = "down"
on = "ticket.updated"
then = [{ set_priority = "medium" }]
when = { priority = "high" }
"#;
    let (env, _rules) = env_with_rules_and(backend, rules, "[rules]\nmax_depth = 3\n").await;
    let out = env
        .ingest(&mail("jan@firma.pl", "loop@x", "Pętla", "!"))
        .await;
    let t = env.show(out.ticket.as_deref().unwrap()).await;
    let changes: Vec<(&str, Option<&str>)> = t
        .history
        .iter()
        .filter(|h| h.field == "priority")
        .map(|h| (h.rule.as_deref().unwrap_or(""), h.new.as_deref()))
        .collect();
    // Each pass over ticket.updated runs both (the second sees the first's
    // change); three passes, then the fourth level is cut.
    let pass = [("up", Some("high")), ("down", Some("medium"))];
    assert_eq!(changes, [pass, pass, pass].concat());
    let cut: Vec<&str> = t
        .history
        .iter()
        .filter(|h| h.field == "rule_loop")
        .filter_map(|h| h.new.as_deref())
        .collect();
    assert_eq!(
        cut,
        ["ticket.updated not evaluated after tag → up+down → up+down → up+down"]
    );
    assert_eq!(t.priority, "medium");
    env.finish().await;
}
for_each_backend!(a_rule_loop_stops_at_max_depth_and_is_recorded);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rule_set_stops_the_pipeline_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-bad.toml"),
        "[[rule]]\nname = \"x\"\non = \"ticket.created\"\nthen = [{ set_team = \"nobody\" }]\n",
    )
    .unwrap();
    let db = common::TestDatabase::new(dir.path());
    let config = {
        let mut c = ticketd::config::Config::parse(&common::base_config(dir.path(), "")).unwrap();
        c.rules.dir = Some(dir.path().to_path_buf());
        c.database.url = db.url.clone();
        c
    };
    let store = ticketd::app::open_store(&config).await.unwrap();
    let error = ticketd::app::context(&config, store, ticketd::clock::Clock::System)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("10-bad.toml:4:22: rule \"x\": unknown team \"nobody\""),
        "{error}"
    );
}

/// Waits until `check` holds, for at most 10 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn first_action(live: &ticketd::rules::Live) -> String {
    live.current()
        .rules
        .first()
        .map(|r| r.then[0].to_string())
        .unwrap_or_default()
}

fn write_rule(dir: &Path, category: &str) {
    let text = format!(
        "[[rule]]\nname = \"c\"\non = \"ticket.created\"\nthen = [{{ set_category = \"{category}\" }}]\n"
    );
    // Written whole and renamed, as editors and deploy tools do.
    let tmp = dir.join(".10-c.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join("10-c.toml")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_files_reload_on_change_and_a_broken_set_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    write_rule(&rules, "billing");
    let rules_dir = rules.clone();
    let env = Env::configured(common::backend(), "", move |c| {
        c.rules.dir = Some(rules_dir)
    })
    .await;
    let live = env.pipeline.rules.clone();
    assert_eq!(first_action(&live), "set_category billing");
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(ticketd::reload::run(
        env.config.clone(),
        ticketd::reload::Handles::of(&env.context),
        (None, None),
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    write_rule(&rules, "technical");
    eventually("the new rule set", || {
        first_action(&live) == "set_category technical"
    })
    .await;

    std::fs::write(
        rules.join("20-broken.toml"),
        "[[rule]]\nname = \"b\"\non = \"nope\"\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(first_action(&live), "set_category technical");
    assert_eq!(live.current().rules.len(), 1);

    std::fs::remove_file(rules.join("20-broken.toml")).unwrap();
    write_rule(&rules, "account");
    eventually("the repaired rule set", || {
        first_action(&live) == "set_category account"
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
}

#[test]
fn the_shipped_rules_pass_their_own_tests_with_the_shipped_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = ticketd::config::Config::load(&root.join("config/ticketd.toml")).unwrap();
    config.rules.dir = Some(root.join("rules"));
    let set = ticketd::rules::load::load_configured(&config).unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(set.rules.len() >= 8, "{}", set.rules.len());
    let (run, failures) = set.run_tests("email");
    assert!(run >= 8, "only {run} tests");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A one-purpose HTTP server: answers each request with the next status of
/// `statuses` (200 when they run out) and keeps (head, body) of each.
struct HookServer {
    url: String,
    seen: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl HookServer {
    async fn start(statuses: Vec<u16>) -> HookServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut statuses = statuses.into_iter();
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let (head, body) = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break (String::new(), String::new());
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break (head.to_string(), body.to_string());
                        }
                    }
                };
                log.lock().unwrap().push((head, body));
                let status = statuses.next().unwrap_or(200);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        HookServer { url, seen }
    }
}

async fn webhooks_are_signed_retried_and_delivered_through_the_outbox(backend: Backend) {
    let server = HookServer::start(vec![503]).await;
    let rules = r#"
[[rule]]
name = "tell the crm"
on = "ticket.created"
then = [{ webhook = "crm" }]
"#;
    let extra = format!(
        "\n[[webhook]]\nname = \"crm\"\nurl = \"{}\"\nsecret = \"s3cret\"\n",
        server.url
    );
    let (env, _rules) = env_with_rules_and(backend, rules, &extra).await;
    let out = env
        .ingest(&mail("jan@firma.pl", "w1@x", "Faktura", "?"))
        .await;
    let number = out.ticket.unwrap();
    let dispatcher = ticketd::notify::dispatch::Dispatcher {
        store: env.store.clone(),
        mailer: ticketd::notify::email::Mailer::new(&env.config).unwrap(),
        webhooks: ticketd::notify::webhook::Webhooks::new(&env.config).unwrap(),
        telegram: None,
        discord: None,
        clock: env.clock.clone(),
        instance: "test".into(),
        max_age_seconds: 3600,
        concurrency: 2,
        wake: Arc::new(tokio::sync::Notify::new()),
    };
    // The acknowledgement (to a file) and the webhook, which gets a 503 …
    assert_eq!(dispatcher.deliver_due().await.unwrap(), 2);
    let hook = |t: &ticketd::store::queries::TicketDetail| {
        t.notifications
            .iter()
            .find(|n| n.channel == "webhook")
            .cloned()
            .unwrap()
    };
    let first = hook(&env.show(&number).await);
    assert_eq!(
        (first.status.as_str(), first.recipient.as_str()),
        ("pending", "crm")
    );
    assert!(
        first.last_error.as_deref().unwrap().contains("503"),
        "{first:?}"
    );
    // … and is retried after its backoff.
    env.clock.advance(5);
    assert_eq!(dispatcher.deliver_due().await.unwrap(), 1);
    assert_eq!(hook(&env.show(&number).await).status, "sent");

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (head, body) = &seen[1];
    assert_eq!(body, &seen[0].1, "a retry sends the same body");
    let payload: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["event"], "ticket.created");
    assert_eq!(payload["rule"], "tell the crm");
    assert_eq!(payload["ticket"]["number"], number.as_str());
    assert_eq!(payload["ticket"]["requester"], "jan@firma.pl");
    let head = head.to_ascii_lowercase();
    let signature = ticketd::notify::webhook::sign(b"s3cret", body.as_bytes());
    assert!(
        head.contains(&format!("x-ticketd-signature: sha256={signature}")),
        "{head}"
    );
    assert!(head.contains("x-ticketd-event: ticket.created"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    env.finish().await;
}
for_each_backend!(webhooks_are_signed_retried_and_delivered_through_the_outbox);

const CALENDAR: &str = r#"
[[calendar]]
name = "pl"
time_zone = "Europe/Warsaw"
hours = { mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-16:00", thu = "08:00-16:00", fri = "08:00-16:00" }
holidays = ["2026-12-24", "2026-12-25"]
"#;

async fn business_hours_follow_the_calendar(backend: Backend) {
    let rules = r#"
[[rule]]
name = "after hours"
on = "ticket.created"
then = [{ add_tag = "after-hours" }]
[rule.when]
business_hours = false
"#;
    let (env, _rules) = env_with_rules_and(backend, rules, CALENDAR).await;
    let mut tags = Vec::new();
    // Friday 2026-11-20 11:00 in Warsaw, then 18:00 the same day, then
    // Saturday noon, then Thursday 2026-12-24 (a holiday) at 10:00.
    for (i, advance) in [0, 7 * 3600, 19 * 3600, 33 * 86_400 - 2 * 3600]
        .into_iter()
        .enumerate()
    {
        env.clock.advance(advance);
        let out = env
            .ingest(&mail("jan@firma.pl", &format!("bh{i}@x"), "Pytanie", "?"))
            .await;
        tags.push(env.show(out.ticket.as_deref().unwrap()).await.tags);
    }
    let empty: Vec<String> = Vec::new();
    let after = vec!["after-hours".to_string()];
    assert_eq!(tags, [empty, after.clone(), after.clone(), after]);
    env.finish().await;
}
for_each_backend!(business_hours_follow_the_calendar);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rules_are_mailed_to_the_admins_once() {
    let rules = tempfile::tempdir().unwrap();
    write_rule(rules.path(), "billing");
    let rules_dir = rules.path().to_path_buf();
    let admin = "[[agent]]\nemail = \"root@example.com\"\nrole = \"admin\"\n";
    let env = Env::configured(common::backend(), admin, move |c| {
        c.rules.dir = Some(rules_dir);
        c.rules.alert_admins = true;
    })
    .await;
    let live = env.pipeline.rules.clone();
    let cancel = tokio_util::sync::CancellationToken::new();
    let alert = ticketd::reload::Alert {
        store: env.store.clone(),
        clock: env.clock.clone(),
    };
    let task = tokio::spawn(ticketd::reload::run(
        env.config.clone(),
        ticketd::reload::Handles::of(&env.context),
        (Some(alert), None),
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let broken = "[[rule]]\nname = \"b\"\non = \"ticket.created\"\nthen = [{ set_team = \"x\" }]\n";
    std::fs::write(rules.path().join("20-broken.toml"), broken).unwrap();
    let store = env.store.clone();
    let mut queued = Vec::new();
    for _ in 0..200 {
        queued = store.due_notifications(env.clock.now(), 10).await.unwrap();
        if !queued.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].recipient, "root@example.com");
    assert!(
        queued[0]
            .body
            .contains("20-broken.toml:4:22: rule \"b\": unknown team \"x\""),
        "{}",
        queued[0].body
    );
    // Saving the same broken file again does not mail again; the good set stays.
    std::fs::write(rules.path().join("20-broken.toml"), broken).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        store
            .due_notifications(env.clock.now(), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(first_action(&live), "set_category billing");
    cancel.cancel();
    task.await.unwrap();
    env.finish().await;
}

const TAG_REPLIES: &str = r#"
[[rule]]
name = "tag replies"
on = ["comment.added"]
then = [{ add_tag = "replied" }]
"#;

/// A ticket row holding a word this version does not know (a newer
/// version's channel; status and priority have CHECK constraints, channel
/// none) is an error naming the column, never read as a default: the reply
/// whose rules need that ticket is quarantined and the row stays as it was.
async fn a_stored_word_the_code_does_not_know_is_an_error_not_a_default(backend: Backend) {
    let (env, _rules) = env_with_rules(backend, TAG_REPLIES).await;
    let first = env
        .ingest(&mail("jan@example.com", "w1@x", "Drukarka", "Nie działa."))
        .await;
    assert_eq!(first.to_string(), "TKT-2026-0001 created");
    sqlx::query("UPDATE tickets SET channel = 'whatsapp' WHERE number = 'TKT-2026-0001'")
        .execute(env.store.pool())
        .await
        .unwrap();
    let answer = env
        .ingest(&reply("jan@example.com", "w2@x", "w1@x", "Nadal nie."))
        .await;
    assert_eq!(
        answer.kind,
        ticketd::ingest::OutcomeKind::Quarantined,
        "{answer}"
    );
    let reason = answer.reason.unwrap_or_default();
    assert!(
        reason.contains("tickets.channel") && reason.contains("\"whatsapp\""),
        "{reason}"
    );
    let t = env.show("TKT-2026-0001").await;
    assert_eq!((t.comments.len(), t.tags.len()), (1, 0));
    env.finish().await;
}
for_each_backend!(a_stored_word_the_code_does_not_know_is_an_error_not_a_default);
