//! Reply tokens: `support+t42-1a2b3c4d5e6f@example.com`. The token names a ticket
//! and carries an HMAC-SHA256 tag, so a stranger cannot forge one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

const TAG_HEX: usize = 12;

fn mac(key: &[u8], ticket_id: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("ticketd reply token {ticket_id}").as_bytes());
    mac
}

/// The token for a ticket: `t{id}-{tag}`.
pub fn sign(key: &[u8], ticket_id: i64) -> String {
    let tag = hex::encode(mac(key, ticket_id).finalize().into_bytes());
    format!("t{ticket_id}-{}", &tag[..TAG_HEX])
}

/// The reply address for a ticket: `local+TOKEN@domain` of a support address.
pub fn address(support_address: &str, key: &[u8], ticket_id: i64) -> String {
    match support_address.split_once('@') {
        Some((local, domain)) => format!("{local}+{}@{domain}", sign(key, ticket_id)),
        None => support_address.to_string(),
    }
}

/// The ticket id in a valid token, or `None` for anything else.
pub fn verify(key: &[u8], token: &str) -> Option<i64> {
    let (id, tag) = token.strip_prefix('t')?.split_once('-')?;
    let ticket_id: i64 = id.parse().ok()?;
    let tag = hex::decode(tag).ok()?;
    if tag.len() * 2 != TAG_HEX {
        return None;
    }
    mac(key, ticket_id).verify_truncated_left(&tag).ok()?;
    Some(ticket_id)
}

/// Looks for a valid token in recipient addresses whose base is a support address.
pub fn find(key: &[u8], support_addresses: &[String], recipients: &[&str]) -> Option<i64> {
    recipients.iter().find_map(|addr| {
        let (local, domain) = addr.split_once('@')?;
        let (base, token) = local.split_once('+')?;
        let base_address = format!("{base}@{domain}");
        support_addresses
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&base_address))
            .then(|| verify(key, token))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test key";

    #[test]
    fn signed_tokens_verify_and_forged_ones_do_not() {
        let token = sign(KEY, 42);
        assert_eq!(verify(KEY, &token), Some(42));
        assert_eq!(verify(b"other key", &token), None);
        let forged = token.replacen("t42", "t43", 1);
        assert_eq!(verify(KEY, &forged), None);
        assert_eq!(verify(KEY, "t42-zz"), None);
        assert_eq!(verify(KEY, ""), None);
    }

    #[test]
    fn finds_token_only_on_support_addresses() {
        let support = vec!["support@example.com".to_string()];
        let reply = address("support@example.com", KEY, 7);
        assert_eq!(find(KEY, &support, &["x@y.pl", &reply]), Some(7));
        let elsewhere = reply.replace("example.com", "evil.com");
        assert_eq!(find(KEY, &support, &[&elsewhere]), None);
    }
}
