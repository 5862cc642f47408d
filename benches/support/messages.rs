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

/// A deterministic generator (xorshift) for the realistic corpus.
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        Seeded(seed.max(1))
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// The i-th message of the realistic corpus: the mix of [`message`], each
/// grown to 2–50 KB of mail (a longer text), and 15 % of the single-part
/// ones with an attachment of 10–40 KB (base64).
pub fn realistic(i: usize, rng: &mut Seeded) -> Vec<u8> {
    let base = String::from_utf8_lossy(&message(i)).into_owned();
    let target = 2_048 + rng.below(48 * 1024);
    let attach = rng.below(100) < 15;
    let (head, body) = base.split_once("\r\n\r\n").unwrap_or((&base, ""));
    let filler = [POLISH, ENGLISH, GERMAN][i % 3];
    let mut more = String::new();
    while more.len() + base.len() < target {
        more.push_str(filler[rng.below(filler.len())]);
        more.push_str("\r\n");
    }
    // The text grows where the author writes: in the (first) text part.
    let body = match body.find("8bit\r\n\r\n") {
        Some(at) if head.contains("multipart/") => {
            let at = at + "8bit\r\n\r\n".len();
            format!("{}{more}{}", &body[..at], &body[at..])
        }
        _ => format!("{more}{body}"),
    };
    if !attach || head.contains("multipart/") {
        return format!("{head}\r\n\r\n{body}").into_bytes();
    }
    let (mime, others): (Vec<&str>, Vec<&str>) = head.split("\r\n").partition(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("content-") || l.starts_with("mime-version")
    });
    let part_headers: Vec<&str> = mime
        .into_iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with("mime-version"))
        .collect();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut data = String::new();
    for _ in 0..(10 * 1024 + rng.below(30 * 1024)) / 78 {
        let line: String = (0..76).map(|_| alphabet[rng.below(64)] as char).collect();
        data.push_str(&line);
        data.push_str("\r\n");
    }
    format!(
        "{}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"att{i}\"\r\n\r\n\
         --att{i}\r\n{}\r\n\r\n{body}\r\n\
         --att{i}\r\nContent-Type: application/pdf; name=\"skan-{i}.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"skan-{i}.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{data}--att{i}--\r\n",
        others.join("\r\n"),
        part_headers.join("\r\n"),
    )
    .into_bytes()
}
