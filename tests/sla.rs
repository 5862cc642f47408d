//! SLA clocks with a controllable clock (no sleeping): due times stored on
//! new tickets, thresholds fired exactly once into the rules and to the
//! people who must act, pending time left out, restarts that do not re-fire.

mod common;

use common::{Env, START};
use ticketd::scheduler::Scheduler;
use ticketd::store::Backend;
use ticketd::ticket::Status;

const PEOPLE: &str = r#"
[[team]]
name = "billing"

[[agent]]
email = "anna@example.com"
role = "manager"
teams = ["billing"]

[[agent]]
email = "ewa@example.com"
teams = ["billing"]
"#;

const RULES: &str = r#"
[[rule]]
name = "to ewa"
on = "ticket.created"
then = [{ assign = "ewa@example.com" }, { set_team = "billing" }]

[[rule]]
name = "warned"
on = "sla.warning"
then = [{ add_tag = "sla-warned" }]

[[rule]]
name = "idle"
on = "ticket.idle"
then = [{ add_tag = "idle" }]

[[rule]]
name = "escalate on breach"
on = "sla.breached"
then = [{ escalate = true }]
"#;

async fn env(backend: Backend) -> (Env, tempfile::TempDir) {
    env_with(backend, "").await
}

async fn env_with(backend: Backend, extra: &str) -> (Env, tempfile::TempDir) {
    Env::with_rules(backend, &format!("{PEOPLE}{extra}"), RULES).await
}

fn scheduler(env: &Env) -> Scheduler {
    Scheduler::of(&env.context, &env.config)
}

fn mail(id: &str) -> Vec<u8> {
    format!(
        "From: jan@firma.pl\r\nTo: support@example.com\r\nSubject: Faktura\r\nMessage-ID: <{id}>\r\n\r\nZła kwota.\r\n"
    )
    .into_bytes()
}

fn sla_notices(t: &ticketd::store::queries::TicketDetail) -> Vec<(String, String)> {
    t.notifications
        .iter()
        .filter(|n| n.event.starts_with("sla_"))
        .map(|n| (n.event.clone(), n.recipient.clone()))
        .collect()
}

async fn thresholds_fire_once_into_rules_and_notices(backend: Backend) {
    let (env, _rules) = env(backend).await;
    let number = env.ingest(&mail("s1@firma.pl")).await.ticket.unwrap();
    let t = env.show(&number).await;
    // Medium priority: first response in 8 h, resolution in 72 h (wall time).
    assert_eq!(
        t.first_response_due.as_deref(),
        Some("2026-11-20T18:00:00Z")
    );
    assert_eq!(t.resolution_due.as_deref(), Some("2026-11-23T10:00:00Z"));

    let s = scheduler(&env);
    assert_eq!(s.fire_due().await.unwrap(), 0, "nothing is due at creation");
    // 80 % of 8 h = 6 h 24 min.
    env.clock.advance(6 * 3600 + 24 * 60 - 1);
    assert_eq!(s.fire_due().await.unwrap(), 0);
    env.clock.advance(1);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    let t = env.show(&number).await;
    assert_eq!(t.tags, ["sla-warned"]);
    assert_eq!(
        sla_notices(&t),
        [
            ("sla_warning".to_string(), "anna@example.com".to_string()),
            ("sla_warning".to_string(), "ewa@example.com".to_string()),
        ]
    );
    // A restarted scheduler (a new instance on the same store) fires nothing again.
    assert_eq!(scheduler(&env).fire_due().await.unwrap(), 0);

    // The breach at 8 h: the rule escalates to high, so the resolution
    // target shrinks to 24 h and its timers move earlier.
    env.clock.advance(96 * 60);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    let t = env.show(&number).await;
    assert_eq!(t.priority, "high");
    // The first response is now due at 4 h (high), already past; its
    // thresholds fired once and do not fire again.
    assert_eq!(
        t.first_response_due.as_deref(),
        Some("2026-11-20T14:00:00Z")
    );
    assert_eq!(t.resolution_due.as_deref(), Some("2026-11-21T10:00:00Z"));
    assert_eq!(sla_notices(&t).len(), 4);
    assert_eq!(
        env.store.fired_timers(&number).await.unwrap(),
        ["first_response.warning", "first_response.breach"]
    );
    let listed = env
        .store
        .list_tickets(None, 10, env.clock.now())
        .await
        .unwrap();
    assert!(listed[0].sla_breached);
    assert_eq!(listed[0].sla_due.as_deref(), Some("2026-11-20T14:00:00Z"));
    assert_eq!(listed[0].sla_remaining, Some(-4 * 3600));
    env.finish().await;
}

async fn pending_time_is_left_out_and_an_agent_reply_stops_the_first_response_clock(
    backend: Backend,
) {
    let (env, _rules) = env(backend).await;
    let number = env.ingest(&mail("p1@firma.pl")).await.ticket.unwrap();
    // An agent answers after 1 h: the first-response clock stops.
    env.clock.advance(3600);
    let reply = "From: ewa@example.com\r\nTo: jan@firma.pl\r\nSubject: Re: Faktura\r\n\
                 Message-ID: <p2@example.com>\r\nIn-Reply-To: <p1@firma.pl>\r\n\r\nSprawdzamy.\r\n";
    env.ingest(reply.as_bytes()).await;
    let t = env.show(&number).await;
    assert_eq!(t.first_response_at.as_deref(), Some("2026-11-20T11:00:00Z"));
    assert_eq!(t.first_response_due, None);

    // Waiting for the customer for 10 h, then the customer writes back.
    env.store
        .change_status(
            &number,
            Status::Pending,
            "ewa@example.com",
            env.clock.now(),
            &env.pipeline.settings.current().policies,
        )
        .await
        .unwrap();
    env.clock.advance(10 * 3600);
    let back = "From: jan@firma.pl\r\nTo: support@example.com\r\nSubject: Re: Faktura\r\n\
                Message-ID: <p3@firma.pl>\r\nIn-Reply-To: <p2@example.com>\r\n\r\nOto dane.\r\n";
    env.ingest(back.as_bytes()).await;
    let t = env.show(&number).await;
    assert_eq!(t.status, "open");
    // 72 h + the 10 h spent pending.
    assert_eq!(t.resolution_due.as_deref(), Some("2026-11-23T20:00:00Z"));

    // Nothing fires at the old warning time (57 h 36 min after creation)…
    let s = scheduler(&env);
    env.clock
        .advance(START + 57 * 3600 + 36 * 60 - env.clock.now());
    assert_eq!(s.fire_due().await.unwrap(), 0);
    // …but 10 h later it does.
    env.clock
        .advance(START + 67 * 3600 + 36 * 60 - env.clock.now());
    assert_eq!(s.fire_due().await.unwrap(), 1);
    assert_eq!(
        env.store.fired_timers(&number).await.unwrap(),
        ["resolution.warning"]
    );
    env.finish().await;
}

async fn thresholds_fire_in_due_order(backend: Backend) {
    let (env, _rules) = env(backend).await;
    let later = env.ingest(&mail("o1@firma.pl")).await.ticket.unwrap();
    env.clock.advance(60);
    let critical = "From: jan@firma.pl\r\nTo: support@example.com\r\nSubject: Awaria\r\n\
                    Message-ID: <o2@firma.pl>\r\nX-Priority: 1\r\n\r\n!\r\n";
    let earlier = env.ingest(critical.as_bytes()).await.ticket.unwrap();
    // Make the second ticket critical by hand: its first response is due in 1 h.
    let mut tx = env.store.begin().await.unwrap();
    let id = ticketd::store::tickets::ticket_id_by_number(&mut tx, &earlier)
        .await
        .unwrap()
        .unwrap();
    let by = ticketd::store::changes::By {
        actor: "test",
        rule: None,
        now: env.clock.now(),
    };
    let state = ticketd::store::changes::ticket_state(&mut tx, id)
        .await
        .unwrap()
        .unwrap();
    let critical = ticketd::store::changes::Field::Priority(ticketd::ticket::Priority::Critical);
    ticketd::store::changes::set_field(&mut tx, &state, critical, by)
        .await
        .unwrap();
    ticketd::store::sla::reschedule(&mut tx, id, &env.pipeline.settings.current().policies)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    env.clock.advance(7 * 3600);
    let due = env.store.due_timers(env.clock.now(), 10).await.unwrap();
    let order: Vec<(i64, &str)> = due
        .iter()
        .map(|t| (t.due_at - START, t.kind.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (60 + 2880, "first_response.warning"),
            (60 + 3600, "first_response.breach"),
            (60 + 11_520, "resolution.warning"),
            (60 + 14_400, "resolution.breach"),
            (23_040, "first_response.warning"),
        ]
    );
    // One threshold per ticket and batch, in due order: the critical
    // ticket's four, then the other ticket's warning with the last of them.
    let scheduler = scheduler(&env);
    let mut batches = Vec::new();
    loop {
        match scheduler.fire_due().await.unwrap() {
            0 => break,
            n => batches.push(n),
        }
    }
    assert_eq!(batches, [1, 1, 1, 2]);
    assert_eq!(
        env.store.fired_timers(&later).await.unwrap(),
        ["first_response.warning"]
    );
    env.finish().await;
}

async fn idle_pending_and_resolved_tickets_move_on_by_themselves(backend: Backend) {
    let life = "[sla]\nidle_after = \"4d\"\npending_reminder_days = 3\npending_resolve_days = 4\nauto_close_days = 30\n";
    let (env, _rules) = env_with(backend, life).await;
    let number = env.ingest(&mail("l1@firma.pl")).await.ticket.unwrap();
    let s = scheduler(&env);
    // The SLA breaches of the first day escalate the ticket (a change);
    // four days after that change, ticket.idle.
    env.clock.advance(86_400);
    while s.fire_due().await.unwrap() > 0 {}
    env.clock.advance(4 * 86_400 - 1);
    assert_eq!(s.fire_due().await.unwrap(), 0);
    env.clock.advance(1);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    let t = env.show(&number).await;
    assert!(t.tags.contains(&"idle".to_string()), "{:?}", t.tags);

    // Pending: a reminder after 3 days, resolved 4 days later, closed 30 days after that.
    env.store
        .change_status(
            &number,
            Status::Pending,
            "ewa@example.com",
            env.clock.now(),
            &env.pipeline.settings.current().policies,
        )
        .await
        .unwrap();
    env.clock.advance(3 * 86_400);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    env.clock.advance(4 * 86_400);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    assert_eq!(env.show(&number).await.status, "resolved");
    env.clock.advance(30 * 86_400 - 1);
    assert_eq!(s.fire_due().await.unwrap(), 0);
    env.clock.advance(1);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    let t = env.show(&number).await;
    assert_eq!(t.status, "closed");
    let to_requester: Vec<&str> = t
        .notifications
        .iter()
        .filter(|n| n.recipient == "jan@firma.pl")
        .map(|n| n.event.as_str())
        .collect();
    assert_eq!(
        to_requester,
        [
            "ticket_created",
            "pending_reminder",
            "ticket_resolved",
            "auto_close"
        ]
    );
    let by_scheduler: Vec<(&str, Option<&str>)> = t
        .history
        .iter()
        .filter(|h| h.actor == "scheduler")
        .map(|h| (h.field.as_str(), h.new.as_deref()))
        .collect();
    assert_eq!(
        by_scheduler,
        [("status", Some("resolved")), ("status", Some("closed"))]
    );
    assert_eq!(scheduler(&env).fire_due().await.unwrap(), 0);
    env.finish().await;
}

async fn a_second_pending_period_gets_its_own_reminder(backend: Backend) {
    let life = "[sla]\npending_reminder_days = 3\npending_resolve_days = 0\n";
    let (env, _rules) = env_with(backend, life).await;
    let number = env.ingest(&mail("p1@firma.pl")).await.ticket.unwrap();
    let s = scheduler(&env);
    let status = |status| {
        let env = &env;
        let number = &number;
        async move {
            env.store
                .change_status(
                    number,
                    status,
                    "ewa@example.com",
                    env.clock.now(),
                    &env.pipeline.settings.current().policies,
                )
                .await
                .unwrap()
        }
    };
    let reminders = |t: &ticketd::store::queries::TicketDetail| {
        t.notifications
            .iter()
            .filter(|n| n.event == "pending_reminder")
            .count()
    };
    status(Status::Pending).await;
    env.clock.advance(3 * 86_400);
    while s.fire_due().await.unwrap() > 0 {}
    assert_eq!(reminders(&env.show(&number).await), 1);
    // The customer answers; later the agent waits for them again.
    status(Status::Open).await;
    env.clock.advance(3600);
    status(Status::Pending).await;
    env.clock.advance(3 * 86_400 - 1);
    while s.fire_due().await.unwrap() > 0 {}
    assert_eq!(reminders(&env.show(&number).await), 1);
    env.clock.advance(1);
    while s.fire_due().await.unwrap() > 0 {}
    assert_eq!(
        reminders(&env.show(&number).await),
        2,
        "one per pending period"
    );
    env.clock.advance(30 * 86_400);
    while s.fire_due().await.unwrap() > 0 {}
    assert_eq!(reminders(&env.show(&number).await), 2, "and only one");
    env.finish().await;
}

// A new ticket that no rule touches gets its clocks without a reschedule:
// due times in its row, timers written at the batch's commit (also when a
// reply in the same batch reschedules one of them).
async fn clocks_of_untouched_tickets_are_armed_at_commit(backend: Backend) {
    let rules = r#"
[[rule]]
name = "warned"
on = "sla.warning"
then = [{ add_tag = "sla-warned" }]
"#;
    let (env, _rules) = Env::with_rules(backend, PEOPLE, rules).await;
    let raw = |from: &str, id: &str, extra: &str| {
        format!(
            "From: {from}\r\nTo: support@example.com\r\nSubject: Faktura {id}\r\nMessage-ID: <{id}>\r\n{extra}\r\nZła kwota.\r\n"
        )
    };
    let raws = [
        raw("jan@firma.pl", "u1@firma.pl", ""),
        raw("ola@firma.pl", "u2@firma.pl", ""),
        // An agent's public reply: the first response, which reschedules.
        raw(
            "ewa@example.com",
            "u3@example.com",
            "In-Reply-To: <u2@firma.pl>\r\n",
        ),
    ];
    let outcomes = Env::ingest_batch(&env.pipeline, "0", &raws).await;
    let (first, second) = (
        outcomes[0].ticket.clone().unwrap(),
        outcomes[1].ticket.clone().unwrap(),
    );
    assert_eq!(outcomes[2].ticket.as_deref(), Some(second.as_str()));
    // The answered ticket's first-response clock stopped.
    for (number, first_response) in [(&first, Some("2026-11-20T18:00:00Z")), (&second, None)] {
        let t = env.show(number).await;
        assert_eq!(t.first_response_due.as_deref(), first_response);
        assert_eq!(t.resolution_due.as_deref(), Some("2026-11-23T10:00:00Z"));
    }
    // Only the clocks that run: the answered ticket has no first-response timers.
    let kinds = |number: String| {
        let pool = env.store.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT s.kind FROM sla_timers s JOIN tickets t ON t.id = s.ticket_id
                 WHERE t.number = $1 ORDER BY s.kind",
            )
            .bind(number)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let all = [
        "first_response.breach",
        "first_response.warning",
        "resolution.breach",
        "resolution.warning",
    ];
    assert_eq!(kinds(first.clone()).await, all);
    assert_eq!(kinds(second.clone()).await, all[2..]);
    let s = scheduler(&env);
    assert_eq!(s.fire_due().await.unwrap(), 0, "nothing is due at creation");
    // 80 % of 8 h: only the unanswered ticket's first-response warning.
    env.clock.advance(6 * 3600 + 24 * 60);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    assert_eq!(env.show(&first).await.tags, ["sla-warned"]);
    assert!(env.show(&second).await.tags.is_empty());
    // 80 % of 72 h: the first ticket's breach and both resolution warnings,
    // once each (one threshold per ticket and run).
    env.clock.advance(72 * 3600 * 8 / 10 - (6 * 3600 + 24 * 60));
    let mut fired = 0;
    loop {
        match s.fire_due().await.unwrap() {
            0 => break,
            n => fired += n,
        }
    }
    assert_eq!(fired, 3);
    assert_eq!(
        env.store.fired_timers(&first).await.unwrap(),
        [
            "first_response.warning",
            "first_response.breach",
            "resolution.warning"
        ]
    );
    assert_eq!(
        env.store.fired_timers(&second).await.unwrap(),
        ["resolution.warning"]
    );
    env.finish().await;
}

for_each_backend!(clocks_of_untouched_tickets_are_armed_at_commit);
for_each_backend!(thresholds_fire_once_into_rules_and_notices);
for_each_backend!(a_second_pending_period_gets_its_own_reminder);
for_each_backend!(pending_time_is_left_out_and_an_agent_reply_stops_the_first_response_clock);
for_each_backend!(thresholds_fire_in_due_order);
for_each_backend!(idle_pending_and_resolved_tickets_move_on_by_themselves);

/// Two schedulers (two instances) on one PostgreSQL database, firing at once:
/// every threshold fires exactly once between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_on_postgres_fire_each_threshold_once() {
    let (env, _rules) = env(Backend::Postgres).await;
    let mut numbers = Vec::new();
    for i in 0..40 {
        numbers.push(
            env.ingest(&mail(&format!("two{i}@firma.pl")))
                .await
                .ticket
                .unwrap(),
        );
    }
    // Every ticket: the first-response warning is due.
    env.clock.advance(6 * 3600 + 24 * 60);
    let (a, b) = (scheduler(&env), scheduler(&env));
    let (fa, fb) = tokio::join!(a.fire_due(), b.fire_due());
    assert_eq!(fa.unwrap() + fb.unwrap(), 40);
    for n in &numbers {
        let t = env.show(n).await;
        assert_eq!(sla_notices(&t).len(), 2, "{n}: {:?}", sla_notices(&t));
        assert_eq!(
            env.store.fired_timers(n).await.unwrap(),
            ["first_response.warning"]
        );
    }
    env.finish().await;
}

const SCHEDULED: &str = r#"
[[rule]]
name = "morning digest"
on = "schedule"
schedule = "0 0 8 * * Mon-Fri"
then = [{ digest = { to = "team" } }, { digest = { to = "managers" } }]

[[rule]]
name = "stale pending"
on = "schedule"
schedule = "0 0 * * * *"
when = { status = "pending", idle.gt = "2d" }
then = [{ add_tag = "stale" }]

[[rule]]
name = "weekly report"
on = "schedule"
schedule = "0 0 9 * * Mon"
then = [{ report = { to = "managers", period = "7d", by = "agent" } }]
"#;

async fn scheduled_env(backend: Backend) -> (Env, tempfile::TempDir) {
    let zone = "[rules]\ntime_zone = \"Europe/Warsaw\"\n";
    Env::with_rules(
        backend,
        &format!("{PEOPLE}{zone}"),
        &format!("{RULES}{SCHEDULED}"),
    )
    .await
}

/// Notifications about no single ticket (digests, reports): (event, recipient, body).
async fn summaries(env: &Env) -> Vec<(String, String, String)> {
    use sqlx::Row;
    sqlx::query("SELECT event, recipient, body FROM outbox WHERE ticket_id IS NULL ORDER BY id")
        .fetch_all(env.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn scheduled_rules_run_once_per_slot(backend: Backend) {
    let (env, _rules) = scheduled_env(backend).await;
    // Friday 2026-11-20 11:00 in Warsaw.
    let waiting = env.ingest(&mail("c1@firma.pl")).await.ticket.unwrap();
    let busy = env.ingest(&mail("c2@firma.pl")).await.ticket.unwrap();
    let s = scheduler(&env);
    assert_eq!(
        s.run_schedules().await.unwrap(),
        0,
        "no slot since the rules were first seen"
    );
    env.store
        .change_status(
            &waiting,
            Status::Pending,
            "ewa@example.com",
            env.clock.now(),
            &env.pipeline.settings.current().policies,
        )
        .await
        .unwrap();
    // 12:00 Warsaw: the hourly rule runs once; a restarted scheduler does not repeat it.
    env.clock.advance(3600);
    assert_eq!(s.next_schedule(env.clock.now() - 1), Some(env.clock.now()));
    assert_eq!(s.run_schedules().await.unwrap(), 1);
    assert_eq!(s.run_schedules().await.unwrap(), 0);
    assert_eq!(scheduler(&env).run_schedules().await.unwrap(), 0);
    assert!(
        env.show(&waiting).await.tags.is_empty(),
        "pending for 1 h only"
    );

    // Down over the weekend; Monday 08:00 Warsaw (07:00 UTC): the hourly rule
    // runs once for its latest slot, and the digest runs.
    env.clock.advance(2 * 86_400 + 20 * 3600);
    assert_eq!(
        ticketd::clock::rfc3339(env.clock.now()),
        "2026-11-23T07:00:00Z"
    );
    assert_eq!(s.run_schedules().await.unwrap(), 2);
    let t = env.show(&waiting).await;
    assert_eq!(t.tags, ["stale"]);
    assert!(
        t.history
            .iter()
            .any(|h| h.rule.as_deref() == Some("stale pending")),
        "the change names its rule"
    );
    assert!(env.show(&busy).await.tags.is_empty());
    let runs = env.store.schedule_runs("stale pending").await.unwrap();
    let slots: Vec<i64> = runs
        .iter()
        .map(|r| r.0 - ticketd::clock::Timestamp::from(common::START))
        .collect();
    assert_eq!(slots, [3600, 3600 + 2 * 86_400 + 20 * 3600]);
    assert_eq!(runs[1].1, 1, "one ticket matched");

    let digests = summaries(&env).await;
    let to: Vec<&str> = digests.iter().map(|d| d.1.as_str()).collect();
    // The team's members get the team's digest; the managers all tickets.
    assert_eq!(
        to,
        ["anna@example.com", "ewa@example.com", "anna@example.com"]
    );
    for (event, _, body) in &digests {
        assert_eq!(event, "daily_digest");
        assert!(body.contains(&waiting) && body.contains(&busy), "{body}");
        assert!(
            body.contains("ewa@example.com, opened 2 d 21 h ago"),
            "{body}"
        );
    }

    // Monday 09:00 Warsaw: the weekly report of the last 7 days, to the managers.
    env.clock.advance(3600);
    assert_eq!(s.run_schedules().await.unwrap(), 2);
    let report = summaries(&env).await.pop().unwrap();
    assert_eq!(
        (report.0.as_str(), report.1.as_str()),
        ("sla_report", "anna@example.com")
    );
    let total = report
        .2
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or_default()
        .to_string();
    let cells: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(cells[..3], ["total", "2", "0"], "{}", report.2);
    assert!(report.2.contains("ewa@example.com"), "{}", report.2);
    env.finish().await;
}

for_each_backend!(scheduled_rules_run_once_per_slot);

/// Two instances on one PostgreSQL database reach the same cron slot at
/// once: the slot runs once, one digest per recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_on_postgres_run_each_slot_once() {
    let (env, _rules) = scheduled_env(Backend::Postgres).await;
    env.ingest(&mail("d1@firma.pl")).await.ticket.unwrap();
    let (a, b) = (scheduler(&env), scheduler(&env));
    assert_eq!(
        a.run_schedules().await.unwrap() + b.run_schedules().await.unwrap(),
        0
    );
    env.clock.advance(2 * 86_400 + 21 * 3600);
    let (ra, rb) = tokio::join!(a.run_schedules(), b.run_schedules());
    assert_eq!(
        ra.unwrap() + rb.unwrap(),
        2,
        "the hourly rule and the digest"
    );
    assert_eq!(summaries(&env).await.len(), 3);
    env.finish().await;
}

// After ticket.idle fired, the requester comments: the idle timer is armed
// again from that comment, not when another timer happens to recompute the
// clocks. Failed on e4d9901 (no second ticket.idle until then).
async fn a_comment_after_idle_arms_it_again(backend: Backend) {
    let quiet = "[sla.first_response]\ncritical = \"90d\"\nhigh = \"90d\"\nmedium = \"90d\"\nlow = \"90d\"\n\
                 [sla.resolution]\ncritical = \"90d\"\nhigh = \"90d\"\nmedium = \"90d\"\nlow = \"90d\"\n";
    let config = format!("[sla]\nidle_after = \"2d\"\nwarning_percent = 99\n{quiet}");
    let (env, _rules) = Env::with_rules(backend, &config, "").await;
    let number = env.ingest(&mail("idle-1@firma.pl")).await.ticket.unwrap();
    let s = scheduler(&env);
    let idle_events = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM sla_timers WHERE kind = 'idle' AND fired_at IS NOT NULL",
        )
        .fetch_one(env.store.pool())
        .await
        .unwrap()
    };
    env.clock.advance(2 * 86_400);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    assert_eq!(idle_events().await, 1);
    // A day later the requester writes again …
    env.clock.advance(86_400);
    let reply = format!(
        "From: jan@firma.pl\r\nTo: support@example.com\r\nSubject: Re: [{number}] Faktura\r\n\
         Message-ID: <idle-2@firma.pl>\r\nIn-Reply-To: <idle-1@firma.pl>\r\n\r\nNadal źle.\r\n"
    );
    assert_eq!(
        env.ingest(reply.as_bytes()).await.to_string(),
        format!("{number} comment")
    );
    // … and two days after that comment the ticket is idle again, on time.
    env.clock.advance(2 * 86_400 - 1);
    assert_eq!(s.fire_due().await.unwrap(), 0);
    env.clock.advance(1);
    assert_eq!(s.fire_due().await.unwrap(), 1);
    let timers: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, due_at FROM sla_timers WHERE kind = 'idle'")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    assert_eq!(timers.len(), 1, "{timers:?}");
    env.finish().await;
}
for_each_backend!(a_comment_after_idle_arms_it_again);

// A rule that only categorizes and tags leaves the clocks planned at
// creation (no recomputation); one that raises the priority replans them.
async fn only_rules_that_touch_the_clocks_replan_them(backend: Backend) {
    let rules = r#"
[[rule]]
name = "billing"
on = "ticket.created"
then = [{ set_category = "billing" }, { add_tag = "faktura" }]
[rule.when]
subject.contains = "Faktura"

[[rule]]
name = "urgent"
on = "ticket.created"
then = [{ set_priority = "high" }]
[rule.when]
subject.contains = "PILNE"
"#;
    let (env, _rules) = Env::with_rules(backend, PEOPLE, rules).await;
    let plain = env.ingest(&mail("c1@firma.pl")).await.ticket.unwrap();
    let urgent = env
        .ingest(
            b"From: jan@firma.pl\r\nTo: support@example.com\r\nSubject: Faktura PILNE\r\n\
              Message-ID: <c2@firma.pl>\r\n\r\nZla kwota.\r\n",
        )
        .await
        .ticket
        .unwrap();
    let t = env.show(&plain).await;
    assert_eq!(
        (t.category.as_str(), t.priority.as_str()),
        ("billing", "medium")
    );
    // Medium: first response 8 h, resolution 72 h from 2026-11-20T10:00:00Z.
    assert_eq!(
        t.first_response_due.as_deref(),
        Some("2026-11-20T18:00:00Z")
    );
    assert_eq!(t.resolution_due.as_deref(), Some("2026-11-23T10:00:00Z"));
    // High: 4 h and 24 h.
    let u = env.show(&urgent).await;
    assert_eq!(u.priority, "high");
    assert_eq!(
        u.first_response_due.as_deref(),
        Some("2026-11-20T14:00:00Z")
    );
    assert_eq!(u.resolution_due.as_deref(), Some("2026-11-21T10:00:00Z"));
    // Both have their four breach and warning timers, at those times.
    let timers: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT t.number, s.kind, s.due_at FROM sla_timers s JOIN tickets t ON t.id = s.ticket_id
         WHERE s.kind = 'first_response.breach' ORDER BY t.number",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(timers.len(), 2, "{timers:?}");
    assert_eq!(timers[0].2, common::START + 8 * 3600);
    assert_eq!(timers[1].2, common::START + 4 * 3600);
    env.finish().await;
}
for_each_backend!(only_rules_that_touch_the_clocks_replan_them);
