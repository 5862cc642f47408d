//! Notification templates: handlebars files per language, event and channel
//! (`templates/pl/ticket_created.email.hbs`). Built-in defaults are compiled
//! into the binary; files in the admin's folder override them. Strict mode:
//! an unknown variable is an error, never an empty string.
//!
//! An email template starts with a `Subject:` line and a blank line; the rest
//! is the plain-text body (not HTML-escaped). An optional `.html.hbs` sibling
//! is the HTML body (escaped).

use crate::ticket::Notice;
use handlebars::Handlebars;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Events that send notifications.
pub const LANGUAGES: &[&str] = &["en", "pl"];
pub const CHANNELS: &[&str] = &["email", "chat"];

macro_rules! builtin {
    ($($lang:literal / $event:literal),+ $(,)?) => {
        &[$(
            ($lang, $event, "email", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $lang, "/", $event, ".email.hbs"))),
            ($lang, $event, "chat", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $lang, "/", $event, ".chat.hbs"))),
        )+]
    };
}

/// (language, event, channel, source) of every shipped template.
const BUILTIN: &[(&str, &str, &str, &str)] = builtin!(
    "en" / "ticket_created",
    "en" / "agent_reply",
    "en" / "ticket_assigned",
    "en" / "requester_comment",
    "en" / "status_changed",
    "en" / "ticket_resolved",
    "en" / "sla_warning",
    "en" / "sla_breached",
    "en" / "message_too_large",
    "en" / "auto_close",
    "en" / "ticket_escalated",
    "en" / "pending_reminder",
    "en" / "daily_digest",
    "en" / "sla_report",
    "en" / "chat_answer",
    "en" / "new_ticket",
    "pl" / "ticket_created",
    "pl" / "agent_reply",
    "pl" / "ticket_assigned",
    "pl" / "requester_comment",
    "pl" / "status_changed",
    "pl" / "ticket_resolved",
    "pl" / "sla_warning",
    "pl" / "sla_breached",
    "pl" / "message_too_large",
    "pl" / "auto_close",
    "pl" / "ticket_escalated",
    "pl" / "pending_reminder",
    "pl" / "daily_digest",
    "pl" / "sla_report",
    "pl" / "chat_answer",
    "pl" / "new_ticket",
);

/// A rendered notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// A template problem, reported as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct TemplateError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

pub struct Templates {
    text: Handlebars<'static>,
    html: Handlebars<'static>,
    default_language: String,
}

/// The active templates, swapped whole on reload (SIGHUP); a set that does
/// not load is refused and the last good one stays.
pub type Live = crate::live::Live<Templates>;

impl Live {
    /// Loads the templates again from `dir`; on errors keeps the current
    /// set and returns them.
    pub fn reload(
        &self,
        dir: Option<&Path>,
        default_language: &str,
    ) -> Result<(), Vec<TemplateError>> {
        self.replace(Templates::load(dir, default_language)?);
        Ok(())
    }
}

fn key(lang: &str, event: &str, channel: &str) -> String {
    format!("{lang}/{event}.{channel}")
}

/// Registers the `*.hbs` files under `dir` over the built-in templates;
/// `origin` names each template's file.
fn register_overrides(
    dir: &Path,
    (text, html): (&mut Handlebars<'static>, &mut Handlebars<'static>),
    origin: &mut Vec<(String, String)>,
    errors: &mut Vec<TemplateError>,
) {
    for (path, name, is_html) in override_files(dir) {
        let file = path.display().to_string();
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                errors.push(TemplateError {
                    file,
                    line: None,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let registry = if is_html { &mut *html } else { &mut *text };
        match registry.register_template_string(&name, &source) {
            Ok(()) => {
                if !is_html {
                    origin.retain(|(n, _)| n != &name);
                }
                origin.push((
                    if is_html {
                        format!("{name}.html")
                    } else {
                        name
                    },
                    file,
                ));
            }
            Err(e) => errors.push(compile_error(&file, &e)),
        }
    }
}

impl Templates {
    /// Built-in templates, overridden by `*.hbs` files under `dir` (when given).
    /// Every template is compiled and rendered with sample data, so an unknown
    /// variable or a syntax error is found here, with its file and line.
    pub fn load(
        dir: Option<&Path>,
        default_language: &str,
    ) -> Result<Templates, Vec<TemplateError>> {
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(handlebars::no_escape);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        let mut errors = Vec::new();
        let mut origin: Vec<(String, String)> = Vec::new();

        for (lang, event, channel, source) in BUILTIN {
            let name = key(lang, event, channel);
            let file = format!("(built-in) templates/{name}.hbs");
            if let Err(e) = text.register_template_string(&name, *source) {
                errors.push(compile_error(&file, &e));
            }
            origin.push((name, file));
        }
        if let Some(dir) = dir {
            let registries = (&mut text, &mut html);
            register_overrides(dir, registries, &mut origin, &mut errors);
        }
        let templates = Templates {
            text,
            html,
            default_language: default_language.to_string(),
        };
        for (name, file) in &origin {
            let (registry, name) = match name.strip_suffix(".html") {
                Some(n) => (&templates.html, n),
                None => (&templates.text, name.as_str()),
            };
            if let Err(e) = registry.render(name, &sample_context()) {
                errors.push(render_error(file, &e));
            }
        }
        for (lang, event, channel) in LANGUAGES.iter().flat_map(|l| {
            Notice::NAMES
                .iter()
                .flat_map(move |e| CHANNELS.iter().map(move |c| (l, e, c)))
        }) {
            if !templates.text.has_template(&key(lang, event, channel)) {
                errors.push(TemplateError {
                    file: format!("templates/{lang}/{event}.{channel}.hbs"),
                    line: None,
                    message: "missing template".into(),
                });
            }
        }
        if errors.is_empty() {
            Ok(templates)
        } else {
            Err(errors)
        }
    }

    /// The language to write in: the contact's when we have templates for it.
    pub fn language_for(&self, contact_language: Option<&str>) -> String {
        contact_language
            .filter(|l| LANGUAGES.contains(l))
            .unwrap_or(&self.default_language)
            .to_string()
    }

    /// Renders an event for a channel in a language (falling back to the default language).
    pub fn render(
        &self,
        lang: &str,
        event: &str,
        channel: &str,
        context: &Value,
    ) -> Result<Rendered, String> {
        let lang = if self.text.has_template(&key(lang, event, channel)) {
            lang
        } else {
            &self.default_language
        };
        let name = key(lang, event, channel);
        let rendered = self
            .text
            .render(&name, context)
            .map_err(|e| format!("{name}: {e}"))?;
        let html = if self.html.has_template(&name) {
            Some(
                self.html
                    .render(&name, context)
                    .map_err(|e| format!("{name}.html: {e}"))?,
            )
        } else {
            None
        };
        if channel != "email" {
            return Ok(Rendered {
                subject: String::new(),
                text: rendered.trim_end().to_string(),
                html,
            });
        }
        let (subject, body) = split_subject(&rendered).ok_or_else(|| {
            format!("{name}: an email template must start with a \"Subject:\" line")
        })?;
        Ok(Rendered {
            subject,
            text: body,
            html,
        })
    }
}

/// `Subject: …` first line (no CR/LF survives into the header), blank line, body.
fn split_subject(rendered: &str) -> Option<(String, String)> {
    let rest = rendered.strip_prefix("Subject:")?;
    let (subject, body) = rest.split_once('\n').unwrap_or((rest, ""));
    let subject = crate::parse::clean_line(subject, 250);
    Some((subject, body.trim_start_matches(['\r', '\n']).to_string()))
}

/// Override files: `dir/LANG/EVENT.CHANNEL.hbs` and `dir/LANG/EVENT.html.hbs`.
fn override_files(dir: &Path) -> Vec<(PathBuf, String, bool)> {
    let mut out = Vec::new();
    let Ok(langs) = std::fs::read_dir(dir) else {
        return out;
    };
    for lang in langs.flatten().filter(|e| e.path().is_dir()) {
        let lang_name = lang.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(lang.path()) else {
            continue;
        };
        for f in files.flatten() {
            let file_name = f.file_name().to_string_lossy().into_owned();
            let Some(stem) = file_name.strip_suffix(".hbs") else {
                continue;
            };
            if let Some(event) = stem.strip_suffix(".html") {
                out.push((f.path(), key(&lang_name, event, "email"), true));
            } else {
                out.push((f.path(), format!("{lang_name}/{stem}"), false));
            }
        }
    }
    out.sort();
    out
}

fn compile_error(file: &str, e: &handlebars::TemplateError) -> TemplateError {
    TemplateError {
        file: file.to_string(),
        line: e.pos().map(|(line, _)| line),
        message: e.reason().to_string(),
    }
}

fn render_error(file: &str, e: &handlebars::RenderError) -> TemplateError {
    TemplateError {
        file: file.to_string(),
        line: e.line_no,
        message: e.reason().to_string(),
    }
}

/// Every variable a template may use, with sample values (docs/templates.md).
pub fn sample_context() -> Value {
    json!({
        "kind": "greeting",
        "tickets": [{ "number": "TKT-2026-0042", "status": "open", "subject": "Drukarka nie działa" }],
        "ticket": {
            "number": "TKT-2026-0042",
            "subject": "Drukarka nie działa",
            "status": "open",
            "priority": "high",
            "category": "technical",
            "created_at": "2026-11-20T10:00:00Z",
            "link": "https://helpdesk.example.com/tickets/TKT-2026-0042",
        },
        "requester": { "name": "Jan Kowalski", "email": "jan@firma.pl" },
        "assignee": { "name": "Anna Nowak", "email": "anna@example.com" },
        "team": { "name": "support" },
        "comment": { "author": "Anna Nowak", "body": "Proszę zrestartować drukarkę.", "internal": false },
        "sla": { "target": "resolution", "due": "2026-11-21T10:00:00Z", "remaining": "3 h 20 min", "breached": false },
        "digest": {
            "team": "billing",
            "count": 2,
            "more": 0,
            "tickets": [
                { "number": "TKT-2026-0042", "subject": "Drukarka nie działa", "status": "open",
                  "priority": "high", "assignee": "anna@example.com", "team": "billing",
                  "age": "2 d 3 h", "sla": "resolution due in 3 h 20 min" },
                { "number": "TKT-2026-0043", "subject": "Faktura 11/2026", "status": "new",
                  "priority": "medium", "assignee": null, "team": "billing",
                  "age": "45 min", "sla": null },
            ],
        },
        "report": {
            "from": "2026-11-16T00:00:00Z",
            "to": "2026-11-23T00:00:00Z",
            "by": "team",
            "table": "team     created  resolved  ...\nbilling       12        10  ...\n",
            "lines": [],
            "total": { "created": 12, "resolved": 10, "sla_compliance": "90.0 %" },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_template_renders_in_both_languages() {
        let t = Templates::load(None, "en").unwrap();
        for lang in LANGUAGES {
            for event in Notice::NAMES {
                let email = t.render(lang, event, "email", &sample_context()).unwrap();
                assert!(
                    !email.subject.is_empty() && !email.text.is_empty(),
                    "{lang}/{event}"
                );
                assert!(!email.text.contains("{{"), "{lang}/{event}");
                let chat = t.render(lang, event, "chat", &sample_context()).unwrap();
                assert!(!chat.text.is_empty(), "{lang}/{event}");
            }
        }
        let ack = t
            .render("pl", "ticket_created", "email", &sample_context())
            .unwrap();
        assert_eq!(
            ack.subject,
            "Otrzymaliśmy Twoje zgłoszenie: Drukarka nie działa"
        );
        assert!(ack.text.contains("numer\nTKT-2026-0042"));
    }

    #[test]
    fn plain_text_is_not_escaped_but_html_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::write(
            dir.path().join("en/agent_reply.html.hbs"),
            "<p>{{comment.body}}</p>",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path()), "en").unwrap();
        let mut ctx = sample_context();
        ctx["comment"]["body"] = json!("a < b & \"c\"");
        let r = t.render("en", "agent_reply", "email", &ctx).unwrap();
        assert!(r.text.starts_with("a < b & \"c\""));
        assert_eq!(
            r.html.as_deref(),
            Some("<p>a &lt; b &amp; &quot;c&quot;</p>")
        );
    }

    #[test]
    fn broken_overrides_are_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pl")).unwrap();
        std::fs::write(
            dir.path().join("pl/ticket_created.email.hbs"),
            "Subject: x\n\nHello\n{{ticket.numbr}}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("pl/auto_close.email.hbs"),
            "Subject: x\n\n{{#if ticket}}\n",
        )
        .unwrap();
        let errors = Templates::load(Some(dir.path()), "en").err().unwrap();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{text:?}");
        assert!(
            text.iter()
                .any(|e| e.contains("pl/ticket_created.email.hbs:4:") && e.contains("numbr")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("pl/auto_close.email.hbs")),
            "{text:?}"
        );
    }

    #[test]
    fn language_falls_back_to_the_default() {
        let t = Templates::load(None, "pl").unwrap();
        assert_eq!(t.language_for(Some("de")), "pl");
        assert_eq!(t.language_for(Some("en")), "en");
        assert_eq!(t.language_for(None), "pl");
    }
}
