//! Memory benchmark: peak resident memory of the release binary taking big
//! mail, through the real entry points, in a work dir holding the shipped
//! `config/`, `rules/` and `templates/`:
//!
//!     cargo bench --bench memory -- [--messages 20] [--mb 59]
//!
//! Writes N messages of about M MB each (a Polish text part and a PDF-like
//! attachment, base64 as mail clients send it), then
//! 1. `ticketd ingest FILE…` of all of them: peak RSS (VmHWM) and time;
//! 2. `ticketd run` draining them from the Maildir inbox: peak RSS and time.
//!
//! Batches are bounded by bytes (`source::BATCH_BYTES`, 32 MB), so the peak
//! follows the largest message, not the count.

#[path = "support/args.rs"]
mod args;
#[path = "support/workdir.rs"]
mod workdir;

use args::arg;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use workdir::{ticketd_bin, work_dir};

/// One message of about `mb` MB: even ones a short text and a big
/// attachment, odd ones a big text body (a pasted log, quoted-printable).
fn message(i: usize, mb: usize) -> Vec<u8> {
    if i % 2 == 1 {
        return text_message(i, mb);
    }
    let mut out = format!(
        "From: Klient {i} <klient{i}@firma.pl>\r\nTo: support@example.com\r\n\
         Subject: Skany dokumentów {i}\r\nMessage-ID: <big-{i}@firma.pl>\r\n\
         Date: Mon, 7 Dec 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Dzień dobry, w załączniku skany faktur za listopad. Proszę o korektę.\r\n\r\n\
         --b\r\nContent-Type: application/pdf; name=\"skany-{i}.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"skany-{i}.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    // base64 lines of 76 characters from a byte pattern that differs per message.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let lines = mb * 1024 * 1024 / 78;
    let mut seed = (i as u64 + 1) * 0x9E37_79B9_7F4A_7C15;
    for _ in 0..lines {
        for _ in 0..76 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out.push(alphabet[(seed % 64) as usize]);
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--b--\r\n");
    out
}

/// A message whose body is a pasted log of about `mb` MB, with Polish
/// letters (quoted-printable) and a quoted earlier message at the end.
fn text_message(i: usize, mb: usize) -> Vec<u8> {
    let mut out = format!(
        "From: Klient {i} <klient{i}@firma.pl>\r\nTo: support@example.com\r\n\
         Subject: Log z serwera {i}\r\nMessage-ID: <big-{i}@firma.pl>\r\n\
         Date: Mon, 7 Dec 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         Dzie=C5=84 dobry, poni=C5=BCej log z serwera:\r\n\r\n"
    )
    .into_bytes();
    let mut line = 0usize;
    while out.len() < mb * 1024 * 1024 {
        line += 1;
        out.extend_from_slice(
            format!(
                "2026-12-07T10:{:02}:{:02} b=C5=82=C4=85d po=C5=82=C4=85czenia z baz=C4=85 \
                 (pr=C3=B3ba {line}), kod 0x{:08x}\r\n",
                (line / 60) % 60,
                line % 60,
                line * 2_654_435_761 % 4_294_967_296
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        b"\r\nW dniu 6.12.2026 o 10:00 Support pisze:\r\n> Prosz=C4=99 o log.\r\n",
    );
    out
}

fn peak_kib(pid: u32) -> u64 {
    args::process_status_kib(&pid.to_string(), "VmHWM:")
}

/// Waits for `child` (or for `done`), sampling its peak memory; returns the
/// peak in MB.
fn watch(child: &mut Child, mut done: impl FnMut() -> bool) -> anyhow::Result<f64> {
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        peak = peak.max(peak_kib(child.id()));
        if child.try_wait()?.is_some() || done() {
            return Ok(peak as f64 / 1024.0);
        }
        anyhow::ensure!(Instant::now() < deadline, "no end within 15 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ticketd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(ticketd_bin());
    cmd.current_dir(dir)
        .args(args)
        .env_remove("TICKETD_DATABASE_URL")
        .env_remove("TICKETD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

fn main() -> anyhow::Result<()> {
    let n = arg("--messages", 20);
    let mb = arg("--mb", 59);
    let mails: Vec<Vec<u8>> = (0..n).map(|i| message(i, mb)).collect();
    let size = mails[0].len() as f64 / 1e6;
    println!("{n} messages of {size:.1} MB each");

    // 1. The pipe: `ticketd ingest` of every file in one run.
    let dir = work_dir()?;
    let files: Vec<String> = mails
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let path = dir.path().join(format!("big-{i}.eml"));
            std::fs::write(&path, m).map(|_| path.display().to_string())
        })
        .collect::<std::io::Result<_>>()?;
    let mut args = vec!["ingest"];
    args.extend(files.iter().map(String::as_str));
    let started = Instant::now();
    let mut child = ticketd(dir.path(), &args).spawn()?;
    let peak = watch(&mut child, || false)?;
    let status = child.wait()?;
    println!(
        "ticketd ingest: peak RSS {peak:.0} MB, {:.1} s ({status})",
        started.elapsed().as_secs_f64()
    );

    // 2. The daemon draining them from its Maildir inbox.
    let dir = work_dir()?;
    let inbox = dir.path().join("var/inbox");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(inbox.join(sub))?;
    }
    for (i, m) in mails.iter().enumerate() {
        let name = format!("1765{i:06}.big.host");
        std::fs::File::create(inbox.join("tmp").join(&name))?.write_all(m)?;
        std::fs::rename(inbox.join("tmp").join(&name), inbox.join("new").join(&name))?;
    }
    let started = Instant::now();
    let mut child = ticketd(dir.path(), &["run"]).spawn()?;
    let cur = inbox.join("cur");
    let peak = watch(&mut child, || {
        std::fs::read_dir(&cur).map(|d| d.count()).unwrap_or(0) == n
    })?;
    let took = started.elapsed().as_secs_f64();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    child.wait()?;
    println!("ticketd run draining them: peak RSS {peak:.0} MB, {took:.1} s");
    Ok(())
}
