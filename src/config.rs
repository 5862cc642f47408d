//! Typed configuration: `config/ticketd.toml`, environment overrides and secrets
//! read from files (`*_file`, which works with systemd `LoadCredential`).

use crate::thread::{Policy, StrangerPolicy};
use crate::ticket::Priority;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Levels of follow-up rule events before the loop guard cuts (`[rules] max_depth`).
pub const DEFAULT_MAX_DEPTH: usize = 10;

pub const DEFAULT_PATH: &str = "config/ticketd.toml";
pub const ENV_CONFIG: &str = "TICKETD_CONFIG";
pub const ENV_DATABASE_URL: &str = "TICKETD_DATABASE_URL";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub database: Database,
    #[serde(default)]
    pub tickets: Tickets,
    #[serde(default)]
    pub mail: Mail,
    #[serde(default)]
    pub attachments: Attachments,
    #[serde(default)]
    pub threading: Threading,
    #[serde(default)]
    pub notify: Notify,
    /// Outgoing mail server; without it mail is written to `mail.outbox_dir`.
    pub smtp: Option<Smtp>,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub maildir: Vec<Maildir>,
    #[serde(default)]
    pub mailbox: Vec<Mailbox>,
    #[serde(default)]
    pub team: Vec<Team>,
    #[serde(default)]
    pub agent: Vec<Agent>,
    #[serde(default)]
    pub organization: Vec<Organization>,
    #[serde(default)]
    pub webhook: Vec<Webhook>,
    #[serde(default)]
    pub calendar: Vec<Calendar>,
    #[serde(default)]
    pub sla: Sla,
    /// The Telegram bot; chat notifications need it.
    pub telegram: Option<Telegram>,
    /// The Discord bot; notifications to Discord channels need it.
    pub discord: Option<Discord>,
    /// How the daemon behaves as a service.
    #[serde(default)]
    pub service: Service,
    /// The metrics and health listener, when wanted.
    pub metrics: Option<Metrics>,
    /// How long the journal and raw message copies are kept.
    #[serde(default)]
    pub retention: Retention,
    /// The file this config was read from, kept for reloads.
    #[serde(skip)]
    pub source: Option<Source>,
}

/// A config file as read: its path and its TOML tree (SIGHUP compares the
/// new tree with this one to tell what needs a restart).
#[derive(Clone)]
pub struct Source {
    pub path: PathBuf,
    pub table: toml::Table,
}

impl std::fmt::Debug for Source {
    /// The path only: the tree holds secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({})", self.path.display())
    }
}

/// `[retention]`: days to keep; unset keeps forever.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Ingest journal rows.
    pub journal_days: Option<u32>,
    /// Raw copies in `mail.quarantine_dir` (quarantined and oversized mail).
    pub quarantine_days: Option<u32>,
}

/// `[metrics]`: `/metrics`, `/healthz` and `/readyz` over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Address and port, e.g. `127.0.0.1:9187` (anything but loopback
    /// exposes the figures to the network).
    pub listen: String,
}

/// `[service]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// On SIGTERM, how long to wait for work in flight before exiting (keep
    /// it below the unit's `TimeoutStopSec`).
    pub stop_timeout_seconds: u64,
}

impl Default for Service {
    fn default() -> Service {
        Service {
            stop_timeout_seconds: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// The folder of rule files (`*.toml`, read in file-name order); no rules
    /// run without one.
    pub dir: Option<PathBuf>,
    /// The `[[calendar]]` the `business_hours` condition uses (default: the first).
    pub calendar: Option<String>,
    /// Mail the admins (agents with role admin) when changed rules are refused.
    pub alert_admins: bool,
    /// Follow-up events (a rule's change firing `ticket.updated` …) run the
    /// rules again at most this many levels deep.
    pub max_depth: usize,
    /// The time zone of `schedule` rules' cron patterns (default: the rules
    /// calendar's, else UTC).
    pub time_zone: Option<String>,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            dir: None,
            calendar: None,
            alert_admins: false,
            max_depth: DEFAULT_MAX_DEPTH,
            time_zone: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// `sqlite://PATH` or `postgres://…`; `TICKETD_DATABASE_URL` wins.
    pub url: String,
    pub max_connections: u32,
    /// How long an instance's hold on a source (an IMAP mailbox, a bot, a
    /// Maildir) lasts without renewal; another instance takes a dead one's
    /// sources over after at most this plus a third of it.
    pub lease_seconds: u32,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: "sqlite://var/ticketd.db".into(),
            max_connections: 8,
            lease_seconds: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tickets {
    pub number_prefix: String,
    pub default_priority: Priority,
    pub categories: Vec<String>,
}

impl Default for Tickets {
    fn default() -> Self {
        Tickets {
            number_prefix: "TKT".into(),
            default_priority: Priority::Medium,
            categories: ["technical", "account", "billing", "other"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    /// The addresses customers write to; they are never participants.
    pub support_addresses: Vec<String>,
    /// Outgoing mail is written here as .eml files until SMTP is configured.
    pub outbox_dir: PathBuf,
    /// Raw copies of messages that could not be stored as tickets.
    pub quarantine_dir: PathBuf,
    /// Larger messages are quarantined without being parsed.
    pub max_message_bytes: u64,
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            support_addresses: vec!["support@example.com".into()],
            outbox_dir: "var/outbox".into(),
            quarantine_dir: "var/quarantine".into(),
            max_message_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Attachments {
    pub dir: PathBuf,
    /// Attachments over this size are recorded but not stored.
    pub max_bytes: u64,
}

impl Default for Attachments {
    fn default() -> Self {
        Attachments {
            dir: "var/attachments".into(),
            max_bytes: 20 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Threading {
    pub stranger_policy: StrangerPolicy,
    pub reopen_days: i64,
    /// Key for signed reply tokens (support+TOKEN@…). Prefer `reply_token_key_file`.
    pub reply_token_key: Option<Secret>,
    pub reply_token_key_file: Option<PathBuf>,
}

impl Default for Threading {
    fn default() -> Self {
        Threading {
            stranger_policy: StrangerPolicy::NewTicket,
            reopen_days: 14,
            reply_token_key: None,
            reply_token_key_file: None,
        }
    }
}

impl Threading {
    pub fn policy(&self) -> Policy {
        Policy {
            stranger: self.stranger_policy,
            reopen_days: self.reopen_days,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    /// Sender of every notification, e.g. `Support <support@example.com>`.
    pub from: String,
    /// Language for contacts whose language we do not know or have no templates for.
    pub default_language: String,
    /// Folder of template overrides (`LANG/EVENT.CHANNEL.hbs`); built-ins fill the gaps.
    pub templates_dir: Option<PathBuf>,
    /// Link to a ticket for templates (`{number}` is replaced); empty for none.
    pub ticket_url: String,
    /// Automatic replies to one recipient at most this often.
    pub auto_reply_per_hour: i64,
    pub auto_reply_per_day: i64,
    /// A notification that keeps failing temporarily is given up after this long.
    pub max_age_hours: i64,
    /// Value of the loop marker header on our mail (names this installation).
    pub loop_marker: String,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            from: "Support <support@example.com>".into(),
            default_language: "en".into(),
            templates_dir: Some("templates".into()),
            ticket_url: String::new(),
            auto_reply_per_hour: 10,
            auto_reply_per_day: 40,
            max_age_hours: 48,
            loop_marker: "ticketd".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    /// Default: 465 for implicit TLS, 587 for STARTTLS, 25 for none.
    pub port: Option<u16>,
    #[serde(default = "default_smtp_tls")]
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// Connections kept open to the server.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_smtp_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_pool() -> u32 {
    4
}

impl Smtp {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Implicit => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        })
    }

    pub fn password(&self) -> Result<Option<String>> {
        if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("smtp: cannot read password_file {}", file.display()))?;
            return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
        }
        Ok(self.password.as_ref().map(|p| p.expose().to_string()))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maildir {
    pub name: String,
    pub path: PathBuf,
    /// Rescan interval in seconds, a safety net under file-system events.
    #[serde(default = "default_rescan")]
    pub rescan_seconds: u64,
    /// An empty file in `new/` is quarantined only after staying empty this
    /// long (a writer may not have written yet).
    #[serde(default = "default_empty_seconds")]
    pub empty_seconds: u64,
}

fn default_rescan() -> u64 {
    30
}

fn default_empty_seconds() -> u64 {
    60
}

/// An IMAP mailbox that ticketd drains (one task each).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    pub name: String,
    pub host: String,
    /// Default: 993 for implicit TLS, 143 otherwise.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// Extra CA certificate (PEM) to trust besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Option<Secret>,
    /// Read at each connect, so it works with systemd `LoadCredential`.
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_folder")]
    pub folder: String,
    /// What happens on the server after a message is committed.
    #[serde(default)]
    pub after: After,
    /// Team for tickets this mailbox opens.
    pub team: Option<String>,
    /// Addresses this mailbox serves, besides `mail.support_addresses`.
    #[serde(default)]
    pub support_addresses: Vec<String>,
    /// On first start: take unseen mail, all mail, or only what arrives from now on.
    #[serde(default)]
    pub backfill: Backfill,
    /// Messages fetched and committed per transaction.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// IDLE is re-issued after this long (servers drop it after 30 minutes).
    #[serde(default = "default_idle")]
    pub idle_seconds: u64,
    /// Poll interval when the server has no IDLE.
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// Longest wait between reconnects.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_seconds: u64,
    /// Every IMAP command and the connect time out after this long.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_folder() -> String {
    "INBOX".into()
}
fn default_batch() -> usize {
    100
}
fn default_idle() -> u64 {
    25 * 60
}
fn default_poll() -> u64 {
    60
}
fn default_max_backoff() -> u64 {
    300
}
fn default_timeout() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    #[default]
    Implicit,
    Starttls,
    /// Plain text: refused unless the host is loopback.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backfill {
    #[default]
    Unseen,
    All,
    None,
}

/// `flag` (mark seen), `move:FOLDER`, or `delete`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(try_from = "String")]
pub enum After {
    #[default]
    Flag,
    Move(String),
    Delete,
}

impl TryFrom<String> for After {
    type Error = String;
    fn try_from(s: String) -> Result<After, String> {
        match s.as_str() {
            "flag" => Ok(After::Flag),
            "delete" => Ok(After::Delete),
            other => match other.strip_prefix("move:") {
                Some(folder) if !folder.trim().is_empty() => {
                    Ok(After::Move(folder.trim().to_string()))
                }
                _ => Err(format!(
                    "after must be \"flag\", \"move:FOLDER\" or \"delete\", got {other:?}"
                )),
            },
        }
    }
}

impl Mailbox {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Implicit => 993,
            _ => 143,
        })
    }

    /// The password, read from its file when one is named.
    pub fn password(&self) -> Result<String> {
        if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!(
                    "mailbox {}: cannot read password_file {}",
                    self.name,
                    file.display()
                )
            })?;
            return Ok(text.trim_end_matches(['\n', '\r']).to_string());
        }
        self.password
            .as_ref()
            .map(|p| p.expose().to_string())
            .with_context(|| format!("mailbox {}: set password or password_file", self.name))
    }
}

/// Whether a host name or address is on this machine.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Agent,
    Manager,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default)]
    pub teams: Vec<String>,
    /// The agent's Telegram user id: their messages in the agents' chat
    /// count as theirs.
    pub telegram: Option<i64>,
    /// The agent's Discord user id, likewise.
    pub discord: Option<i64>,
}

fn default_role() -> Role {
    Role::Agent
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub name: String,
    /// Contacts whose address is in one of these domains belong here.
    pub domains: Vec<String>,
}

/// SLA policies: targets per priority, overridable per team and organization.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sla {
    /// Count business time in this `[[calendar]]`; without one, wall time.
    pub calendar: Option<String>,
    /// `sla.warning` fires at this share of a target.
    pub warning_percent: u32,
    /// Durations per priority (`"4h"`, `"3d"`, seconds).
    pub first_response: Targets,
    pub resolution: Targets,
    #[serde(rename = "override")]
    pub overrides: Vec<SlaOverride>,
    /// `ticket.idle` fires when a new or open ticket has not changed for
    /// this long (`"3d"`); off when unset.
    pub idle_after: Option<String>,
    /// Pending this many days: the requester gets a reminder (0: never).
    pub pending_reminder_days: u32,
    /// Still pending this many days after the reminder: resolved (0: never).
    pub pending_resolve_days: u32,
    /// Resolved this many days: closed, with a notice (0: never).
    pub auto_close_days: u32,
}

impl Default for Sla {
    fn default() -> Sla {
        let t = |c: &str, h: &str, m: &str, l: &str| Targets {
            critical: c.into(),
            high: h.into(),
            medium: m.into(),
            low: l.into(),
        };
        Sla {
            calendar: None,
            warning_percent: 80,
            first_response: t("1h", "4h", "8h", "24h"),
            resolution: t("4h", "24h", "72h", "168h"),
            overrides: Vec::new(),
            idle_after: None,
            pending_reminder_days: 0,
            pending_resolve_days: 0,
            auto_close_days: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub critical: String,
    pub high: String,
    pub medium: String,
    pub low: String,
}

impl Targets {
    /// The target for `priority` in seconds.
    pub fn seconds(&self, priority: crate::ticket::Priority) -> Result<i64> {
        use crate::ticket::Priority::*;
        let text = match priority {
            Critical => &self.critical,
            High => &self.high,
            Medium => &self.medium,
            Low => &self.low,
        };
        match crate::clock::parse_duration(text) {
            Some(n) if n > 0 => Ok(n),
            _ => bail!("{priority}: {text:?} is not a positive duration (like \"4h\", \"3d\")"),
        }
    }
}

/// Targets for one team or organization; priorities not named keep the default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaOverride {
    pub team: Option<String>,
    pub organization: Option<String>,
    #[serde(default)]
    pub first_response: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub resolution: std::collections::BTreeMap<String, String>,
}

/// Business hours: a time zone, weekly hours (`mon = "08:00-16:00"`, several
/// ranges separated by commas, a missing day is closed) and holidays.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    pub name: String,
    pub time_zone: String,
    #[serde(default)]
    pub hours: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

impl Calendar {
    pub fn compile(&self) -> Result<crate::calendar::BusinessHours, String> {
        crate::calendar::BusinessHours::new(
            &self.name,
            &self.time_zone,
            &self.hours,
            &self.holidays,
        )
    }
}

/// A webhook rules can call: a JSON POST signed with HMAC-SHA256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub name: String,
    /// `https://…`; plain `http://` only to a loopback host.
    pub url: String,
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    #[serde(default = "default_webhook_timeout")]
    pub timeout_seconds: u64,
}

fn default_webhook_timeout() -> u64 {
    10
}

impl Webhook {
    /// The signing secret, read from its file when one is named.
    pub fn secret(&self) -> Result<Vec<u8>> {
        if let Some(file) = &self.secret_file {
            let text = std::fs::read(file).with_context(|| {
                format!(
                    "webhook {}: cannot read secret_file {}",
                    self.name,
                    file.display()
                )
            })?;
            return Ok(text.trim_ascii().to_vec());
        }
        Ok(self
            .secret
            .as_ref()
            .map_or_else(Vec::new, |s| s.expose().as_bytes().to_vec()))
    }
}

/// An HTTP endpoint we send to: `https://`, or plain `http://` to a
/// loopback host only.
fn check_url(what: &str, url: &str) -> Result<()> {
    let host = url
        .strip_prefix("https://")
        .map(|rest| (true, rest))
        .or_else(|| url.strip_prefix("http://").map(|rest| (false, rest)));
    let Some((tls, rest)) = host else {
        bail!("{what}: url must start with https:// (got {url:?})");
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    if !tls && !is_loopback(host.trim_matches(['[', ']'])) {
        bail!("{what}: plain http:// is only allowed for a loopback host, not {host}");
    }
    Ok(())
}

/// The Telegram bot (`[telegram]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telegram {
    /// The file holding the bot token (e.g. a systemd credential,
    /// `/run/credentials/ticketd.service/telegram`).
    pub token_file: PathBuf,
    /// The Bot API server (a local Bot API server, or a test's).
    #[serde(default = "default_telegram_api")]
    pub api_url: String,
    /// The agents' group: it gets new tickets and customers' comments, and
    /// agents answer and give commands there.
    pub agent_chat: Option<i64>,
}

fn default_telegram_api() -> String {
    "https://api.telegram.org".into()
}

impl Telegram {
    /// The bot token from its file.
    pub fn token(&self) -> Result<String> {
        bot_token("telegram", &self.token_file)
    }
}

/// The Discord bot (`[discord]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discord {
    /// The file holding the bot token (e.g. a systemd credential).
    pub token_file: PathBuf,
    /// The HTTP API's base (a local proxy, or a test's server).
    #[serde(default = "default_discord_api")]
    pub api_url: String,
    /// A guild channel whose messages open tickets, as direct messages to
    /// the bot do.
    pub support_channel: Option<u64>,
    /// The agents' channel: each ticket gets a thread there with its
    /// notifications; agents answer and give commands in it.
    pub agent_channel: Option<u64>,
}

fn default_discord_api() -> String {
    "https://discord.com".into()
}

impl Discord {
    /// The bot token from its file.
    pub fn token(&self) -> Result<String> {
        bot_token("discord", &self.token_file)
    }
}

/// A bot token from its file: one word, surrounding white space ignored.
fn bot_token(what: &str, file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("{what}: cannot read token_file {}", file.display()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        bail!(
            "{what}: token_file {} does not hold one bot token",
            file.display()
        );
    }
    Ok(token.to_string())
}

/// A secret written in the config (a password, a key). Its `Debug` output
/// is redacted, so a config in a log or an error never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"(redacted)\"")
    }
}

/// The path of the config file: `--config`, else `TICKETD_CONFIG`, else the default.
pub fn path(cli: Option<&Path>) -> PathBuf {
    cli.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ENV_CONFIG).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

impl Config {
    /// Reads, parses and validates a config file, then applies the environment.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut config =
            Config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Ok(url) = std::env::var(ENV_DATABASE_URL)
            && !url.is_empty()
        {
            config.database.url = url;
        }
        // Parsed above, so it parses again.
        let table = text.parse::<toml::Table>().unwrap_or_default();
        config.source = Some(Source {
            path: path.to_path_buf(),
            table,
        });
        Ok(config)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}", crate::redact::toml_error(text, &e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let prefix = &self.tickets.number_prefix;
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("tickets.number_prefix must be letters and digits, got {prefix:?}");
        }
        if self.mail.support_addresses.iter().any(|a| !a.contains('@')) {
            bail!("mail.support_addresses must be email addresses");
        }
        if self.database.lease_seconds < 3 {
            bail!("database.lease_seconds must be at least 3");
        }
        if self.threading.reopen_days < 0 {
            bail!("threading.reopen_days must not be negative");
        }
        if let Some(smtp) = &self.smtp
            && smtp.tls == TlsMode::None
            && !is_loopback(&smtp.host)
        {
            bail!(
                "smtp: tls = \"none\" is only allowed for a loopback host, not {}",
                smtp.host
            );
        }
        if self
            .notify
            .from
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            bail!("notify.from is not a valid address: {:?}", self.notify.from);
        }
        self.validate_mailboxes()?;
        for c in &self.calendar {
            c.compile().map_err(|e| anyhow::anyhow!(e))?;
        }
        if let Some(name) = &self.rules.calendar
            && !self.calendar.iter().any(|c| &c.name == name)
        {
            bail!("rules.calendar names unknown calendar {name:?}");
        }
        if !(1..=100).contains(&self.rules.max_depth) {
            bail!("rules.max_depth must be between 1 and 100");
        }
        if let Some(zone) = &self.rules.time_zone {
            zone.parse::<chrono_tz::Tz>()
                .map_err(|_| anyhow::anyhow!("rules.time_zone: unknown time zone {zone:?} (an IANA name like \"Europe/Warsaw\")"))?;
        }
        self.validate_sla()?;
        self.validate_integrations()?;
        Ok(())
    }

    fn validate_mailboxes(&self) -> Result<()> {
        let mut names = std::collections::HashSet::new();
        for mb in &self.mailbox {
            if !names.insert(&mb.name) {
                bail!("mailbox name {:?} is used twice", mb.name);
            }
            if mb.tls == TlsMode::None && !is_loopback(&mb.host) {
                bail!(
                    "mailbox {}: tls = \"none\" is only allowed for a loopback host, not {}",
                    mb.name,
                    mb.host
                );
            }
            if mb.password.is_none() && mb.password_file.is_none() {
                bail!("mailbox {}: set password or password_file", mb.name);
            }
            if mb.batch_size == 0 {
                bail!("mailbox {}: batch_size must be at least 1", mb.name);
            }
        }
        Ok(())
    }

    /// Webhooks, the chats and the agents' chat ids.
    fn validate_integrations(&self) -> Result<()> {
        let mut hooks = std::collections::HashSet::new();
        for hook in &self.webhook {
            if !hooks.insert(&hook.name) {
                bail!("webhook name {:?} is used twice", hook.name);
            }
            check_url(&format!("webhook {}", hook.name), &hook.url)?;
            if hook.secret.is_none() && hook.secret_file.is_none() {
                bail!(
                    "webhook {}: set secret or secret_file (requests are signed)",
                    hook.name
                );
            }
        }
        if let Some(telegram) = &self.telegram {
            check_url("telegram.api_url", &telegram.api_url)?;
            if telegram.agent_chat.is_some_and(|chat| chat > 0) {
                bail!("telegram.agent_chat must be a group (a negative chat id)");
            }
        }
        if let Some(discord) = &self.discord {
            check_url("discord.api_url", &discord.api_url)?;
        }
        let mut chat_ids = std::collections::HashSet::new();
        for agent in &self.agent {
            for (platform, id) in [("telegram", agent.telegram), ("discord", agent.discord)] {
                if let Some(id) = id
                    && !chat_ids.insert((platform, id))
                {
                    bail!(
                        "agent {}: {platform} id {id} is used by another agent",
                        agent.email
                    );
                }
            }
            for team in &agent.teams {
                if !self.team.iter().any(|t| &t.name == team) {
                    bail!("agent {} names unknown team {team:?}", agent.email);
                }
            }
        }
        Ok(())
    }

    fn validate_sla(&self) -> Result<()> {
        let sla = &self.sla;
        if !(1..=99).contains(&sla.warning_percent) {
            bail!(
                "sla.warning_percent must be between 1 and 99, got {}",
                sla.warning_percent
            );
        }
        for p in crate::ticket::Priority::ALL {
            sla.first_response
                .seconds(*p)
                .map_err(|e| anyhow::anyhow!("sla.first_response.{e}"))?;
            sla.resolution
                .seconds(*p)
                .map_err(|e| anyhow::anyhow!("sla.resolution.{e}"))?;
        }
        if let Some(idle) = &sla.idle_after
            && crate::clock::parse_duration(idle).is_none_or(|n| n <= 0)
        {
            bail!("sla.idle_after: {idle:?} is not a positive duration (like \"3d\")");
        }
        if let Some(name) = &sla.calendar {
            let Some(c) = self.calendar.iter().find(|c| &c.name == name) else {
                bail!("sla.calendar names unknown calendar {name:?}");
            };
            if c.compile().is_ok_and(|c| !c.has_hours()) {
                bail!("sla.calendar {name:?} has no opening hours");
            }
        }
        for o in &sla.overrides {
            let whom = match (&o.team, &o.organization) {
                (Some(t), None) if self.team.iter().any(|x| &x.name == t) => format!("team {t}"),
                (None, Some(org)) if self.organization.iter().any(|x| &x.name == org) => {
                    format!("organization {org}")
                }
                (Some(t), None) => bail!("sla.override: unknown team {t:?}"),
                (None, Some(org)) => bail!("sla.override: unknown organization {org:?}"),
                _ => bail!("sla.override: name exactly one of team or organization"),
            };
            for (priority, text) in o.first_response.iter().chain(&o.resolution) {
                priority
                    .parse::<crate::ticket::Priority>()
                    .map_err(|e| anyhow::anyhow!("sla.override for {whom}: {e}"))?;
                if crate::clock::parse_duration(text).is_none_or(|n| n <= 0) {
                    bail!(
                        "sla.override for {whom}: {priority}: {text:?} is not a positive duration"
                    );
                }
            }
        }
        Ok(())
    }

    /// The calendar the rules' `business_hours` condition uses, if any.
    /// The time zone `schedule` rules read their cron patterns in.
    pub fn rules_time_zone(&self) -> chrono_tz::Tz {
        self.rules
            .time_zone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .or_else(|| self.rules_calendar().map(|c| c.time_zone()))
            .unwrap_or(chrono_tz::Tz::UTC)
    }

    pub fn rules_calendar(&self) -> Option<crate::calendar::BusinessHours> {
        let named = self.rules.calendar.as_ref();
        self.calendar
            .iter()
            .find(|c| named.is_none_or(|n| &c.name == n))
            .and_then(|c| c.compile().ok())
    }

    /// The reply-token key, read from its file when one is named.
    pub fn reply_token_key(&self) -> Result<Option<Vec<u8>>> {
        if let Some(file) = &self.threading.reply_token_key_file {
            let key = std::fs::read(file)
                .with_context(|| format!("cannot read reply_token_key_file {}", file.display()))?;
            let key = key.trim_ascii().to_vec();
            if key.len() < 16 {
                bail!(
                    "reply token key in {} is shorter than 16 bytes",
                    file.display()
                );
            }
            return Ok(Some(key));
        }
        Ok(self
            .threading
            .reply_token_key
            .as_ref()
            .map(|k| k.expose().as_bytes().to_vec()))
    }

    /// Lower-cased support addresses, the global ones and every mailbox's.
    pub fn support_addresses(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .mail
            .support_addresses
            .iter()
            .chain(self.mailbox.iter().flat_map(|m| m.support_addresses.iter()))
            .map(|a| a.to_lowercase())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Config::parse(
            r#"
[threading]
reply_token_key = "key-0123456789abcdef"
[smtp]
host = "smtp.example.com"
username = "u"
password = "smtp-pa55"
[[mailbox]]
name = "support"
host = "imap.example.com"
username = "u"
password = "imap-pa55"
[[webhook]]
name = "crm"
url = "https://crm.example.com/hook"
secret = "hook-s3cret"
"#,
        )
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        for secret in [
            "key-0123456789abcdef",
            "smtp-pa55",
            "imap-pa55",
            "hook-s3cret",
        ] {
            assert!(!shown.contains(secret), "{secret} shows");
        }
        assert!(shown.contains("(redacted)"));
        // The values themselves still work.
        assert_eq!(c.mailbox[0].password().unwrap(), "imap-pa55");
        assert_eq!(
            c.smtp.as_ref().unwrap().password().unwrap().as_deref(),
            Some("smtp-pa55")
        );
    }

    #[test]
    fn empty_config_has_working_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.database.url, "sqlite://var/ticketd.db");
        assert_eq!(c.tickets.number_prefix, "TKT");
        assert_eq!(c.threading.stranger_policy, StrangerPolicy::NewTicket);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = Config::parse("[database]\nurll = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `urll`"), "{err}");
        assert!(Config::parse("[threading]\nstranger_policy = \"ignore\"").is_err());
        assert!(Config::parse("[[agent]]\nemail = \"a@b\"\nteams = [\"x\"]").is_err());
    }

    #[test]
    fn webhooks_need_https_off_loopback_and_a_secret() {
        let hook = |url: &str, secret: &str| {
            Config::parse(&format!(
                "[[webhook]]\nname = \"crm\"\nurl = \"{url}\"\n{secret}"
            ))
        };
        assert!(hook("https://crm.example.com/h", "secret = \"x\"").is_ok());
        assert!(hook("http://127.0.0.1:8080/h", "secret = \"x\"").is_ok());
        assert!(hook("http://[::1]:8080/h", "secret = \"x\"").is_ok());
        let err = hook("http://crm.example.com/h", "secret = \"x\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "webhook crm: plain http:// is only allowed for a loopback host, not crm.example.com"
        );
        assert!(hook("ftp://x/h", "secret = \"x\"").is_err());
        let err = hook("https://crm.example.com/h", "").unwrap_err();
        assert!(
            err.to_string().contains("set secret or secret_file"),
            "{err}"
        );
    }

    #[test]
    fn mailboxes_refuse_plain_text_off_loopback() {
        let mb = |host: &str, tls: &str, after: &str| {
            format!(
                "[[mailbox]]\nname = \"m\"\nhost = \"{host}\"\ntls = \"{tls}\"\nusername = \"u\"\npassword = \"p\"\nafter = \"{after}\"\n"
            )
        };
        assert!(Config::parse(&mb("127.0.0.1", "none", "flag")).is_ok());
        assert!(Config::parse(&mb("localhost", "none", "delete")).is_ok());
        let err = Config::parse(&mb("imap.example.com", "none", "flag"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only allowed for a loopback host"), "{err}");
        let c = Config::parse(&mb("imap.example.com", "implicit", "move:Done")).unwrap();
        assert_eq!(c.mailbox[0].after, After::Move("Done".into()));
        assert_eq!(c.mailbox[0].port(), 993);
        assert!(Config::parse(&mb("imap.example.com", "starttls", "move:")).is_err());
    }
}
