//! Realistic generated mail for the benchmarks: new tickets in Polish, English
//! and German (multipart/alternative), ISO-8859-2 quoted-printable and
//! HTML-only mail, quoted replies that thread by In-Reply-To, auto-replies.
#![allow(dead_code)]

const POLISH: &[&str] = &[
    "Drukarka w biurze nie działa od rana, proszę o pilną pomoc.",
    "Nie mogę się zalogować do konta, hasło jest odrzucane.",
    "Faktura za październik ma złą kwotę, proszę o korektę.",
];
const ENGLISH: &[&str] = &[
    "The export to CSV fails with an error since the last update.",
    "Please add a second user to our subscription.",
    "Our invoice shows the wrong VAT number.",
];
const GERMAN: &[&str] = &[
    "Der Lizenzschlüssel wird nicht angenommen.",
    "Bitte um Rückruf wegen der Rechnung.",
];

/// The i-th generated message. Every fifth message answers an earlier one.
pub fn message(i: usize) -> Vec<u8> {
    let customer = i % 997;
    let date = "Fri, 20 Nov 2026 10:00:00 +0100";
    match i % 20 {
        // Replies with a quote, threading by In-Reply-To onto an earlier new ticket.
        4 | 9 | 14 | 19 => {
            let original = i - 4;
            let oc = original % 997;
            format!(
                "From: Customer {oc} <customer{oc}@firma{}.pl>\r\nTo: support@example.com\r\nSubject: Re: case {original}\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nIn-Reply-To: <m{original}@bench.example>\r\nReferences: <m{original}@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nDziękuję, nadal nie działa.\r\n\r\nW dniu 20.11.2026 o 10:00, Support pisze:\r\n> Proszę zrestartować urządzenie.\r\n> Pozdrawiamy\r\n",
                oc % 50
            )
            .into_bytes()
        }
        // ISO-8859-2 quoted-printable.
        7 => {
            let mut m = format!(
                "From: =?ISO-8859-2?Q?Zofia_=A3=B1cka?= <zofia{customer}@sklep.pl>\r\nTo: support@example.com\r\nSubject: =?ISO-8859-2?Q?b=B3=B1d_p=B3atno=B6ci_{i}?=\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-8859-2\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            )
            .into_bytes();
            m.extend(b"P=B3atno=B6=E6 nie przesz=B3a, =BF=F3=B3ta karta.\r\n");
            m
        }
        // HTML only.
        11 => format!(
            "From: Maria <maria{customer}@kwiaty.pl>\r\nTo: support@example.com\r\nSubject: konto {i}\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Dzień dobry,</p><ul><li>krok 1</li><li>krok 2</li></ul><p>Maria</p></body></html>\r\n"
        )
        .into_bytes(),
        // Out-of-office reply.
        17 => format!(
            "From: Customer <ooo{customer}@firma.pl>\r\nTo: support@example.com\r\nSubject: Automatic reply\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n"
        )
        .into_bytes(),
        // New tickets, multipart/alternative like Gmail sends them.
        n => {
            let text = match n % 3 {
                0 => POLISH[i % POLISH.len()],
                1 => ENGLISH[i % ENGLISH.len()],
                _ => GERMAN[i % GERMAN.len()],
            };
            format!(
                "From: Customer {customer} <customer{customer}@firma{}.pl>\r\nTo: support@example.com\r\nSubject: case {i}\r\nDate: {date}\r\nMessage-ID: <m{i}@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b{i}\"\r\n\r\n--b{i}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\r\n-- \r\nCustomer {customer}\r\n--b{i}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div>{text}</div>\r\n--b{i}--\r\n",
                customer % 50
            )
            .into_bytes()
        }
    }
}

/// The Message-ID (without brackets) of the i-th generated message.
pub fn message_id(i: usize) -> String {
    format!("m{i}@bench.example")
}
