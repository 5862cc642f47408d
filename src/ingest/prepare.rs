//! Making a batch ready for its transaction: each message parsed and its
//! files (attachments, raw copies of what parsed with losses or not at all)
//! on disk, so the commit only ever points at complete files. Pure CPU and
//! file writes, no store: it can run on another thread while the batch
//! before commits.

use super::Inbound;
use crate::parse::{self, ParsedMail};
use crate::store::files;
use crate::store::tickets::StoredAttachment;
use std::path::PathBuf;

/// A message after parsing, ready for the transaction.
pub enum Prepared {
    Mail {
        mail: Box<ParsedMail>,
        attachments: Vec<StoredAttachment>,
    },
    NotMail {
        reason: String,
        content_hash: String,
    },
}

/// Where files go, and the size over which attachments are only recorded.
#[derive(Debug, Clone)]
pub struct Files {
    pub(super) attachments_dir: PathBuf,
    pub(super) max_attachment_bytes: u64,
    pub(super) quarantine_dir: PathBuf,
}

impl Files {
    /// Every message of the batch, prepared.
    pub fn prepare_batch(&self, batch: &[Inbound]) -> std::io::Result<Vec<Prepared>> {
        batch.iter().map(|m| self.prepare(m)).collect()
    }

    /// Parses a message and puts its files on disk (before the transaction, so
    /// the commit only ever points at complete files).
    pub fn prepare(&self, inbound: &Inbound) -> std::io::Result<Prepared> {
        match parse::parse(&inbound.raw) {
            Ok(mut mail) => {
                if !mail.warnings.is_empty() {
                    // Parsed with losses: keep the original bytes next to the quarantine.
                    let sha256 = files::put(&self.quarantine_dir, &inbound.raw)?;
                    mail.warnings.push(format!("raw copy kept as {sha256}"));
                }
                let attachments = std::mem::take(&mut mail.attachments)
                    .into_iter()
                    .map(|a| self.keep_attachment(a))
                    .collect::<std::io::Result<Vec<_>>>()?;
                Ok(Prepared::Mail {
                    mail: Box::new(mail),
                    attachments,
                })
            }
            Err(not_mail) => {
                let content_hash = files::put(&self.quarantine_dir, &inbound.raw)?;
                Ok(Prepared::NotMail {
                    reason: not_mail.0,
                    content_hash,
                })
            }
        }
    }

    /// Stores an attachment's content (over the limit: only its hash), before
    /// the transaction that records it.
    pub fn keep_attachment(&self, a: parse::Attachment) -> std::io::Result<StoredAttachment> {
        let size = a.data.len() as u64;
        let (sha256, stored) = if size > self.max_attachment_bytes {
            use sha2::Digest;
            (hex::encode(sha2::Sha256::digest(&a.data)), false)
        } else {
            (files::put(&self.attachments_dir, &a.data)?, true)
        };
        Ok(StoredAttachment {
            name: a.name,
            content_type: a.content_type,
            size: size as i64,
            sha256,
            stored,
        })
    }
}
