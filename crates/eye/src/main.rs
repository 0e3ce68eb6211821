//! `eye`: the command line. It parses flags and `EYE_*` variables (clap reads both,
//! flags first; `EYE_X_FILE` stands for `EYE_X`), layers them over `eye.toml` and the
//! defaults, and dispatches to the modules that do the work: `run` (the servers),
//! `commands` (management commands), `health` (the container's probe). Secrets (new
//! tokens) go alone to stdout; everything for humans goes to stderr, so
//! `TOKEN=$(eye app create web)` just works.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use eye_server::Settings;
use eye_server::config::SettingsArgs;
use eye_server::startup::Role;

mod backup;
mod commands;
mod health;
mod logging;
mod run;
mod secret_files;

// glibc's malloc showed up at ~13% of the ingest profile (many threads allocating
// small buffers); mimalloc's thread-local free lists make that nearly disappear.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "eye", version, about = "The Eye: behavioural event collection")]
struct Cli {
    /// Configuration file (default: ./eye.toml when present).
    #[arg(long, global = true, env = "EYE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the worker in one process.
    Serve,
    /// Run only the HTTP API (needs a shared queue: --queue-url nats://...).
    Api,
    /// Run only the worker, with /healthz, /readyz and /metrics (needs --queue-url).
    Worker,
    /// Apply pending store migrations and exit.
    Migrate,
    /// Manage applications (the senders of events).
    #[command(subcommand)]
    App(AppCommand),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage event-type schemas (JSON Schema, draft 2020-12).
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Manage the people who log in to the admin UI.
    #[command(subcommand)]
    User(UserCommand),
    /// Ask a running server whether it is healthy (exit 0) or not (exit 1): the
    /// container image's health check, which needs no curl or shell.
    Health(HealthArgs),
    /// Retention: how long data is kept.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Erase the events (and refused events) the filters select, received until now,
    /// queued ones included; prints what was removed.
    Erase(EraseArgs),
    /// Copy the embedded store and queue into DIR (new), consistently, while eye serve
    /// runs; with a manifest of counts and checksums.
    Backup { dir: PathBuf },
    /// Fill an empty data directory from a backup made by eye backup, after checking it.
    Restore { dir: PathBuf },
    /// Rewrite the embedded store without its free pages (the worker waits meanwhile).
    Compact,
    /// Print the audit log of management actions, newest first.
    Audit {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Set a type's schema from FILE (`-` for stdin); the old versions are kept.
    Set {
        category: String,
        name: String,
        file: PathBuf,
        /// enforce: violations are errors; shadow: events are stored and the
        /// violations recorded as warnings [default: the type's current mode, or enforce].
        #[arg(long, value_parser = ["enforce", "shadow"])]
        mode: Option<String>,
    },
    /// List event types with their schema versions, modes and event counts.
    List,
    /// Print a type's schema (the current version unless --version is given).
    Show {
        category: String,
        name: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Remove a type's current schema: its events are no longer checked (versions are kept).
    Delete { category: String, name: String },
    /// Declare the type's indexed payload fields (JSON Pointers, e.g. /form/first_name),
    /// replacing its earlier list; a running server builds the new indexes in the
    /// background. Without paths, prints the list.
    Index {
        category: String,
        name: String,
        paths: Vec<String>,
        /// Remove every indexed field of the type.
        #[arg(long, conflicts_with = "paths")]
        clear: bool,
    },
}

#[derive(Args)]
struct HealthArgs {
    /// Ask /readyz (the store answers and the queue has room) instead of /healthz.
    #[arg(long)]
    ready: bool,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
}

#[derive(Subcommand)]
enum AppCommand {
    /// Register an application; prints its new ingest token alone on stdout.
    Create {
        name: String,
        /// A browser origin allowed to send its events (https://shop.example, or *);
        /// repeat for more.
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
    },
    /// Replace an application's allowed browser origins (none given: no browser).
    Origins {
        name: String,
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
    },
    /// List applications.
    List,
    /// Revoke an application and all its tokens.
    Revoke { name: String },
    /// Set how long an application's events are kept: 30d, 12h, forever..., or
    /// `global` for the global retention (EYE_RETENTION).
    Retention {
        name: String,
        #[arg(value_name = "RETENTION")]
        keep: String,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Delete now what is past its retention, and print what was deleted.
    Run,
}

/// Which data `eye erase` removes: the filters of `GET /events`, at least one.
#[derive(Args)]
struct EraseArgs {
    #[arg(long)]
    session_id: Option<String>,
    /// An application's name or id; alone, it purges that application's data.
    #[arg(long)]
    app: Option<String>,
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// Event time, inclusive (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Event time, exclusive (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// A payload field and its value, as `form.email=a@b.co`; repeat for more.
    #[arg(long)]
    data: Vec<String>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from stdin (one line), or prompted for
    /// without echo when stdin is a terminal.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "analyst"])]
        role: String,
    },
    /// List users: email, role, status (never the password hashes).
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; prints it alone on stdout. It is shown only this once.
    Create {
        /// What the token may do: ingest, read or admin.
        #[arg(long, value_parser = ["ingest", "read", "admin"])]
        scope: String,
        /// The application an ingest token sends for.
        #[arg(long)]
        app: Option<String>,
        /// A note saying who or what holds the token.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens: id, scope, application, label, status (never the secrets).
    List,
    /// Revoke a token by its id (from `eye token list`); within a second everywhere.
    Revoke { id: i64 },
}

fn main() -> anyhow::Result<()> {
    let command = secret_files::apply(Cli::command())?;
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    let role = match cli.command {
        Command::Serve => Some(Role::All),
        Command::Api => Some(Role::Api),
        Command::Worker => Some(Role::Worker),
        _ => None,
    };
    logging::init(role.is_some());
    let mut settings = Settings::from_file(cli.config.as_deref())?;
    cli.settings.apply(&mut settings);
    match &cli.command {
        Command::Health(args) => return health::probe(&settings, args.ready, args.timeout_ms),
        Command::Backup { dir } => return backup::backup(&settings, dir),
        Command::Restore { dir } => return backup::restore(&settings, dir),
        Command::Compact => return backup::compact(&settings),
        _ => {}
    }
    // SQLite calls run on the blocking pool. A small pool bounds memory (each thread
    // keeps its own allocator heap) at no cost in speed: the store has one writer and a
    // handful of readers, so more threads would only wait on the same locks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if let Some(role) = role {
            return run::serve(settings, role).await;
        }
        match cli.command {
            Command::Serve
            | Command::Api
            | Command::Worker
            | Command::Health(_)
            | Command::Backup { .. }
            | Command::Restore { .. }
            | Command::Compact => unreachable!("dispatched above"),
            Command::Migrate => commands::migrate(&settings).await,
            Command::App(command) => commands::app(&settings, command).await,
            Command::Token(command) => commands::token(&settings, command).await,
            Command::Schema(command) => commands::schema(&settings, command).await,
            Command::Audit { limit } => commands::audit(&settings, limit).await,
            Command::Retention(RetentionCommand::Run) => commands::run_retention(&settings).await,
            Command::Erase(args) => commands::erase(&settings, args).await,
            Command::User(command) => commands::user(&settings, command).await,
        }
    })
}
