//! Sources hand raw messages to the pipeline and acknowledge them only after the
//! pipeline's commit: the MTA pipe (`ticketd ingest`) and watched Maildirs.

pub mod imap;
pub mod maildir;
pub mod pipe;

use std::io::Read;

/// A message read from a stream, bounded in memory.
pub enum Received {
    /// The whole message, at most the limit.
    Whole(Vec<u8>),
    /// The message was larger than the limit; it was written to a quarantine
    /// file instead, with this sha256 and size.
    TooLarge { sha256: String, size: u64 },
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
    Ok(Received::TooLarge { sha256, size })
}
