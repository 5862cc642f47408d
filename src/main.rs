//! The `ticketd` command line: parses arguments, loads the config and calls
//! into the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use ticketd::clock::Clock;
use ticketd::config::{self, Config};
use ticketd::source::pipe;
use ticketd::{app, ingest, view};

#[derive(Parser)]
#[command(
    name = "ticketd",
    version,
    about = "Turns support email and chat into tickets"
)]
struct Cli {
    /// Config file [default: config/ticketd.toml]
    #[arg(long, global = true, env = config::ENV_CONFIG)]
    config: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: watch the configured sources until SIGTERM/SIGINT.
    Run,
    /// Ingest RFC 5322 messages from files, or one from standard input (MTA pipe).
    /// Exit 0 stored, 65 not a mail message, 75 store unavailable (try later).
    Ingest { files: Vec<PathBuf> },
    /// List and show tickets.
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
    /// Validate the config file, the rules and the templates.
    Check,
    /// Dry-run and test the rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Tickets created and resolved, average first-response and resolution
    /// time and SLA compliance in a window, per agent, team, category or
    /// organization.
    Report {
        /// Start: a date (2026-11-01, midnight in the rules' time zone), an
        /// RFC 3339 time, or a span ago (7d) [default: 7d before --to].
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive), in the same forms [default: now, inclusive].
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "team")]
        by: ReportBy,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
    },
    /// Create or upgrade the database schema.
    Migrate,
    /// The instances sharing the database: running or gone, the sources
    /// (leases) each holds and the notifications each has claimed.
    Instances,
    /// Copy the configured SQLite database into an empty PostgreSQL database
    /// (migrated first), verified table by table by row counts and checksums.
    /// Stop the daemon first.
    CopyTo {
        /// postgres://… of the target database.
        url: String,
    },
    /// A consistent copy of the SQLite database while ticketd runs
    /// (`VACUUM INTO`); for PostgreSQL it says how to use pg_dump.
    Backup {
        /// The file to write (must not exist).
        path: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportBy {
    Agent,
    Team,
    Category,
    Organization,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// With MESSAGE: show, for each rule, whether it matched, which condition
    /// decided and the actions that would run, changing nothing. Without:
    /// run the test cases in the rule files.
    Test {
        message: Option<PathBuf>,
        /// The event to evaluate [default: ticket.created].
        #[arg(long)]
        event: Option<String>,
    },
    /// How the current rules would have treated the tickets created in a
    /// window, against what actually happened.
    Replay {
        /// How far back, e.g. 7d, 24h.
        #[arg(long, default_value = "7d")]
        since: String,
    },
}

#[derive(Subcommand)]
enum TicketsCommand {
    /// Tickets, most recently updated first.
    List {
        #[arg(long)]
        status: Option<ticketd::ticket::Status>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One ticket with its comments, attachments and history.
    Show {
        number: String,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(pipe::EXIT_TEMPFAIL as u8);
        }
    };
    let is_ingest = matches!(cli.command, Command::Ingest { .. });
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            // An MTA must retry rather than bounce when we cannot even start.
            ExitCode::from(if is_ingest {
                pipe::EXIT_TEMPFAIL as u8
            } else {
                1
            })
        }
    }
}

async fn dispatch(cli: Cli) -> Result<i32> {
    let config_path = config::path(cli.config.as_deref());
    let config = Config::load(&config_path)?;
    match cli.command {
        Command::Run => {
            app::run(config, Clock::System, app::shutdown_signal()).await?;
            Ok(0)
        }
        Command::Ingest { files } => ingest_command(&config, files).await,
        Command::Tickets { command } => tickets_command(&config, command).await,
        Command::Backup { path } => {
            let store = ticketd::store::Store::connect(&config.database.url, 1).await?;
            let done = store.backup(&path).await;
            store.close().await;
            println!("{}", done?);
            Ok(0)
        }
        Command::Check => check_command(&config, &config_path).await,
        Command::Rules { command } => rules_command(&config, command).await,
        Command::Report {
            from,
            to,
            by,
            format,
        } => report_command(&config, (from, to), by, format).await,
        Command::CopyTo { url } => copy_command(&config, &url).await,
        Command::Instances => {
            let store = ticketd::store::Store::connect(&config.database.url, 1).await?;
            let view = store.cluster_view().await;
            store.close().await;
            let gone_after = 3 * i64::from(config.database.lease_seconds);
            print!("{}", ticketd::cluster::render(&view?, gone_after));
            Ok(0)
        }
        Command::Migrate => {
            let store = app::open_store(&config).await?;
            store.close().await;
            println!("database migrated");
            Ok(0)
        }
    }
}

/// `ticketd ingest [FILE…]`: the files (or standard input), one line each.
async fn ingest_command(config: &Config, files: Vec<std::path::PathBuf>) -> Result<i32> {
    let store = app::open_store(config).await?;
    let pipeline =
        ingest::Pipeline::new(config, &app::context(config, store.clone(), Clock::System)?);
    let inputs = if files.is_empty() {
        vec![pipe::Input::Stdin]
    } else {
        files.into_iter().map(pipe::Input::File).collect()
    };
    let code = pipe::run(&pipeline, inputs, &mut std::io::stdout().lock()).await;
    store.close().await;
    Ok(code)
}

/// `ticketd tickets list|show`.
async fn tickets_command(config: &Config, command: TicketsCommand) -> Result<i32> {
    let store = app::open_store(config).await?;
    let out = match command {
        TicketsCommand::List {
            status,
            limit,
            json,
        } => {
            let status = status.map(|s| s.as_str());
            let tickets = store
                .list_tickets(status, limit, Clock::System.now())
                .await?;
            if json {
                serde_json::to_string_pretty(&tickets)? + "\n"
            } else {
                view::ticket_table(&tickets)
            }
        }
        TicketsCommand::Show { number, json } => {
            let detail = store
                .ticket_detail(&number)
                .await?
                .with_context(|| format!("no ticket {number}"))?;
            if json {
                serde_json::to_string_pretty(&detail)? + "\n"
            } else {
                view::ticket_detail(&detail)
            }
        }
    };
    print!("{out}");
    store.close().await;
    Ok(0)
}

/// `ticketd check`: the config, its secrets, templates and rules, and the
/// database, without starting anything.
async fn check_command(config: &Config, config_path: &std::path::Path) -> Result<i32> {
    config.reply_token_key()?;
    if let Some(discord) = &config.discord {
        discord.token()?;
    }
    if let Some(telegram) = &config.telegram {
        telegram.token()?;
    }
    let dir = config.notify.templates_dir.as_deref();
    if let Err(errors) =
        ticketd::notify::templates::Templates::load(dir, &config.notify.default_language)
    {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::bail!("{} template error(s)", errors.len());
    }
    let rules = load_rules(config)?;
    // Every secret file readable.
    if let Some(smtp) = &config.smtp {
        smtp.password()?;
    }
    for mailbox in &config.mailbox {
        mailbox.password()?;
    }
    for hook in &config.webhook {
        hook.secret()?;
    }
    // The database answers.
    let store = ticketd::store::Store::connect(&config.database.url, 1)
        .await
        .context("cannot reach the database")?;
    let reached = sqlx::query("SELECT 1").execute(store.pool()).await;
    store.close().await;
    reached.context("the database does not answer")?;
    println!(
        "{}: ok ({} rules, database reachable)",
        config_path.display(),
        rules.rules.len()
    );
    Ok(0)
}

/// `ticketd copy-to URL`: every table, verified by rows and checksum.
async fn copy_command(config: &Config, url: &str) -> Result<i32> {
    let source = ticketd::store::Store::connect(&config.database.url, 1).await?;
    let target = ticketd::store::Store::connect(url, 2).await?;
    target.migrate().await?;
    let copied = ticketd::store::copy::copy(&source, &target).await;
    source.close().await;
    target.close().await;
    let copied = copied?;
    for c in &copied {
        println!(
            "{:<24} {:>10} rows  checksum {}",
            c.table, c.rows, c.checksum
        );
    }
    let rows: i64 = copied.iter().map(|c| c.rows).sum();
    println!(
        "copied {} tables, {rows} rows; every table's rows and checksum match",
        copied.len()
    );
    Ok(0)
}

/// The configured rule set, every problem printed on its own line.
fn load_rules(config: &Config) -> Result<ticketd::rules::RuleSet> {
    ticketd::rules::load::load_configured(config).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::anyhow!("{} rule error(s)", errors.len())
    })
}

async fn rules_command(config: &Config, command: RulesCommand) -> Result<i32> {
    let rules = load_rules(config)?;
    match command {
        RulesCommand::Test {
            message: Some(file),
            event,
        } => {
            let event: ticketd::rules::Event = event
                .as_deref()
                .unwrap_or("ticket.created")
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?;
            let raw =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mail = ticketd::parse::parse(&raw)
                .map_err(|e| anyhow::anyhow!("{}: not a mail message: {e}", file.display()))?;
            let mut facts = ticketd::rules::Facts::from_mail(&mail, "email");
            facts.priority = config.tickets.default_priority.as_str().into();
            facts.business_hours = config
                .rules_calendar()
                .is_some_and(|c| c.is_open(Clock::System.now()));
            print!(
                "{}",
                view::rule_traces(event, &rules.evaluate(event, &facts))
            );
            Ok(0)
        }
        RulesCommand::Test { message: None, .. } => {
            let (run, failures) = rules.run_tests("email");
            for (rule, line, failure) in &failures {
                println!("FAIL rule {rule:?} (test at line {line}): {failure}");
            }
            println!("{run} rule test(s), {} failed", failures.len());
            Ok(if failures.is_empty() { 0 } else { 1 })
        }
        RulesCommand::Replay { since } => {
            let seconds = ticketd::clock::parse_duration(&since)
                .with_context(|| format!("--since {since:?} is not a duration (like 7d, 24h)"))?;
            let store = app::open_store(config).await?;
            let now = Clock::System.now();
            let calendar = config.rules_calendar();
            let report =
                ticketd::replay::replay(&store, &rules, calendar.as_ref(), now - seconds, now)
                    .await?;
            print!("{report}");
            store.close().await;
            Ok(0)
        }
    }
}

async fn report_command(
    config: &Config,
    (from, to): (Option<String>, Option<String>),
    by: ReportBy,
    format: ReportFormat,
) -> Result<i32> {
    use ticketd::report::{GroupBy, Report, parse_bound};
    let tz = config.rules_time_zone();
    let now = Clock::System.now();
    let bound = |flag: &str, text: &str| {
        parse_bound(text, tz, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
    };
    let to = match to {
        Some(text) => bound("to", &text)?,
        // The window ends after the current second, so what just happened counts.
        None => now + 1,
    };
    let from = match from {
        Some(text) => bound("from", &text)?,
        None => to - 7 * 86_400,
    };
    anyhow::ensure!(from < to, "--from must be before --to");
    let by = match by {
        ReportBy::Agent => GroupBy::Agent,
        ReportBy::Team => GroupBy::Team,
        ReportBy::Category => GroupBy::Category,
        ReportBy::Organization => GroupBy::Organization,
    };
    let store = app::open_store(config).await?;
    let rows = store.report_rows(from, to).await?;
    store.close().await;
    let report = Report::build(&rows, from, to, by);
    match format {
        ReportFormat::Table => print!("{}", report.table()),
        ReportFormat::Csv => print!("{}", report.csv()),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(0)
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
