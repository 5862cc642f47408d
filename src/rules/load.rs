//! Reading rule files: TOML with spans, so every problem is reported as
//! `file:line:col: rule "NAME": message`. Pure apart from [`load_dir`], which
//! only reads the files.

use super::action::{Action, Assignee, Recipient, Strategy};
use super::condition::{Condition, OPERATORS, Op, Operand, Test};
use super::field::{FIELDS, Field, Kind};
use super::{Event, Rule, RuleSet, RuleTest};
use crate::ticket::{Notice, Priority, Status};
use std::fmt;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The names a rule may refer to, from the config and the templates.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub templates: Vec<String>,
    pub teams: Vec<String>,
    pub agents: Vec<String>,
    pub categories: Vec<String>,
    pub webhooks: Vec<String>,
    /// Whether a calendar exists for `business_hours`.
    pub calendar: bool,
    /// Whether a Telegram bot is configured (chat recipients need one).
    pub telegram: bool,
    /// Whether a Discord bot is configured.
    pub discord: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl Catalog {
    pub fn of(config: &crate::config::Config) -> Catalog {
        Catalog {
            templates: crate::ticket::Notice::NAMES
                .iter()
                .map(|e| e.to_string())
                .collect(),
            teams: config.team.iter().map(|t| t.name.clone()).collect(),
            agents: config.agent.iter().map(|a| a.email.clone()).collect(),
            categories: config.tickets.categories.clone(),
            webhooks: config.webhook.iter().map(|w| w.name.clone()).collect(),
            calendar: config.rules_calendar().is_some(),
            telegram: config.telegram.is_some(),
            discord: config.discord.is_some(),
        }
    }
}

/// Reads the rule set the config names (`[rules] dir`); none without one.
pub fn load_configured(config: &crate::config::Config) -> Result<RuleSet, Vec<RuleError>> {
    let mut set = match &config.rules.dir {
        Some(dir) => load_dir(dir, &Catalog::of(config))?,
        None => RuleSet::default(),
    };
    set.max_depth = config.rules.max_depth;
    Ok(set)
}

/// Reads `dir/*.toml` in file-name order. A missing directory is an empty set.
pub fn load_dir(dir: &Path, catalog: &Catalog) -> Result<RuleSet, Vec<RuleError>> {
    let error = |message: String| {
        vec![RuleError {
            file: dir.display().to_string(),
            line: 0,
            col: 0,
            rule: None,
            message,
        }]
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RuleSet::default()),
        Err(e) => return Err(error(format!("cannot read the rules directory: {e}"))),
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push((file.display().to_string(), text)),
            Err(e) => return Err(error(format!("cannot read {}: {e}", file.display()))),
        }
    }
    let mut set = load_texts(&texts, catalog)?;
    set.digest = digest(&texts);
    Ok(set)
}

/// SHA-256 over each file's name (not its folder, which differs between
/// machines) and contents, in file-name order.
fn digest(texts: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (path, text) in texts {
        let name = Path::new(path).file_name().unwrap_or_default();
        hash.update(name.as_encoded_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}

/// Builds a rule set from (file name, text) pairs, in the given order.
pub fn load_texts(
    files: &[(String, String)],
    catalog: &Catalog,
) -> Result<RuleSet, Vec<RuleError>> {
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    for (file, text) in files {
        let mut reader = Reader {
            file,
            text,
            catalog,
            rule: None,
            errors: &mut errors,
        };
        reader.file_rules(&mut set.rules);
    }
    let mut seen = std::collections::HashMap::new();
    for rule in &set.rules {
        if let Some(first) = seen.insert(rule.name.clone(), (rule.file.clone(), rule.line)) {
            errors.push(RuleError {
                file: rule.file.clone(),
                line: rule.line,
                col: 1,
                rule: Some(rule.name.clone()),
                message: format!(
                    "the name is already used at {}:{}; rule names must be unique",
                    first.0, first.1
                ),
            });
        }
    }
    if errors.is_empty() {
        set.index();
        Ok(set)
    } else {
        Err(errors)
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

struct Reader<'a> {
    file: &'a str,
    text: &'a str,
    catalog: &'a Catalog,
    rule: Option<String>,
    errors: &'a mut Vec<RuleError>,
}

impl Reader<'_> {
    fn error(&mut self, at: usize, message: impl Into<String>) {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(RuleError {
            file: self.file.to_string(),
            line,
            col,
            rule: self.rule.clone(),
            message: message.into(),
        });
    }

    fn line_of(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())].matches('\n').count() + 1
    }

    fn file_rules(&mut self, out: &mut Vec<Rule>) {
        let root = match DeTable::parse(self.text) {
            Ok(root) => root,
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                let message = e
                    .message()
                    .lines()
                    .next()
                    .unwrap_or("invalid TOML")
                    .to_string();
                self.error(at, message);
                return;
            }
        };
        for (key, value) in root.get_ref().iter() {
            if key.get_ref() != "rule" {
                self.error(
                    key.span().start,
                    format!(
                        "unknown key `{}`: a rule file holds [[rule]] tables",
                        key.get_ref()
                    ),
                );
                continue;
            }
            let Some(tables) = self.tables(value, "`rule` must be written as [[rule]] tables")
            else {
                continue;
            };
            for (at, table) in tables {
                self.rule = None;
                if let Some(rule) = self.rule_table(at, table) {
                    out.push(rule);
                }
            }
        }
        self.rule = None;
    }

    fn rule_table(&mut self, at: usize, table: &DeTable<'_>) -> Option<Rule> {
        let Some(name) = rule_name(table) else {
            self.error(at, "a rule needs a `name` (a non-empty string)");
            return None;
        };
        self.rule = Some(name.clone());
        let errors_before = self.errors.len();
        let (mut on, mut when, mut then, mut stop, mut tests) =
            (Vec::new(), None, None, false, Vec::new());
        let (mut on_at, mut schedule, mut then_at) = (None, None, at);
        let mut schedule_key = None;
        for (key, value) in table.iter() {
            let k_at = key.span().start;
            match key.get_ref().as_ref() {
                "name" => {}
                "on" => {
                    on_at = Some(k_at);
                    on = self.events(value);
                }
                "when" => {
                    if let Some(t) = self.table(value, "`when` must be a table of conditions") {
                        when = self.condition(t);
                    }
                }
                "then" => {
                    then_at = value.span().start;
                    then = Some(self.actions(value));
                }
                "schedule" => {
                    schedule_key = Some(k_at);
                    schedule = self.schedule(value);
                }
                "stop" => match value.get_ref() {
                    DeValue::Boolean(b) => stop = *b,
                    _ => self.error(value.span().start, "`stop` must be true or false"),
                },
                "test" => tests = self.tests(value),
                other => self.error(
                    k_at,
                    format!(
                        "unknown key `{other}` (a rule has name, on, schedule, when, then, stop \
                         and test; conditions go under [rule.when])"
                    ),
                ),
            }
        }
        let structure_ok = self.errors.len() == errors_before;
        match on_at {
            None => self.error(at, "a rule needs `on`, the events it fires on"),
            Some(on_at) if on.is_empty() && structure_ok => {
                self.error(on_at, "`on` lists no event")
            }
            _ => {}
        }
        let then = then.unwrap_or_default();
        if then.is_empty() && structure_ok {
            self.error(at, "a rule needs `then`, a non-empty list of actions");
        }
        self.check_schedule(&on, on_at.unwrap_or(at), schedule_key, &then, then_at);
        for t in &mut tests {
            if t.event.is_none() {
                t.event = on.first().copied();
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Rule {
            name,
            file: self.file.to_string(),
            line: self.line_of(at),
            on,
            schedule,
            when: when.unwrap_or(Condition::All(Vec::new())),
            then,
            stop,
            tests,
        })
    }

    /// A rule's `schedule`, a cron string.
    fn schedule(&mut self, value: &Value<'_>) -> Option<super::schedule::Schedule> {
        let DeValue::String(text) = value.get_ref() else {
            self.error(
                value.span().start,
                "`schedule` must be a cron string, e.g. \"0 0 8 * * Mon-Fri\"",
            );
            return None;
        };
        super::schedule::Schedule::parse(text)
            .map_err(|message| self.error(value.span().start, message))
            .ok()
    }

    /// A `schedule` rule fires on nothing else and has a cron schedule;
    /// only it may summarize (`digest`, `report`).
    fn check_schedule(
        &mut self,
        on: &[Event],
        on_at: usize,
        schedule_at: Option<usize>,
        then: &[Action],
        then_at: usize,
    ) {
        let scheduled = on.contains(&Event::Schedule);
        if scheduled && on.len() > 1 {
            self.error(on_at, "a `schedule` rule fires on `schedule` alone");
        }
        match (scheduled, schedule_at) {
            (true, None) => self.error(
                on_at,
                "a `schedule` rule needs `schedule = \"SEC MIN HOUR DAY MONTH WEEKDAY\"`",
            ),
            (false, Some(at)) => self.error(at, "`schedule` needs `on = \"schedule\"`"),
            _ => {}
        }
        if !scheduled && let Some(a) = then.iter().find(|a| a.is_summary()) {
            let name = a.to_string();
            let name = name.split(' ').next().unwrap_or_default().to_string();
            self.error(
                then_at,
                format!("`{name}` summarizes many tickets: only a `schedule` rule can use it"),
            );
        }
    }

    fn events(&mut self, value: &Value<'_>) -> Vec<Event> {
        let items: Vec<&Value<'_>> = match value.get_ref() {
            DeValue::String(_) => vec![value],
            DeValue::Array(a) => a.iter().collect(),
            _ => {
                self.error(
                    value.span().start,
                    "`on` must be an event or a list of events",
                );
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => match s.parse::<Event>() {
                    Ok(e) => events.push(e),
                    Err(message) => self.error(item.span().start, message),
                },
                _ => self.error(item.span().start, "an event name must be a string"),
            }
        }
        events
    }

    fn table<'v, 'i>(&mut self, value: &'v Value<'i>, message: &str) -> Option<&'v DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.error(value.span().start, message);
                None
            }
        }
    }

    fn tables<'v, 'i>(
        &mut self,
        value: &'v Value<'i>,
        message: &str,
    ) -> Option<Vec<(usize, &'v DeTable<'i>)>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(value.span().start, message);
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((item.span().start, t)),
                _ => self.error(item.span().start, message),
            }
        }
        Some(out)
    }

    /// A table of conditions; several entries must all hold.
    fn condition(&mut self, table: &DeTable<'_>) -> Option<Condition> {
        let mut all = Vec::new();
        for (key, value) in table.iter() {
            let at = key.span().start;
            match key.get_ref().as_ref() {
                name @ ("all" | "any") => {
                    let message = format!("`{name}` must be a list of condition tables");
                    let Some(items) = self.tables(value, &message) else {
                        continue;
                    };
                    let list: Vec<Condition> = items
                        .into_iter()
                        .filter_map(|(_, t)| self.condition(t))
                        .collect();
                    all.push(if name == "all" {
                        Condition::All(list)
                    } else {
                        Condition::Any(list)
                    });
                }
                "not" => {
                    if let Some(t) = self.table(value, "`not` must be a condition table")
                        && let Some(c) = self.condition(t)
                    {
                        all.push(Condition::Not(Box::new(c)));
                    }
                }
                "header" => {
                    let Some(headers) = self.table(
                        value,
                        "`header` must be a table: header.NAME.OPERATOR = VALUE",
                    ) else {
                        continue;
                    };
                    for (name, tests) in headers.iter() {
                        let field = Field::Header(name.get_ref().to_string());
                        all.extend(self.field_tests(field, tests));
                    }
                }
                "business_hours" if !self.catalog.calendar => self.error(
                    at,
                    "business_hours needs a [[calendar]] in the config (and [rules] calendar to pick one)",
                ),
                name => match Field::named(name) {
                    Some(field) => all.extend(self.field_tests(field, value)),
                    None => self.error(
                        at,
                        format!(
                            "unknown field `{name}` (expected all, any, not or one of: {})",
                            FIELDS.join(", ")
                        ),
                    ),
                },
            }
        }
        Some(if all.len() == 1 {
            all.remove(0)
        } else {
            Condition::All(all)
        })
    }

    /// `field = VALUE` (equals) or `field = { OPERATOR = VALUE, … }`.
    fn field_tests(&mut self, field: Field, value: &Value<'_>) -> Vec<Condition> {
        let DeValue::Table(ops) = value.get_ref() else {
            return self
                .operator(&field, "equals", value)
                .map(|op| Condition::Test(Test { field, op }))
                .into_iter()
                .collect();
        };
        let mut tests = Vec::new();
        for (name, operand) in ops.iter() {
            let name_text = name.get_ref().as_ref();
            if !OPERATORS.contains(&name_text) {
                self.error(
                    name.span().start,
                    format!(
                        "unknown operator `{name_text}` (expected one of: {})",
                        OPERATORS.join(", ")
                    ),
                );
                continue;
            }
            if let Some(op) = self.operator(&field, name_text, operand) {
                tests.push(Condition::Test(Test {
                    field: field.clone(),
                    op,
                }));
            }
        }
        tests
    }

    fn operator(&mut self, field: &Field, name: &str, value: &Value<'_>) -> Option<Op> {
        let at = value.span().start;
        if !field.takes(name) {
            let kind = match field.kind() {
                Kind::Text => "a text field",
                Kind::Word => "a field with fixed values",
                Kind::Number => "a number field",
                Kind::Duration => "a duration field",
                Kind::Bool => "a true/false field",
            };
            self.error(at, format!("`{name}` does not apply to {field}, {kind}"));
            return None;
        }
        let text = |r: &mut Self| -> Option<String> {
            match value.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ => {
                    r.error(at, format!("{field} {name}: expected a string"));
                    None
                }
            }
        };
        Some(match name {
            // Lower case once here, so evaluation compares without copying.
            "contains" => Op::Contains(text(self)?.to_lowercase()),
            "starts_with" => Op::StartsWith(text(self)?.to_lowercase()),
            "ends_with" => Op::EndsWith(text(self)?.to_lowercase()),
            "matches" => {
                let pattern = text(self)?;
                match regex::Regex::new(&pattern) {
                    Ok(r) => Op::Matches(super::prefilter::Pattern::new(r)),
                    Err(e) => {
                        let why = e.to_string();
                        let why = why.lines().last().unwrap_or("invalid").trim();
                        let why = why.strip_prefix("error: ").unwrap_or(why);
                        self.error(at, format!("bad regex {pattern:?}: {why}"));
                        return None;
                    }
                }
            }
            "exists" => match value.get_ref() {
                DeValue::Boolean(b) => Op::Exists(*b),
                _ => {
                    self.error(at, format!("{field} exists: expected true or false"));
                    return None;
                }
            },
            "in" => {
                let DeValue::Array(items) = value.get_ref() else {
                    self.error(at, format!("{field} in: expected a list of strings"));
                    return None;
                };
                let mut list = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => {
                            self.check_word(field, s, item.span().start);
                            list.push(s.to_string());
                        }
                        _ => self.error(item.span().start, format!("{field} in: expected strings")),
                    }
                }
                Op::In(list)
            }
            _ => {
                let operand = self.operand(field, name, value)?;
                match name {
                    "equals" => Op::Equals(operand),
                    "gt" => Op::Gt(operand),
                    _ => Op::Lt(operand),
                }
            }
        })
    }

    /// The value of `equals`, `gt` or `lt`, typed by the field.
    fn operand(&mut self, field: &Field, name: &str, value: &Value<'_>) -> Option<Operand> {
        let at = value.span().start;
        match (field.kind(), value.get_ref()) {
            (Kind::Text | Kind::Word, DeValue::String(s)) => {
                self.check_word(field, s, at);
                Some(Operand::Text(s.to_string()))
            }
            (Kind::Number | Kind::Duration, DeValue::Integer(i)) => {
                match i64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) if n >= 0 => Some(Operand::Number(n)),
                    _ => {
                        self.error(at, format!("{field} {name}: expected a number ≥ 0"));
                        None
                    }
                }
            }
            (Kind::Duration, DeValue::String(s)) => match crate::clock::parse_duration(s) {
                Some(n) => Some(Operand::Number(n)),
                None => {
                    self.error(
                        at,
                        format!("{field} {name}: {s:?} is not a duration (like 90, \"30m\", \"4h\", \"7d\")"),
                    );
                    None
                }
            },
            (Kind::Bool, DeValue::Boolean(b)) => Some(Operand::Bool(*b)),
            (kind, _) => {
                let expected = match kind {
                    Kind::Text | Kind::Word => "a string",
                    Kind::Number => "a number",
                    Kind::Duration => "a duration (like 90, \"30m\", \"4h\", \"7d\")",
                    Kind::Bool => "true or false",
                };
                self.error(at, format!("{field} {name}: expected {expected}"));
                None
            }
        }
    }

    /// Word fields only take their own vocabulary; categories, teams and
    /// assignees must exist.
    fn check_word(&mut self, field: &Field, word: &str, at: usize) {
        let catalog = self.catalog;
        let (known, what): (Vec<&str>, &str) = match field {
            Field::Category => (
                catalog.categories.iter().map(String::as_str).collect(),
                "category",
            ),
            Field::Team => (catalog.teams.iter().map(String::as_str).collect(), "team"),
            Field::Assignee => (catalog.agents.iter().map(String::as_str).collect(), "agent"),
            f if f.kind() == Kind::Word => (f.vocabulary().to_vec(), "value"),
            _ => return,
        };
        if !known.iter().any(|k| k.eq_ignore_ascii_case(word)) {
            self.error(
                at,
                format!(
                    "{field}: unknown {what} {word:?} (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }

    fn actions(&mut self, value: &Value<'_>) -> Vec<Action> {
        let Some(tables) = self.tables(
            value,
            "`then` must be a list of action tables, e.g. [{ set_category = \"billing\" }]",
        ) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        for (at, table) in tables {
            let mut entries = table.iter();
            let (Some((key, value)), None) = (entries.next(), entries.next()) else {
                self.error(at, "each action table holds exactly one action");
                continue;
            };
            if let Some(a) = self.action(key.get_ref(), key.span().start, value) {
                actions.push(a);
            }
        }
        actions
    }

    fn action(&mut self, name: &str, at: usize, value: &Value<'_>) -> Option<Action> {
        let v_at = value.span().start;
        let catalog = self.catalog;
        let string = |r: &mut Self| -> Option<String> {
            match value.get_ref() {
                DeValue::String(s) if !s.trim().is_empty() => Some(s.to_string()),
                _ => {
                    r.error(v_at, format!("{name}: expected a non-empty string"));
                    None
                }
            }
        };
        let flag = |r: &mut Self| -> Option<()> {
            match value.get_ref() {
                DeValue::Boolean(true) => Some(()),
                _ => {
                    r.error(v_at, format!("{name}: write `{name} = true`"));
                    None
                }
            }
        };
        Some(match name {
            "set_category" => {
                let v = string(self)?;
                self.known(&catalog.categories, &v, "category", v_at)?;
                Action::SetCategory(v)
            }
            "set_priority" => {
                Action::SetPriority(self.word(name, value, Priority::NAMES)?.parse().ok()?)
            }
            "set_status" => Action::SetStatus(self.word(name, value, Status::NAMES)?.parse().ok()?),
            "set_team" => {
                let v = string(self)?;
                self.known(&catalog.teams, &v, "team", v_at)?;
                Action::SetTeam(v)
            }
            "add_tag" => {
                let tag = string(self)?;
                if tag.chars().any(char::is_control) {
                    self.error(v_at, "add_tag: a tag cannot hold control characters");
                    return None;
                }
                Action::AddTag(tag)
            }
            "remove_tag" => Action::RemoveTag(string(self)?),
            "note" => Action::Note(string(self)?),
            "close" => flag(self).map(|_| Action::Close)?,
            "spam" => flag(self).map(|_| Action::Spam)?,
            "webhook" => {
                let v = string(self)?;
                self.known(&catalog.webhooks, &v, "webhook", v_at)?;
                Action::Webhook(v)
            }
            "assign" => Action::Assign(self.assignee(value)?),
            "auto_reply" => self.auto_reply(value)?,
            "notify" => self.notify(value)?,
            "escalate" => self.escalate(value)?,
            "digest" | "report" => self.summary(name, value)?,
            other => {
                self.error(
                    at,
                    format!(
                        "unknown action `{other}` (expected one of: set_category, set_priority, set_status, \
                         set_team, add_tag, remove_tag, assign, notify, auto_reply, note, escalate, close, \
                         spam, webhook, digest, report)"
                    ),
                );
                return None;
            }
        })
    }

    /// `auto_reply = "template"` or `auto_reply = { template = "…" }`.
    fn auto_reply(&mut self, value: &Value<'_>) -> Option<Action> {
        let v_at = value.span().start;
        let template = match value.get_ref() {
            DeValue::Table(t) => self.fields(t, "auto_reply", &["template"], v_at)?.remove(0),
            DeValue::String(s) if !s.trim().is_empty() => (s.to_string(), v_at),
            _ => {
                self.error(v_at, "auto_reply: expected a non-empty string");
                return None;
            }
        };
        Some(Action::AutoReply {
            template: self.template(template)?,
        })
    }

    /// `notify = { template = "…", to = "…" }`.
    fn notify(&mut self, value: &Value<'_>) -> Option<Action> {
        let v_at = value.span().start;
        let t = self.table(value, "notify: expected { template = \"…\", to = \"…\" }")?;
        let mut f = self.fields(t, "notify", &["template", "to"], v_at)?;
        let to = self.recipient(f.remove(1));
        let template = self.template(f.remove(0));
        Some(Action::Notify {
            template: template?,
            to: to?,
        })
    }

    /// `escalate = true` or `escalate = { to = …, template = … }`.
    fn escalate(&mut self, value: &Value<'_>) -> Option<Action> {
        let v_at = value.span().start;
        let (template, to) = match value.get_ref() {
            DeValue::Boolean(true) => (Notice::TicketEscalated, Recipient::Managers),
            DeValue::Table(t) => {
                let mut template = ("ticket_escalated".to_string(), v_at);
                let mut to = Recipient::Managers;
                for (k, v) in t.iter() {
                    match (k.get_ref().as_ref(), v.get_ref()) {
                        ("template", DeValue::String(s)) => {
                            template = (s.to_string(), v.span().start)
                        }
                        ("to", DeValue::String(s)) => {
                            to = self.recipient((s.to_string(), v.span().start))?
                        }
                        (other, _) => {
                            self.error(
                                k.span().start,
                                format!(
                                    "escalate: unknown or mistyped key `{other}` (template, to)"
                                ),
                            );
                            return None;
                        }
                    }
                }
                (self.template(template)?, to)
            }
            _ => {
                self.error(
                    v_at,
                    "escalate: write `escalate = true` or { to = …, template = … }",
                );
                return None;
            }
        };
        Some(Action::Escalate { to, template })
    }

    /// `digest = { to = …, template = … }` or `report = { to = …, template
    /// = …, period = "7d", by = "team" }`; only `to` is required.
    fn summary(&mut self, name: &str, value: &Value<'_>) -> Option<Action> {
        let v_at = value.span().start;
        let digest = name == "digest";
        let usage = if digest {
            "digest: expected { to = \"team\" } (to, template)"
        } else {
            "report: expected { to = \"managers\" } (to, template, period, by)"
        };
        let t = self.table(value, usage)?;
        let mut template = (
            if digest { "daily_digest" } else { "sla_report" }.to_string(),
            v_at,
        );
        let (mut to, mut period, mut by) = (None, 7 * 86_400, crate::report::GroupBy::Team);
        let keys: &[&str] = if digest {
            &["to", "template"]
        } else {
            &["to", "template", "period", "by"]
        };
        for (k, v) in t.iter() {
            let (key, at) = (k.get_ref().as_ref(), v.span().start);
            let DeValue::String(text) = v.get_ref() else {
                self.error(at, format!("{name}: `{key}` must be a string"));
                return None;
            };
            match key {
                _ if !keys.contains(&key) => {
                    self.error(
                        k.span().start,
                        format!("{name}: unknown key `{key}` ({})", keys.join(", ")),
                    );
                    return None;
                }
                "to" => to = Some(self.summary_to(name, (text, at))?),
                "template" => template = (text.to_string(), at),
                "period" => {
                    match crate::clock::parse_duration(text) {
                        Some(p) if p > 0 => period = p,
                        _ => {
                            self.error(at, format!("report: period {text:?} is not a duration (like \"1d\", \"7d\")"));
                            return None;
                        }
                    }
                }
                _ => match text.parse() {
                    Ok(b) => by = b,
                    Err(message) => {
                        self.error(at, format!("report: {message}"));
                        return None;
                    }
                },
            }
        }
        let Some(to) = to else {
            self.error(v_at, format!("{name}: `to` is missing"));
            return None;
        };
        let template = self.template(template)?;
        Some(if digest {
            Action::Digest { template, to }
        } else {
            Action::Report {
                template,
                to,
                period,
                by,
            }
        })
    }

    /// Whom a digest or a report goes to: agents, by email.
    fn summary_to(&mut self, name: &str, (text, at): (&str, usize)) -> Option<Recipient> {
        let wrong = match text {
            "requester" => Some(format!("{name}: goes to agents, not to the requester")),
            _ if text.starts_with("telegram:") || text.starts_with("discord:") => Some(format!(
                "{name}: goes by email (team, assignee, managers or an address)"
            )),
            "team" | "assignee" if name == "report" => {
                Some("report: goes to `managers` or an email address".to_string())
            }
            _ => None,
        };
        if let Some(message) = wrong {
            self.error(at, message);
            return None;
        }
        self.recipient((text.to_string(), at))
    }

    /// The string values of exactly `keys` in `table`, in that order.
    fn fields(
        &mut self,
        table: &DeTable<'_>,
        action: &str,
        keys: &[&str],
        at: usize,
    ) -> Option<Vec<(String, usize)>> {
        let mut out = vec![None; keys.len()];
        let mut ok = true;
        for (k, v) in table.iter() {
            match (
                keys.iter().position(|x| *x == k.get_ref().as_ref()),
                v.get_ref(),
            ) {
                (Some(i), DeValue::String(s)) => out[i] = Some((s.to_string(), v.span().start)),
                (Some(_), _) => {
                    self.error(
                        v.span().start,
                        format!("{action}: `{}` must be a string", k.get_ref()),
                    );
                    ok = false;
                }
                (None, _) => {
                    self.error(
                        k.span().start,
                        format!(
                            "{action}: unknown key `{}` (expected {})",
                            k.get_ref(),
                            keys.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        let mut values = Vec::new();
        for (key, v) in keys.iter().zip(out) {
            match v {
                Some(v) => values.push(v),
                None => {
                    self.error(at, format!("{action}: `{key}` is missing"));
                    ok = false;
                }
            }
        }
        ok.then_some(values)
    }

    fn assignee(&mut self, value: &Value<'_>) -> Option<Assignee> {
        let at = value.span().start;
        let catalog = self.catalog;
        match value.get_ref() {
            DeValue::String(agent) => {
                self.known(&catalog.agents, agent, "agent", at)?;
                Some(Assignee::Agent(agent.to_string()))
            }
            DeValue::Table(t) => {
                let (mut agent, mut team, mut strategy) = (None, None, Strategy::RoundRobin);
                for (k, v) in t.iter() {
                    let v_at = v.span().start;
                    match (k.get_ref().as_ref(), v.get_ref()) {
                        ("agent", DeValue::String(s)) => agent = Some((s.to_string(), v_at)),
                        ("team", DeValue::String(s)) => team = Some((s.to_string(), v_at)),
                        ("strategy", DeValue::String(s)) => {
                            strategy = match s.as_ref() {
                                "round_robin" => Strategy::RoundRobin,
                                "least_open" => Strategy::LeastOpen,
                                other => {
                                    self.error(
                                        v_at,
                                        format!("assign: unknown strategy {other:?} (round_robin, least_open)"),
                                    );
                                    return None;
                                }
                            }
                        }
                        (other, _) => {
                            self.error(
                                k.span().start,
                                format!("assign: unknown or mistyped key `{other}` (agent, team, strategy)"),
                            );
                            return None;
                        }
                    }
                }
                match (agent, team) {
                    (Some((a, a_at)), None) => {
                        self.known(&catalog.agents, &a, "agent", a_at)?;
                        Some(Assignee::Agent(a))
                    }
                    (None, Some((t, t_at))) => {
                        self.known(&catalog.teams, &t, "team", t_at)?;
                        Some(Assignee::Team { team: t, strategy })
                    }
                    _ => {
                        self.error(at, "assign: name either an `agent` or a `team`");
                        None
                    }
                }
            }
            _ => {
                self.error(
                    at,
                    "assign: expected an agent's email or { team = …, strategy = … }",
                );
                None
            }
        }
    }

    fn word(&mut self, action: &str, value: &Value<'_>, known: &[&str]) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) if known.contains(&s.as_ref()) => Some(s.to_string()),
            _ => {
                self.error(
                    value.span().start,
                    format!("{action}: expected one of: {}", known.join(", ")),
                );
                None
            }
        }
    }

    fn known(&mut self, known: &[String], name: &str, what: &str, at: usize) -> Option<()> {
        if known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Some(());
        }
        let list = if known.is_empty() {
            "none configured".to_string()
        } else {
            known.join(", ")
        };
        self.error(at, format!("unknown {what} {name:?} (known: {list})"));
        None
    }

    fn template(&mut self, (name, at): (String, usize)) -> Option<Notice> {
        let catalog = self.catalog;
        self.known(&catalog.templates, &name, "template", at)?;
        name.parse().map_err(|e: String| self.error(at, e)).ok()
    }

    fn recipient(&mut self, (text, at): (String, usize)) -> Option<Recipient> {
        let r = Recipient::parse(&text);
        match &r {
            None => self.error(
                at,
                format!("unknown recipient {text:?} (requester, assignee, team, managers, an email address, telegram:CHAT_ID or discord:CHANNEL_ID)"),
            ),
            Some(Recipient::Chat(crate::ticket::Channel::Telegram, _)) if !self.catalog.telegram => {
                self.error(at, format!("{text} needs a [telegram] bot in the config"));
                return None;
            }
            Some(Recipient::Chat(crate::ticket::Channel::Discord, _)) if !self.catalog.discord => {
                self.error(at, format!("{text} needs a [discord] bot in the config"));
                return None;
            }
            Some(_) => {}
        }
        r
    }

    fn tests(&mut self, value: &Value<'_>) -> Vec<RuleTest> {
        let Some(tables) = self.tables(value, "`test` must be written as [[rule.test]] tables")
        else {
            return Vec::new();
        };
        let mut tests = Vec::new();
        for (at, table) in tables {
            let mut test = RuleTest {
                line: self.line_of(at),
                event: None,
                message: String::new(),
                expect: Vec::new(),
            };
            let mut has_message = false;
            let mut has_expect = false;
            for (k, v) in table.iter() {
                let v_at = v.span().start;
                match (k.get_ref().as_ref(), v.get_ref()) {
                    ("message", DeValue::String(s)) => {
                        test.message = s.to_string();
                        has_message = true;
                    }
                    ("event", DeValue::String(s)) => match s.parse() {
                        Ok(e) => test.event = Some(e),
                        Err(m) => self.error(v_at, m),
                    },
                    ("expect", DeValue::Array(items)) => {
                        has_expect = true;
                        for item in items.iter() {
                            match item.get_ref() {
                                DeValue::String(s) => test.expect.push(s.to_string()),
                                _ => self.error(
                                    item.span().start,
                                    "expect: list the actions as strings",
                                ),
                            }
                        }
                    }
                    (other, _) => self.error(
                        k.span().start,
                        format!("test: unknown or mistyped key `{other}` (message, event, expect)"),
                    ),
                }
            }
            if !has_message || !has_expect {
                self.error(
                    at,
                    "a test needs `message` (a raw mail) and `expect` (a list of actions)",
                );
                continue;
            }
            tests.push(test);
        }
        tests
    }
}

/// A rule's `name`, when it is a non-empty string.
fn rule_name(table: &DeTable<'_>) -> Option<String> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == "name")
        .and_then(|(_, v)| match v.get_ref() {
            DeValue::String(s) if !s.trim().is_empty() => Some(s.to_string()),
            _ => None,
        })
}
