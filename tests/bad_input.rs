//! Bad input: nothing panics, nothing is lost, memory stays bounded. Attachments
//! are stored content-addressed under safe names.

mod common;

use common::{Env, fixture};
use std::path::Path;
use ticketd::ingest::{Inbound, OutcomeKind};
use ticketd::store::files;

/// A plain mail from `from` with Message-ID `<ID@klient.pl>` and `extra`
/// header lines.
fn mail(from: &str, id: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: case {id}\r\nMessage-ID: <{id}@klient.pl>\r\n{extra}\r\nhello\r\n"
    )
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

on_both_backends!(
    what_is_not_mail_is_quarantined_with_a_reason,
    |env: Env| async move {
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let batch = [
            Inbound::new("pipe", "empty", Vec::new()),
            Inbound::new("pipe", "garbage", garbage.clone()),
            Inbound::new("pipe", "no-sender", b"Subject: hi\r\n\r\nbody".to_vec()),
        ];
        let lines: Vec<String> = env
            .pipeline
            .ingest(&batch)
            .await
            .unwrap()
            .iter()
            .map(|o| o.to_string())
            .collect();
        assert_eq!(lines[0], "quarantined: empty input");
        assert!(lines[1].starts_with("quarantined: "), "{}", lines[1]);
        assert_eq!(
            lines[2],
            "quarantined: no sender address (From, Sender, Reply-To)"
        );
        // The raw bytes are kept, content-addressed.
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&garbage));
        let kept = files::content_path(&env.config.mail.quarantine_dir, &sha);
        assert_eq!(std::fs::read(kept).unwrap(), garbage);
        let journal = env.store.journal_for("pipe", "garbage").await.unwrap();
        assert_eq!(journal[0].0, "quarantined");
        env.finish().await;
    }
);

on_both_backends!(
    odd_mail_is_stored_as_well_as_it_parses,
    |env: Env| async move {
        assert_eq!(
            env.ingest_fixture("malformed-mime-unterminated-boundary.eml")
                .await,
            "TKT-2026-0001 created"
        );
        assert_eq!(
            env.show("TKT-2026-0001").await.comments[0].body,
            "This part is fine."
        );

        let odd = env
            .ingest_as("pipe", "odd", &fixture("unknown-charset.eml"))
            .await;
        assert_eq!(odd.to_string(), "TKT-2026-0002 created");
        let (_, reason) = &env.store.journal_for("pipe", "odd").await.unwrap()[0];
        let reason = reason.as_deref().unwrap();
        assert!(
            reason.contains("unknown charset \"x-unknown-42\""),
            "{reason}"
        );
        // Decoded with losses, so the original bytes are kept.
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fixture(
            "unknown-charset.eml",
        )));
        assert!(files::content_path(&env.config.mail.quarantine_dir, &sha).exists());

        assert_eq!(
            env.ingest_fixture("header-injection-crlf.eml").await,
            "TKT-2026-0003 created"
        );
        let t = env.show("TKT-2026-0003").await;
        assert_eq!(t.subject, "Hello Bcc: victim@example.com");
        assert!(!t.comments[0].body.contains('\u{1b}') && !t.comments[0].body.contains('\u{7}'));
        env.finish().await;
    }
);

on_both_backends!(
    attachments_are_content_addressed_with_safe_names,
    |env: Env| async move {
        env.ingest_fixture("rfc2231-polish-attachment-name.eml")
            .await;
        let t = env.show("TKT-2026-0001").await;
        let a = &t.attachments[0];
        assert_eq!(
            (a.name.as_str(), a.content_type.as_str(), a.size, a.stored),
            ("faktura zażółć.pdf", "application/pdf", 45, true)
        );
        let on_disk =
            std::fs::read(files::content_path(&env.config.attachments.dir, &a.sha256)).unwrap();
        assert!(on_disk.starts_with(b"%PDF-1.4"));
        assert_eq!(
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&on_disk)),
            a.sha256
        );

        env.ingest_fixture("attachment-path-traversal.eml").await;
        let t = env.show("TKT-2026-0002").await;
        assert_eq!(t.attachments[0].name, "passwd");
        // Every file written is inside the attachments folder, named by its hash.
        for path in files_under(&env.config.attachments.dir) {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(
                name.len() == 62 && name.chars().all(|c| c.is_ascii_hexdigit()),
                "{}",
                path.display()
            );
        }
        env.finish().await;
    }
);

// A 50 MB message: stored, its 36 MB attachment recorded but over the limit.
on_both_backends!(
    a_50_mb_message_is_stored_without_its_oversized_attachment,
    |env: Env| async move {
        let blob: Vec<u8> = (0..36 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut raw = b"From: Big Sender <big@firma.pl>\r\nTo: support@example.com\r\nSubject: logs\r\nMessage-ID: <big-1@firma.pl>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nLogs attached.\r\n--b\r\nContent-Type: application/octet-stream; name=\"logs.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        use base64_lines::encode_lines;
        raw.extend(encode_lines(&blob));
        raw.extend(b"\r\n--b--\r\n");
        assert!(raw.len() > 48 * 1024 * 1024);
        assert_eq!(env.ingest(&raw).await.to_string(), "TKT-2026-0001 created");
        let t = env.show("TKT-2026-0001").await;
        assert_eq!(t.comments[0].body, "Logs attached.");
        let a = &t.attachments[0];
        assert_eq!(
            (a.name.as_str(), a.size, a.stored),
            ("logs.bin", blob.len() as i64, false)
        );
        assert!(!files::content_path(&env.config.attachments.dir, &a.sha256).exists());
        env.finish().await;
    }
);

/// Minimal base64 with line breaks, so the test needs no extra crate.
mod base64_lines {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode_lines(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() * 4 / 3 + data.len() / 38);
        for (i, chunk) in data.chunks(3).enumerate() {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]);
                } else {
                    out.push(b'=');
                }
            }
            if i % 19 == 18 {
                out.extend(b"\r\n");
            }
        }
        out
    }
}

on_both_backends!(
    concurrent_ingest_numbers_are_unique_and_gap_free,
    |env: Env| async move {
        let pipeline = std::sync::Arc::new(env.pipeline_clone());
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let pipeline = pipeline.clone();
            tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..25 {
                let raw = format!(
                    "From: c{worker}-{i}@klient.pl\r\nTo: support@example.com\r\nSubject: case {worker}-{i}\r\nMessage-ID: <m{worker}-{i}@klient.pl>\r\n\r\nhello\r\n"
                );
                let batch = [Inbound::new("pipe", format!("{worker}-{i}"), raw.into_bytes())];
                outcomes.extend(pipeline.ingest(&batch).await.unwrap());
            }
            outcomes
        }));
        }
        let mut numbers = Vec::new();
        for t in tasks {
            for o in t.await.unwrap() {
                assert_eq!(o.kind, OutcomeKind::Created);
                numbers.push(o.ticket.unwrap());
            }
        }
        numbers.sort();
        let want: Vec<String> = (1..=100).map(|n| format!("TKT-2026-{n:04}")).collect();
        assert_eq!(numbers, want);
        env.finish().await;
    }
);

// Batches of mail from concurrent writers: new tickets take their numbers
// at commit, and a reply or a second copy inside the same batch still finds
// the ticket opened earlier in it.
on_both_backends!(
    batched_ingest_numbers_are_gap_free_and_reach_every_row,
    |env: Env| async move {
        let pipeline = std::sync::Arc::new(env.pipeline_clone());
        let mut tasks = Vec::new();
        for worker in 0..3 {
            let pipeline = pipeline.clone();
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for b in 0..5 {
                    let new = |i: usize| {
                        format!(
                            "From: c{worker}-{b}-{i}@klient.pl\r\nTo: support@example.com\r\nSubject: case {i}\r\nMessage-ID: <m{worker}-{b}-{i}@klient.pl>\r\n\r\nhello\r\n"
                        )
                    };
                    let mut raws: Vec<String> = (0..6).map(new).collect();
                    raws.push(format!(
                        "From: c{worker}-{b}-0@klient.pl\r\nTo: support@example.com\r\nSubject: Re: case 0\r\nMessage-ID: <r{worker}-{b}@klient.pl>\r\nIn-Reply-To: <m{worker}-{b}-0@klient.pl>\r\n\r\nmore\r\n"
                    ));
                    raws.push(new(1));
                    let batch: Vec<Inbound> = raws
                        .into_iter()
                        .enumerate()
                        .map(|(i, raw)| Inbound::new("pipe", format!("{worker}-{b}-{i}"), raw.into_bytes()))
                        .collect();
                    outcomes.push(pipeline.ingest(&batch).await.unwrap());
                }
                outcomes
            }));
        }
        let mut numbers = Vec::new();
        for t in tasks {
            for batch in t.await.unwrap() {
                let kinds: Vec<OutcomeKind> = batch.iter().map(|o| o.kind).collect();
                assert_eq!(
                    kinds,
                    [
                        [OutcomeKind::Created; 6].as_slice(),
                        &[OutcomeKind::Comment, OutcomeKind::Duplicate]
                    ]
                    .concat()
                );
                assert_eq!(batch[6].ticket, batch[0].ticket, "the reply threads");
                assert_eq!(batch[7].ticket, batch[1].ticket, "the copy is caught");
                numbers.extend(batch[..6].iter().map(|o| o.ticket.clone().unwrap()));
            }
        }
        numbers.sort();
        let want: Vec<String> = (1..=90).map(|n| format!("TKT-2026-{n:04}")).collect();
        assert_eq!(numbers, want);
        // Every row that names a new ticket names it by its real number.
        let pairs = |sql: &'static str| {
            let pool = env.store.pool().clone();
            async move {
                sqlx::query(sql)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| {
                        let number: String = sqlx::Row::try_get(r, 0).unwrap();
                        let text: String = sqlx::Row::try_get(r, 1).unwrap();
                        (number, text)
                    })
                    .collect::<Vec<_>>()
            }
        };
        let created = pairs(
            "SELECT t.number, h.new_value FROM ticket_history h JOIN tickets t ON t.id = h.ticket_id
             WHERE h.field = 'created'",
        )
        .await;
        assert_eq!(created.len(), 90);
        for (number, text) in created {
            assert_eq!(number, text);
        }
        for sql in [
            "SELECT t.number, o.subject FROM outbox o JOIN tickets t ON t.id = o.ticket_id",
            "SELECT t.number, o.message_id FROM outbox o JOIN tickets t ON t.id = o.ticket_id",
            "SELECT t.number, m.message_id FROM message_ids m JOIN tickets t ON t.id = m.ticket_id
             WHERE m.direction = 'out'",
        ] {
            let rows = pairs(sql).await;
            assert_eq!(rows.len(), 90, "{sql}");
            for (number, text) in rows {
                assert!(
                    text.contains(&format!("{number}."))
                        || text.starts_with(&format!("[{number}]")),
                    "{number}: {text}"
                );
            }
        }
        env.finish().await;
    }
);

on_both_backends!(
    the_same_message_arriving_concurrently_is_stored_once,
    |env: Env| async move {
        let pipeline = std::sync::Arc::new(env.pipeline_clone());
        let raw = fixture("gmail-new-ticket-pl-utf8.eml");
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let (pipeline, raw) = (pipeline.clone(), raw.clone());
            tasks.push(tokio::spawn(async move {
                let batch = [Inbound::new("pipe", format!("copy-{worker}"), raw)];
                pipeline.ingest(&batch).await.unwrap().remove(0)
            }));
        }
        let mut kinds = Vec::new();
        for t in tasks {
            kinds.push(t.await.unwrap().kind);
        }
        assert_eq!(
            kinds.iter().filter(|k| **k == OutcomeKind::Created).count(),
            1,
            "{kinds:?}"
        );
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == OutcomeKind::Duplicate)
                .count(),
            3,
            "{kinds:?}"
        );
        assert_eq!(env.store.list_tickets(None, 10, 0).await.unwrap().len(), 1);
        env.finish().await;
    }
);

// A batch reads ahead whether its Message-IDs are stored and who its senders
// are; each mail must still get the answer it would get alone, including
// for rows the batch itself creates.
on_both_backends!(
    a_batch_answers_from_what_it_read_ahead,
    |env: Env| async move {
        let pipeline = env.pipeline_clone();
        let first = Env::ingest_batch(&pipeline, "0", &[mail("x@klient.pl", "a", "")]).await;
        assert_eq!(first[0].kind, OutcomeKind::Created);
        let raws = [
            mail("x@klient.pl", "a", ""),
            mail("x@klient.pl", "b", "In-Reply-To: <a@klient.pl>\r\n"),
            mail("x@klient.pl", "c", ""),
            mail("y@klient.pl", "d", ""),
            mail("y@klient.pl", "e", ""),
            mail(
                "y@klient.pl",
                "f",
                "References: <zzz@klient.pl> <e@klient.pl>\r\n",
            ),
        ];
        let outcomes = Env::ingest_batch(&pipeline, "1", &raws).await;
        let kinds: Vec<OutcomeKind> = outcomes.iter().map(|o| o.kind).collect();
        use OutcomeKind::*;
        assert_eq!(
            kinds,
            [Duplicate, Comment, Created, Created, Created, Comment]
        );
        assert_eq!(
            outcomes[0].ticket, first[0].ticket,
            "the stored copy is known"
        );
        assert_eq!(
            outcomes[1].ticket, first[0].ticket,
            "the reply threads onto the stored mail"
        );
        assert_eq!(
            outcomes[5].ticket, outcomes[4].ticket,
            "threads onto a mail of the batch"
        );
        // One contact each for x (stored) and y (new in the batch).
        let requesters: Vec<(String, i64)> = sqlx::query_as(
            "SELECT i.address, COUNT(DISTINCT t.requester_id) FROM tickets t
             JOIN contact_identities i ON i.contact_id = t.requester_id
             GROUP BY i.address ORDER BY i.address",
        )
        .fetch_all(env.store.pool())
        .await
        .unwrap();
        assert_eq!(
            requesters,
            [
                ("x@klient.pl".to_string(), 1),
                ("y@klient.pl".to_string(), 1)
            ]
        );
        assert_eq!(env.count("SELECT COUNT(*) FROM contacts").await, 2);
        env.finish().await;
    }
);

// Concurrent batches that meet the same new customers: each customer gets
// one contact (on PostgreSQL created from a side connection, so the batches
// neither wait for nor deadlock on each other), and no stray contact is left
// by the writers that lost the race.
on_both_backends!(
    concurrent_batches_give_each_new_customer_one_contact,
    |env: Env| async move {
        let pipeline = std::sync::Arc::new(env.pipeline_clone());
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let pipeline = pipeline.clone();
            tasks.push(tokio::spawn(async move {
                for b in 0..5 {
                    let raws: Vec<String> = (0..10)
                        .map(|i| {
                            let customer = (i + worker + b) % 10;
                            format!(
                                "From: s{customer}@sklep.pl\r\nTo: support@example.com\r\nSubject: case {worker}-{b}-{i}\r\nMessage-ID: <n{worker}-{b}-{i}@sklep.pl>\r\n\r\nhello\r\n"
                            )
                        })
                        .collect();
                    let outcomes = Env::ingest_batch(&pipeline, &format!("{worker}-{b}"), &raws).await;
                    assert!(outcomes.iter().all(|o| o.kind == OutcomeKind::Created));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(env.count("SELECT COUNT(*) FROM tickets").await, 200);
        assert_eq!(env.count("SELECT COUNT(*) FROM contacts").await, 10);
        assert_eq!(
            env.count("SELECT COUNT(DISTINCT requester_id) FROM tickets")
                .await,
            10
        );
        env.finish().await;
    }
);

// Participants a batch adds are held until its commit; a later mail of the
// same batch must still count them (a Cc'd partner replying is a
// participant, not a stranger), and each is stored once.
on_both_backends!(
    a_batch_counts_the_participants_it_added,
    |env: Env| async move {
        let pipeline = env.pipeline_clone();
        let raws = [
            mail("x@klient.pl", "a", "Cc: z@partner.pl\r\n"),
            mail("z@partner.pl", "b", "In-Reply-To: <a@klient.pl>\r\n"),
            mail(
                "x@klient.pl",
                "c",
                "In-Reply-To: <b@klient.pl>\r\nCc: z@partner.pl, q@partner.pl\r\n",
            ),
            mail("q@partner.pl", "d", "In-Reply-To: <c@klient.pl>\r\n"),
        ];
        let outcomes = Env::ingest_batch(&pipeline, "0", &raws).await;
        let kinds: Vec<OutcomeKind> = outcomes.iter().map(|o| o.kind).collect();
        use OutcomeKind::*;
        assert_eq!(kinds, [Created, Comment, Comment, Comment]);
        let ticket = &outcomes[0].ticket;
        assert!(outcomes.iter().all(|o| &o.ticket == ticket));
        let authors: Vec<(String, String)> =
            sqlx::query_as("SELECT author, author_kind FROM comments ORDER BY id")
                .fetch_all(env.store.pool())
                .await
                .unwrap();
        let expected = [
            ("x@klient.pl", "requester"),
            ("z@partner.pl", "participant"),
            ("x@klient.pl", "requester"),
            ("q@partner.pl", "participant"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, k)| (a.to_string(), k.to_string()))
            .collect();
        assert_eq!(authors, expected);
        let participants: Vec<String> =
            sqlx::query("SELECT email FROM ticket_participants ORDER BY email")
                .fetch_all(env.store.pool())
                .await
                .unwrap()
                .iter()
                .map(|r| sqlx::Row::get(r, 0))
                .collect();
        assert_eq!(
            participants,
            ["q@partner.pl", "x@klient.pl", "z@partner.pl"]
        );
        env.finish().await;
    }
);

// A batch's comments and attachments are held until commit, each comment
// with its id given at once: the attachment, journal and Message-ID rows
// written with them must point at the right comment, batch after batch.
on_both_backends!(
    held_comments_keep_their_ids_for_the_rows_that_point_at_them,
    |env: Env| async move {
        let pipeline = env.pipeline_clone();
        let mail = |id: &str, extra: &str| {
            format!(
                "From: x@klient.pl\r\nTo: support@example.com\r\nSubject: case {id}\r\n\
                 Message-ID: <{id}@klient.pl>\r\n{extra}MIME-Version: 1.0\r\n\
                 Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
                 --b\r\nContent-Type: text/plain\r\n\r\nbody of {id}\r\n\
                 --b\r\nContent-Type: text/plain; name=\"{id}.txt\"\r\n\
                 Content-Disposition: attachment; filename=\"{id}.txt\"\r\n\r\nfile {id}\r\n--b--\r\n"
            )
        };
        let first = [
            mail("a", ""),
            mail("b", "In-Reply-To: <a@klient.pl>\r\n"),
            mail("c", ""),
        ];
        let second = [mail("d", "In-Reply-To: <c@klient.pl>\r\n"), mail("e", "")];
        use OutcomeKind::*;
        let kinds = |o: Vec<ticketd::ingest::Outcome>| o.iter().map(|o| o.kind).collect::<Vec<_>>();
        assert_eq!(
            kinds(Env::ingest_batch(&pipeline, "1", &first).await),
            [Created, Comment, Created]
        );
        assert_eq!(
            kinds(Env::ingest_batch(&pipeline, "2", &second).await),
            [Comment, Created]
        );
        assert_eq!(
            env.count("SELECT COUNT(DISTINCT id) FROM comments").await,
            5
        );
        // Each attachment on the comment of its own mail, on that ticket.
        let attached = env
            .count(
                "SELECT COUNT(*) FROM attachments a JOIN comments c ON c.id = a.comment_id
                 WHERE c.ticket_id = a.ticket_id AND c.body = 'body of ' || substr(a.name, 1, 1)",
            )
            .await;
        assert_eq!(attached, 5);
        let journaled = env
            .count(
                "SELECT COUNT(*) FROM ingest_journal j JOIN comments c ON c.id = j.comment_id
                 WHERE c.ticket_id = j.ticket_id AND c.message_id = j.message_id",
            )
            .await;
        assert_eq!(journaled, 5);
        let threaded = env
            .count(
                "SELECT COUNT(*) FROM message_ids m JOIN comments c ON c.id = m.comment_id
                 WHERE c.ticket_id = m.ticket_id AND c.message_id = m.message_id",
            )
            .await;
        assert_eq!(threaded, 5);
        env.finish().await;
    }
);
