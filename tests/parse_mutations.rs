//! Mutated fixtures (bytes flipped, cut, duplicated, CR/LF and NUL injected):
//! parsing never panics and never returns an empty body for a parsed message.

mod common;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(raw: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = raw.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(m.len());
        match rng.below(6) {
            0 => {
                let bit = 1 << rng.below(8);
                if let Some(b) = m.get_mut(at) {
                    *b ^= bit;
                }
            }
            1 => m.truncate(at),
            2 => m.insert(at, b'\0'),
            3 => m
                .splice(at..at, b"\r\n=?utf-8?B?////?=\r\n".iter().copied())
                .for_each(drop),
            4 => {
                let end = (at + rng.below(64)).min(m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece).for_each(drop);
            }
            _ => m
                .splice(
                    at..at,
                    b"--boundary\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n"
                        .iter()
                        .copied(),
                )
                .for_each(drop),
        }
        if m.is_empty() {
            break;
        }
    }
    m
}

#[test]
fn mutated_mail_never_panics() {
    let dir = common::fixture_path("");
    let mut fixtures: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    fixtures.sort();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut parsed = 0;
    for path in &fixtures {
        let raw = std::fs::read(path).unwrap();
        for _ in 0..150 {
            let m = mutate(&raw, &mut rng);
            if let Ok(mail) = ticketd::parse::parse(&m) {
                parsed += 1;
                let stripped = ticketd::parse::quotes::strip(&mail.body);
                assert!(mail.body.trim().is_empty() || !stripped.kept.trim().is_empty());
            }
        }
    }
    assert!(parsed > 1000, "only {parsed} mutated messages parsed");
}
