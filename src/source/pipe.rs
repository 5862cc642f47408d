//! The MTA pipe: `ticketd ingest [FILE ...]` reads messages from files, or one
//! from standard input, and exits with sysexits codes the MTA understands.

use super::{BATCH_BYTES, read_bounded};
use crate::ingest::{Inbound, Outcome, OutcomeKind, Pipeline, Prepared};
use crate::store;
use std::path::PathBuf;

pub const SOURCE: &str = "pipe";
/// Stored (also for duplicates).
pub const EXIT_OK: i32 = 0;
/// The input is not a mail message (it was quarantined).
pub const EXIT_DATAERR: i32 = 65;
/// The store is unavailable: the MTA should try again later.
pub const EXIT_TEMPFAIL: i32 = 75;

/// Messages per transaction. Two batches are in memory at once (one
/// parsing while the other commits), so each is half the usual 200.
const BATCH: usize = 100;

/// Where a message comes from.
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    fn key(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) => p.display().to_string(),
        }
    }

    fn open(&self) -> std::io::Result<Box<dyn std::io::Read>> {
        Ok(match self {
            Input::Stdin => Box::new(std::io::stdin().lock()),
            Input::File(p) => Box::new(std::fs::File::open(p)?),
        })
    }
}

/// Ingests every input, printing one line per message to `out`, and returns
/// the process exit code.
pub async fn run(pipeline: &Pipeline, inputs: Vec<Input>, out: &mut impl std::io::Write) -> i32 {
    let mut code = EXIT_OK;
    let mut batch: Vec<Inbound> = Vec::new();
    let mut bytes = 0u64;
    // The batch being made ready on another thread while the one before commits.
    let mut ready: Option<Preparing> = None;
    for input in &inputs {
        let key = input.key();
        let read = input
            .open()
            .and_then(|r| read_bounded(r, pipeline.max_message_bytes, pipeline.quarantine_dir()));
        match read {
            Ok(received) => {
                let m = received.into_inbound(SOURCE, key, pipeline.max_message_bytes);
                bytes += m.raw.len() as u64;
                batch.push(m);
            }
            Err(e) => {
                eprintln!("error: cannot read {key}: {e}");
                code = code.max(EXIT_TEMPFAIL);
            }
        }
        if batch.len() >= BATCH || bytes >= BATCH_BYTES {
            let next = prepare(pipeline, std::mem::take(&mut batch));
            if let Some(done) = ready.replace(next) {
                code = code.max(commit(pipeline, done, out).await);
            }
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        let next = prepare(pipeline, batch);
        if let Some(done) = ready.replace(next) {
            code = code.max(commit(pipeline, done, out).await);
        }
    }
    if let Some(done) = ready {
        code = code.max(commit(pipeline, done, out).await);
    }
    code
}

/// A batch being parsed and its files written on a blocking thread.
type Preparing = tokio::task::JoinHandle<(Vec<Inbound>, std::io::Result<Vec<Prepared>>)>;

fn prepare(pipeline: &Pipeline, batch: Vec<Inbound>) -> Preparing {
    let files = pipeline.files();
    tokio::task::spawn_blocking(move || {
        let prepared = files.prepare_batch(&batch);
        (batch, prepared)
    })
}

/// Commits a prepared batch and prints its outcomes: the exit code.
async fn commit(pipeline: &Pipeline, preparing: Preparing, out: &mut impl std::io::Write) -> i32 {
    match preparing.await {
        Ok((batch, prepared)) => report(pipeline.ingest_prepared(&batch, prepared).await, out),
        Err(e) => {
            eprintln!("error: preparing a batch failed: {e}");
            EXIT_TEMPFAIL
        }
    }
}

fn report(result: store::Result<Vec<Outcome>>, out: &mut impl std::io::Write) -> i32 {
    match result {
        Ok(outcomes) => {
            let mut code = EXIT_OK;
            for o in outcomes {
                let _ = writeln!(out, "{o}");
                if o.kind == OutcomeKind::Quarantined {
                    code = EXIT_DATAERR;
                }
            }
            code
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_TEMPFAIL
        }
    }
}
