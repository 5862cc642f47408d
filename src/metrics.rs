//! Metrics and health over HTTP (`[metrics] listen`, loopback by default):
//! `/metrics` in the Prometheus text format, `/healthz` (the process
//! answers) and `/readyz` (the database answers). Totals come from the
//! database at each scrape (the journal, tickets, outbox, SLA timers), so
//! they survive restarts; process-wide counters (rule evaluations, IMAP
//! sessions) live here. Rendering is pure and unit-tested.

use crate::store::Store;
use crate::store::reports::MetricTotals;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// Rule evaluations (one per event and pass) and the time they took.
static RULE_EVALUATIONS: AtomicU64 = AtomicU64::new(0);
static RULE_NANOS: AtomicU64 = AtomicU64::new(0);
/// Whether each IMAP mailbox has a session now.
static IMAP: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());

/// Counts one evaluation of the rules that took `took`.
pub fn rules_evaluated(took: std::time::Duration) {
    RULE_EVALUATIONS.fetch_add(1, Ordering::Relaxed);
    RULE_NANOS.fetch_add(
        u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// Records whether mailbox `name` has an IMAP session.
pub fn imap_connected(name: &str, up: bool) {
    IMAP.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), up);
}

/// What one scrape shows.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The database's totals.
    pub totals: MetricTotals,
    pub rule_evaluations: u64,
    pub rule_seconds: f64,
    pub imap: Vec<(String, bool)>,
    pub resident_bytes: u64,
}

/// The Prometheus text exposition of a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    family(
        "ticketd_messages_total",
        "counter",
        "Inbound messages journaled, by source and outcome.",
        s.totals
            .messages
            .iter()
            .map(|(source, outcome, n)| {
                (
                    labels(&[("source", source), ("outcome", outcome)]),
                    n.to_string(),
                )
            })
            .collect(),
    );
    family(
        "ticketd_tickets",
        "gauge",
        "Tickets by status.",
        s.totals
            .tickets
            .iter()
            .map(|(status, n)| (labels(&[("status", status)]), n.to_string()))
            .collect(),
    );
    family(
        "ticketd_outbox_notifications",
        "gauge",
        "Outbox rows by channel and status (failed: delivery gave up).",
        s.totals
            .outbox
            .iter()
            .map(|(channel, status, n)| {
                (
                    labels(&[("channel", channel), ("status", status)]),
                    n.to_string(),
                )
            })
            .collect(),
    );
    family(
        "ticketd_imap_connected",
        "gauge",
        "1 while the mailbox has an IMAP session.",
        s.imap
            .iter()
            .map(|(name, up)| (labels(&[("mailbox", name)]), u8::from(*up).to_string()))
            .collect(),
    );
    for (name, kind, help, value) in unlabelled(s) {
        family(name, kind, help, vec![(String::new(), value)]);
    }
    out
}

/// The families of one unlabelled sample: name, type, help, value.
fn unlabelled(s: &Snapshot) -> [(&'static str, &'static str, &'static str, String); 5] {
    [
        (
            "ticketd_outbox_oldest_pending_seconds",
            "gauge",
            "Age of the oldest notification waiting to go out.",
            s.totals.oldest_pending_seconds.to_string(),
        ),
        (
            "ticketd_sla_breaches_total",
            "counter",
            "SLA breach timers that fired.",
            s.totals.sla_breaches.to_string(),
        ),
        (
            "ticketd_rule_evaluations_total",
            "counter",
            "Rule set evaluations (one per event and pass) since start.",
            s.rule_evaluations.to_string(),
        ),
        (
            "ticketd_rule_evaluation_seconds_total",
            "counter",
            "Time spent evaluating rules since start.",
            format!("{:.6}", s.rule_seconds),
        ),
        (
            "ticketd_process_resident_memory_bytes",
            "gauge",
            "Resident memory of the process.",
            s.resident_bytes.to_string(),
        ),
    ]
}

/// `{a="x",b="y"}` with values escaped as the format wants.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Reads a snapshot: the database's totals and this process's counters.
pub async fn snapshot(store: &Store, now: i64) -> crate::store::Result<Snapshot> {
    Ok(Snapshot {
        totals: store.metric_totals(now).await?,
        rule_evaluations: RULE_EVALUATIONS.load(Ordering::Relaxed),
        rule_seconds: RULE_NANOS.load(Ordering::Relaxed) as f64 / 1e9,
        imap: IMAP
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        resident_bytes: resident_bytes(),
    })
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Serves until `cancel` on `listener`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    clock: crate::clock::Clock,
    cancel: CancellationToken,
) {
    loop {
        let (socket, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("metrics: accept: {e}");
                    continue;
                }
            },
        };
        let (store, clock) = (store.clone(), clock.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (store, clock) = (store.clone(), clock.clone());
                async move { Ok::<_, hyper::Error>(answer(&store, clock.now(), req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(socket);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

async fn answer(store: &Store, now: i64, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: u16, body: String, kind: &str| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    let plain = "text/plain; charset=utf-8";
    match req.uri().path() {
        "/healthz" => text(200, "ok\n".into(), plain),
        "/readyz" => match store.outbox_depth().await {
            Ok(_) => text(200, "ready\n".into(), plain),
            Err(e) => text(503, format!("database: {e}\n"), plain),
        },
        "/metrics" => match snapshot(store, now).await {
            Ok(s) => text(200, render(&s), "text/plain; version=0.0.4; charset=utf-8"),
            Err(e) => text(503, format!("database: {e}\n"), plain),
        },
        _ => text(404, "not found\n".into(), plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_dashboard_asks_only_for_metrics_we_export() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana-ticketd.json"
        ))
        .unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
        let exported = render(&Snapshot::default());
        let names = regex::Regex::new(r"ticketd_[a-z_]+").unwrap();
        let mut asked = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for name in names.find_iter(expr) {
                    asked += 1;
                    assert!(
                        exported.contains(&format!("# TYPE {} ", name.as_str())),
                        "{} is not exported",
                        name.as_str()
                    );
                }
            }
        }
        assert!(asked >= 9);
    }

    #[test]
    fn the_exposition_has_help_type_and_escaped_labels() {
        let s = Snapshot {
            totals: MetricTotals {
                messages: vec![("imap:sup\"port".into(), "created".into(), 3)],
                tickets: vec![("open".into(), 2)],
                ..MetricTotals::default()
            },
            imap: vec![("support".into(), true)],
            rule_seconds: 0.25,
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("# TYPE ticketd_messages_total counter\n"));
        assert!(text.contains(
            "ticketd_messages_total{source=\"imap:sup\\\"port\",outcome=\"created\"} 3\n"
        ));
        assert!(text.contains("ticketd_tickets{status=\"open\"} 2\n"));
        assert!(text.contains("ticketd_imap_connected{mailbox=\"support\"} 1\n"));
        assert!(text.contains("ticketd_rule_evaluation_seconds_total 0.250000\n"));
        // Every sample line is `name[{labels}] number`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
