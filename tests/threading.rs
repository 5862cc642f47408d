//! Threading and exactly-once ingest through the whole pipeline, on SQLite and
//! PostgreSQL (PRODUCT.md §5).

mod common;

use common::{Env, fixture, with_message_id};
use sqlx::Row;
use ticketd::config::Config;
use ticketd::thread::StrangerPolicy;
use ticketd::ticket::Status;

const DAY: i64 = 86_400;

on_both_backends!(
    new_ticket_keeps_polish_text_and_finds_organization,
    |env: Env| async move {
        assert_eq!(
            env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await,
            "TKT-2026-0001 created"
        );
        let t = env.show("TKT-2026-0001").await;
        assert_eq!(t.subject, "Drukarka w biurze nie działa");
        assert_eq!(t.status, "new");
        assert_eq!(t.priority, "medium");
        assert_eq!(t.requester.email, "jan.kowalski@firma.pl");
        assert_eq!(t.requester.name, "Jan Kowalski");
        assert_eq!(t.organization.as_deref(), Some("Firma"));
        assert_eq!(t.comments.len(), 1);
        assert!(
            t.comments[0].body.contains("Zażółć gęślą jaźń."),
            "{}",
            t.comments[0].body
        );
        assert!(!t.comments[0].internal);
        assert_eq!(t.history[0].field, "created");
        env.finish().await;
    }
);

on_both_backends!(charsets_survive_byte_for_byte, |env: Env| async move {
    assert_eq!(
        env.ingest_fixture("iso-8859-2-qp-subject.eml").await,
        "TKT-2026-0001 created"
    );
    assert_eq!(
        env.ingest_fixture("windows-1250-8bit-body.eml").await,
        "TKT-2026-0002 created"
    );
    let a = env.show("TKT-2026-0001").await;
    assert_eq!(a.subject, "Zamówienie nr 123 - błąd płatności");
    assert_eq!(a.requester.name, "Zofia Łącka");
    assert_eq!(
        a.comments[0].body,
        "Proszę o pomoc: płatność za zamówienie nie przeszła.\nŻółta karta, źle naliczone."
    );
    let b = env.show("TKT-2026-0002").await;
    assert_eq!(b.subject, "Logowanie – błąd");
    assert!(b.comments[0].body.contains("Święty spokój, źdźbło."));
    env.finish().await;
});

on_both_backends!(
    replies_thread_by_message_id_and_subject_number,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        // In-Reply-To from the requester; the quote is cut but kept.
        assert_eq!(
            env.ingest_fixture("gmail-quoted-reply.eml").await,
            "TKT-2026-0001 comment"
        );
        // Outlook reply without In-Reply-To: the ticket number in the subject, from a Cc'd colleague.
        assert_eq!(
            env.ingest_fixture("outlook-pl-odp-reply.eml").await,
            "TKT-2026-0001 comment"
        );
        // Apple Mail reply by References from the same participant.
        assert_eq!(
            env.ingest_fixture("apple-mail-participant-reply.eml").await,
            "TKT-2026-0001 comment"
        );
        let t = env.show("TKT-2026-0001").await;
        let bodies: Vec<(&str, &str)> = t
            .comments
            .iter()
            .map(|c| (c.author_kind.as_str(), c.body.as_str()))
            .collect();
        assert_eq!(
            bodies[1..],
            [
                ("requester", "Restart nie pomógł, nadal to samo."),
                ("participant", "U mnie też nie drukuje."),
                (
                    "participant",
                    "Printer on the second floor works fine, only the first floor one is broken."
                ),
            ]
        );
        assert!(
            t.comments[1]
                .stripped
                .contains("> drukarka w biurze nie działa od rana.")
        );
        env.finish().await;
    }
);

on_both_backends!(
    references_thread_a_german_conversation,
    |env: Env| async move {
        assert_eq!(
            env.ingest_fixture("thunderbird-de-new-ticket.eml").await,
            "TKT-2026-0001 created"
        );
        assert_eq!(
            env.ingest_fixture("thunderbird-de-aw-reply.eml").await,
            "TKT-2026-0001 comment"
        );
        let t = env.show("TKT-2026-0001").await;
        assert_eq!(t.comments[1].body, "Vielen Dank, es funktioniert jetzt.");
        assert!(t.comments[1].stripped.contains("Max Muster\nFirma GmbH"));
        env.finish().await;
    }
);

on_both_backends!(
    stranger_reply_opens_a_linked_ticket,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        assert_eq!(
            env.ingest_fixture("stranger-reply-with-ticket-number.eml")
                .await,
            "TKT-2026-0002 created"
        );
        assert_eq!(
            env.ingest_fixture("stranger-reply-with-references.eml")
                .await,
            "TKT-2026-0003 created"
        );
        let original = env.show("TKT-2026-0001").await;
        assert_eq!(
            original.comments.len(),
            1,
            "a stranger's text joined the ticket"
        );
        assert_eq!(original.related, ["TKT-2026-0002", "TKT-2026-0003"]);
        let stranger = env.show("TKT-2026-0002").await;
        assert_eq!(stranger.requester.email, "mallory@evil.example");
        assert_eq!(stranger.related, ["TKT-2026-0001"]);
        assert!(
            stranger
                .history
                .iter()
                .any(|h| h.field == "related.stranger_reply")
        );
        env.finish().await;
    }
);

fn internal_note_policy(c: &mut Config) {
    c.threading.stranger_policy = StrangerPolicy::InternalNote;
}

on_both_backends!(
    stranger_reply_as_internal_note,
    internal_note_policy,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        assert_eq!(
            env.ingest_fixture("stranger-reply-with-ticket-number.eml")
                .await,
            "TKT-2026-0001 comment"
        );
        let t = env.show("TKT-2026-0001").await;
        assert!(t.comments[1].internal);
        assert_eq!(t.comments[1].author_kind, "stranger");
        env.finish().await;
    }
);

fn reject_policy(c: &mut Config) {
    c.threading.stranger_policy = StrangerPolicy::Reject;
}

on_both_backends!(
    stranger_reply_rejected,
    reject_policy,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        let line = env
            .ingest_fixture("stranger-reply-with-ticket-number.eml")
            .await;
        assert_eq!(
            line,
            "rejected: mallory@evil.example is not a participant of TKT-2026-0001"
        );
        assert_eq!(env.show("TKT-2026-0001").await.comments.len(), 1);
        assert_eq!(env.store.list_tickets(None, 10, 0).await.unwrap().len(), 1);
        env.finish().await;
    }
);

on_both_backends!(agents_reply_by_email, |env: Env| async move {
    env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
    let raw = String::from_utf8(fixture("stranger-reply-with-ticket-number.eml"))
        .unwrap()
        .replace(
            "Mallory <mallory@evil.example>",
            "Agnieszka <Agent@Example.com>",
        );
    assert_eq!(
        env.ingest(raw.as_bytes()).await.to_string(),
        "TKT-2026-0001 comment"
    );
    let t = env.show("TKT-2026-0001").await;
    assert_eq!(t.comments[1].author_kind, "agent");
    assert!(!t.comments[1].internal);
    env.finish().await;
});

on_both_backends!(
    reply_token_threads_and_a_forged_one_does_not,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        let id: i64 = sqlx::query("SELECT id FROM tickets WHERE number = 'TKT-2026-0001'")
            .fetch_one(env.store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        let template = String::from_utf8(fixture("reply-token-address.eml")).unwrap();
        let good = ticketd::thread::token::sign(common::TOKEN_KEY.as_bytes(), id);
        assert_eq!(
            env.ingest(template.replace("TOKEN", &good).as_bytes())
                .await
                .to_string(),
            "TKT-2026-0001 comment"
        );
        let forged = ticketd::thread::token::sign(b"not the key", id);
        let forged_mail = with_message_id(
            template.replace("TOKEN", &forged).as_bytes(),
            "forged@firma.pl",
        );
        assert_eq!(
            env.ingest(&forged_mail).await.to_string(),
            "TKT-2026-0002 created"
        );
        env.finish().await;
    }
);

on_both_backends!(
    closed_ticket_reopens_then_follows_up,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        env.store
            .change_status(
                "TKT-2026-0001",
                Status::Closed,
                "agent@example.com",
                env.clock.now(),
                &env.pipeline.settings.current().policies,
            )
            .await
            .unwrap();
        env.clock.advance(3 * DAY);
        assert_eq!(
            env.ingest_fixture("gmail-quoted-reply.eml").await,
            "TKT-2026-0001 comment"
        );
        let t = env.show("TKT-2026-0001").await;
        assert_eq!(t.status, "open");
        let last = t.history.last().unwrap();
        assert_eq!(
            (
                last.field.as_str(),
                last.old.as_deref(),
                last.new.as_deref()
            ),
            ("status", Some("closed"), Some("open"))
        );

        env.store
            .change_status(
                "TKT-2026-0001",
                Status::Closed,
                "agent@example.com",
                env.clock.now(),
                &env.pipeline.settings.current().policies,
            )
            .await
            .unwrap();
        env.clock.advance(15 * DAY);
        let late = with_message_id(
            &fixture("gmail-quoted-reply.eml"),
            "late-reply@mail.gmail.com",
        );
        assert_eq!(env.ingest(&late).await.to_string(), "TKT-2026-0002 created");
        assert_eq!(env.show("TKT-2026-0001").await.status, "closed");
        assert_eq!(env.show("TKT-2026-0002").await.related, ["TKT-2026-0001"]);
        env.finish().await;
    }
);

on_both_backends!(
    pending_ticket_opens_on_customer_reply,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        env.store
            .change_status(
                "TKT-2026-0001",
                Status::Pending,
                "agent@example.com",
                env.clock.now(),
                &env.pipeline.settings.current().policies,
            )
            .await
            .unwrap();
        env.ingest_fixture("gmail-quoted-reply.eml").await;
        assert_eq!(env.show("TKT-2026-0001").await.status, "open");
        env.finish().await;
    }
);

on_both_backends!(the_same_message_is_stored_once, |env: Env| async move {
    assert_eq!(
        env.ingest_as("pipe", "a", &fixture("gmail-new-ticket-pl-utf8.eml"))
            .await
            .to_string(),
        "TKT-2026-0001 created"
    );
    assert_eq!(
        env.ingest_as("pipe", "a", &fixture("gmail-new-ticket-pl-utf8.eml"))
            .await
            .to_string(),
        "TKT-2026-0001 duplicate"
    );
    // Without a Message-ID, the content hash decides.
    assert_eq!(
        env.ingest_as("pipe", "b", &fixture("missing-message-id.eml"))
            .await
            .to_string(),
        "TKT-2026-0002 created"
    );
    assert_eq!(
        env.ingest_as("pipe", "b", &fixture("missing-message-id.eml"))
            .await
            .to_string(),
        "TKT-2026-0002 duplicate"
    );
    // A reply is also stored once.
    env.ingest_fixture("gmail-quoted-reply.eml").await;
    assert_eq!(
        env.ingest_fixture("gmail-quoted-reply.eml").await,
        "TKT-2026-0001 duplicate"
    );
    assert_eq!(env.show("TKT-2026-0001").await.comments.len(), 2);
    let journal: Vec<String> = env
        .store
        .journal_for("pipe", "b")
        .await
        .unwrap()
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(journal, ["created", "duplicate"]);
    env.finish().await;
});

on_both_backends!(
    auto_replies_become_internal_notes_and_never_reopen,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        env.store
            .change_status(
                "TKT-2026-0001",
                Status::Pending,
                "agent@example.com",
                env.clock.now(),
                &env.pipeline.settings.current().policies,
            )
            .await
            .unwrap();
        let ooo = env
            .ingest_as("pipe", "ooo", &fixture("out-of-office-auto-reply.eml"))
            .await;
        assert_eq!(ooo.to_string(), "auto-generated TKT-2026-0001");
        let journal = env.store.journal_for("pipe", "ooo").await.unwrap();
        assert_eq!(
            journal,
            [(
                "auto_generated".to_string(),
                Some("Auto-Submitted: auto-replied".to_string())
            )]
        );
        let t = env.show("TKT-2026-0001").await;
        assert_eq!(t.status, "pending");
        assert!(t.comments[1].internal && t.comments[1].auto_generated);

        assert_eq!(
            env.ingest_fixture("newsletter-list-id.eml").await,
            "auto-generated TKT-2026-0002"
        );
        let news = env.show("TKT-2026-0002").await;
        assert!(news.auto_generated);
        assert_eq!(news.tags, ["auto-generated"]);
        env.finish().await;
    }
);

on_both_backends!(
    bounce_of_our_mail_is_an_internal_note,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        env.store
            .record_sent_message_id(
                "TKT-2026-0001",
                "ticketd.1.notification@example.com",
                env.clock.now(),
            )
            .await
            .unwrap();
        assert_eq!(
            env.ingest_fixture("bounce-of-our-notification.eml").await,
            "auto-generated TKT-2026-0001"
        );
        let t = env.show("TKT-2026-0001").await;
        let note = &t.comments[1];
        assert!(note.internal);
        assert_eq!(note.author_kind, "system");
        assert!(note.body.contains("mailbox full"));
        assert_eq!(env.store.list_tickets(None, 10, 0).await.unwrap().len(), 1);
        env.finish().await;
    }
);

on_both_backends!(
    bounce_of_unknown_mail_is_stored_and_marked,
    |env: Env| async move {
        assert_eq!(
            env.ingest_fixture("bounce-of-our-notification.eml").await,
            "auto-generated TKT-2026-0001"
        );
        assert!(env.show("TKT-2026-0001").await.auto_generated);
        env.finish().await;
    }
);

on_both_backends!(year_starts_a_new_sequence, |env: Env| async move {
    env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
    env.clock.advance(42 * DAY); // 2027-01-01
    assert_eq!(
        env.ingest_fixture("missing-message-id.eml").await,
        "TKT-2027-0001 created"
    );
    env.finish().await;
});

on_both_backends!(
    a_strangers_ticket_gets_a_clean_subject,
    |env: Env| async move {
        env.ingest_fixture("gmail-new-ticket-pl-utf8.eml").await;
        env.ingest_fixture("stranger-reply-with-ticket-number.eml")
            .await;
        assert_eq!(
            env.show("TKT-2026-0002").await.subject,
            "Drukarka w biurze nie dziala"
        );
        env.finish().await;
    }
);
