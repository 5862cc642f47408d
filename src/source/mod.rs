//! Sources hand raw messages to the pipeline and acknowledge them only after the
//! pipeline's commit: the MTA pipe (`ticketd ingest`) and watched Maildirs.

pub mod discord;
pub mod imap;
pub mod maildir;
pub mod pipe;
pub mod telegram;

use crate::ingest::Inbound;
use std::io::Read;

/// The most raw bytes a source reads into one batch (pipe, Maildir, IMAP), so
/// memory stays bounded whatever the messages weigh; a message over it makes
/// a batch of its own.
pub const BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// A message read from a stream, bounded in memory.
pub enum Received {
    /// The whole message, at most the limit.
    Whole(Vec<u8>),
    /// The message was larger than the limit; it was written to a quarantine
    /// file instead, with this sha256 and size. `header` is its header block.
    TooLarge {
        sha256: String,
        size: u64,
        header: Vec<u8>,
    },
}

/// Reads a message of at most `limit` bytes; a larger one is streamed to
/// `quarantine_dir` (content-addressed) so nothing is lost and memory stays bounded.
pub fn read_bounded(
    mut input: impl Read,
    limit: u64,
    quarantine_dir: &std::path::Path,
) -> std::io::Result<Received> {
    let mut head = Vec::new();
    (&mut input).take(limit + 1).read_to_end(&mut head)?;
    if head.len() as u64 <= limit {
        return Ok(Received::Whole(head));
    }
    let (sha256, size) =
        crate::store::files::put_stream(quarantine_dir, head.as_slice().chain(input))?;
    let header = header_block(&head).to_vec();
    Ok(Received::TooLarge {
        sha256,
        size,
        header,
    })
}

/// The header block of a raw message: everything before its first empty line.
fn header_block(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 1)
        .into_iter()
        .chain(raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 2))
        .min()
        .unwrap_or(raw.len());
    &raw[..end]
}

impl Received {
    /// The message to ingest from `source` under `key`: itself, or the stub
    /// that stands for one over `limit`.
    pub fn into_inbound(self, source: &str, key: String, limit: u64) -> Inbound {
        match self {
            Received::Whole(raw) => Inbound::new(source, key, raw),
            Received::TooLarge {
                sha256,
                size,
                header,
            } => too_large(
                source,
                key,
                &header,
                size,
                too_large_note(size, limit, &sha256),
            ),
        }
    }
}

/// Why a message read by [`read_bounded`] stands as a stub.
pub fn too_large_note(size: u64, limit: u64, sha256: &str) -> String {
    format!(
        "message of {size} bytes is over mail.max_message_bytes ({limit}); the original is kept in quarantine as {sha256}"
    )
}

/// A message over `mail.max_message_bytes`: a ticket is made from its headers
/// (sender, subject, threading) with `note` as the body, and the sender is told
/// (the `message_too_large` notification). The original is kept by the source.
pub fn too_large(source: &str, key: String, header: &[u8], size: u64, note: String) -> Inbound {
    let mut m = Inbound::new(source, key, oversized_stub(header, &note));
    m.oversized = Some(size);
    m.note = Some(note);
    m
}

/// A stand-in for a message too large to download: its own headers (without the
/// MIME structure) and a plain-text note, so the ticket names sender and subject.
fn oversized_stub(header: &[u8], note: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(header);
    let mut stub = String::with_capacity(text.len() + 200);
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        let continuation = line.starts_with([' ', '\t']);
        if !continuation {
            let name = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            skipping =
                name.starts_with("content-") || name == "mime-version" || line.trim().is_empty();
        }
        if !skipping {
            stub.push_str(line);
        }
    }
    stub.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    stub.push_str(&format!("[ticketd] The original {note}.\r\n"));
    stub.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_stub_keeps_sender_and_subject_but_not_the_mime_structure() {
        let header = b"From: a@b.pl\r\nSubject: logs\r\nContent-Type: multipart/mixed;\r\n boundary=\"x\"\r\nMIME-Version: 1.0\r\n\r\n";
        let stub =
            String::from_utf8(oversized_stub(header, "message of 9 bytes is too big")).unwrap();
        assert_eq!(
            stub,
            "From: a@b.pl\r\nSubject: logs\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n[ticketd] The original message of 9 bytes is too big.\r\n"
        );
    }

    #[test]
    fn the_header_block_ends_at_the_first_empty_line() {
        assert_eq!(
            header_block(b"A: 1\r\nB: 2\r\n\r\nbody\n\nmore"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_block(b"A: 1\nB: 2\n\nbody\r\n\r\n"), b"A: 1\nB: 2\n");
        assert_eq!(header_block(b"no end"), b"no end");
    }
}
