//! Masking secrets in text that is about to be logged or shown: a server's
//! reply that echoes the credentials ticketd sent, or a config error.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// `text` with every credential ticketd sent masked: the password itself, and
/// the base64 forms SASL carries it in (AUTH LOGIN sends the password alone,
/// AUTH PLAIN `\0user\0password`).
pub fn credentials(text: &str, user: &str, password: &str) -> String {
    if password.is_empty() {
        return text.to_string();
    }
    let forms = [
        STANDARD.encode(format!("\0{user}\0{password}")),
        STANDARD.encode(format!("{user}\0{user}\0{password}")),
        STANDARD.encode(password),
        password.to_string(),
    ];
    let mut out = text.to_string();
    for form in forms {
        out = out.replace(&form, MASK);
    }
    out
}

/// A TOML parse error as one line that never shows the offending line, and,
/// when the offending key names a secret, with its value masked wherever the
/// message quotes it (serde's "invalid type: string \"…\"" would show it).
pub fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().replace(['\n', '\r'], " ");
    let Some(span) = error.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let message = match line.split_once('=') {
        Some((key, value)) if is_secret_key(key) => mask_quoted(&message, value),
        _ => message,
    };
    format!("line {line_no}, column {column}: {message}")
}

/// Whether a config key names a secret (`password`, `secret`, `token`,
/// `key`, and their `*_file` forms).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.trim().trim_matches('"').to_ascii_lowercase();
    ["pass", "secret", "token", "key", "credential"]
        .iter()
        .any(|s| key.contains(s))
}

/// `message` with `value` (as written in TOML, and without its quotes)
/// masked wherever it stands quoted.
fn mask_quoted(message: &str, value: &str) -> String {
    let raw = value.split(" #").next().unwrap_or(value).trim();
    let inner = raw.trim_matches(['"', '\'']);
    let mut out = message.to_string();
    for v in [raw, inner] {
        if v.is_empty() {
            continue;
        }
        for (open, close) in [("\"", "\""), ("`", "`"), ("'", "'"), ("`\"", "\"`")] {
            out = out.replace(
                &format!("{open}{v}{close}"),
                &format!("{open}{MASK}{close}"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_credentials_are_masked_in_every_form() {
        let plain = STANDARD.encode("\0ann\0hunter22");
        let login = STANDARD.encode("hunter22");
        let reply = format!("NO [AUTHENTICATIONFAILED] bad hunter22 ({plain}) ({login})");
        let masked = credentials(&reply, "ann", "hunter22");
        assert_eq!(masked, "NO [AUTHENTICATIONFAILED] bad *** (***) (***)");
        assert_eq!(credentials("NO bad", "ann", ""), "NO bad");
    }

    fn config_error(text: &str) -> String {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Smtp {
            password: Option<String>,
            port: Option<u16>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Config {
            smtp: Smtp,
        }
        let e = toml::from_str::<Config>(text).unwrap_err();
        toml_error(text, &e)
    }

    #[test]
    fn config_errors_never_show_the_secret() {
        for (text, want) in [
            (
                "[smtp]\npasword = \"hunter22\"\n",
                "line 2, column 1: unknown field",
            ),
            ("[smtp]\npassword = \"hunter22\n", "line 2, column"),
            (
                "[smtp]\npassword = 12345678\n",
                "line 2, column 12: invalid type",
            ),
            (
                "[smtp]\npassword = [\"hunter22\"]\n",
                "line 2, column 12: invalid type",
            ),
        ] {
            let e = config_error(text);
            assert!(e.starts_with(want), "{e}");
            assert!(!e.contains("hunter22") && !e.contains("12345678"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // Other values stay in the message: they help and hide nothing.
        let e = config_error("[smtp]\nport = \"smtp\"\n");
        assert!(e.contains("\"smtp\""), "{e}");
    }
}
